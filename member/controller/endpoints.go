package controller

import (
	"cmp"
	"slices"
	"time"

	"github.com/atollhq/atoll/protocol"
)

// Addresses is the region's ready replicas that listen on a port, by
// workload, as their nodes last reported them: what the member publishes
// as its endpoints. Replicas of lost nodes are left out (their node is
// silent past the grace), and so are replicas without a port (simulated
// ones). Ordered by replica, bounded by protocol.MaxEndpointsReported.
func (n *Nodes) Addresses(now time.Time) map[string][]protocol.ReplicaAddress {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string][]protocol.ReplicaAddress{}
	total := 0
	for name, ns := range n.nodes {
		if v := n.view(ns, now, time.Time{}); !v.Ready { // Ready alone counts here
			continue
		}
		host := cmp.Or(ns.host, "127.0.0.1")
		for _, r := range ns.replicas {
			if !r.Ready || r.Port <= 0 || r.Port > 65535 || total >= protocol.MaxEndpointsReported {
				continue
			}
			total++
			out[r.Workload] = append(out[r.Workload], protocol.ReplicaAddress{Replica: r.ID, Node: name, Zone: ns.rec.Zone, Host: host, Port: r.Port, Generation: r.Generation})
		}
	}
	for _, list := range out {
		slices.SortFunc(list, func(a, b protocol.ReplicaAddress) int { return cmp.Compare(a.Replica, b.Replica) })
	}
	return out
}
