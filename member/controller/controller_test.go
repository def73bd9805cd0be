package controller

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/atollhq/atoll/internal/natstest"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// TestPassOverDirtyWorkloads: a pass woken for some workloads plans only
// them: their replicas are bound, scheduled around everything else bound
// in the region; the other workloads' status is kept as the last full
// pass left it; a tombstoned one loses its status. A full pass plans
// everything again.
func TestPassOverDirtyWorkloads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, nc := natstest.JetStream(t)
	st, err := state.Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Mirror(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// One node with room for 8 replicas of 500m.
	nodes := NewNodes(nil, now, time.Hour)
	nodes.Observe(protocol.NodeHeartbeat{Node: "n1", Zone: "z1", Allocatable: protocol.Resources{MilliCPU: 4000, Memory: 8 << 30}}, now)
	c := New(Config{Store: st, Nodes: nodes})
	put := func(d protocol.DesiredWorkload) {
		t.Helper()
		if ack, err := st.PutDesired(ctx, d); err != nil || !ack.Accepted {
			t.Fatalf("store %s: %+v %v", d.Workload, ack, err)
		}
	}
	statusOf := func(w string) (protocol.WorkloadStatus, bool) {
		i := slices.IndexFunc(c.Status(), func(s protocol.WorkloadStatus) bool { return s.Workload == w })
		if i < 0 {
			return protocol.WorkloadStatus{}, false
		}
		return c.Status()[i], true
	}
	put(desired("a", 3, 1))
	put(desired("b", 3, 1))
	if _, err := c.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := statusOf("a"); a.Scheduled != 3 {
		t.Fatalf("want a's 3 replicas bound by the full pass; got %+v", a)
	}

	// b grows past the node's room, c arrives; only c is woken for.
	b := desired("b", 5, 1)
	b.Epoch = 2
	put(b)
	put(desired("c", 4, 1))
	c.WakeFor("c")
	ch, err := c.runWoken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, bd := range ch.Put {
		if bd.Workload != "c" {
			t.Errorf("want only c planned; the pass bound %s", bd.Replica)
		}
	}
	if got, _ := statusOf("c"); got.Scheduled != 2 || got.Pending == "" {
		t.Errorf("want c to get the 2 slots a and b leave free, 2 pending; got %+v", got)
	}
	if got, _ := statusOf("b"); got.Desired != 3 || got.Scheduled != 3 {
		t.Errorf("want b's status as the full pass left it (3 of 3) until b is planned again; got %+v", got)
	}
	if _, err := c.runWoken(ctx); err != nil {
		t.Fatal(err) // nothing dirty: nothing planned, nothing lost
	}
	if len(c.Status()) != 3 {
		t.Errorf("want the three statuses kept by an empty pass; got %+v", c.Status())
	}

	// a is tombstoned: a pass for a drops its status and its bindings.
	put(protocol.DesiredWorkload{Version: protocol.Version, Workload: "a", Epoch: 3, Deleted: true})
	c.WakeFor("a")
	ch, err = c.runWoken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := statusOf("a"); ok || len(ch.Delete) != 3 {
		t.Errorf("want a's status gone and its 3 bindings deleted; status %v, deleted %d", ok, len(ch.Delete))
	}
	// The room a freed goes to c's pending replicas at the next woken
	// pass, not at the next full one.
	if _, err := c.runWoken(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := statusOf("c"); got.Scheduled != 4 || got.Pending != "" {
		t.Errorf("want c's 2 pending replicas bound in a's freed room; got %+v", got)
	}
	// A full pass plans b again (5 wanted now): the last of the room.
	if _, err := c.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := statusOf("b"); got.Desired != 5 || got.Scheduled != 4 || got.Pending == "" {
		t.Errorf("want b at 4 of 5 after a full pass (c took 2 of the 3 slots a freed); got %+v", got)
	}
}
