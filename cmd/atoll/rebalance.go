package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/cli/output"
	"github.com/atollhq/atoll/cli/rebalance"
)

func newRebalanceCmd(cf *clientFlags) *cobra.Command {
	var all, dryRun bool
	var format string
	cmd := &cobra.Command{
		Use:   "rebalance workload NAME | workload --all [--dry-run]",
		Short: "Move a workload's replicas toward the split a fresh placement chooses (after a cluster came back, or joined)",
		Long: "Rebalancing moves replicas from clusters above their share of a fresh placement to those below it, each replica started " +
			"before the one it replaces stops. --dry-run prints the plan and changes nothing. A rebalance that cannot go now " +
			"(a failover under way, an unhealthy cluster) waits and says why; an exclusive workload never moves while it runs. " +
			"spec.failover.rebalance: auto does this by itself.",
		Args: cobra.RangeArgs(1, 2),
		// Completes the kind, then one name.
		ValidArgsFunction: cf.completeObjects(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "" && format != "json" && format != "yaml" {
				return fmt.Errorf("-o %s: want json or yaml (or nothing, for words)", format)
			}
			var plans []api.RebalancePlan
			if all {
				if len(args) != 1 {
					return errors.New("--all takes the kind only: atoll rebalance workload --all")
				}
				if _, err := kindArg(args[0]); err != nil {
					return err
				}
				c, err := cf.client()
				if err != nil {
					return err
				}
				if plans, err = rebalance.All(cmd.Context(), c, dryRun); err != nil {
					return err
				}
			} else {
				name, c, err := cf.workloadArgs(args)
				if err != nil {
					return err
				}
				plan, err := rebalance.Plan(cmd.Context(), c, name, dryRun)
				if err != nil {
					return err
				}
				plans = []api.RebalancePlan{*plan}
			}
			if format != "" {
				return output.WriteData(cmd.OutOrStdout(), format, plans)
			}
			for _, p := range plans {
				rebalance.Write(cmd.OutOrStdout(), p, dryRun)
			}
			if dryRun {
				fmt.Fprintln(cmd.OutOrStdout(), "(dry run: nothing changed)")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every workload whose plan moves replicas")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().StringVarP(&format, "output", "o", "", "json or yaml: the plans as the hub answers them")
	return cmd
}
