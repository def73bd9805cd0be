package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// orderTimeout bounds waits for what the store promises no time for (a
// change reaching the log's readers) on a shared, busy machine.
const orderTimeout = 30 * time.Second

var testActor = pgstore.Actor{Name: "test"}

func workloadRec(name string) *pgstore.Record {
	return &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: name}, Spec: []byte(`{"replicas":1,"template":{"driver":"sim"}}`)}
}

// openHub opens a store on r as one more hub would: a pool of its own.
func openHub(t *testing.T, r pgtest.Roles, cfg pgstore.Config) *pgstore.Store {
	t.Helper()
	cfg.DatabaseURL, cfg.MigrateURL = r.Hub, r.Owner
	s, err := pgstore.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("want the store open; got %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// changesUntil reads kind's change log after `after` until done says the
// changes read so far suffice, for at most orderTimeout.
func changesUntil(t *testing.T, s *pgstore.Store, kind string, after int64, done func([]pgstore.Change) bool) []pgstore.Change {
	t.Helper()
	var got []pgstore.Change
	deadline := time.Now().Add(orderTimeout)
	for {
		cs, err := s.Changes(t.Context(), kind, after, 500)
		if err != nil {
			t.Fatalf("read changes after %d: %v", after, err)
		}
		got = append(got, cs...)
		if len(cs) > 0 {
			after = cs[len(cs)-1].ResourceVersion
		}
		if done(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change log did not show what was expected within %s; read %d changes: %v", orderTimeout, len(got), names(got))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitHolding waits until a stalled transaction holds what it took, or
// fails the test with why it ended first.
func waitHolding(t *testing.T, holding <-chan struct{}, ended <-chan error) {
	t.Helper()
	select {
	case <-holding:
	case err := <-ended:
		t.Fatalf("the transaction meant to stall ended first: %v", err)
	case <-time.After(orderTimeout):
		t.Fatalf("the transaction meant to stall did not get there within %s", orderTimeout)
	}
}

// gate lets a stalled transaction go on; the test's cleanup lets it
// go too (before the stores close), so a failed test ends.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func (r *gate) close() { r.once.Do(func() { close(r.ch) }) }

func releaser(t *testing.T) *gate {
	r := &gate{ch: make(chan struct{})}
	t.Cleanup(r.close)
	return r
}

func names(cs []pgstore.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name + "@" + strconv.FormatInt(c.ResourceVersion, 10)
	}
	return out
}

func listVersion(t *testing.T, s *pgstore.Store, kind string) int64 {
	t.Helper()
	res, err := s.List(t.Context(), kind, pgstore.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	rv, err := strconv.ParseInt(res.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatalf("a list's resourceVersion %q is no number", res.ResourceVersion)
	}
	return rv
}

// TestStoppedWriterHoldsOnlyItsRows: a hub stopped inside a write
// transaction (its function blocks, leaving the session idle in the
// transaction as SIGSTOP would) holds no lock other hubs' writes of other
// objects wait for. Its transaction began first, so its change sorts
// first: the other hub's write is acknowledged at once but reaches the
// change log's readers only once the stopped one has ended, after it.
// A write of the row the stopped hub holds waits until PostgreSQL ends the
// stopped session (IdleInTxTimeout), and the stopped write never lands.
func TestStoppedWriterHoldsOnlyItsRows(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	ctx := t.Context()
	other := openHub(t, r, pgstore.Config{MaxConns: 4})

	t.Run("other objects", func(t *testing.T) {
		// The stopped hub's sessions idle as long as the test wants.
		stopped := openHub(t, r, pgstore.Config{MaxConns: 2, IdleInTxTimeout: 10 * time.Minute})
		from := listVersion(t, other, "Workload")
		holding, release := make(chan struct{}), releaser(t)
		stuck := make(chan error, 1)
		go func() {
			stuck <- stopped.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
				if _, err := tx.Create(ctx, workloadRec("first-begun")); err != nil {
					return err
				}
				close(holding)
				<-release.ch
				return nil
			})
		}()
		waitHolding(t, holding, stuck)
		if _, err := other.Create(ctx, testActor, workloadRec("acknowledged")); err != nil {
			t.Fatalf("want the other hub's create acknowledged while a hub is stopped in a write; got %v", err)
		}
		// The stopped transaction is still open: nothing may be read
		// past its version, which is below the acknowledged one.
		if cs, err := other.Changes(ctx, "Workload", from, 100); err != nil || len(cs) != 0 {
			t.Fatalf("want no change readable while an older writer is in progress; got %v (%v)", names(cs), err)
		}
		release.close()
		if err := <-stuck; err != nil {
			t.Fatalf("the resumed writer: %v", err)
		}
		got := changesUntil(t, other, "Workload", from, func(cs []pgstore.Change) bool { return len(cs) >= 2 })
		if len(got) != 2 || got[0].Name != "first-begun" || got[1].Name != "acknowledged" || got[0].ResourceVersion >= got[1].ResourceVersion {
			t.Fatalf("want first-begun then acknowledged, in increasing versions; got %v", names(got))
		}
	})

	t.Run("the same row", func(t *testing.T) {
		stopped := openHub(t, r, pgstore.Config{MaxConns: 2, IdleInTxTimeout: time.Second})
		if _, err := other.Create(ctx, testActor, workloadRec("shared")); err != nil {
			t.Fatal(err)
		}
		holding, release := make(chan struct{}), releaser(t)
		stuck := make(chan error, 1)
		go func() {
			stuck <- stopped.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
				_, err := tx.Mutate(ctx, pgstore.VerbUpdate, "Workload", "shared", func(cur *pgstore.Record) error {
					cur.Meta.Labels = map[string]string{"by": "stopped"}
					return nil
				})
				if err != nil {
					return err
				}
				close(holding)
				<-release.ch
				_, err = tx.Get(ctx, "Workload", "shared")
				return err
			})
		}()
		waitHolding(t, holding, stuck)
		out, err := other.Mutate(ctx, testActor, pgstore.VerbUpdate, "Workload", "shared", func(cur *pgstore.Record) error {
			cur.Meta.Labels = map[string]string{"by": "other"}
			return nil
		})
		if err != nil {
			t.Fatalf("want the other hub's update once the stopped session is ended; got %v", err)
		}
		release.close()
		if err := <-stuck; err == nil {
			t.Error("the stopped writer's transaction committed after its session was ended")
		}
		cur, err := other.Get(ctx, "Workload", "shared")
		if err != nil || cur.Meta.Labels["by"] != "other" || cur.Meta.ResourceVersion != out.Meta.ResourceVersion {
			t.Errorf("want the other hub's update to stand; got %+v (%v)", cur, err)
		}
	})
}

// TestWatchOrderUnderConcurrentWriters is the property watches rest on,
// under many writers on several hubs (stores with pools of their own) at
// once: every watcher, on whichever hub, reads every acknowledged write
// (no gap), in strictly increasing resourceVersions (no reorder), each
// object's changes in the order they were made, and one that resumes from
// any version it read reads exactly the rest.
func TestWatchOrderUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	ctx := t.Context()
	const (
		hubs      = 3
		writers   = 12 // over the hubs
		perWriter = 25
		watchers  = 6 // over the hubs
	)
	stores := make([]*pgstore.Store, hubs)
	for i := range stores {
		stores[i] = openHub(t, r, pgstore.Config{MaxConns: 6})
	}
	from := listVersion(t, stores[0], "Workload")

	// Watchers start before the writers and follow the log as it grows:
	// half of them poll (Changes), half wait for their hub's wake-ups and
	// read below the horizon each passed (ChangesBelow), as the API's
	// watches do.
	notifiers := make([]*pgstore.Notifier, hubs)
	for i, s := range stores {
		notifiers[i] = s.NewNotifier(nil)
		notifiers[i].Start(ctx)
		t.Cleanup(notifiers[i].Stop)
	}
	type seen struct {
		changes []pgstore.Change
		err     error
	}
	stop := make(chan struct{})
	results := make([]chan seen, watchers)
	for w := range watchers {
		results[w] = make(chan seen, 1)
		woken := w%2 == 1
		var sub *pgstore.Subscription
		if woken {
			sub = notifiers[w%hubs].SubscribeChanges("Workload")
			t.Cleanup(sub.Close)
		}
		go func() {
			s := stores[w%hubs]
			after, passed := from, int64(0)
			var got []pgstore.Change
			for {
				// A read that begins after stop was closed is the last
				// one needed: everything acknowledged was readable then.
				final := false
				select {
				case <-stop:
					final = true
				default:
				}
				var cs []pgstore.Change
				var err error
				if woken && !final {
					cs, err = s.ChangesBelow(ctx, "Workload", after, 50, passed)
				} else {
					cs, err = s.Changes(ctx, "Workload", after, 50)
				}
				if err != nil {
					results[w] <- seen{got, err}
					return
				}
				got = append(got, cs...)
				switch {
				case len(cs) > 0:
					after = cs[len(cs)-1].ResourceVersion
				case final:
					results[w] <- seen{got, nil}
					return
				case woken:
					select {
					case <-sub.C:
						passed = sub.Passed()
					case <-stop:
					}
				default:
					time.Sleep(time.Duration(1+rand.IntN(3)) * time.Millisecond)
				}
			}
		}()
	}

	// Writers: creates, then updates of their own objects and of a few
	// shared ones (row-lock contention across hubs), some deletes, and
	// transactions of several writes.
	var mu sync.Mutex
	acked := map[int64]string{} // version -> object name, of every acknowledged change
	ack := func(rec *pgstore.Record) {
		mu.Lock()
		acked[rec.RV()] = rec.Meta.Name
		mu.Unlock()
	}
	for i := range 3 {
		rec, err := stores[0].Create(ctx, testActor, workloadRec(fmt.Sprintf("shared-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ack(rec)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[w%hubs]
			for i := range perWriter {
				name := fmt.Sprintf("w%d-%d", w, i)
				var err error
				switch i % 5 {
				case 0, 1:
					var rec *pgstore.Record
					if rec, err = s.Create(ctx, testActor, workloadRec(name)); err == nil {
						ack(rec)
					}
				case 2: // two creates in one transaction
					var recs []*pgstore.Record
					err = s.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
						recs = recs[:0]
						for _, n := range []string{name + "a", name + "b"} {
							rec, err := tx.Create(ctx, workloadRec(n))
							if err != nil {
								return err
							}
							recs = append(recs, rec)
						}
						return nil
					})
					if err == nil {
						for _, rec := range recs {
							ack(rec)
						}
					}
				case 3: // a shared object, contended across hubs
					var rec *pgstore.Record
					rec, err = s.Mutate(ctx, testActor, pgstore.VerbUpdate, "Workload", fmt.Sprintf("shared-%d", i%3), func(cur *pgstore.Record) error {
						cur.Meta.Labels = map[string]string{"last": name}
						return nil
					})
					if err == nil {
						ack(rec)
					}
				case 4:
					var rec *pgstore.Record
					if rec, _, err = s.Delete(ctx, testActor, "Workload", fmt.Sprintf("w%d-%d", w, i-4), ""); err == nil {
						ack(rec)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d, step %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		close(stop)
		return
	}
	// Every acknowledged change is readable before the watchers stop.
	changesUntil(t, stores[0], "Workload", from, func(cs []pgstore.Change) bool { return len(cs) >= len(acked) })
	close(stop)

	want := slices.Sorted(func(yield func(int64) bool) {
		for rv := range acked {
			if !yield(rv) {
				return
			}
		}
	})
	for w := range watchers {
		var res seen
		select {
		case res = <-results[w]:
		case <-time.After(orderTimeout):
			t.Fatalf("watcher %d did not finish within %s", w, orderTimeout)
		}
		if res.err != nil {
			t.Fatalf("watcher %d: %v", w, res.err)
		}
		got := make([]int64, len(res.changes))
		for i, c := range res.changes {
			got[i] = c.ResourceVersion
			if i > 0 && got[i] <= got[i-1] {
				t.Fatalf("watcher %d (hub %d) read version %d after %d: out of order", w, w%hubs, got[i], got[i-1])
			}
			if acked[c.ResourceVersion] != c.Name {
				t.Fatalf("watcher %d read %s@%d, which no acknowledged write made", w, c.Name, c.ResourceVersion)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("watcher %d (hub %d) read %d changes, want the %d acknowledged, in order; first difference at %d",
				w, w%hubs, len(got), len(want), firstDiff(got, want))
		}
		// Resuming from any version read gives exactly the rest.
		for range 3 {
			i := rand.IntN(len(res.changes))
			rest := changesUntil(t, stores[(w+1)%hubs], "Workload", res.changes[i].ResourceVersion,
				func(cs []pgstore.Change) bool { return len(cs) >= len(want)-i-1 })
			if len(rest) != len(want)-i-1 || (len(rest) > 0 && rest[0].ResourceVersion != want[i+1]) {
				t.Fatalf("resuming after version %d: want the %d changes after it from %d; got %d", want[i], len(want)-i-1, want[i+1], len(rest))
			}
		}
	}
	t.Logf("%d writers on %d hubs, %d acknowledged changes, each read in order by %d watchers", writers, hubs, len(want), watchers)
}

func firstDiff(a, b []int64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestListThenWatchConverges: a list's version may be below changes the
// list already shows (transactions that began before others committed
// after them); a watch from it repeats those, in order, and never misses
// one, so applying the stream to the list ends at the log's state.
func TestListThenWatchConverges(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	ctx := t.Context()
	a := openHub(t, r, pgstore.Config{MaxConns: 2, IdleInTxTimeout: 10 * time.Minute})
	b := openHub(t, r, pgstore.Config{MaxConns: 2})
	holding, release := make(chan struct{}), releaser(t)
	stuck := make(chan error, 1)
	go func() {
		stuck <- a.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
			if _, err := tx.Create(ctx, workloadRec("older")); err != nil {
				return err
			}
			close(holding)
			<-release.ch
			return nil
		})
	}()
	waitHolding(t, holding, stuck)
	newer, err := b.Create(ctx, testActor, workloadRec("newer"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.List(ctx, "Workload", pgstore.ListOptions{Limit: -1, Covered: true})
	if err != nil {
		t.Fatal(err)
	}
	release.close()
	if err := <-stuck; err != nil {
		t.Fatal(err)
	}
	rv, _ := strconv.ParseInt(res.ResourceVersion, 10, 64)
	if len(res.Items) != 1 || res.Items[0].Meta.Name != "newer" || rv >= newer.RV() {
		t.Fatalf("want the list to show newer alone at a version below it (an older writer was in progress); got %d items at %d", len(res.Items), rv)
	}
	if !slices.Equal(res.Covered, []int64{newer.RV()}) {
		t.Errorf("want the list to name newer's version %d as covered; got %v", newer.RV(), res.Covered)
	}
	got := changesUntil(t, b, "Workload", rv, func(cs []pgstore.Change) bool { return len(cs) >= 2 })
	if len(got) != 2 || got[0].Name != "older" || got[1].Name != "newer" {
		t.Fatalf("want older, then newer repeated, from the list's version; got %v", names(got))
	}
}

// TestWriteTimeoutsAreUnavailable: a write that waits on a row longer than
// the lock timeout fails as Unavailable (503), never a bare driver error.
func TestWriteTimeoutsAreUnavailable(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	ctx := t.Context()
	holder := openHub(t, r, pgstore.Config{MaxConns: 2, IdleInTxTimeout: 10 * time.Minute})
	waiter := openHub(t, r, pgstore.Config{MaxConns: 2, LockTimeout: 200 * time.Millisecond})
	if _, err := holder.Create(ctx, testActor, workloadRec("held")); err != nil {
		t.Fatal(err)
	}
	holding, release := make(chan struct{}), releaser(t)
	done := make(chan error, 1)
	go func() {
		done <- holder.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
			if _, err := tx.Get(ctx, "Workload", "held"); err != nil {
				return err
			}
			close(holding)
			<-release.ch
			return nil
		})
	}()
	waitHolding(t, holding, done)
	_, err := waiter.Mutate(ctx, testActor, pgstore.VerbUpdate, "Workload", "held", func(cur *pgstore.Record) error {
		cur.Meta.Labels = map[string]string{"x": "y"}
		return nil
	})
	release.close()
	if api.ErrorCode(err) != api.CodeUnavailable {
		t.Errorf("want Unavailable for a write that outwaited the lock timeout; got %v", err)
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Error(err)
	}
}
