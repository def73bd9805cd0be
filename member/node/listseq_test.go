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
		l.fill(&hb, list, start)
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
	l.acked(first + 1)
	check("held by the member: left out", fill(a), first+1, true, 0)
	check("still the same", fill(a), first+1, true, 0)
	check("changed: whole, the next number", fill(b), first+2, false, 2)
	l.acked(first + 1) // an ack for the list before
	check("the member holds the old one: whole", fill(b), first+2, false, 2)
	l.acked(first + 2)
	check("held again", fill(b), first+2, true, 0)
	l.acked(0) // a restarted member
	check("the member holds none: whole", fill(b), first+2, false, 2)
}
