package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/output"
	"github.com/atollhq/atoll/cli/replicas"
)

func kindArg(name string) (api.Kind, error) {
	k, ok := api.LookupKind(name)
	if !ok {
		names := make([]string, len(api.Kinds))
		for i, k := range api.Kinds {
			names[i] = k.Plural
		}
		return k, fmt.Errorf("unknown kind %q: try one of %s", name, strings.Join(names, ", "))
	}
	return k, nil
}

// kindClient resolves a kind argument and the hub client, the first two
// steps of every verb that takes a kind.
func (f *clientFlags) kindClient(kind string) (api.Kind, *client.Client, error) {
	k, err := kindArg(kind)
	if err != nil {
		return k, nil, err
	}
	c, err := f.client()
	return k, c, err
}

// listAll follows continue tokens to the end. The version it returns is
// the first page's: a watch from there misses nothing that changed while
// the later pages were read.
func listAll(ctx context.Context, c *client.Client, k api.Kind, selector string) ([]json.RawMessage, string, error) {
	var all []json.RawMessage
	var rv string
	opts := client.ListOptions{LabelSelector: selector}
	for {
		var page struct {
			Metadata api.ListMeta      `json:"metadata"`
			Items    []json.RawMessage `json:"items"`
		}
		if err := c.List(ctx, k.Plural, opts, &page); err != nil {
			return nil, "", err
		}
		all = append(all, page.Items...)
		if rv == "" {
			rv = page.Metadata.ResourceVersion
		}
		if page.Metadata.Continue == "" {
			return all, rv, nil
		}
		opts.Continue = page.Metadata.Continue
	}
}

func newDescribeCmd(cf *clientFlags) *cobra.Command {
	var cluster string
	cmd := &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show one object in detail (also a replica or node, as its member sees it now)",
		Args:  cobra.ExactArgs(2),
		// Completes the kind, then one name.
		ValidArgsFunction: cf.completeObjects(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if k := liveKind(args[0]); k != "" {
				c, err := cf.client()
				if err != nil {
					return err
				}
				return describeLive(cmd.Context(), c, cmd.OutOrStdout(), k, args[1], cluster)
			}
			k, c, err := cf.kindClient(args[0])
			if err != nil {
				return err
			}
			if cluster != "" && k.Name != "Workload" {
				return errors.New("--cluster goes with describe workload (its template there), replica and node")
			}
			if cluster != "" {
				return describeEffective(cmd.Context(), c, cmd.OutOrStdout(), args[1], cluster)
			}
			var obj struct {
				Metadata api.ObjectMeta  `json:"metadata"`
				Spec     json.RawMessage `json:"spec"`
				Status   json.RawMessage `json:"status"`
			}
			if err := c.Get(cmd.Context(), k.Plural, args[1], &obj); err != nil {
				return err
			}
			status := obj.Status
			if k.Name == "Workload" {
				status = withoutKey(status, "clusters") // said in words below
			}
			if err := describe(cmd.OutOrStdout(), k, obj.Metadata, obj.Spec, status); err != nil {
				return err
			}
			if k.Name == "Workload" {
				var st api.WorkloadStatus
				_ = json.Unmarshal(obj.Status, &st)
				if err := replicas.Describe(cmd.OutOrStdout(), st, time.Now()); err != nil {
					return err
				}
			}
			return describeEvents(cmd.Context(), c, cmd.OutOrStdout(), k.Name, args[1])
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "describe workload: its effective template in this cluster (overrides applied); describe replica|node: the cluster to ask (default: every cluster)")
	return cmd
}

func describe(out io.Writer, k api.Kind, m api.ObjectMeta, spec, status json.RawMessage) error {
	t := newTable(out)
	t.row("Kind:", k.Name)
	t.row("Name:", m.Name)
	t.row("UID:", m.UID)
	t.row("Labels:", labelString(m.Labels))
	t.row("Annotations:", labelString(m.Annotations))
	if m.CreationTimestamp != nil {
		t.row("Created:", m.CreationTimestamp.Format(time.RFC3339)+" ("+age(m.CreationTimestamp, time.Now())+" ago)")
	}
	t.row("Generation:", fmt.Sprint(m.Generation))
	t.row("Resource version:", m.ResourceVersion)
	if len(m.Finalizers) > 0 {
		t.row("Finalizers:", strings.Join(m.Finalizers, ", "))
	}
	if m.DeletionTimestamp != nil {
		t.row("Deleting since:", m.DeletionTimestamp.Format(time.RFC3339))
	}
	for i, l := range staleLines(k.Name, status, time.Now()) {
		title := ""
		if i == 0 {
			title = "Last known:"
		}
		t.row(title, l)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, part := range []struct {
		title string
		doc   json.RawMessage
	}{{"Spec", spec}, {"Status", status}} {
		if len(part.doc) == 0 || string(part.doc) == "{}" || string(part.doc) == "null" {
			continue
		}
		y, err := yaml.JSONToYAML(part.doc)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s:\n", part.title)
		for _, line := range strings.Split(strings.TrimRight(string(y), "\n"), "\n") {
			fmt.Fprintln(out, "  "+line)
		}
	}
	return nil
}

// describeEvents prints the object's last ten events, oldest first.
func describeEvents(ctx context.Context, c *client.Client, out io.Writer, kind, name string) error {
	var events api.EventList
	sel := api.LabelEventKind + "=" + kind + "," + api.LabelEventName + "=" + name
	if err := c.List(ctx, "events", client.ListOptions{LabelSelector: sel}, &events); err != nil {
		return err
	}
	fmt.Fprintln(out, "Events:")
	if len(events.Items) == 0 {
		fmt.Fprintln(out, "  <none>")
		return nil
	}
	sort.SliceStable(events.Items, func(i, j int) bool {
		a, b := events.Items[i].EventTime, events.Items[j].EventTime
		return a != nil && b != nil && a.Before(*b)
	})
	if len(events.Items) > 10 {
		events.Items = events.Items[len(events.Items)-10:]
	}
	t := newTable(out, "  AGE", "TYPE", "REASON", "MESSAGE")
	for _, e := range events.Items {
		t.row("  "+age(e.EventTime, time.Now()), e.Type, e.Reason, eventMessage(e, time.Now()))
	}
	return t.flush()
}

func readManifests(stdin io.Reader, path string) ([]api.Manifest, error) {
	if path == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, 64<<20))
		if err != nil {
			return nil, err
		}
		return api.DecodeManifests("stdin", data)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	paths := []string{path}
	if st.IsDir() {
		paths = nil
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
				paths = append(paths, filepath.Join(path, e.Name()))
			}
		}
		sort.Strings(paths)
	}
	var out []api.Manifest
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		ms, err := api.DecodeManifests(p, data)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

func newTokenCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create and revoke API tokens (admin)"}
	var role, ttl, description, format, region, secretFile string
	var join bool
	var uses int32
	create := &cobra.Command{
		Use:   "create NAME (--role viewer|operator|admin | --join [--uses N] [--region R]) [--ttl 720h]",
		Short: "Create an API token, or a join token for members; the secret is printed once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if secretFile != "" {
				if format != "" {
					return errors.New("--secret-file and -o do not go together: the secret goes to the file")
				}
				// A bootstrap step (a one-shot container) runs at every
				// start: the token it made the first time is still there.
				if _, err := os.Stat(secretFile); err == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s exists: no token created (remove it to make a new one)\n", secretFile)
					return nil
				} else if !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("--secret-file: %w", err)
				}
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			spec := api.TokenSpec{Role: role, TTL: api.Duration(ttl), Description: description}
			if join {
				if cmd.Flags().Changed("role") {
					return fmt.Errorf("--join and --role do not go together: a join token only registers members")
				}
				spec = api.TokenSpec{Type: api.TokenJoin, TTL: api.Duration(ttl), Uses: uses, Region: region, Description: description}
			} else if uses != 0 || region != "" {
				return fmt.Errorf("--uses and --region apply to join tokens (--join)")
			}
			t := api.Token{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Token"}, Metadata: api.ObjectMeta{Name: args[0]}, Spec: spec}
			if fe := t.Validate(); fe != nil {
				return fe
			}
			var created api.Token
			if err := c.Create(cmd.Context(), "tokens", t, &created); err != nil {
				return err
			}
			switch {
			case format == "json" || format == "yaml":
				return output.WriteData(cmd.OutOrStdout(), format, created)
			case secretFile != "":
				if err := writeFileAtomic(secretFile, []byte(created.Status.Secret+"\n"), 0o600); err != nil {
					return fmt.Errorf("token %q was created but its secret could not be saved (revoke it with 'atoll token revoke %s'): %w", args[0], args[0], err)
				}
			default:
				fmt.Fprintln(cmd.OutOrStdout(), created.Status.Secret)
			}
			exp := "never expires"
			if created.Spec.ExpiresAt != nil {
				exp = "expires " + created.Spec.ExpiresAt.Format(time.RFC3339)
			}
			what := created.Spec.Role
			if join {
				what = "join"
			}
			if secretFile != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "token %q (%s) created; %s. Its secret is in %s.\n", args[0], what, exp, secretFile)
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token %q (%s) created; %s. It is shown only now: keep it safe.\n", args[0], what, exp)
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "viewer", "viewer, operator or admin")
	create.Flags().StringVar(&ttl, "ttl", "", "lifetime, e.g. 24h or 720h (default: API tokens never expire, join tokens last 24h)")
	create.Flags().BoolVar(&join, "join", false, "make a join token, which registers member clusters")
	create.Flags().Int32Var(&uses, "uses", 0, "join: how many members may register with it (0: no limit)")
	create.Flags().StringVar(&region, "region", "", "join: only members of this region may use it")
	create.Flags().StringVar(&description, "description", "", "what the token is for")
	create.Flags().StringVarP(&format, "output", "o", "", "json or yaml to print the whole object")
	create.Flags().StringVar(&secretFile, "secret-file", "", "write the secret to this file (mode 0600) instead of printing it; when the file exists, create nothing (for a bootstrap step that runs at every start)")
	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "Revoke a token at once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), "tokens", args[0], nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token/%s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, revoke)
	return cmd
}

// eventMessage is an event's message, with how often and over how long
// it happened for a deduplicated one: "... (x8 over 3m)".
func eventMessage(e api.Event, now time.Time) string {
	if e.Count <= 1 || e.FirstTimestamp == nil {
		return e.Message
	}
	return fmt.Sprintf("%s (x%d over %s)", e.Message, e.Count, replicas.Age(e.FirstTimestamp, now))
}

// withoutKey is a JSON object without one of its keys (doc as it is when
// it is no object).
func withoutKey(doc json.RawMessage, key string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(doc, &m) != nil {
		return doc
	}
	delete(m, key)
	b, err := json.Marshal(m)
	if err != nil {
		return doc
	}
	return b
}
