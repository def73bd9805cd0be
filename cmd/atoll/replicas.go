package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
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

// describeLive prints `atoll describe replica|node NAME`.
func describeLive(ctx context.Context, c *client.Client, out io.Writer, kind, name, cluster string) error {
	now := time.Now()
	switch kind {
	case "replicas":
		l, err := c.Replicas(ctx, client.ReplicasOptions{Cluster: cluster})
		if err != nil {
			return err
		}
		for _, r := range l.Items {
			if r.Replica == name {
				return replicas.DescribeReplica(out, r, now)
			}
		}
		return notAnswered(fmt.Sprintf("replica %q not found", name), l.Unavailable)
	default:
		l, err := c.Nodes(ctx, cluster)
		if err != nil {
			return err
		}
		var found []api.NodeInfo
		for _, n := range l.Items {
			if n.Name == name {
				found = append(found, n)
			}
		}
		switch len(found) {
		case 0:
			return notAnswered(fmt.Sprintf("node %q not found", name), l.Unavailable)
		case 1:
		default:
			return fmt.Errorf("node %q is in %d clusters: name one with --cluster", name, len(found))
		}
		reps, err := c.Replicas(ctx, client.ReplicasOptions{Cluster: found[0].Cluster, Node: name})
		if err != nil {
			return err
		}
		return replicas.DescribeNode(out, found[0], reps.Items, now)
	}
}

// notAnswered is a not-found error that names the clusters that did not
// answer (the object may be there).
func notAnswered(msg string, unavailable []api.ClusterProblem) error {
	if len(unavailable) == 0 {
		return errors.New(msg)
	}
	var cs []string
	for _, u := range unavailable {
		cs = append(cs, u.Cluster)
	}
	return fmt.Errorf("%s (clusters %s did not answer)", msg, strings.Join(cs, ", "))
}

// watchReplicas prints the replicas, then every change as it is seen,
// asking the members every period (they are not stored, so there is
// nothing to watch but their answers), until ctx ends.
func watchReplicas(ctx context.Context, c *client.Client, out io.Writer, wide, noHeaders bool, f liveFlags, every time.Duration) error {
	opts := client.ReplicasOptions{Workload: f.workload, Cluster: f.cluster, Node: f.node}
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	headers := append([]string{"EVENT"}, replicas.ListHeaders...)
	if wide {
		headers = append(headers, replicas.ListWideHeaders...)
	}
	if !noHeaders {
		fmt.Fprintln(tw, strings.Join(headers, "\t"))
	}
	var last []api.ReplicaInfo
	warned := map[string]bool{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		l, err := c.Replicas(ctx, opts)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, u := range l.Unavailable {
			if !warned[u.Cluster] {
				warned[u.Cluster] = true
				fmt.Fprintf(os.Stderr, "cluster %s: %s\n", u.Cluster, u.Message)
			}
		}
		now := time.Now()
		for _, ch := range replicas.Changes(last, l.Items) {
			fmt.Fprintln(tw, strings.Join(append([]string{ch.Type}, replicas.ListRow(ch.Replica, now, wide)...), "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		last = l.Items
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
