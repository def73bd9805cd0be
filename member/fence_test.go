package member

import (
	"slices"
	"testing"
	"time"
)

func TestFence(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFence(3 * time.Second)
	if l, renewed := f.lease(t0); l != 0 || !renewed.IsZero() {
		t.Errorf("want no lease before the first ack")
	}
	f.desired("ledger", 1, true, false, 0, t0) // held from the store at start
	f.desired("web", 1, false, false, 0, t0)
	if got := f.held(t0); !slices.Equal(got, []string{"ledger"}) {
		t.Errorf("want only the exclusive workload held at start; got %v", got)
	}
	f.acked(t0)
	if !f.needsResync(t0) {
		t.Errorf("want a resync asked for while an exclusive workload is unconfirmed")
	}
	term := f.Term()
	f.desired("ledger", 1, true, false, term+1, t0) // another term: no confirmation
	f.desired("ledger", 1, true, false, term, t0)
	if got := f.held(t0); len(got) != 0 || f.needsResync(t0) {
		t.Errorf("want ledger confirmed by desired state of the current term; held %v", got)
	}
	// The lease runs 3 s from the last ack.
	if l, renewed := f.lease(t0.Add(time.Second)); l != 2*time.Second || !renewed.Equal(t0) {
		t.Errorf("want 2s of lease left 1s after the ack, renewed at the ack; got %s, renewed %s", l, renewed)
	}
	if got := f.held(t0.Add(3 * time.Second)); !slices.Equal(got, []string{"ledger"}) {
		t.Errorf("want ledger held once the lease ran out; got %v", got)
	}
	// An ack after a longer gap starts a new term: ledger stays held even
	// with a lease, until confirmed in that term.
	if !f.acked(t0.Add(5 * time.Second)) {
		t.Errorf("want a new term after a 5s gap (fence 3s)")
	}
	now := t0.Add(5 * time.Second)
	if f.Term() == term || !slices.Equal(f.held(now), []string{"ledger"}) {
		t.Errorf("want a new term and ledger held in it; term %d (was %d), held %v", f.Term(), term, f.held(now))
	}
	f.desired("ledger", 1, true, false, term, now) // delayed from the old term
	if !slices.Equal(f.held(now), []string{"ledger"}) {
		t.Errorf("want desired state of the old term to confirm nothing")
	}
	f.desired("ledger", 1, true, false, f.Term(), now)
	if len(f.held(now)) != 0 {
		t.Errorf("want ledger running again once confirmed in the new term")
	}
	if f.acked(now.Add(time.Second)) {
		t.Errorf("want no new term after a 1s gap")
	}
	f.desired("ledger", 2, true, true, 0, now)         // a tombstone forgets it
	f.desired("ledger", 1, true, false, f.Term(), now) // an older delivery stored at the same time
	if len(f.held(now.Add(time.Hour))) != 0 {
		t.Errorf("want a deleted workload never held, whatever order its deliveries were recorded in")
	}
}

// TestFenceAsksAfterAnUpgrade: desired state stored by a member before
// protocol.ExclusiveSince does not say which workloads are exclusive. The
// upgraded member asks for a resync until the hub has sent each again
// (under a lease term), or until it gives up asking.
func TestFenceAsksAfterAnUpgrade(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFence(3 * time.Second)
	f.desired("ledger", 4, false, false, 0, t0) // as stored: no exclusive flag
	f.desired("web", 5, false, false, 0, t0)
	f.stale("ledger")
	f.stale("web")
	f.acked(t0)
	if !f.needsResync(t0) {
		t.Fatal("want a resync asked for while stored desired state predates fencing")
	}
	term := f.Term()
	f.desired("ledger", 4, true, false, term, t0) // sent again: exclusive after all
	if !f.needsResync(t0) {
		t.Error("want the resync asked for until every stale workload was sent again")
	}
	f.desired("web", 5, false, false, term, t0)
	if f.needsResync(t0) {
		t.Error("want no resync once the hub sent every stale workload again and confirmed the exclusive one")
	}
	if got := f.held(t0); len(got) != 0 {
		t.Errorf("want ledger confirmed in this term; held %v", got)
	}

	// A workload the hub no longer has is never sent: the member stops
	// asking a minute after the first delivery under a lease term (acks
	// alone, from a hub that cannot deliver, do not start the minute).
	g := newFence(3 * time.Second)
	g.desired("gone", 1, false, false, 0, t0)
	g.desired("kept", 1, false, false, 0, t0)
	g.stale("gone")
	g.stale("kept")
	for at := time.Duration(0); at <= 5*time.Minute; at += time.Second {
		g.acked(t0.Add(at))
	}
	if !g.needsResync(t0.Add(5 * time.Minute)) {
		t.Fatal("want the member still asking: nothing was delivered yet")
	}
	// (A member whose hub never sends gives up after ten minutes of acks.)
	h := newFence(3 * time.Second)
	h.desired("gone", 1, false, false, 0, t0)
	h.stale("gone")
	for at := time.Duration(0); at <= 10*time.Minute; at += time.Second {
		h.acked(t0.Add(at))
		if got, want := h.needsResync(t0.Add(at)), at < 10*time.Minute; got != want {
			t.Fatalf("no delivery, +%s: asking %v, want %v", at, got, want)
		}
	}
	g.desired("kept", 1, false, false, g.Term(), t0.Add(5*time.Minute)) // the resync begins
	for at := 5 * time.Minute; at <= 6*time.Minute+time.Second; at += time.Second {
		g.acked(t0.Add(at))
		want := at < 6*time.Minute
		if got := g.needsResync(t0.Add(at)); got != want {
			t.Fatalf("resync began at +5m, now +%s: asking %v, want %v", at, got, want)
		}
	}
}
