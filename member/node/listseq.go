package node

import (
	"slices"
	"sync"
	"time"

	"github.com/atollhq/atoll/protocol"
)

// listSeq numbers a node's replica list for its heartbeats
// (NodeHeartbeat.ReplicasSeq) and leaves the list out while the member
// holds the one numbered so (NodeAck.ReplicasSeq). fill is called by one
// goroutine; acked may come from another.
//
// An ack speaks for the member that sent it: a connection that came back
// may reach another one (restarted, or an older one that reads a list
// left out as no replicas at all), so an ack counts only on the
// connection it came by (conn, the connection's count of reconnects).
type listSeq struct {
	last  []protocol.ReplicaState
	seq   uint64
	begun bool

	mu   sync.Mutex
	held uint64 // the number the member's last ack said it holds
	on   uint64 // the connection that ack came by
}

// fill sets hb's replica list and its number: a new number when list
// differs from the last one given (the first is the process's start in
// nanoseconds, so a restarted agent never reuses one), and the list left
// out when the member holds that number, as it said on conn.
func (l *listSeq) fill(hb *protocol.NodeHeartbeat, list []protocol.ReplicaState, start time.Time, conn uint64) {
	switch {
	case !l.begun:
		l.seq, l.begun = uint64(start.UnixNano()), true
	case !sameList(list, l.last):
		l.seq++
	}
	l.last = list
	hb.ReplicasSeq = l.seq
	l.mu.Lock()
	same := l.held == l.seq && l.on == conn
	l.mu.Unlock()
	if same {
		hb.ReplicasSame, hb.Replicas = true, nil
		return
	}
	hb.Replicas = list
	if hb.Replicas == nil {
		hb.Replicas = []protocol.ReplicaState{}
	}
}

// acked takes the number the member says it holds, said on conn.
func (l *listSeq) acked(seq, conn uint64) {
	l.mu.Lock()
	l.held, l.on = seq, conn
	l.mu.Unlock()
}

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
