package controller

import (
	"testing"
	"time"

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
	nodes := NewNodes(nil, t0, grace)
	unread := 0
	nodes.SetUnread(func() int { return unread })
	for _, n := range []string{"n1", "n2"} {
		nodes.Observe(protocol.NodeHeartbeat{Node: n, Zone: "z1", Allocatable: protocol.Resources{MilliCPU: 4000, Memory: 8 << 30}}, t0)
	}
	check := func(at time.Time, wantLost bool, wantBehind time.Time) {
		t.Helper()
		v := nodes.Snapshot(at)["n1"]
		if v.Lost != wantLost || v.Ready {
			t.Errorf("at +%v with %d unread: n1 lost %v ready %v; want lost %v, not ready", at.Sub(t0), unread, v.Lost, v.Ready, wantLost)
		}
		if g, _ := nodes.Get("n1", at); g.Lost != wantLost {
			t.Errorf("at +%v: Get says lost %v, Snapshot %v", at.Sub(t0), g.Lost, v.Lost)
		}
		if since, n := nodes.Behind(); !since.Equal(wantBehind) || n != unread {
			t.Errorf("at +%v: Behind() = %v, %d; want %v, %d", at.Sub(t0), since, n, wantBehind, unread)
		}
	}
	check(t0.Add(5*time.Second), true, time.Time{}) // silent past the grace, all read: lost

	unread = backlogLimit(2) // at the limit: still keeping up
	check(t0.Add(5*time.Second), true, time.Time{})

	unread = backlogLimit(2) + 1 // behind from +5s: held
	check(t0.Add(5*time.Second), false, t0.Add(5*time.Second))
	check(t0.Add(10*time.Second), false, t0.Add(5*time.Second))
	check(t0.Add(11*time.Second), true, t0.Add(5*time.Second)) // two graces behind: judged again

	unread = 0 // caught up
	check(t0.Add(12*time.Second), true, time.Time{})
	unread = 1000 // behind again: a new hold
	check(t0.Add(13*time.Second), false, t0.Add(13*time.Second))
}
