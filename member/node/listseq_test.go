package node

import (
	"testing"
	"time"

	"github.com/atollhq/atoll/protocol"
)

// TestListSeq: the first list is numbered by the start time; a list the
// member holds (its ack named the number) is left out while it stays the
// same; a changed list goes whole under the next number; an ack naming
// none, or another number, has it sent whole.
func TestListSeq(t *testing.T) {
	t.Parallel()
	start := time.Unix(1700000000, 0)
	first := uint64(start.UnixNano())
	var l listSeq
	a := []protocol.ReplicaState{{ID: "a", Workload: "w", Phase: "Running", Ready: true}}
	b := []protocol.ReplicaState{{ID: "a", Workload: "w", Phase: "Running", Ready: true}, {ID: "b", Workload: "w", Phase: "Starting"}}
	fill := func(list []protocol.ReplicaState) protocol.NodeHeartbeat {
		var hb protocol.NodeHeartbeat
		l.fill(&hb, list, start, 0)
		return hb
	}
	check := func(what string, hb protocol.NodeHeartbeat, seq uint64, same bool, n int) {
		t.Helper()
		if hb.ReplicasSeq != seq || hb.ReplicasSame != same || len(hb.Replicas) != n || (!same && hb.Replicas == nil) {
			t.Errorf("%s: seq %d same %v %d replicas (nil %v); want seq %d same %v %d replicas", what, hb.ReplicasSeq, hb.ReplicasSame, len(hb.Replicas), hb.Replicas == nil, seq, same, n)
		}
	}
	check("no replicas yet: an empty list, not none", fill(nil), first, false, 0)
	check("a list: the next number", fill(a), first+1, false, 1)
	check("not acked yet: whole again", fill(a), first+1, false, 1)
	l.acked(first+1, 0)
	check("held by the member: left out", fill(a), first+1, true, 0)
	check("still the same", fill(a), first+1, true, 0)
	check("changed: whole, the next number", fill(b), first+2, false, 2)
	l.acked(first+1, 0) // an ack for the list before
	check("the member holds the old one: whole", fill(b), first+2, false, 2)
	l.acked(first+2, 0)
	check("held again", fill(b), first+2, true, 0)
	l.acked(0, 0) // a restarted member
	check("the member holds none: whole", fill(b), first+2, false, 2)
}

// TestListSeqComparesValues: a list rebuilt for each heartbeat (the
// agent's, from its runtime's status) keeps its number while its values
// stay the same: a replica that exited once has its exit code behind a
// pointer that is new each time, and times may differ in their
// location or monotonic reading.
func TestListSeqComparesValues(t *testing.T) {
	t.Parallel()
	start := time.Unix(1700000000, 0)
	at := time.Now()
	build := func() []protocol.ReplicaState {
		code := 137
		return []protocol.ReplicaState{{ID: "a", Workload: "w", Phase: "Running", Ready: true, Restarts: 1, ExitCode: &code, StartedAt: at}}
	}
	var l listSeq
	var hb protocol.NodeHeartbeat
	l.fill(&hb, build(), start, 0)
	l.acked(hb.ReplicasSeq, 0)
	again := build()
	again[0].StartedAt = at.Round(0).UTC() // the same instant
	hb = protocol.NodeHeartbeat{}
	l.fill(&hb, again, start, 0)
	if !hb.ReplicasSame || hb.ReplicasSeq != uint64(start.UnixNano()) {
		t.Errorf("the same list rebuilt: seq %d same %v; want the first number, left out", hb.ReplicasSeq, hb.ReplicasSame)
	}
	other := build()
	*other[0].ExitCode = 1
	hb = protocol.NodeHeartbeat{}
	l.fill(&hb, other, start, 0)
	if hb.ReplicasSame || hb.ReplicasSeq != uint64(start.UnixNano())+1 {
		t.Errorf("another exit code: seq %d same %v; want the next number, whole", hb.ReplicasSeq, hb.ReplicasSame)
	}
	none := build()
	none[0].ExitCode = nil
	hb = protocol.NodeHeartbeat{}
	l.fill(&hb, none, start, 0)
	if hb.ReplicasSame || hb.ReplicasSeq != uint64(start.UnixNano())+2 {
		t.Errorf("no exit code: seq %d same %v; want the next number, whole", hb.ReplicasSeq, hb.ReplicasSame)
	}
}

// TestListSeqAckCountsOnItsConnection: an ack speaks for the member that
// sent it; once the connection came back (it may reach a restarted
// member, or an older one that reads a list left out as no replicas),
// the list goes whole until an ack comes by the new connection.
func TestListSeqAckCountsOnItsConnection(t *testing.T) {
	t.Parallel()
	start := time.Unix(1700000000, 0)
	list := []protocol.ReplicaState{{ID: "a", Workload: "w", Phase: "Running", Ready: true}}
	var l listSeq
	fill := func(conn uint64) protocol.NodeHeartbeat {
		var hb protocol.NodeHeartbeat
		l.fill(&hb, list, start, conn)
		return hb
	}
	seq := fill(0).ReplicasSeq
	l.acked(seq, 0)
	if hb := fill(0); !hb.ReplicasSame {
		t.Fatalf("acked on this connection: want the list left out, got %+v", hb)
	}
	if hb := fill(1); hb.ReplicasSame || len(hb.Replicas) != 1 || hb.ReplicasSeq != seq {
		t.Errorf("after a reconnect: want the list whole under the same number, got %+v", hb)
	}
	l.acked(seq, 1)
	if hb := fill(1); !hb.ReplicasSame {
		t.Errorf("acked on the new connection: want the list left out, got %+v", hb)
	}
}
