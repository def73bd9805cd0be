package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api/client"
)

func newLogsCmd(cf *clientFlags) *cobra.Command {
	var opts client.LogsOptions
	var stderr bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs WORKLOAD [--replica R] [--cluster C] [-f] [--tail N] [--since 10m|TIME] [--timestamps] [--previous]",
		Short: "Print a workload's replica logs, read through the members (operator)",
		Long: `Print a workload's replica logs, read through the members.

By default each replica's current (or last) run; --previous prints the run
before its last restart. Lines starting "# " say what could not be read and
why (a replica that never started, a simulated one, a cluster that did not
answer). A workload or replica that does not exist is an error, and so is
a read some cluster could not serve: what the others had is printed, then
the command exits 1.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("tail") {
				if tail < -1 {
					return fmt.Errorf("--tail %d: use a number of lines, or -1 for all", tail)
				}
				opts.Tail = &tail
			}
			if opts.Previous && opts.Follow {
				return errors.New("--previous and --follow: the previous run has ended and cannot be followed")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			if stderr {
				opts.Stream = "stderr"
			}
			rc, err := c.Logs(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(cmd.OutOrStdout(), rc)
			if errors.Is(err, context.Canceled) || cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Replica, "replica", "", "only this replica")
	f.StringVar(&opts.Cluster, "cluster", "", "only replicas in this cluster")
	f.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new lines")
	f.BoolVar(&stderr, "stderr", false, "the replicas' standard error instead of standard output")
	f.IntVar(&tail, "tail", -1, "only the last N lines of each replica (-1: all)")
	f.StringVar(&opts.Since, "since", "", "only lines written since a time (RFC 3339) or for a duration (10m, 1h)")
	f.BoolVar(&opts.Timestamps, "timestamps", false, "prefix each line with the time it was written")
	f.BoolVarP(&opts.Previous, "previous", "p", false, "the run before each replica's last restart")
	return cmd
}
