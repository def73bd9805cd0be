package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/output"
	"github.com/atollhq/atoll/cli/replicas"
)

// liveKind says whether `atoll get` names replicas or nodes: not stored
// kinds, but what the members run now.
func liveKind(arg string) string {
	switch arg {
	case "replicas", "replica", "rep":
		return "replicas"
	case "nodes", "node", "no":
		return "nodes"
	}
	return ""
}

type liveFlags struct{ workload, cluster, node string }

// getLive prints `atoll get replicas|nodes`; clusters that did not answer
// are named on standard error.
func getLive(ctx context.Context, c *client.Client, out io.Writer, p *output.Printer, kind string, f liveFlags) error {
	now := time.Now()
	var g output.Group
	var unavailable []api.ClusterProblem
	switch kind {
	case "replicas":
		l, err := c.Replicas(ctx, client.ReplicasOptions{Workload: f.workload, Cluster: f.cluster, Node: f.node})
		if err != nil {
			return err
		}
		unavailable = l.Unavailable
		g = output.Group{Kind: "Replica", Plural: "replicas", List: true, Table: output.Table{Headers: replicas.ListHeaders, WideHeaders: replicas.ListWideHeaders,
			Row: func(raw json.RawMessage, wide bool) []string {
				var r api.ReplicaInfo
				_ = json.Unmarshal(raw, &r)
				return replicas.ListRow(r, now, wide)
			}}}
		for _, r := range l.Items {
			b, _ := json.Marshal(r)
			g.Items = append(g.Items, b)
		}
		if l.Total > len(l.Items) {
			defer fmt.Fprintf(os.Stderr, "%d of %d replicas listed (each member answers with at most 1000)\n", len(l.Items), l.Total)
		}
	case "nodes":
		if f.workload != "" || f.node != "" {
			return fmt.Errorf("get nodes takes --cluster only")
		}
		l, err := c.Nodes(ctx, f.cluster)
		if err != nil {
			return err
		}
		unavailable = l.Unavailable
		g = output.Group{Kind: "Node", Plural: "nodes", List: true, Table: output.Table{Headers: replicas.NodeHeaders, WideHeaders: replicas.NodeWideHeaders,
			Row: func(raw json.RawMessage, wide bool) []string {
				var n api.NodeInfo
				_ = json.Unmarshal(raw, &n)
				return replicas.NodeRow(n, wide)
			}}}
		for _, n := range l.Items {
			b, _ := json.Marshal(n)
			g.Items = append(g.Items, b)
		}
	}
	for _, u := range unavailable {
		fmt.Fprintf(os.Stderr, "cluster %s: %s\n", u.Cluster, u.Message)
	}
	return p.Print(out, []output.Group{g}, false)
}
