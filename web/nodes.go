package web

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
)

// nodesFresh is how long the cluster page reuses a member's answer: the
// page re-renders on every tick, and each render must not ask the member.
const nodesFresh = 3 * time.Second

// nodeCache keeps each cluster's last answered nodes.
type nodeCache struct {
	mu sync.Mutex
	by map[string]nodesAnswer
}

type nodesAnswer struct {
	at    time.Time
	nodes []api.NodeInfo
	err   error
}

// nodeRow is one node in the cluster page's table.
type nodeRow struct {
	Name, Status, Zone string
	Replicas, Ready    int
	CPU, Memory        string
	Limits             bool
}

// clusterNodes lists a cluster's nodes through Config.Nodes (asked of its
// member), at most once per nodesFresh; "" when there is nothing to say,
// else why there are no rows.
func (c *Console) clusterNodes(ctx context.Context, cluster, health string) ([]nodeRow, string) {
	if c.cfg.Nodes == nil {
		return nil, "this hub cannot ask members for their nodes"
	}
	if health == api.HealthUnreachable {
		return nil, "the member is unreachable: its nodes cannot be listed now"
	}
	now := c.now()
	c.nodes.mu.Lock()
	a, ok := c.nodes.by[cluster]
	c.nodes.mu.Unlock()
	if !ok || now.Sub(a.at) > nodesFresh {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		nodes, err := c.cfg.Nodes(ctx, cluster)
		cancel()
		a = nodesAnswer{at: now, nodes: nodes, err: err}
		c.nodes.mu.Lock()
		if c.nodes.by == nil {
			c.nodes.by = map[string]nodesAnswer{}
		}
		c.nodes.by[cluster] = a
		c.nodes.mu.Unlock()
	}
	if a.err != nil {
		return nil, "the member did not list its nodes: " + a.err.Error()
	}
	var out []nodeRow
	for _, n := range a.nodes {
		st := "NotReady"
		switch {
		case n.Lost:
			st = "Lost"
		case n.Ready:
			st = "Ready"
		}
		out = append(out, nodeRow{Name: n.Name, Status: st, Zone: n.Zone, Replicas: n.Replicas, Ready: n.ReplicasReady,
			CPU: fmt.Sprintf("%g cores", float64(n.CPUMillis)/1000), Memory: fmt.Sprintf("%.1f GiB", float64(n.MemoryBytes)/(1<<30)), Limits: n.LimitsEnforced})
	}
	if len(out) == 0 {
		return nil, "the member has no nodes"
	}
	return out, ""
}
