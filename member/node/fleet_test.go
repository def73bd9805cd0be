package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/internal/natstest"
	"github.com/atollhq/atoll/member/controller"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// region is the member's side of a region, from its real parts: the
// region's NATS with JetStream, the KV state, the node registry and the
// replica controller, with heartbeats answered as the member answers them.
type region struct {
	url   string
	st    *state.Store
	nodes *controller.Nodes
	ctl   *controller.Controller

	mu    sync.Mutex
	beats map[string][]time.Time // heartbeat arrivals per node
}

func newRegion(t *testing.T, grace time.Duration) *region {
	t.Helper()
	s, nc := natstest.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := state.Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	r := &region{url: s.ClientURL(), st: st, nodes: controller.NewNodes(nil, time.Now(), grace), beats: map[string][]time.Time{}}
	r.ctl = controller.New(controller.Config{Store: st, Nodes: r.nodes, Every: 200 * time.Millisecond})
	last := map[string]string{} // node -> its replicas as last heard, to wake the controller on change
	_, err = nc.Subscribe(protocol.NodeHeartbeatWildcard, func(msg *nats.Msg) {
		var hb protocol.NodeHeartbeat
		if json.Unmarshal(msg.Data, &hb) != nil || msg.Subject != protocol.NodeHeartbeatSubject(hb.Node) {
			t.Errorf("bad heartbeat on %s: %s", msg.Subject, msg.Data)
			return
		}
		r.mu.Lock()
		r.beats[hb.Node] = append(r.beats[hb.Node], time.Now())
		r.mu.Unlock()
		rec, changed, _ := r.nodes.Observe(hb, time.Now()) // acks no number: a member before them
		if changed {
			if err := st.PutNode(ctx, rec); err != nil && ctx.Err() == nil {
				t.Errorf("store node %s: %v", hb.Node, err)
			}
		}
		var sig strings.Builder
		for _, s := range hb.Replicas {
			fmt.Fprintf(&sig, "%s/%s/%v ", s.ID, s.Phase, s.Ready)
		}
		if changed || last[hb.Node] != sig.String() {
			last[hb.Node] = sig.String()
			r.ctl.Wake()
		}
		ack, _ := json.Marshal(protocol.NodeAck{Version: protocol.Version, Known: true})
		_ = msg.Respond(ack)
	})
	if err != nil {
		t.Fatal(err)
	}
	r.ctl.Start(ctx)
	t.Cleanup(r.ctl.Stop)
	return r
}

func (r *region) readyNodes() int {
	n := 0
	for _, v := range r.nodes.Snapshot(time.Now()) {
		if v.Ready {
			n++
		}
	}
	return n
}

func (r *region) status(w string) protocol.WorkloadStatus {
	for _, s := range r.ctl.Status() {
		if s.Workload == w {
			return s
		}
	}
	return protocol.WorkloadStatus{}
}

// waitFor waits for a condition of the region (state that changes through
// NATS and timers), up to limit.
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

func simNodes(n int) []SimNode {
	out := make([]SimNode, n)
	for i := range out {
		out[i] = SimNode{Name: fmt.Sprintf("n-%04d", i), Zone: fmt.Sprintf("z%d", i%3), MilliCPU: 4000, Memory: 8 << 30}
	}
	return out
}

// runFleet starts a fleet and waits until it runs.
func runFleet(t *testing.T, cfg FleetConfig) *Fleet {
	t.Helper()
	f, err := NewFleet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fleet run: %v", err)
		}
	})
	select {
	case <-f.Ready():
	case err := <-done:
		t.Fatalf("fleet ended before it ran: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("fleet not running within 10s")
	}
	return f
}

// TestFleetRunsARegion: 200 simulated nodes over one connection register
// with the region, spread their heartbeats, run the replicas the
// controller binds to them, report each replica from the node it is
// bound to, and a silenced node's replicas move.
func TestFleetRunsARegion(t *testing.T) {
	t.Parallel()
	const nodes, replicas = 200, 400
	interval := 100 * time.Millisecond
	r := newRegion(t, time.Second)
	var mu sync.Mutex
	readyAt := map[string]time.Time{}
	allReady := make(chan struct{})
	f := runFleet(t, FleetConfig{MemberURL: r.url, Nodes: simNodes(nodes), DataDir: t.TempDir(), Interval: interval,
		OnReady: func(node, replica string, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			readyAt[node+"."+replica] = at
			if len(readyAt) == replicas {
				close(allReady)
			}
		}})
	waitFor(t, "200 nodes ready in the registry", 10*time.Second, func() bool { return r.readyNodes() == nodes })

	// Heartbeats are spread over the interval: no tenth of an interval
	// carries half of the nodes.
	r.mu.Lock()
	clear(r.beats)
	r.mu.Unlock()
	time.Sleep(3 * interval) // a window to sample, not a wait for a result
	r.mu.Lock()
	window := map[int64]int{}
	for _, ts := range r.beats {
		for _, at := range ts {
			window[at.UnixNano()/int64(interval/10)]++
		}
	}
	r.mu.Unlock()
	for w, n := range window {
		if n > nodes/2 {
			t.Errorf("%d heartbeats within one tenth of the interval (window %d): not spread", n, w)
		}
	}

	tmpl := api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "250m", Memory: "128Mi"}, Sim: &api.SimSpec{StartLatency: "10ms"}}
	ack, err := r.st.PutDesired(context.Background(), protocol.DesiredWorkload{Version: protocol.Version, Workload: "web", Epoch: 1, Generation: 1,
		Replicas: replicas, Template: tmpl, Scheduling: protocol.Scheduling{ZoneSpread: true}})
	if err != nil || !ack.Accepted {
		t.Fatalf("desired state: %+v %v", ack, err)
	}
	r.ctl.Wake()
	select {
	case <-allReady:
	case <-time.After(20 * time.Second):
		mu.Lock()
		t.Fatalf("%d of %d replicas ready within 20s", len(readyAt), replicas)
	}
	waitFor(t, "the controller sees 400 ready replicas", 10*time.Second, func() bool { return r.status("web").Ready == replicas })

	// Each node reports exactly the replicas bound to it.
	bs, err := r.st.Bindings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	snap := r.nodes.Snapshot(time.Now())
	for _, b := range bs {
		if s, ok := snap[b.Node].Replicas[b.Replica]; !ok || !s.Ready {
			t.Errorf("replica %s bound to %s: the node reports %+v", b.Replica, b.Node, s)
		}
	}
	reported := 0
	for _, v := range snap {
		reported += len(v.Replicas)
	}
	if reported != replicas || len(bs) != replicas {
		t.Errorf("%d bindings, %d replicas reported by the nodes; want %d each", len(bs), reported, replicas)
	}
	if st := f.Stats(); st.Acks == 0 || st.Heartbeats < nodes {
		t.Errorf("stats: %+v", st)
	}

	// A silenced node is NotReady after the grace; its replicas move.
	victim := bs[0].Node
	if err := f.Silence(victim, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the silenced node's replicas rebound and ready elsewhere", 15*time.Second, func() bool {
		bs, _ := r.st.NodeBindings(context.Background(), victim)
		return len(bs) == 0 && r.status("web").Ready == replicas
	})
	waitFor(t, "the silenced node's replicas stopped", 5*time.Second, func() bool {
		for _, s := range f.Runtime().Status() {
			if strings.HasPrefix(s.ID, victim+".") {
				return false
			}
		}
		return true
	})
	if err := f.Silence("nope", true); err == nil {
		t.Error("silencing a node that is not in the fleet: no error")
	}
}

// TestFleetRefusesOtherDrivers: a process replica bound to a simulated
// node is reported Failed with the reason, and runs nothing.
func TestFleetRefusesOtherDrivers(t *testing.T) {
	t.Parallel()
	r := newRegion(t, time.Second)
	f := runFleet(t, FleetConfig{MemberURL: r.url, Nodes: simNodes(3), DataDir: t.TempDir(), Interval: 100 * time.Millisecond})
	b := protocol.Binding{Replica: "p-1", Workload: "p", Node: "n-0001", Epoch: 1, Generation: 1,
		Template: api.ReplicaTemplate{Driver: "process", Command: "/bin/sleep", Args: []string{"3600"}}}
	if err := r.st.PutBinding(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node reports the process replica Failed", 10*time.Second, func() bool {
		s := r.nodes.Snapshot(time.Now())["n-0001"].Replicas["p-1"]
		return s.Phase == "Failed" && strings.Contains(s.Message, "only the sim driver")
	})
	if st := f.Runtime().Status(); len(st) != 0 {
		t.Errorf("the runtime runs %+v for a process binding", st)
	}
}

func TestNewFleetChecksConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  FleetConfig
		want string
	}{
		{"no data dir", FleetConfig{MemberURL: "nats://x", Nodes: simNodes(1)}, "DataDir"},
		{"no member", FleetConfig{DataDir: "d", Nodes: simNodes(1)}, "MemberURL"},
		{"no nodes", FleetConfig{MemberURL: "nats://x", DataDir: "d"}, "no nodes"},
		{"bad name", FleetConfig{MemberURL: "nats://x", DataDir: "d", Nodes: []SimNode{{Name: "N_1"}}}, "DNS-1123"},
		{"twice", FleetConfig{MemberURL: "nats://x", DataDir: "d", Nodes: []SimNode{{Name: "a"}, {Name: "a"}}}, "twice"},
	}
	for _, c := range cases {
		if _, err := NewFleet(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error mentioning %q, got %v", c.name, c.want, err)
		}
	}
}

// TestDueSlots: the heartbeat loop sends the slot whose time came, and
// after a late wake-up every slot it missed, each node at most once.
func TestDueSlots(t *testing.T) {
	t.Parallel()
	const step = 10 * time.Millisecond
	for _, c := range []struct {
		name               string
		elapsed            time.Duration
		next, slots        int
		from, to, wantNext int
	}{
		{"the first call sends slot 0", 0, 0, 50, 0, 1, 1},
		{"on time: the next slot", 10 * time.Millisecond, 1, 50, 1, 2, 2},
		{"a tick a little early sends nothing yet", 19 * time.Millisecond, 2, 50, 2, 2, 2},
		{"then the slot it owed", 20 * time.Millisecond, 2, 50, 2, 3, 3},
		{"woken 5 slots late: all six due", 75 * time.Millisecond, 2, 50, 2, 8, 8},
		{"woken more than an interval late: every slot once", 2 * time.Second, 3, 50, 151, 201, 201},
	} {
		from, to, next := dueSlots(c.elapsed, step, c.next, c.slots)
		if from != c.from || to != c.to || next != c.wantNext {
			t.Errorf("%s: dueSlots(%v, next %d) = [%d, %d) next %d; want [%d, %d) next %d",
				c.name, c.elapsed, c.next, from, to, next, c.from, c.to, c.wantNext)
		}
	}
}
