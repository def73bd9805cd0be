package pgstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// TestWakeupsCoverEveryWrite: eight writers create workloads at once; a
// session LISTENing on the change channel hears, after the last create
// returned, a wake-up for Workload at or above every version the creates
// were given, no more wake-ups than writes (many writes' wake-ups go in
// one NOTIFY), and no more than one per WakeupGap from the first create
// to the last wake-up heard, plus the first (and one under way before).
func TestWakeupsCoverEveryWrite(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	ctx := t.Context()
	s := openHub(t, r, pgstore.Config{MaxConns: 8})
	listener, err := pgx.Connect(ctx, r.Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.WithoutCancel(ctx))
	if _, err := listener.Exec(ctx, "LISTEN "+pgstore.NotifyChannel); err != nil {
		t.Fatal(err)
	}

	const writers, each = 8, 25
	began := time.Now()
	var mu sync.Mutex
	var newest int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				out, err := s.Create(ctx, testActor, workloadRec(fmt.Sprintf("w%d-%d", w, i)))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				newest = max(newest, out.RV())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	heard := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		n, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("want a wake-up for Workload at or above %d, the newest acknowledged version, within 30 s; heard %d wake-ups, then %v", newest, heard, err)
		}
		heard++
		kind, v, _ := strings.Cut(n.Payload, " ")
		rv, err := strconv.ParseInt(v, 10, 64)
		if kind != "Workload" || err != nil {
			t.Fatalf("want wake-ups %q; got %q", "Workload <version>", n.Payload)
		}
		if rv > newest {
			t.Fatalf("a wake-up for version %d, above every acknowledged one (%d)", rv, newest)
		}
		if rv == newest {
			break
		}
	}
	if heard > writers*each {
		t.Errorf("want at most one wake-up per write (%d); heard %d", writers*each, heard)
	}
	took := time.Since(began)
	if most := int(took/pgstore.WakeupGap) + 2; heard > most {
		t.Errorf("heard %d wake-ups in %s; want at most one per %s, the first and one under way before (%d)", heard, took, pgstore.WakeupGap, most)
	}
	t.Logf("%d writes, %d wake-ups heard up to the newest", writers*each, heard)
}
