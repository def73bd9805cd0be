package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
	"github.com/atollhq/atoll/protocol"
)

// waitFor polls a condition of in-process components (a bounded wait on
// state that changes through NATS and timers).
func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func workloadStatus(m *member.Member, w string) protocol.WorkloadStatus {
	for _, s := range m.Workloads() {
		if s.Workload == w {
			return s
		}
	}
	return protocol.WorkloadStatus{}
}

// TestRegionRunsAndHeals: desired state from the hub becomes replicas on a
// region's node agents; a node that goes silent loses its replicas to the
// others; scaling and a tombstone take effect.
func TestRegionRunsAndHeals(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, hub.HealthConfig{})
	join := e.joinToken("j", api.TokenSpec{})
	m, err := member.New(member.Config{JoinToken: join, Name: "r1", Region: "eu", DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", NodeGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()
	waitFor(t, "the member's first heartbeat ack (its leaf link is up)", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
	stops := map[string]context.CancelFunc{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		a, err := node.New(node.Config{MemberURL: m.NATSURL(), Name: name, Zone: fmt.Sprintf("z%d", i), DataDir: t.TempDir(),
			MilliCPU: 2000, Memory: 4 << 30, Interval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		actx, acancel := context.WithCancel(ctx)
		stops[name] = acancel
		go func() { _ = a.Run(actx) }()
	}
	waitFor(t, "3 nodes ready", 10*time.Second, func() bool { return m.Capacity().NodesReady == 3 })
	send := func(d protocol.DesiredWorkload) {
		t.Helper()
		d.Version = protocol.Version
		data, _ := json.Marshal(d)
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		reply, err := e.bus.Request(rctx, "r1", protocol.DesiredSubject("r1"), data)
		if err != nil {
			t.Fatal(err)
		}
		var ack protocol.DesiredAck
		_ = json.Unmarshal(reply, &ack)
		if !ack.Accepted {
			t.Fatalf("desired state refused: %+v", ack)
		}
	}
	tmpl := api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "250m", Memory: "128Mi"}, Sim: &api.SimSpec{StartLatency: "10ms"}}
	send(protocol.DesiredWorkload{Workload: "web", Epoch: 1, Generation: 1, Replicas: 4, Template: tmpl, Scheduling: protocol.Scheduling{ZoneSpread: true}})
	waitFor(t, "4 replicas ready", 10*time.Second, func() bool { return workloadStatus(m, "web").Ready == 4 })

	onNode := func(n string) int {
		bs, _ := m.State().NodeBindings(ctx, n)
		return len(bs)
	}
	if onNode("n1") == 0 || onNode("n2") == 0 || onNode("n3") == 0 {
		t.Errorf("zone spread: replicas per node %d %d %d", onNode("n1"), onNode("n2"), onNode("n3"))
	}
	// n1 goes silent: after the grace its replicas run on n2 and n3.
	lost := onNode("n1")
	stops["n1"]()
	waitFor(t, "n1's replicas rebound", 10*time.Second, func() bool { return onNode("n1") == 0 && workloadStatus(m, "web").Ready == 4 })
	if onNode("n2")+onNode("n3") != 4 {
		t.Errorf("after losing n1 (%d replicas): n2 %d + n3 %d, want 4", lost, onNode("n2"), onNode("n3"))
	}
	// Scale up, then a tombstone.
	send(protocol.DesiredWorkload{Workload: "web", Epoch: 2, Generation: 1, Replicas: 6, Template: tmpl})
	waitFor(t, "6 replicas ready", 10*time.Second, func() bool { return workloadStatus(m, "web").Ready == 6 })
	send(protocol.DesiredWorkload{Workload: "web", Epoch: 3, Deleted: true})
	waitFor(t, "replicas gone after the tombstone", 10*time.Second, func() bool { return onNode("n2")+onNode("n3") == 0 })
}
