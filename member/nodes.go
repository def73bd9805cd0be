package member

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/controller"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// serveNodes answers node agents' heartbeats on the region's NATS, keeps
// the registry, and wakes the controller when a node appears or changes.
func (m *Member) serveNodes(ctx context.Context, st *state.Store, nodes *controller.Nodes, ctl *controller.Controller) (*nats.Subscription, error) {
	// On the heartbeat connection: a node's lease comes with the ack, which
	// must not wait behind a pass's batch of binding writes on m.conn.
	sub, err := m.beats.Subscribe(protocol.NodeHeartbeatWildcard, func(msg *nats.Msg) {
		var hb protocol.NodeHeartbeat
		if err := json.Unmarshal(msg.Data, &hb); err != nil || !api.IsDNSLabel(hb.Node) || msg.Subject != protocol.NodeHeartbeatSubject(hb.Node) {
			return // garbage, or a node speaking for another
		}
		before, _ := nodes.Get(hb.Node, time.Now()) // one node, not the whole registry: this runs per heartbeat
		m.standby.observe(hb.Node, hb.Images)
		rec, changed, seq := nodes.Observe(hb, time.Now())
		if changed {
			if err := st.PutNode(ctx, rec); err != nil {
				m.log.WarnContext(ctx, "storing a node failed", "node", hb.Node, "err", err)
			}
		}
		switch {
		case changed || !before.Ready:
			ctl.Wake() // room or placement rules changed: any workload may place differently
		case hb.ReplicasSame: // its replicas as they were
		default:
			if ws := replicasChanged(before.Replicas, hb.Replicas); len(ws) > 0 {
				ctl.WakeFor(ws...)
			}
		}
		if protocol.NodeReplyOK(hb.Node, msg.Reply) {
			now := time.Now()
			left, renewed := m.fence.lease(now)
			ack := protocol.NodeAck{Version: protocol.Version, Known: true, LeaseMillis: left.Milliseconds(), Hold: m.fence.held(now), Dark: m.drill.dark(now),
				ReplicasSeq: seq}
			if !renewed.IsZero() {
				ack.LeaseRenewed = renewed.UnixNano()
			}
			data, _ := json.Marshal(ack)
			_ = msg.Respond(data)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to node heartbeats: %w", err)
	}
	return sub, nil
}

// replicasChanged lists the workloads whose replicas on a node changed
// between two heartbeats (appeared, went, or changed phase, readiness or
// restarts).
func replicasChanged(before map[string]protocol.ReplicaState, now []protocol.ReplicaState) []string {
	var out []string
	add := func(w string) {
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	seen := make(map[string]bool, len(now))
	for _, r := range now {
		seen[r.ID] = true
		b, ok := before[r.ID]
		if !ok || b.Ready != r.Ready || b.Phase != r.Phase || b.Restarts != r.Restarts || b.Workload != r.Workload || b.LastError != r.LastError {
			add(r.Workload)
		}
	}
	for id, b := range before {
		if !seen[id] {
			add(b.Workload)
		}
	}
	return out
}

// capacity sums the region's Ready nodes and the replicas on them, for
// the hub heartbeat.
func capacity(nodes *controller.Nodes, status []protocol.WorkloadStatus, allocated map[string]protocol.Resources) protocol.Capacity {
	var c protocol.Capacity
	snap := nodes.Snapshot(time.Now())
	for name, n := range snap {
		c.NodesTotal++
		if n.Ready {
			c.NodesReady++
			c.CPUAllocatable += n.Record.Allocatable.MilliCPU
			c.MemoryAllocatable += n.Record.Allocatable.Memory
			c.CPUAllocated += allocated[name].MilliCPU
			c.MemoryAllocated += allocated[name].Memory
		}
	}
	for _, s := range status {
		c.Replicas += int(s.Scheduled)
		c.ReplicasReady += int(s.Ready)
	}
	return c
}

// withFence adds a Fenced problem to the workloads the member holds
// (exclusive ones it stopped when it lost its lease on the hub, until the
// hub confirms them). It copies what it changes: status is shared.
func withFence(status []protocol.WorkloadStatus, held []string) []protocol.WorkloadStatus {
	if len(held) == 0 {
		return status
	}
	out := slices.Clone(status)
	for i, ws := range out {
		if !slices.Contains(held, ws.Workload) || slices.ContainsFunc(ws.Problems, func(p protocol.ReplicaProblem) bool { return p.Reason == protocol.ProblemFenced }) {
			continue
		}
		ws.Problems = append(slices.Clone(ws.Problems), protocol.ReplicaProblem{Reason: protocol.ProblemFenced, Replicas: ws.Desired,
			Message: "exclusive workload held: the member lost its lease on the hub and runs it again only once the hub confirms it"})
		out[i] = ws
	}
	return out
}
