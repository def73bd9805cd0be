package node

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/atollhq/atoll/protocol"
)

// listSeq numbers a node's replica list for its heartbeats
// (NodeHeartbeat.ReplicasSeq) and leaves the list out while the member
// holds the one numbered so (NodeAck.ReplicasSeq). fill is called by one
// goroutine; acked may come from another.
type listSeq struct {
	last  []protocol.ReplicaState
	seq   uint64
	held  atomic.Uint64 // the number the member's last ack said it holds
	begun bool
}

// fill sets hb's replica list and its number: a new number when list
// differs from the last one given (the first is the process's start in
// nanoseconds, so a restarted agent never reuses one), and the list left
// out when the member holds that number.
func (l *listSeq) fill(hb *protocol.NodeHeartbeat, list []protocol.ReplicaState, start time.Time) {
	switch {
	case !l.begun:
		l.seq, l.begun = uint64(start.UnixNano()), true
	case !sameList(list, l.last):
		l.seq++
	}
	l.last = list
	hb.ReplicasSeq = l.seq
	if l.held.Load() == l.seq {
		hb.ReplicasSame, hb.Replicas = true, nil
		return
	}
	hb.Replicas = list
	if hb.Replicas == nil {
		hb.Replicas = []protocol.ReplicaState{}
	}
}

// acked takes the number the member says it holds.
func (l *listSeq) acked(seq uint64) { l.held.Store(seq) }

// sameList says whether two replica lists say the same: field by field,
// exit codes by value (a list rebuilt from the runtime's status has a
// new pointer each time) and times as instants.
func sameList(a, b []protocol.ReplicaState) bool {
	return slices.EqualFunc(a, b, func(x, y protocol.ReplicaState) bool {
		if (x.ExitCode == nil) != (y.ExitCode == nil) || (x.ExitCode != nil && *x.ExitCode != *y.ExitCode) ||
			!x.StartedAt.Equal(y.StartedAt) || !x.NextStartAt.Equal(y.NextStartAt) {
			return false
		}
		x.ExitCode, y.ExitCode = nil, nil
		x.StartedAt, y.StartedAt, x.NextStartAt, y.NextStartAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		return x == y
	})
}
