package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/output"
)

func newGetCmd(cf *clientFlags) *cobra.Command {
	var format, selector, sortBy string
	var watch, noHeaders, showValues bool
	var live liveFlags
	var audit auditFlags
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...] | KIND,KIND... | KIND/NAME... | replicas|nodes [--workload W] [--cluster C] [--node N] | audit [--for KIND/NAME] [--actor A] [--refused] [--since 1h]",
		Short: "List objects of a kind, or show some by name",
		Example: `  atoll get workloads -l app=web --sort-by=.spec.replicas
  atoll get workloads web api
  atoll get workloads,clusters
  atoll get workload/web cluster/eu-west -o name
  atoll get workloads -o custom-columns=NAME:.metadata.name,READY:.status.readyReplicas
  atoll get workload web -o jsonpath='{.status.readyReplicas}'
  atoll get workload web -w
  atoll get replicas --workload web --cluster eu-west
  atoll get nodes --cluster eu-west
  atoll get secret db --show-values -o yaml
  atoll get audit --for cluster/us-east --since 1d`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: cf.completeObjects(-1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := output.New(format, noHeaders, sortBy)
			if err != nil {
				return err
			}
			if args[0] == "audit" {
				if len(args) > 1 || watch || selector != "" || live != (liveFlags{}) {
					return errors.New("atoll get audit takes no names, -w, -l or replica filters: narrow it with --for, --actor, --verb, --result, --refused and --since")
				}
				q, err := audit.query(time.Now())
				if err != nil {
					return err
				}
				c, err := cf.client()
				if err != nil {
					return err
				}
				var page struct {
					Items []json.RawMessage `json:"items"`
				}
				if err := c.Raw(cmd.Context(), "GET", "/api/v1/audit", q, nil, &page); err != nil {
					return err
				}
				return p.Print(cmd.OutOrStdout(), []output.Group{{Kind: "AuditEntry", Plural: "audit", Table: auditTable, Items: page.Items, List: true}}, false)
			}
			if audit.set(cmd) {
				return errors.New("--for, --actor, --verb, --result, --refused, --since and --limit filter 'atoll get audit' only")
			}
			if k := liveKind(args[0]); k != "" {
				if len(args) > 1 || selector != "" || (watch && k != "replicas") {
					return fmt.Errorf("get %s lists what members run now: filter it with --workload, --cluster and --node (no names or -l; -w with replicas only)", k)
				}
				c, err := cf.client()
				if err != nil {
					return err
				}
				if watch {
					if format != "table" && format != "wide" {
						return errors.New("get replicas -w prints table rows: use -o table or -o wide")
					}
					return watchReplicas(cmd.Context(), c, cmd.OutOrStdout(), format == "wide", noHeaders, live, 2*time.Second)
				}
				return getLive(cmd.Context(), c, cmd.OutOrStdout(), p, k, live)
			}
			if live != (liveFlags{}) {
				return errors.New("--workload, --cluster and --node go with get replicas and get nodes")
			}
			reqs, err := parseGetArgs(args)
			if err != nil {
				return err
			}
			named := false
			for _, r := range reqs {
				named = named || len(r.names) > 0
			}
			if showValues {
				for _, r := range reqs {
					if r.kind.Name != "Secret" || len(r.names) == 0 || watch {
						return errors.New("--show-values reads named secrets' values (admins only): atoll get secret NAME... --show-values")
					}
				}
			}
			if named && selector != "" {
				return errors.New("-l selects from a whole kind: give names or -l, not both")
			}
			if watch && (len(reqs) > 1 || len(reqs[0].names) > 1) {
				return errors.New("-w watches one kind or one object: give one KIND [NAME]")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			if watch {
				name := ""
				if named {
					name = reqs[0].names[0]
				}
				return watchGet(ctx, c, out, p, reqs[0].kind, name, selector)
			}
			groups := make([]output.Group, 0, len(reqs))
			names := 0
			for _, r := range reqs {
				g := output.Group{Kind: r.kind.Name, Plural: r.kind.Plural, Table: kindTable(r.kind)}
				if len(r.names) == 0 {
					g.List = true
					if g.Items, g.ListVersion, err = listAll(ctx, c, r.kind, selector); err != nil {
						return err
					}
				}
				for _, name := range r.names {
					var raw json.RawMessage
					if showValues {
						err = c.Raw(ctx, "GET", "/api/v1/secrets/"+url.PathEscape(name)+"/data", nil, nil, &raw)
					} else {
						err = c.Get(ctx, r.kind.Plural, name, &raw)
					}
					if err != nil {
						return err // the hub names the kind and the object
					}
					g.Items = append(g.Items, raw)
					names++
				}
				groups = append(groups, g)
			}
			return p.Print(out, groups, names == 1)
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "table", "table, wide, name, json, yaml, jsonpath=TEMPLATE or custom-columns=HEADER:.path,...")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, e.g. app=web,tier!=db")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "after listing, print changes as they happen (a whole kind, or one object)")
	cmd.Flags().BoolVar(&noHeaders, "no-headers", false, "leave out the header row of tables")
	cmd.Flags().BoolVar(&showValues, "show-values", false, "get secret NAME: include the values (admins only; audited); -o yaml or json to see them")
	cmd.Flags().StringVar(&sortBy, "sort-by", "", "order by a JSONPath, e.g. .metadata.creationTimestamp or .spec.replicas")
	cmd.Flags().StringVar(&live.workload, "workload", "", "get replicas: only this workload's")
	cmd.Flags().StringVar(&live.cluster, "cluster", "", "get replicas|nodes: only this cluster's")
	cmd.Flags().StringVar(&live.node, "node", "", "get replicas: only those on this node")
	audit.add(cmd)
	_ = cmd.RegisterFlagCompletionFunc("output", completeFormats)
	return cmd
}

// getRequest is one kind and the names asked for (none: the whole list).
type getRequest struct {
	kind  api.Kind
	names []string
}

// parseGetArgs reads KIND [NAME...], KIND,KIND... or KIND/NAME..., the
// kinds in the order first named.
func parseGetArgs(args []string) ([]getRequest, error) {
	if strings.Contains(args[0], ",") && !strings.Contains(args[0], "/") {
		if len(args) > 1 {
			return nil, fmt.Errorf("names go with one kind: use KIND/NAME... to name objects of %s", args[0])
		}
		var reqs []getRequest
		for _, kind := range strings.Split(args[0], ",") {
			k, err := kindArg(kind)
			if err != nil {
				return nil, err
			}
			reqs = append(reqs, getRequest{kind: k})
		}
		return reqs, nil
	}
	if !strings.Contains(args[0], "/") {
		k, err := kindArg(args[0])
		if err != nil {
			return nil, err
		}
		for _, n := range args[1:] {
			if strings.Contains(n, "/") {
				return nil, fmt.Errorf("%q: give KIND NAME... or KIND/NAME..., not both", n)
			}
		}
		return []getRequest{{k, args[1:]}}, nil
	}
	var reqs []getRequest
	for _, a := range args {
		kind, name, _ := strings.Cut(a, "/")
		if kind == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("%q: want KIND/NAME, as in workload/web", a)
		}
		k, err := kindArg(kind)
		if err != nil {
			return nil, err
		}
		i := 0
		for i < len(reqs) && reqs[i].kind.Name != k.Name {
			i++
		}
		if i == len(reqs) {
			reqs = append(reqs, getRequest{kind: k})
		}
		reqs[i].names = append(reqs[i].names, name)
	}
	return reqs, nil
}

// kindTable is a kind's printer as cli/output takes it.
func kindTable(k api.Kind) output.Table {
	p := printers[k.Name]
	return output.Table{Headers: p.headers, WideHeaders: p.wideHeaders, Less: p.less,
		Row: func(raw json.RawMessage, wide bool) []string { return p.row(raw, time.Now(), wide) }}
}

// watchGet lists a kind (or finds one object in it), prints that, then
// each change from the list's version on.
func watchGet(ctx context.Context, c *client.Client, out io.Writer, p *output.Printer, k api.Kind, name, selector string) error {
	items, rv, err := listAll(ctx, c, k, selector)
	if err != nil {
		return err
	}
	if name != "" {
		var found []json.RawMessage
		for _, raw := range items {
			if metaName(raw) == name {
				found = append(found, raw)
			}
		}
		if len(found) == 0 {
			// Not there when listed: say why (not found, most likely).
			var raw json.RawMessage
			if err := c.Get(ctx, k.Plural, name, &raw); err != nil {
				return err
			}
		}
		items = found
	}
	wa, err := p.Watch(out, output.Group{Kind: k.Name, Plural: k.Plural, Table: kindTable(k), Items: items, List: name == "", ListVersion: rv})
	if err != nil {
		return err
	}
	// A hub restart or a dropped connection ends the stream: resume from
	// the last event seen, so nothing is missed or shown twice.
	for {
		err := c.Watch(ctx, k.Plural, selector, rv, func(ev client.Event) error {
			rv = ev.ResourceVersion
			if name != "" && metaName(ev.Object) != name {
				return nil
			}
			return wa.Event(ev.Type, ev.Object)
		})
		if ctx.Err() != nil {
			return nil
		}
		var prob *api.Problem
		if errors.As(err, &prob) && prob.Status < 500 {
			return err // 410 Gone and the like: the caller must list again
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func metaName(raw json.RawMessage) string {
	var o struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.Metadata.Name
}
