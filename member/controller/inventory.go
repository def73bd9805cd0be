package controller

import (
	"cmp"
	"maps"
	"slices"

	"github.com/atollhq/atoll/protocol"
)

// ListReplicas answers the hub's ReplicasQuery from the region's bindings
// and its nodes' latest heartbeats: every bound replica that matches
// (those a node still stops after their binding went are left out), by
// workload, the most troubled first, cut at the query's limit.
func ListReplicas(bindings []protocol.Binding, nodes map[string]NodeView, q protocol.ReplicasQuery) protocol.ReplicaList {
	byWorkload := map[string][]observed{}
	for _, b := range bindings {
		if (q.Workload != "" && b.Workload != q.Workload) || (q.Node != "" && b.Node != q.Node) {
			continue
		}
		n, known := nodes[b.Node]
		rs := n.Replicas[b.Replica]
		if rs.ID == "" {
			rs.ID, rs.Workload = b.Replica, b.Workload
		}
		byWorkload[b.Workload] = append(byWorkload[b.Workload], observed{Node: b.Node, Lost: !known || n.Lost, ReplicaState: rs})
	}
	out := protocol.ReplicaList{Version: protocol.Version, Replicas: []protocol.ReplicaSummary{}}
	for _, w := range slices.Sorted(maps.Keys(byWorkload)) {
		reps := byWorkload[w]
		out.Total += len(reps)
		all := describeReplicas(reps)
		for i := range all {
			all[i].Workload = w
		}
		out.Replicas = append(out.Replicas, all...)
	}
	limit := cmp.Or(q.Limit, protocol.MaxReplicasListed)
	if len(out.Replicas) > limit {
		out.Replicas = out.Replicas[:limit]
	}
	return out
}

// ListNodes is the region's nodes, by name, with the replicas bound to
// each (and how many of them are ready).
func ListNodes(bindings []protocol.Binding, nodes map[string]NodeView) []protocol.NodeInfo {
	count := map[string]int{}
	ready := map[string]int{}
	for _, b := range bindings {
		count[b.Node]++
		if n, ok := nodes[b.Node]; ok && !n.Lost && n.Replicas[b.Replica].Ready {
			ready[b.Node]++
		}
	}
	out := make([]protocol.NodeInfo, 0, len(nodes))
	for name, n := range nodes {
		out = append(out, protocol.NodeInfo{Name: name, Zone: n.Record.Zone, Labels: n.Record.Labels, Taints: n.Record.Taints, Ready: n.Ready, Lost: n.Lost,
			Allocatable: n.Record.Allocatable, Replicas: count[name], ReplicasReady: ready[name], LimitsEnforced: n.LimitsEnforced})
	}
	slices.SortFunc(out, func(a, b protocol.NodeInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
