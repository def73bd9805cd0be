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
	case !slices.Equal(list, l.last):
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
