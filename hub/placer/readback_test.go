package placer

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// TestOwnStatusReadBackBeforeDeciding: a workload whose status the placer
// wrote is not decided again until the workload cache has read that write
// back from the change log, although the write ended before the pass
// read the log: a transaction still open holds the watch horizon below it
// (as a Read that stops at a chunk, More, leaves it unread). Decided
// against the status before it, a failed-over workload would lose its
// record of the cluster it failed over from, and never fail back.
//
// Not parallel: the horizon held is the server's, every test's.
func TestOwnStatusReadBackBeforeDeciding(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: url, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	f := newLossFixtureOn(t, store, 2, failoverChunk)
	holder, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: url, MaxConns: 2, IdleInTxTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(holder.Close)
	failedOverFrom := func(name string) map[string]int32 {
		t.Helper()
		if st := storedStatus(t, store, name); st.Placement != nil {
			return st.Placement.FailedOverFrom
		}
		return nil
	}

	// A write transaction held open: no change after it is readable.
	rollback := errors.New("rolled back")
	release := holdTx(t, holder, rollback, func(tx *pgstore.Tx) error {
		spec, _ := json.Marshal(api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}})
		_, err := tx.Create(ctx, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "holder"}, Spec: spec})
		return err
	})
	// c is lost: both workloads fail over, their status says from c.
	f.lose()
	if err := f.p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"w0", "w1"} {
		if got := failedOverFrom(name); got["c"] != 1 {
			t.Fatalf("%s failed over from %v; want 1 replica from c", name, got)
		}
	}
	// A cluster's labels change: every workload is decided again, while
	// the status writes above are still unreadable.
	if _, err := store.Mutate(ctx, pgstore.Actor{Name: "test"}, pgstore.VerbUpdate, "Cluster", "a", func(cur *pgstore.Record) error {
		cur.Meta.Labels = map[string]string{"zone": "z1"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := release(); !errors.Is(err, rollback) {
		t.Fatalf("the held transaction: %v", err)
	}
	settle(t, f.p, "the pass after the writes are readable", func() bool { return true })
	settle(t, f.p, "and the next", func() bool { return true })
	for _, name := range []string{"w0", "w1"} {
		if got := failedOverFrom(name); got["c"] != 1 {
			t.Errorf("%s failed over from %v once its status was read back; want 1 replica from c still", name, got)
		}
	}
}

// holdTx runs a transaction on store that does body, then stays open
// until the returned release is called, and ends with end (nil: it
// commits); release returns the transaction's error. A test that fails
// before releasing it has it released at its cleanup.
func holdTx(t *testing.T, store *pgstore.Store, end error, body func(tx *pgstore.Tx) error) (release func() error) {
	t.Helper()
	holding, released, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- store.InTx(context.Background(), pgstore.Actor{Name: "test"}, func(tx *pgstore.Tx) error {
			if err := body(tx); err != nil {
				return err
			}
			close(holding)
			<-released
			return end
		})
	}()
	select {
	case <-holding:
	case err := <-held:
		t.Fatalf("hold a transaction open: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(released) }) })
	return func() error {
		once.Do(func() { close(released) })
		return <-held
	}
}
