package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/rollout"
)

// workloadArgs checks the KIND NAME (or KIND/NAME) arguments of the
// rollout verbs: the kind must be workload (any of its names).
func (f *clientFlags) workloadArgs(args []string) (string, *client.Client, error) {
	if len(args) == 1 {
		kind, name, ok := strings.Cut(args[0], "/")
		if !ok || name == "" {
			return "", nil, fmt.Errorf("%q: name the workload as workload NAME or workload/NAME", args[0])
		}
		args = []string{kind, name}
	}
	k, err := kindArg(args[0])
	if err != nil {
		return "", nil, err
	}
	if k.Name != "Workload" {
		return "", nil, fmt.Errorf("%s cannot be rolled out, scaled or rebalanced: only workloads can", k.Plural)
	}
	c, err := f.client()
	return args[1], c, err
}

// workloadArgCount accepts workload NAME and workload/NAME.
var workloadArgCount = cobra.RangeArgs(1, 2)

func newScaleCmd(cf *clientFlags) *cobra.Command {
	var replicas, current int32
	cmd := &cobra.Command{
		Use:   "scale workload NAME --replicas N [--current-replicas M]",
		Short: "Set a workload's replicas",
		Long:  "Set a workload's replicas. With --current-replicas, refused (409 Conflict) unless the workload has exactly that many when it is changed.",
		Args:  workloadArgCount,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("replicas") {
				return errors.New("--replicas is required")
			}
			if replicas < 0 {
				return fmt.Errorf("--replicas %d: must be 0 or more", replicas)
			}
			if cmd.Flags().Changed("current-replicas") && current < 0 {
				return fmt.Errorf("--current-replicas %d: must be 0 or more", current)
			}
			name, c, err := cf.workloadArgs(args)
			if err != nil {
				return err
			}
			if _, err := rollout.Scale(cmd.Context(), c, name, replicas, current); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "workload/%s scaled\n", name)
			return nil
		},
	}
	cmd.Flags().Int32Var(&replicas, "replicas", 0, "the replicas the workload should have")
	cmd.Flags().Int32Var(&current, "current-replicas", -1, "scale only if the workload has this many replicas now")
	return cmd
}

func newRolloutCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow, restart and undo a workload's rolling update",
		Args:  cobra.NoArgs,
	}

	var watch bool
	var timeout time.Duration
	status := &cobra.Command{
		Use:   "status workload NAME",
		Short: "Follow a rollout until every cluster runs the new template and is available",
		Long:  "Follow a rollout, printing a line whenever its progress changes, until every cluster runs the workload's current template with every replica ready (exit 0). Exits non-zero with the reason when the rollout stalls (a cluster's Progressing=False) or --timeout passes.",
		Args:  workloadArgCount,
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 {
				return fmt.Errorf("--timeout %s: must not be negative", timeout)
			}
			name, c, err := cf.workloadArgs(args)
			if err != nil {
				return err
			}
			return rollout.Status(cmd.Context(), c, name, cmd.OutOrStdout(), rollout.StatusOptions{Watch: watch, Timeout: timeout})
		},
	}
	status.Flags().BoolVarP(&watch, "watch", "w", true, "follow the rollout until it finishes; --watch=false looks once")
	status.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: never)")

	var revision int64
	history := &cobra.Command{
		Use:   "history workload NAME [--revision N]",
		Short: "List a workload's template revisions, or show one",
		Args:  workloadArgCount,
		RunE: func(cmd *cobra.Command, args []string) error {
			if revision < 0 {
				return fmt.Errorf("--revision %d: must be 1 or more", revision)
			}
			name, c, err := cf.workloadArgs(args)
			if err != nil {
				return err
			}
			return rollout.History(cmd.Context(), c, name, revision, cmd.OutOrStdout(), time.Now())
		},
	}
	history.Flags().Int64Var(&revision, "revision", 0, "show this revision's template")

	var to int64
	undo := &cobra.Command{
		Use:   "undo workload NAME [--to-revision N]",
		Short: "Return a workload's template to an earlier revision (default: the previous one)",
		Args:  workloadArgCount,
		RunE: func(cmd *cobra.Command, args []string) error {
			if to < 0 {
				return fmt.Errorf("--to-revision %d: must be 1 or more", to)
			}
			name, c, err := cf.workloadArgs(args)
			if err != nil {
				return err
			}
			res, err := rollout.Undo(cmd.Context(), c, name, to)
			if err != nil {
				return err
			}
			if res.Skipped {
				fmt.Fprintf(cmd.OutOrStdout(), "workload/%s skipped rollback (its template is revision %d's already)\n", name, res.To)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "workload/%s rolled back to revision %d\n", name, res.To)
			return nil
		},
	}
	undo.Flags().Int64Var(&to, "to-revision", 0, "the revision to return to (0: the previous one)")

	restart := &cobra.Command{
		Use:   "restart workload NAME",
		Short: "Replace every replica of a workload with a rolling update, changing nothing else",
		Args:  workloadArgCount,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := cf.workloadArgs(args)
			if err != nil {
				return err
			}
			if _, err := rollout.Restart(cmd.Context(), c, name, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "workload/%s restarted\n", name)
			return nil
		},
	}
	cmd.AddCommand(status, history, undo, restart)
	return cmd
}
