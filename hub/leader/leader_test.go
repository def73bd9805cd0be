package leader

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// takeoverDeadline is the longest a takeover may take (issue 8: "leader
// loss is taken over within 5 s").
const takeoverDeadline = 5 * time.Second

// newDatabase returns the URL of a fresh, migrated database and a pool on
// it, both as the hub's unprivileged role (migrations run as the owner),
// as hubs connect: a takeover's pg_terminate_backend then works on a
// session of the same role, without superuser or pg_signal_backend.
func newDatabase(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	r, pool := newDatabaseRoles(t)
	return r.Hub, pool
}

// newDatabaseRoles is newDatabase with the database's URLs as every role.
func newDatabaseRoles(t *testing.T) (pgtest.Roles, *pgxpool.Pool) {
	t.Helper()
	r := pgtest.NewDatabaseRoles(t)
	s, err := pgstore.Open(t.Context(), pgstore.Config{DatabaseURL: r.Hub, MigrateURL: r.Owner})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(s.Close)
	var super bool
	if err := s.Pool().QueryRow(t.Context(), `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || super {
		t.Fatalf("want the tests' pool not a superuser; got %v, %v", super, err)
	}
	return r, s.Pool()
}

func newElector(t *testing.T, cfg Config) *Elector {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("new elector: %v", err)
	}
	t.Cleanup(e.Stop)
	return e
}

// waitFor waits on e's change signal until cond holds, failing after d.
func waitFor(t *testing.T, e *Elector, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-e.Changes():
		case <-deadline.C:
			t.Fatalf("%s: not within %v (leader=%v epoch=%d)", what, d, e.IsLeader(), e.Epoch())
		}
	}
	return time.Since(start)
}

func runOnce(t *testing.T, e *Elector, want bool) {
	t.Helper()
	got, err := e.RunOnce(t.Context())
	if err != nil {
		t.Fatalf("%s: RunOnce: %v", e.Holder(), err)
	}
	if got != want {
		t.Fatalf("%s: RunOnce says leader=%v, want %v", e.Holder(), got, want)
	}
}

// inTx runs fn in a transaction on pool and commits it.
func inTx(t *testing.T, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	t.Helper()
	return pgx.BeginFunc(t.Context(), pool, fn)
}

// waitCampaigning waits until e has run a round and its connection sits
// idle between rounds, so that a takeover measured next is a real one
// (a bounded poll: nothing signals a follower's round).
func waitCampaigning(t *testing.T, pool *pgxpool.Pool, e *Elector) {
	t.Helper()
	for i := 0; i < 250; i++ {
		var idle bool
		err := pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE application_name = $1 AND state = 'idle')`, "atoll-leader "+e.Holder()).Scan(&idle)
		if err != nil {
			t.Fatal(err)
		}
		if idle {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never campaigned", e.Holder())
}

func drained(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

func TestRunOnce(t *testing.T) {
	t.Parallel()
	url, pool := newDatabase(t)
	a := newElector(t, Config{DatabaseURL: url, HolderID: "a"})
	b := newElector(t, Config{DatabaseURL: url, HolderID: "b"})

	if a.IsLeader() || a.Epoch() != 0 {
		t.Fatalf("before any round: leader=%v epoch=%d, want false 0", a.IsLeader(), a.Epoch())
	}
	runOnce(t, a, true)
	if a.Epoch() != 1 {
		t.Fatalf("first leader's epoch = %d, want 1", a.Epoch())
	}
	if drained(a.Changes()) {
		t.Fatal("winning the election sent no change signal")
	}
	runOnce(t, a, true) // a heartbeat
	if a.Epoch() != 1 || !drained(a.Changes()) {
		t.Fatalf("a heartbeat changed the term: epoch=%d, want 1 and no signal", a.Epoch())
	}
	runOnce(t, b, false)
	if !drained(b.Changes()) {
		t.Fatal("losing an election the follower never held sent a change signal")
	}

	var holder string
	var pid int32
	if err := pool.QueryRow(t.Context(), `SELECT holder, pid FROM leader_epoch`).Scan(&holder, &pid); err != nil {
		t.Fatal(err)
	}
	if holder != "a" || pid == 0 {
		t.Fatalf("leader_epoch records holder %q pid %d, want a and a pid", holder, pid)
	}

	a.Stop()
	a.Stop()             // safe twice
	a.Start(t.Context()) // does nothing after Stop
	if _, err := a.RunOnce(t.Context()); err == nil {
		t.Fatal("RunOnce after Stop succeeded, want an error")
	}
	if a.IsLeader() || a.Epoch() != 0 {
		t.Fatalf("after Stop: leader=%v epoch=%d, want false 0", a.IsLeader(), a.Epoch())
	}
	runOnce(t, b, true)
	if b.Epoch() != 2 {
		t.Fatalf("second leader's epoch = %d, want 2", b.Epoch())
	}
	err := inTx(t, pool, func(tx pgx.Tx) error { return a.Fence(t.Context(), tx) })
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("stopped leader's Fence: %v, want ErrNotLeader", err)
	}
	if err := inTx(t, pool, func(tx pgx.Tx) error { return b.Fence(t.Context(), tx) }); err != nil {
		t.Fatalf("leader's Fence: %v, want nil", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{},
		{DatabaseURL: "postgres://u:secret@localhost:5432/x", RetryEvery: 2 * time.Second},
		{DatabaseURL: "postgres://u:secret@localhost:5432/x", RetryEvery: time.Second, Lease: time.Second},
		{DatabaseURL: "postgres://u:secret@[bad/x"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("New(%+v) error quotes the password: %v", cfg, err)
		}
	}
}

// Two hubs, default timings: one leads; when it stops, the other takes over
// within the deadline with a higher epoch, and the old one is fenced.
func TestTakeoverWhenLeaderStops(t *testing.T) {
	t.Parallel()
	url, pool := newDatabase(t)
	a := newElector(t, Config{DatabaseURL: url, HolderID: "a"})
	b := newElector(t, Config{DatabaseURL: url, HolderID: "b"})

	a.Start(t.Context())
	waitFor(t, a, takeoverDeadline, "a leads", a.IsLeader)
	runOnce(t, b, false) // exactly one leader
	b.Start(t.Context())
	oldEpoch := a.Epoch()
	waitCampaigning(t, pool, b)

	a.Stop()
	took := waitFor(t, b, takeoverDeadline, "b takes over after a stops", b.IsLeader)
	t.Logf("takeover after a clean stop: %v", took)
	if b.Epoch() <= oldEpoch {
		t.Fatalf("new leader's epoch %d, want above the old %d", b.Epoch(), oldEpoch)
	}
	err := inTx(t, pool, func(tx pgx.Tx) error { return CheckEpoch(t.Context(), tx, oldEpoch) })
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write under the old epoch: %v, want ErrNotLeader", err)
	}
}

// The leader's session dies (as when its process is killed): the follower
// takes over, and the old leader notices at its next heartbeat and steps
// down.
func TestTakeoverWhenLeaderSessionDies(t *testing.T) {
	t.Parallel()
	url, pool := newDatabase(t)
	a := newElector(t, Config{DatabaseURL: url, HolderID: "a"})
	b := newElector(t, Config{DatabaseURL: url, HolderID: "b"})
	a.Start(t.Context())
	waitFor(t, a, takeoverDeadline, "a leads", a.IsLeader)
	b.Start(t.Context())
	oldEpoch := a.Epoch()
	waitCampaigning(t, pool, b)

	t0 := time.Now()
	if _, err := pool.Exec(t.Context(), `SELECT pg_terminate_backend(pid, 5000) FROM leader_epoch`); err != nil {
		t.Fatalf("terminate the leader's session: %v", err)
	}
	waitFor(t, b, takeoverDeadline, "b takes over after a's session ends", b.IsLeader)
	t.Logf("takeover after the leader's session ended: %v", time.Since(t0))
	waitFor(t, a, takeoverDeadline, "a steps down", func() bool { return !a.IsLeader() })
	if b.Epoch() <= oldEpoch {
		t.Fatalf("new leader's epoch %d, want above the old %d", b.Epoch(), oldEpoch)
	}
	err := inTx(t, pool, func(tx pgx.Tx) error { return a.Fence(t.Context(), tx) })
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("old leader's Fence: %v, want ErrNotLeader", err)
	}
}

// A leader that stops heartbeating but keeps its session (SIGSTOP) is taken
// over once its lease runs out; its writes are fenced by the epoch even
// though, by its own frozen clock, it still believes it leads; when it
// resumes it steps down.
func TestPausedLeaderIsTakenOverAndFenced(t *testing.T) {
	t.Parallel()
	url, pool := newDatabase(t)
	var frozen atomic.Bool
	start := time.Now()
	clock := func() time.Time { // stops when the process "pauses"
		if frozen.Load() {
			return start
		}
		return time.Now()
	}
	a := newElector(t, Config{DatabaseURL: url, HolderID: "a", Now: clock})
	b := newElector(t, Config{DatabaseURL: url, HolderID: "b"})
	a.Start(t.Context())
	waitFor(t, a, takeoverDeadline, "a leads", a.IsLeader)
	oldEpoch := a.Epoch()
	b.Start(t.Context())

	start = time.Now()
	frozen.Store(true)
	a.pauseHeartbeat.Store(true)
	took := waitFor(t, b, 2*takeoverDeadline, "b takes over a paused leader", b.IsLeader)
	t.Logf("takeover of a paused leader (lease 3 s, retry 1 s): %v after its last round", took)
	if took > takeoverDeadline {
		t.Errorf("takeover of a paused leader took %v, want within %v", took, takeoverDeadline)
	}
	if b.Epoch() <= oldEpoch {
		t.Fatalf("new leader's epoch %d, want above the old %d", b.Epoch(), oldEpoch)
	}

	if !a.IsLeader() {
		t.Fatal("the paused leader already knows it lost; this test wants the database to fence it")
	}
	err := inTx(t, pool, func(tx pgx.Tx) error { return a.Fence(t.Context(), tx) })
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("paused leader's Fence after takeover: %v, want ErrNotLeader", err)
	}

	frozen.Store(false)
	a.pauseHeartbeat.Store(false)
	waitFor(t, a, takeoverDeadline, "resumed leader steps down", func() bool { return !a.IsLeader() })
	if !b.IsLeader() {
		t.Fatal("b lost leadership when a resumed")
	}
}

// A fenced transaction in flight holds off a takeover until it commits, does
// not block its own leader's heartbeat, and a fenced transaction after the
// takeover fails.
func TestFenceOrdersTakeover(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, a, b, tx := fencedTx(t)
	runOnce(t, a, true) // the heartbeat is not blocked by the fence

	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM leader_epoch`); err != nil {
		t.Fatalf("terminate the leader's session: %v", err)
	}
	type result struct {
		won bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		won, err := b.RunOnce(ctx)
		done <- result{won, err}
	}()

	// b must wait on the row lock while a's fenced transaction is open.
	waiting := false
	for i := 0; i < 100 && !waiting; i++ {
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE application_name = 'atoll-leader b' AND wait_event_type = 'Lock')`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			t.Fatalf("b's takeover finished (leader=%v err=%v) while a's fenced transaction was open", r.won, r.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !waiting {
		t.Fatal("b's takeover never waited for a's fenced transaction")
	}
	if _, err := tx.Exec(ctx, `INSERT INTO fenced_writes VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit of the fenced write made before the takeover: %v", err)
	}
	select {
	case r := <-done:
		if r.err != nil || !r.won {
			t.Fatalf("b's takeover: leader=%v err=%v, want leader", r.won, r.err)
		}
	case <-time.After(takeoverDeadline):
		t.Fatal("b's takeover did not finish after the fenced transaction committed")
	}
	if b.Epoch() != 2 {
		t.Fatalf("b's epoch = %d, want 2", b.Epoch())
	}

	err := inTx(t, pool, func(tx pgx.Tx) error {
		if err := CheckEpoch(ctx, tx, 1); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO fenced_writes VALUES (2)`)
		return err
	})
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write under the old epoch after takeover: %v, want ErrNotLeader", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM fenced_writes`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("fenced_writes has %d rows, want 1 (the write before the takeover only)", n)
	}
}

// A fenced transaction whose hub stopped mid-transaction (SIGSTOP: the
// session sits idle in the transaction, holding the epoch row) does not
// hold off a takeover: the new leader ends it, and it commits nothing.
func TestStuckFencedTransactionIsEnded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, _, b, tx := fencedTx(t)
	if _, err := tx.Exec(ctx, `INSERT INTO fenced_writes VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	// a's process "stops" here: its elector's session goes, its fenced
	// transaction stays open and idle.
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM leader_epoch`); err != nil {
		t.Fatalf("terminate the leader's session: %v", err)
	}
	start := time.Now()
	runOnce(t, b, true)
	took := time.Since(start)
	t.Logf("takeover past a stuck fenced transaction: %v (RetryEvery 1 s)", took)
	if took > takeoverDeadline {
		t.Errorf("takeover took %v, want within %v", took, takeoverDeadline)
	}
	if b.Epoch() != 2 {
		t.Fatalf("b's epoch = %d, want 2", b.Epoch())
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("the stuck transaction of the old term committed after the takeover")
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM fenced_writes`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("fenced_writes has %d rows, want 0: the old term's write must not land", n)
	}
}

// Hubs lists every hub whose elector is connected and the leader's term.
func TestHubs(t *testing.T) {
	t.Parallel()
	url, pool := newDatabase(t)
	term, hubs, err := Hubs(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if term.Epoch != 0 || term.Holder != "" || len(hubs) != 0 {
		t.Fatalf("before any elector: term %+v, hubs %+v; want epoch 0, no holder, no hubs", term, hubs)
	}
	a := newElector(t, Config{DatabaseURL: url, HolderID: "hub-a"})
	b := newElector(t, Config{DatabaseURL: url, HolderID: "hub-b"})
	runOnce(t, a, true)
	runOnce(t, b, false)
	term, hubs, err = Hubs(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if term.Epoch != a.Epoch() || term.Holder != "hub-a" || term.HeartbeatAge < 0 || term.HeartbeatAge > takeoverDeadline {
		t.Errorf("term %+v; want epoch %d held by hub-a with a fresh heartbeat", term, a.Epoch())
	}
	var names []string
	for _, h := range hubs {
		names = append(names, h.Holder)
		if h.ConnectedAt.IsZero() {
			t.Errorf("hub %s: no connection time", h.Holder)
		}
	}
	if strings.Join(names, ",") != "hub-a,hub-b" {
		t.Errorf("hubs %v; want hub-a,hub-b", names)
	}
	if _, err := New(Config{DatabaseURL: url, HolderID: strings.Repeat("x", 51)}); err == nil {
		t.Error("a holder longer than 50 bytes was accepted: its application_name would be cut")
	}
}

// fencedTx makes two electors on a fresh database (with a table
// fenced_writes), a the leader, and a transaction a has fenced; the
// transaction is rolled back when the test ends.
func fencedTx(t *testing.T) (*pgxpool.Pool, *Elector, *Elector, pgx.Tx) {
	t.Helper()
	r, pool := newDatabaseRoles(t)
	ctx := t.Context()
	// Created by the owner, as a migration would: the hub's role gets it
	// through the default privileges pgstore set.
	owner, err := pgx.Connect(ctx, r.Owner)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(context.WithoutCancel(ctx))
	if _, err := owner.Exec(ctx, `CREATE TABLE fenced_writes (n int)`); err != nil {
		t.Fatal(err)
	}
	a := newElector(t, Config{DatabaseURL: r.Hub, HolderID: "a"})
	b := newElector(t, Config{DatabaseURL: r.Hub, HolderID: "b"})
	runOnce(t, a, true)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) })
	if err := a.Fence(ctx, tx); err != nil {
		t.Fatalf("leader's Fence: %v", err)
	}
	return pool, a, b, tx
}
