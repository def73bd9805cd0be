package main

import (
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api/client"
)

func newLogsCmd(cf *clientFlags) *cobra.Command {
	var opts client.LogsOptions
	var stderr bool
	cmd := &cobra.Command{
		Use:   "logs WORKLOAD [--replica R] [--cluster C] [-f]",
		Short: "Print a workload's replica logs, read through the members (operator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
	return cmd
}
