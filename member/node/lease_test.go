package node

import (
	"testing"
	"time"

	"github.com/atollhq/atoll/protocol"
)

func TestNodeLease(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bs := []protocol.Binding{{Replica: "web-1", Workload: "web"}, {Replica: "ledger-1", Workload: "ledger", Exclusive: true}, {Replica: "audit-1", Workload: "audit", Exclusive: true}}
	ids := func(l *nodeLease, now time.Time) (out []string) {
		for _, s := range l.allowed(bs, now) {
			out = append(out, s.ID)
		}
		return out
	}
	var l nodeLease
	if got := ids(&l, t0); len(got) != 1 || got[0] != "web-1" {
		t.Errorf("want only the stateless replica before any lease; got %v", got)
	}
	before := l.view(t0)
	l.update(protocol.NodeAck{LeaseMillis: 3000, Hold: []string{"audit"}}, t0)
	if l.view(t0) == before {
		t.Errorf("want a granted lease to change the view")
	}
	if got := ids(&l, t0.Add(time.Second)); len(got) != 2 || got[1] != "ledger-1" {
		t.Errorf("want web and ledger (audit is held) within the lease; got %v", got)
	}
	if d := l.untilExpiry(t0.Add(time.Second)); d != time.Second {
		t.Errorf("want the stop signal 1s later (1s before the lease ends); got %s", d)
	}
	if d := l.untilExpiry(t0.Add(2500 * time.Millisecond)); d != 500*time.Millisecond {
		t.Errorf("want the kill at the lease's end, 0.5s later; got %s", d)
	}
	if ids := l.expired(bs, t0.Add(2500*time.Millisecond)); len(ids) != 0 {
		t.Errorf("want nothing killed before the lease ends; got %v", ids)
	}
	if ids := l.expired(bs, t0.Add(3*time.Second)); len(ids) != 2 {
		t.Errorf("want both exclusive replicas killed when the lease ends; got %v", ids)
	}
	if got := ids(&l, t0.Add(2*time.Second)); len(got) != 1 {
		t.Errorf("want the exclusive replicas stopping from 1s before the lease ends; got %v", got)
	}
	if got := ids(&l, t0.Add(3*time.Second)); len(got) != 1 || l.view(t0.Add(3*time.Second)) == l.view(t0) {
		t.Errorf("want the exclusive replicas stopped, and the view changed, once the lease ran out; got %v", got)
	}
	v := l.view(t0.Add(time.Second))
	l.update(protocol.NodeAck{LeaseMillis: 3000, Hold: []string{"audit"}}, t0.Add(time.Second))
	if l.view(t0.Add(time.Second)) != v {
		t.Errorf("want a renewed lease with the same holds to change nothing")
	}
	l.update(protocol.NodeAck{LeaseMillis: 0}, t0.Add(time.Second))
	if ids := l.expired(bs, t0.Add(time.Second)); len(ids) != 2 {
		t.Errorf("want an ack with no lease left to end it at once; got %v", ids)
	}
	l.update(protocol.NodeAck{LeaseMillis: 3000, Dark: true}, t0.Add(2*time.Second))
	if len(ids(&l, t0.Add(2*time.Second))) != 0 {
		t.Errorf("want nothing to run while a drill keeps the region dark")
	}
}

// TestNodeLeaseNeverMovesLaterUnrenewed: while the hub is silent the
// member's lease is not renewed, and each ack gives less time left. The
// stop signal's grace shrinks with it (a third of the time left), so the
// stop point computed from a late ack falls later than the one already
// passed; once stopped, exclusive replicas stay stopped until the lease is
// renewed, and the end never moves later.
func TestNodeLeaseNeverMovesLaterUnrenewed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bs := []protocol.Binding{{Replica: "ledger-1", Workload: "ledger", Exclusive: true}}
	renewed := t0.UnixNano()
	var l nodeLease
	// The lease ends at t0+3s; acks every 500 ms give what is left.
	for at := time.Duration(0); at < 3*time.Second; at += 500 * time.Millisecond {
		l.update(protocol.NodeAck{LeaseMillis: (3*time.Second - at).Milliseconds(), LeaseRenewed: renewed}, t0.Add(at))
		now := t0.Add(at)
		running := len(l.allowed(bs, now)) == 1
		if want := now.Before(t0.Add(2 * time.Second)); running != want {
			t.Errorf("+%s: exclusive replica allowed %v; want %v (the stop signal at +2s, never taken back)", at, running, want)
		}
	}
	if !l.until.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("want the lease to end at +3s still; got +%s", l.until.Sub(t0))
	}
	// A renewal (a new LeaseRenewed) moves it on, and the replica runs.
	l.update(protocol.NodeAck{LeaseMillis: 3000, LeaseRenewed: renewed + 1}, t0.Add(2500*time.Millisecond))
	if len(l.allowed(bs, t0.Add(2500*time.Millisecond))) != 1 {
		t.Error("want the exclusive replica allowed again once the lease is renewed")
	}
	// An old member says nothing of renewals: each ack stands alone.
	var old nodeLease
	old.update(protocol.NodeAck{LeaseMillis: 1200}, t0)
	old.update(protocol.NodeAck{LeaseMillis: 900}, t0.Add(500*time.Millisecond))
	if !old.until.Equal(t0.Add(1400 * time.Millisecond)) {
		t.Errorf("want an ack without LeaseRenewed taken as it is; got the end at +%s", old.until.Sub(t0))
	}
}
