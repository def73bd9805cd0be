package controller

import (
	"testing"
	"time"

	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// TestBehindHoldsLossJudgements: while the member has more heartbeats
// unread than backlogLimit, a node silent past its grace is NotReady but
// not lost (its replicas stay), for at most two graces; once the backlog
// is read, or the hold has run out, silence is judged as usual.
func TestBehindHoldsLossJudgements(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	const grace = 3 * time.Second
	nodes, unread := behindNodes(t0, grace, "n1", "n2")
	check := func(at time.Time, wantLost bool, wantBehind time.Time) {
		t.Helper()
		v := nodes.Snapshot(at)["n1"]
		if v.Lost != wantLost || v.Ready {
			t.Errorf("at +%v with %d unread: n1 lost %v ready %v; want lost %v, not ready", at.Sub(t0), *unread, v.Lost, v.Ready, wantLost)
		}
		if g, _ := nodes.Get("n1", at); g.Lost != wantLost {
			t.Errorf("at +%v: Get says lost %v, Snapshot %v", at.Sub(t0), g.Lost, v.Lost)
		}
		if since, n := nodes.Behind(); !since.Equal(wantBehind) || n != *unread {
			t.Errorf("at +%v: Behind() = %v, %d; want %v, %d", at.Sub(t0), since, n, wantBehind, *unread)
		}
	}
	check(t0.Add(5*time.Second), true, time.Time{}) // silent past the grace, all read: lost

	*unread = backlogLimit(2) // at the limit: still keeping up
	check(t0.Add(5*time.Second), true, time.Time{})

	// Behind from +2s, before n1's grace ends: held.
	*unread = backlogLimit(2) + 1
	nodes.Get("n2", t0.Add(2*time.Second))
	check(t0.Add(5*time.Second), false, t0.Add(2*time.Second))
	check(t0.Add(7*time.Second), false, t0.Add(2*time.Second))
	check(t0.Add(8*time.Second), true, t0.Add(2*time.Second)) // two graces behind: judged again

	*unread = 0 // caught up
	check(t0.Add(12*time.Second), true, time.Time{})
	*unread = 1000 // behind again: a new episode, but n1 was lost before it
	check(t0.Add(13*time.Second), true, t0.Add(13*time.Second))
}

// TestObserveReplicasLeftOut: a heartbeat that leaves its list out keeps
// the one held when it names its number; one naming another number (a
// list the member never got) keeps the stale list and has 0 answered, so
// that the node sends its list; an agent before the numbers (0) always
// sends it and is answered 0.
func TestObserveReplicasLeftOut(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	nodes := NewNodes(nil, now, 3*time.Second)
	hb := func(seq uint64, same bool, ids ...string) protocol.NodeHeartbeat {
		h := nodeBeat("n1")
		h.ReplicasSeq, h.ReplicasSame = seq, same
		for _, id := range ids {
			h.Replicas = append(h.Replicas, protocol.ReplicaState{ID: id, Workload: "w", Phase: "Running", Ready: true})
		}
		return h
	}
	observe := func(what string, h protocol.NodeHeartbeat, wantSeq uint64, wantIDs ...string) {
		t.Helper()
		_, _, seq := nodes.Observe(h, now)
		v, _ := nodes.Get("n1", now)
		if seq != wantSeq || len(v.Replicas) != len(wantIDs) {
			t.Fatalf("%s: answered %d holding %v; want %d holding %v", what, seq, v.Replicas, wantSeq, wantIDs)
		}
		for _, id := range wantIDs {
			if _, ok := v.Replicas[id]; !ok {
				t.Fatalf("%s: %s not held: %v", what, id, v.Replicas)
			}
		}
	}
	observe("an old agent's list", hb(0, false, "a"), 0, "a")
	observe("a numbered list", hb(7, false, "a", "b"), 7, "a", "b")
	observe("left out, the number held", hb(7, true), 7, "a", "b")
	observe("left out, another number: stale kept, 0 answered", hb(8, true), 0, "a", "b")
	observe("left out again with the number held before: still 0", hb(7, true), 0, "a", "b")
	observe("the list, whole", hb(8, false, "b"), 8, "b")
	observe("left out with 0 is never held", hb(0, true), 0, "b")
}

// TestBehindHoldsOnlyNodesSilentWhileBehind: the hold covers a node whose
// grace ran out while the member was behind (its heartbeats may wait
// unread), never one already silent past its grace when the member fell
// behind: a node found lost stays lost, and a backlog that comes and
// goes (a member read behind now and then) does not keep a dead node
// from being found (at most three graces after its last heartbeat).
// NextExpiry names the hold's end, so the controller's timer runs a pass
// then.
func TestBehindHoldsOnlyNodesSilentWhileBehind(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	const grace = 3 * time.Second
	nodes, unread := behindNodes(t0, grace, "n1")
	lost := func(at time.Time) bool {
		t.Helper()
		return nodes.Snapshot(at)["n1"].Lost
	}
	if !lost(t0.Add(4 * time.Second)) {
		t.Fatal("n1 silent past its grace while the member keeps up: want lost")
	}
	*unread = 1000 // the member falls behind after n1 was found lost
	if !lost(t0.Add(5 * time.Second)) {
		t.Error("n1, lost before the member fell behind, is held again")
	}
	if g, _ := nodes.Get("n1", t0.Add(5*time.Second)); !g.Lost {
		t.Error("Get: n1, lost before the member fell behind, is held again")
	}

	// n2 is heard at +10s; the member falls behind at +12s, before n2's
	// grace ends (+13s): held.
	nodes.Observe(nodeBeat("n2"), t0.Add(10*time.Second))
	*unread = 0
	nodes.Snapshot(t0.Add(11 * time.Second))
	*unread = 1000
	if v := nodes.Snapshot(t0.Add(12 * time.Second))["n2"]; v.Lost || !v.Ready {
		t.Fatalf("n2 heard 2s ago: %+v", v)
	}
	if v := nodes.Snapshot(t0.Add(14 * time.Second))["n2"]; v.Lost || v.Ready {
		t.Errorf("n2 silent past its grace while the member is behind: want held (NotReady, not lost), got ready %v lost %v", v.Ready, v.Lost)
	}
	if next := nodes.NextExpiry(t0.Add(14 * time.Second)); !next.Equal(t0.Add(18 * time.Second)) {
		t.Errorf("NextExpiry while n2 is held = +%v; want the hold's end, +18s", next.Sub(t0))
	}
	// The backlog is read for a moment, then builds again: a new
	// episode, but n2's grace ran out before it: lost.
	*unread = 0
	nodes.Get("n2", t0.Add(15*time.Second))
	*unread = 1000
	if v := nodes.Snapshot(t0.Add(15500 * time.Millisecond))["n2"]; !v.Lost {
		t.Error("n2, silent past its grace before the member fell behind again, is held by the new episode")
	}
}

// TestRestartedMemberWaitsForTheList: a member restarted (its registry
// made from the stored records, no replica list held) that gets a
// heartbeat leaving the list out, naming a number from its previous run,
// takes the node as alive (not lost) but not Ready until the list comes:
// a Ready node with no replicas would drop its replicas from status and
// endpoints for a heartbeat.
func TestRestartedMemberWaitsForTheList(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	alloc := protocol.Resources{MilliCPU: 4000, Memory: 8 << 30}
	nodes := NewNodes([]state.NodeRecord{{Name: "n1", Zone: "z1", Allocatable: alloc}}, t0, 3*time.Second)
	at := t0.Add(5 * time.Second) // past the restart's grace
	_, _, seq := nodes.Observe(protocol.NodeHeartbeat{Node: "n1", Zone: "z1", Allocatable: alloc, ReplicasSeq: 7, ReplicasSame: true}, at)
	if v, _ := nodes.Get("n1", at); seq != 0 || v.Ready || v.Lost {
		t.Fatalf("a left-out list never held: answered %d, ready %v lost %v; want 0, not ready, not lost", seq, v.Ready, v.Lost)
	}
	if addrs := nodes.Addresses(at); len(addrs) != 0 {
		t.Errorf("addresses from a list never held: %v", addrs)
	}
	hb := protocol.NodeHeartbeat{Node: "n1", Zone: "z1", Allocatable: alloc, ReplicasSeq: 7,
		Replicas: []protocol.ReplicaState{{ID: "a", Workload: "w", Phase: "Running", Ready: true}}}
	_, _, seq = nodes.Observe(hb, at)
	if v, _ := nodes.Get("n1", at); seq != 7 || !v.Ready || !v.Replicas["a"].Ready {
		t.Fatalf("the list itself: answered %d, %+v; want 7, ready with a", seq, v)
	}
	// A new node unknown to the registry is the same.
	nodes.Observe(protocol.NodeHeartbeat{Node: "n2", Zone: "z1", Allocatable: alloc, ReplicasSeq: 9, ReplicasSame: true}, at)
	if v, _ := nodes.Get("n2", at); v.Ready {
		t.Error("a node first heard with its list left out is Ready")
	}
}

// behindNodes is a registry of the named nodes, each heard at t0, whose
// count of unread heartbeats is *unread (0 to begin with).
func behindNodes(t0 time.Time, grace time.Duration, names ...string) (*Nodes, *int) {
	nodes := NewNodes(nil, t0, grace)
	unread := new(int)
	nodes.SetUnread(func() int { return *unread })
	for _, n := range names {
		nodes.Observe(nodeBeat(n), t0)
	}
	return nodes, unread
}

// nodeBeat is a heartbeat of node name: zone z1, 4 cores and 8 GiB, no
// replicas.
func nodeBeat(name string) protocol.NodeHeartbeat {
	return protocol.NodeHeartbeat{Node: name, Zone: "z1", Allocatable: protocol.Resources{MilliCPU: 4000, Memory: 8 << 30}}
}
