package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/cli/output"
)

// newHubsCmd lists the hub replicas sharing the database and which one
// leads the controllers (GET /api/v1/hubs).
func newHubsCmd(cf *clientFlags) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "hubs",
		Short: "List the hub replicas and which one leads the controllers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" && format != "yaml" {
				return fmt.Errorf("-o %s: use table, json or yaml", format)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var list api.HubList
			if err := c.Raw(cmd.Context(), http.MethodGet, "/api/v1/hubs", nil, nil, &list); err != nil {
				return err
			}
			if format != "table" {
				return output.WriteData(cmd.OutOrStdout(), format, list)
			}
			return printHubs(cmd.OutOrStdout(), list, time.Now())
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "table", "table, json or yaml")
	return cmd
}

// printHubs renders the hub list: one row a hub, the leader's with its
// epoch and heartbeat age.
func printHubs(out io.Writer, list api.HubList, now time.Time) error {
	t := newTable(out, "NAME", "ROLE", "EPOCH", "HEARTBEAT", "CONNECTED", "ADDRESS")
	for _, h := range list.Items {
		role, epoch, beat := "follower", "", ""
		if h.Leader && list.Leader != nil {
			role, epoch = "leader", strconv.FormatInt(list.Leader.Epoch, 10)
			beat = strconv.FormatFloat(list.Leader.HeartbeatAgeSeconds, 'f', 1, 64) + "s ago"
		}
		if h.Name == list.ServedBy {
			role += " (answered)"
		}
		t.row(h.Name, role, epoch, beat, age(h.ConnectedSince, now), h.Address)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if list.Leader != nil && !leaderListed(list) {
		_, err := fmt.Fprintf(out, "The last leader, %s (epoch %d, heartbeat %.1fs ago), is not connected: a takeover is due.\n",
			list.Leader.Hub, list.Leader.Epoch, list.Leader.HeartbeatAgeSeconds)
		return err
	}
	return nil
}

func leaderListed(list api.HubList) bool {
	for _, h := range list.Items {
		if h.Leader {
			return true
		}
	}
	return false
}
