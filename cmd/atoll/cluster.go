package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
)

func newClusterCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Cordon, uncordon, drain, taint or deregister member clusters"}
	patch := func(use, short string, body func(args []string) ([]byte, error), done string) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := cf.client()
				if err != nil {
					return err
				}
				b, err := body(args)
				if err != nil {
					return err
				}
				if err := c.Patch(cmd.Context(), "clusters", args[0], b, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "cluster/%s %s\n", args[0], done)
				return nil
			},
		}
	}
	cordon := patch("cordon NAME", "Place nothing new on a cluster (what runs stays)", func([]string) ([]byte, error) {
		return []byte(`{"spec":{"unschedulable":true}}`), nil
	}, "cordoned")
	// drain and uncordon rewrite the taints: read, change, write with the
	// version read (a concurrent change gets a 409, not a lost update).
	// The hub refuses NoExecute taints (a drain among them) whose
	// evacuation leaves a workload with no replica anywhere or below its
	// disruption budget; --force writes them anyway.
	editTaints := func(use, short, done string, nargs cobra.PositionalArgs, edit func(cl *api.Cluster, args []string) (map[string]any, error)) *cobra.Command {
		var force bool
		cmd := &cobra.Command{
			Use: use, Short: short, Args: nargs,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := cf.client()
				if err != nil {
					return err
				}
				// The hub updates a cluster's status by itself (health,
				// capacity; often, right after a member joins): a 409 means
				// read again and retry, a few times, backing off a little.
				for attempt := 1; ; attempt++ {
					if attempt > 1 {
						select {
						case <-cmd.Context().Done():
							return cmd.Context().Err()
						case <-time.After(time.Duration(attempt*attempt) * 20 * time.Millisecond):
						}
					}
					var cl api.Cluster
					if err := c.Get(cmd.Context(), "clusters", args[0], &cl); err != nil {
						return err
					}
					spec, err := edit(&cl, args[1:])
					if err != nil {
						return err
					}
					b, _ := json.Marshal(map[string]any{
						"metadata": map[string]string{"resourceVersion": cl.Metadata.ResourceVersion},
						"spec":     spec,
					})
					if force {
						err = c.PatchForced(cmd.Context(), "clusters", args[0], b, nil)
					} else {
						err = c.Patch(cmd.Context(), "clusters", args[0], b, nil)
					}
					if api.ErrorCode(err) == api.CodeConflict && attempt < 10 {
						continue
					}
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "cluster/%s %s\n", args[0], done)
					return nil
				}
			},
		}
		cmd.Flags().BoolVar(&force, "force", false, "write NoExecute taints even when their evacuation leaves a workload with no replica anywhere, or below its disruption budget")
		return cmd
	}
	withoutDrain := func(ts []api.Taint) []api.Taint {
		out := []api.Taint{}
		for _, t := range ts {
			if t.Key != api.DrainTaintKey {
				out = append(out, t)
			}
		}
		return out
	}
	uncordon := editTaints("uncordon NAME", "Allow placements on a cluster again (and end a drain)", "uncordoned", cobra.ExactArgs(1),
		func(cl *api.Cluster, _ []string) (map[string]any, error) {
			return map[string]any{"unschedulable": nil, "taints": withoutDrain(cl.Spec.Taints)}, nil
		})
	drain := editTaints("drain NAME", "Cordon a cluster and move its replicas elsewhere, each kept until its replacement is ready", "draining", cobra.ExactArgs(1),
		func(cl *api.Cluster, _ []string) (map[string]any, error) {
			taints := append(withoutDrain(cl.Spec.Taints), api.Taint{Key: api.DrainTaintKey, Effect: "NoExecute"})
			return map[string]any{"unschedulable": true, "taints": taints}, nil
		})
	guardDrain(drain, cf)
	taint := editTaints("taint NAME key=value:Effect ... | key:Effect- ...", "Add taints (NoSchedule, NoExecute) or remove them with a trailing '-'", "tainted", cobra.MinimumNArgs(2),
		func(cl *api.Cluster, args []string) (map[string]any, error) {
			taints, err := applyTaintArgs(cl.Spec.Taints, args)
			if err != nil {
				return nil, err
			}
			return map[string]any{"taints": taints}, nil
		})
	var guard clusterGuard
	deregister := &cobra.Command{
		Use:   "deregister NAME --yes [--force]",
		Short: "Remove a cluster: its NATS identity and member token are revoked at once (admin)",
		Long: "Deregistering revokes the member's identity for good: it must join again with a new join token. " +
			"It asks for the cluster's name at a terminal, or needs --yes; the hub refuses a cluster whose member still heartbeats unless --force.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := guard.confirm(cmd, args[0]); err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := guard.deregister(cmd.Context(), c, args[0], nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster/%s deregistered\n", args[0])
			return nil
		},
	}
	guard.addFlags(deregister)
	reissue := &cobra.Command{
		Use:   "reissue NAME",
		Short: "Re-issue a cluster's identity: revoke its NATS key and member token, and let the next member that joins under its name with a join token set a new key (admin)",
		Long: "For a member that lost its data folder (and so its key), or whose key is no longer trusted. " +
			"The cluster, its spec and its placements stay; until a member joins again it is silent. " +
			"Without a re-issue, a join under a registered name with another key is refused.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.Raw(cmd.Context(), http.MethodPost, "/api/v1/clusters/"+url.PathEscape(args[0])+"/reissue", nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster/%s identity re-issued: the next member to join as %s with a join token sets its key\n", args[0], args[0])
			return nil
		},
	}
	cmd.AddCommand(cordon, uncordon, drain, taint, deregister, reissue)
	return cmd
}

// applyTaintArgs reads kubectl-style taint arguments: key=value:Effect or
// key:Effect adds (replacing the same key and effect), a trailing '-'
// removes (key- removes every effect of the key).
func applyTaintArgs(have []api.Taint, args []string) ([]api.Taint, error) {
	out := append([]api.Taint{}, have...)
	for _, a := range args {
		if rest, ok := strings.CutSuffix(a, "-"); ok {
			key, effect, _ := strings.Cut(rest, ":")
			key, _, _ = strings.Cut(key, "=")
			kept := out[:0]
			found := false
			for _, t := range out {
				if t.Key == key && (effect == "" || t.Effect == effect) {
					found = true
					continue
				}
				kept = append(kept, t)
			}
			if !found {
				return nil, fmt.Errorf("taint %q: no such taint on the cluster", rest)
			}
			out = kept
			continue
		}
		kv, effect, ok := strings.Cut(a, ":")
		if !ok || (effect != "NoSchedule" && effect != "NoExecute") {
			return nil, fmt.Errorf("taint %q: use key=value:NoSchedule, key=value:NoExecute, or key:Effect- to remove", a)
		}
		key, value, _ := strings.Cut(kv, "=")
		t := api.Taint{Key: key, Value: value, Effect: effect}
		replaced := false
		for i := range out {
			if out[i].Key == key && out[i].Effect == effect {
				out[i], replaced = t, true
			}
		}
		if !replaced {
			out = append(out, t)
		}
	}
	return out, nil
}

// guardDrain plans a drain before it starts, as an evacuate drill of the
// cluster would move its replicas: --dry-run prints that plan and changes
// nothing; a drain that would leave a workload with no replica anywhere,
// or fewer placed replicas than its disruption budget allows, is refused,
// naming the workloads (and their budgets), unless --force.
func guardDrain(drain *cobra.Command, cf *clientFlags) {
	var dryRun bool
	drain.Flags().BoolVar(&dryRun, "dry-run", false, "print where every replica would go, and change nothing")
	drain.Use = "drain NAME [--dry-run] [--force]"
	apply := drain.RunE
	drain.RunE = func(cmd *cobra.Command, args []string) error {
		if !dryRun {
			return apply(cmd, args) // the hub plans it and refuses what breaks a workload
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		spec := api.DrillSpec{Kind: api.DrillEvacuate, Target: api.DrillTarget{Cluster: args[0]}}
		plan, err := planDrill(cmd.Context(), c, spec)
		if err != nil {
			return fmt.Errorf("plan the drain of %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Draining %s would move its replicas as follows (nothing changed):\n\n", args[0])
		if err := printPlan(cmd.OutOrStdout(), spec, plan); err != nil {
			return err
		}
		if harm := plan.EvacuationHarm(); harm != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "\nThe hub would refuse this drain: it would %s. --force drains anyway.\n", harm)
		}
		return nil
	}
}
