package pgstore_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

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
