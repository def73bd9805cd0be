package pgstore_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// TestSharedChangeReadsAnswerLikeTheLog: callers of Changes served by the
// store's one reader per kind get what a read of the log would give: each
// caller, after a write it waited for, sees it (no stale answer from
// memory), in order from its own version; and once the log is compacted a
// caller behind it gets ErrGone even though the reader had held those
// changes.
func TestSharedChangeReadsAnswerLikeTheLog(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	ctx := t.Context()
	var rvs []int64
	for i := range 30 {
		rec, err := s.Create(ctx, testActor, workloadRec(fmt.Sprintf("w%02d", i)))
		if err != nil {
			t.Fatal(err)
		}
		rvs = append(rvs, rec.RV())
		// Twenty callers at once, each from its own point: every one
		// must see this write (and all after its point).
		var wg sync.WaitGroup
		for j := range 20 {
			from := int64(0)
			if k := (i * j) % (i + 1); k > 0 {
				from = rvs[k-1]
			}
			wg.Go(func() {
				cs := changesUntil(t, s, "Workload", from, func(cs []pgstore.Change) bool {
					return len(cs) > 0 && cs[len(cs)-1].ResourceVersion >= rvs[i]
				})
				for n := 1; n < len(cs); n++ {
					if cs[n].ResourceVersion <= cs[n-1].ResourceVersion {
						t.Errorf("out of order: %v", names(cs))
						return
					}
				}
				if cs[0].ResourceVersion <= from {
					t.Errorf("from %d: got a change at or before it: %v", from, names(cs))
				}
			})
		}
		wg.Wait()
	}
	first, err := s.Changes(ctx, "Workload", 0, 100)
	if err != nil || len(first) != 30 {
		t.Fatalf("want all 30 changes from 0; got %d, %v", len(first), err)
	}
	if _, err := s.Compact(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Changes(ctx, "Workload", rvs[0], 10); !errors.Is(err, pgstore.ErrGone) {
		t.Errorf("from a version compacted away: want ErrGone; got %v", err)
	}
	if cs, err := s.Changes(ctx, "Workload", rvs[28], 10); err != nil || len(cs) != 1 || cs[0].ResourceVersion != rvs[29] {
		t.Errorf("from the newest but one: want the newest change; got %v, %v", names(cs), err)
	}
}

// TestWokenCallersShareOneRead: subscribers woken by one write that ask
// for the changes below their wake-up's horizon (ChangesBelow) cost one
// read of the log between them, however they come (here one after
// another, each after the last had its answer), and each gets the write;
// callers of Changes, promised a read begun after their call, cost one
// read each when they come that way.
func TestWokenCallersShareOneRead(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	ctx := t.Context()
	n := s.NewNotifier(nil)
	n.Start(ctx)
	t.Cleanup(n.Stop)
	subs := make([]*pgstore.Subscription, 20)
	for i := range subs {
		subs[i] = n.SubscribeChanges("Workload")
		t.Cleanup(subs[i].Close)
	}
	// woken waits until sub was woken at a horizon above rv.
	woken := func(sub *pgstore.Subscription, rv int64, within time.Duration) (int64, bool) {
		deadline := time.After(within)
		for {
			select {
			case <-sub.C:
				p := sub.Passed()
				if p == 0 { // the listener's first wake-up knows no horizon
					p = sub.Passed()
				}
				if p > rv {
					return p, true
				}
			case <-deadline:
				return 0, false
			}
		}
	}
	// Until the listener is up a write wakes no one: write until one does.
	listening := time.Now().Add(orderTimeout)
	for i := 0; ; i++ {
		rec, err := s.Create(ctx, testActor, workloadRec(fmt.Sprintf("warm%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := woken(subs[0], rec.RV(), time.Second); ok {
			break
		}
		if time.Now().After(listening) {
			t.Fatalf("no wake-up within %s of writes", orderTimeout)
		}
	}
	after := listVersion(t, s, "Workload")
	rec, err := s.Create(ctx, testActor, workloadRec("w"))
	if err != nil {
		t.Fatal(err)
	}
	passed := make([]int64, len(subs))
	for i, sub := range subs {
		p, ok := woken(sub, rec.RV(), orderTimeout)
		if !ok {
			t.Fatalf("subscriber %d not woken for version %d within %s", i, rec.RV(), orderTimeout)
		}
		passed[i] = p
	}
	saw := func(cs []pgstore.Change) bool {
		return slices.ContainsFunc(cs, func(c pgstore.Change) bool { return c.ResourceVersion == rec.RV() && c.Name == "w" })
	}
	before := s.FeedReads("Workload")
	for i := range subs {
		cs, err := s.ChangesBelow(ctx, "Workload", after, 100, passed[i])
		if err != nil || !saw(cs) {
			t.Fatalf("woken caller %d: want the write w@%d; got %v, %v", i, rec.RV(), names(cs), err)
		}
	}
	if reads := s.FeedReads("Workload") - before; reads != 1 {
		t.Errorf("%d woken callers, one after another: want one read of the log; got %d", len(subs), reads)
	}
	before = s.FeedReads("Workload")
	for i := range subs {
		if cs, err := s.Changes(ctx, "Workload", after, 100); err != nil || !saw(cs) {
			t.Fatalf("caller %d of Changes: want the write w@%d; got %v, %v", i, rec.RV(), names(cs), err)
		}
	}
	if reads := s.FeedReads("Workload") - before; reads != uint64(len(subs)) {
		t.Errorf("%d callers of Changes, one after another: want a read each; got %d", len(subs), reads)
	}
}
