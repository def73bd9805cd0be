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

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/describe"
	"github.com/atollhq/atoll/cli/output"
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
		Short: "Show one object in words: what it asks for, its conditions and reasons, recent events (also a replica or node, as its member sees it now)",
		Long: `Show one object as a summary for people, kubectl's way: a workload's spec
in words (replicas, command, resources in CPU and MiB, probes, placement,
failover, disruption and rollout policies), its conditions with their
reasons, where it is placed and why, its replicas per cluster and its recent
events; a cluster's health, taints and capacity; a drill's plan, report and
timeline; a token's role and expiry. Figures of a cluster that is not Ready
are labelled last known. describe replica NAME and describe node NAME ask
the members what they see now.

For the raw object, use atoll get KIND NAME -o yaml (or -o json).`,
		Args: cobra.ExactArgs(2),
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
			var obj json.RawMessage
			if err := c.Get(cmd.Context(), k.Plural, args[1], &obj); err != nil {
				return err
			}
			if err := describe.Object(cmd.OutOrStdout(), k.Name, obj, time.Now()); err != nil {
				return err
			}
			if k.Name == "Service" {
				// Its traffic through the gateways; a hub that measures
				// none says so in words.
				t, err := c.ServiceTraffic(cmd.Context(), args[1], "")
				if err != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "Traffic:\n  unknown: %v\n", err)
				} else if err := describe.Traffic(cmd.OutOrStdout(), &t); err != nil {
					return err
				}
			}
			if !describe.HasEvents(k.Name) {
				return nil
			}
			return describeEvents(cmd.Context(), c, cmd.OutOrStdout(), k.Name, args[1])
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "describe workload: its effective template in this cluster (overrides applied); describe replica|node: the cluster to ask (default: every cluster)")
	return cmd
}

// describeEvents prints the object's latest events (describe.Events).
func describeEvents(ctx context.Context, c *client.Client, out io.Writer, kind, name string) error {
	var events api.EventList
	sel := api.LabelEventKind + "=" + kind + "," + api.LabelEventName + "=" + name
	if err := c.List(ctx, "events", client.ListOptions{LabelSelector: sel}, &events); err != nil {
		return err
	}
	return describe.Events(out, events.Items, time.Now())
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
func eventMessage(e api.Event, now time.Time) string { return describe.EventMessage(e, now) }
