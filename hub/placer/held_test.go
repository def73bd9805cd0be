package placer

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// testLead is a leadership the test hands over: whether this hub leads,
// under which epoch, and how its fence fails besides when it does not
// lead ("" never; "lost": the term is over; "pg": PostgreSQL refuses the
// fence's statement).
type testLead struct {
	mu    sync.Mutex
	leads bool
	epoch int64
	fence string
}

func (l *testLead) set(leads bool, epoch int64, fence string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leads, l.epoch, l.fence = leads, epoch, fence
}

func (l *testLead) IsLeader() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.leads }
func (l *testLead) Epoch() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leads {
		return 0
	}
	return l.epoch
}
func (l *testLead) Changes() <-chan struct{} { return nil }
func (l *testLead) Fence(ctx context.Context, tx leader.Querier) error {
	l.mu.Lock()
	fence, leads := l.fence, l.leads
	l.mu.Unlock()
	switch {
	case !leads:
		return errors.New("not the leader")
	case fence == "lost":
		return errors.New("leader term over")
	case fence == "pg":
		var n int
		return tx.QueryRow(ctx, `SELECT 1/0`).Scan(&n) // a real error from PostgreSQL
	}
	return nil
}

// lossyStore is the store whose transactions, once set, report a failure
// after they committed (the connection lost on COMMIT's answer): the
// outcome the placer cannot know.
type lossyStore struct {
	*pgstore.Store
	mu   sync.Mutex
	lose bool
}

func (s *lossyStore) InTx(ctx context.Context, actor pgstore.Actor, fn func(tx *pgstore.Tx) error) error {
	err := s.Store.InTx(ctx, actor, fn)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.lose {
		return errors.New("conn closed reading COMMIT's answer")
	}
	return err
}

// heldFixture is one cluster "a", Ready, its member answering as
// memberBus does, and the placers' metrics.
type heldFixture struct {
	store   *lossyStore
	bus     *memberBus
	monitor fakeHealth
	reader  *sdkmetric.ManualReader
	meters  *sdkmetric.MeterProvider
}

func newHeldFixture(t *testing.T) *heldFixture {
	t.Helper()
	ctx := context.Background()
	store := &lossyStore{Store: openStore(t)}
	status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthReady})
	if _, err := store.Create(ctx, pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster", Meta: api.ObjectMeta{Name: "a"}, Spec: []byte("{}"), Status: status}); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	return &heldFixture{store: store, bus: &memberBus{batches: true, held: map[string]int64{}, sent: map[string]int{}},
		monitor: fakeHealth{"a": failover.Live{Health: api.HealthReady, Heard: true, Version: protocol.Version}},
		reader:  reader, meters: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}
}

func (f *heldFixture) placer(lead leader.Leadership) *Placer {
	p := NewPlacer(f.store, f.bus, f.monitor, lead, nil, time.Now, f.meters.Meter("test"), 0)
	p.lastCheck["a"] = time.Now().Add(time.Hour) // digests only where a test asks for one
	return p
}

// put writes a workload of n replicas (created, or its spec replaced).
func (f *heldFixture) put(t *testing.T, name string, n int32) {
	t.Helper()
	ctx := context.Background()
	spec, _ := json.Marshal(api.WorkloadSpec{Replicas: n, Template: api.ReplicaTemplate{Driver: "sim"}})
	if _, err := f.store.Get(ctx, "Workload", name); err != nil {
		if _, err := f.store.Create(ctx, pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: name}, Spec: spec}); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := f.store.Mutate(ctx, pgstore.Actor{Name: "test"}, "update", "Workload", name, func(r *pgstore.Record) error {
		r.Spec = spec
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// counter is a counter's sum over the attributes matching (nil: all).
func (f *heldFixture) counter(t *testing.T, name, reason string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					if v, ok := dp.Attributes.Value("reason"); reason == "" || (ok && v.AsString() == reason) {
						n += dp.Value
					}
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// table is every placement row as stored.
func (f *heldFixture) table(t *testing.T) []pgstore.Placement {
	t.Helper()
	rows, err := f.store.Placements(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// settle runs passes until want holds (a workload written shows in the
// change log once the watch horizon passes it), failing after a
// generous deadline.
func settle(t *testing.T, p *Placer, what string, want func() bool) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if err = p.RunOnce(context.Background()); err == nil && want() {
			return
		}
	}
	t.Fatalf("%s: not after 30 s of passes (last pass: %v)", what, err)
}

// sameAsTable fails unless the rows held are the table's, row for row.
func sameAsTable(t *testing.T, f *heldFixture, p *Placer, when string) {
	t.Helper()
	rows := f.table(t)
	if n, examples, _ := p.held.differences(rows); n > 0 || !p.held.valid {
		t.Fatalf("%s: %d rows held differ from the table (held valid %v): %v", when, n, p.held.valid, examples)
	}
}

// delivered says whether every row is acknowledged, in the table and as
// held, and the member holds each at its epoch.
func (f *heldFixture) delivered(t *testing.T, p *Placer) bool {
	t.Helper()
	rows := f.table(t)
	f.bus.mu.Lock()
	defer f.bus.mu.Unlock()
	for _, r := range rows {
		if r.DeliveredEpoch != r.Epoch || f.bus.held[r.Workload] != r.Epoch {
			return false
		}
	}
	return len(rows) > 0 && p.held.n.Load() == int64(len(rows))
}

// TestHeldRowsAcrossFailedCommits: the rows held follow every commit and
// acknowledgement recorded (an acknowledged row is not sent again); a
// commit that fails (the fence lost, PostgreSQL refusing, or one that
// committed but answered with an error) leaves them to be read whole on
// the next pass, which then has what the table has and delivers it.
func TestHeldRowsAcrossFailedCommits(t *testing.T) {
	t.Parallel()
	f := newHeldFixture(t)
	lead := &testLead{leads: true, epoch: 1}
	p := f.placer(lead)
	f.put(t, "w1", 1)
	f.put(t, "w2", 2)
	settle(t, p, "w1 and w2 placed and acknowledged", func() bool { return f.delivered(t, p) && len(f.table(t)) == 2 })
	sameAsTable(t, f, p, "after the first passes")
	if len(p.acking) != 0 {
		t.Errorf("acknowledgements recorded but still remembered as being written: %v", p.acking)
	}
	f.bus.mu.Lock()
	sent := f.bus.sent[protocol.DesiredBatchSubject("a")]
	f.bus.mu.Unlock()
	if err := p.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.bus.mu.Lock()
	again := f.bus.sent[protocol.DesiredBatchSubject("a")]
	f.bus.mu.Unlock()
	if again != sent {
		t.Errorf("a pass with nothing new sent %d batches again", again-sent)
	}
	if got := f.counter(t, "placement.held.reloads", reloadTerm); got != 1 {
		t.Errorf("want one whole read (the term's first pass); got %d", got)
	}

	for i, fence := range []string{"lost", "pg"} {
		lead.set(true, 1, fence)
		f.put(t, "w1", int32(3+i))
		before := f.counter(t, "placement.held.reloads", reloadUnknown)
		for deadline := time.Now().Add(30 * time.Second); p.held.valid; {
			_ = p.RunOnce(context.Background()) // fails once the spec change is read
			if time.Now().After(deadline) {
				t.Fatalf("fence %s: the rows held still valid after 30 s of failing passes", fence)
			}
		}
		if p.held.why != reloadUnknown {
			t.Errorf("fence %s: want a whole read for an unknown outcome; got %q", fence, p.held.why)
		}
		lead.set(true, 1, "")
		settle(t, p, "w1 placed again once the fence holds", func() bool {
			return f.delivered(t, p) && p.held.of("w1")[0].Replicas == int32(3+i)
		})
		sameAsTable(t, f, p, "fence "+fence+" back")
		if got := f.counter(t, "placement.held.reloads", reloadUnknown) - before; got != 1 {
			t.Errorf("fence %s: want one whole read for the failed commit; got %d", fence, got)
		}
	}

	// Committed, answered with an error: the table has the new epoch, the
	// rows held do not until the next pass reads them.
	f.store.mu.Lock()
	f.store.lose = true
	f.store.mu.Unlock()
	f.put(t, "w2", 7)
	for deadline := time.Now().Add(30 * time.Second); p.held.valid; {
		_ = p.RunOnce(context.Background())
		if time.Now().After(deadline) {
			t.Fatal("lost COMMIT answer: the rows held still valid after 30 s of passes")
		}
	}
	f.store.mu.Lock()
	f.store.lose = false
	f.store.mu.Unlock()
	if rows := f.table(t); rows[1].Workload != "w2" || rows[1].Replicas != 7 || p.held.of("w2")[0].Replicas == 7 {
		t.Fatalf("want the table at 7 replicas for w2 and the rows held not yet; got %+v and %+v", rows[1], p.held.of("w2"))
	}
	settle(t, p, "w2's committed row read back and delivered", func() bool { return f.delivered(t, p) })
	sameAsTable(t, f, p, "after the lost answer")
}

// TestHeldRowsNewTerm: a hub that leads again after another led reads
// the rows whole at its new term, and holds what the other wrote
// meanwhile (a workload it placed, one it placed again, one it retired);
// a hub that stops leading holds none.
func TestHeldRowsNewTerm(t *testing.T) {
	t.Parallel()
	f := newHeldFixture(t)
	leadA, leadB := &testLead{leads: true, epoch: 1}, &testLead{}
	a, b := f.placer(leadA), f.placer(leadB)
	f.put(t, "w1", 1)
	f.put(t, "w2", 1)
	settle(t, a, "A placed w1, w2", func() bool { return f.delivered(t, a) && len(f.table(t)) == 2 })

	// A is paused (no pass sees its term end); B leads and writes.
	leadA.set(false, 1, "lost")
	leadB.set(true, 2, "")
	f.put(t, "w1", 2)
	f.put(t, "w3", 1)
	if _, _, err := f.store.Delete(context.Background(), pgstore.Actor{Name: "test"}, "Workload", "w2", ""); err != nil {
		t.Fatal(err)
	}
	settle(t, b, "B placed w1 again, w3, and retired w2", func() bool {
		_, err := f.store.Get(context.Background(), "Workload", "w2")
		return f.delivered(t, b) && len(b.held.of("w2")) == 0 && len(b.held.of("w3")) == 1 && b.held.of("w1")[0].Replicas == 2 && api.ErrorCode(err) == api.CodeNotFound
	})
	leadB.set(false, 2, "lost")

	// A's rows are the first term's.
	if len(a.held.of("w3")) != 0 || len(a.held.of("w2")) != 1 {
		t.Fatalf("A should still hold its own term's rows; got w2 %v, w3 %v", a.held.of("w2"), a.held.of("w3"))
	}
	leadA.set(true, 3, "")
	epochs := map[string]int64{}
	for _, r := range f.table(t) {
		epochs[r.Workload] = r.Epoch
	}
	if err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameAsTable(t, f, a, "A's new term")
	for _, r := range f.table(t) {
		if epochs[r.Workload] != r.Epoch {
			t.Errorf("A placed %s again (epoch %d, B's was %d): the rows B wrote should have been read", r.Workload, r.Epoch, epochs[r.Workload])
		}
	}
	if got := f.counter(t, "placement.held.drift", ""); got != 0 {
		t.Errorf("want no drift counted across terms; got %d", got)
	}

	// Leadership lost: nothing held.
	leadA.set(false, 3, "lost")
	if err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := a.held.n.Load(); n != 0 || len(a.held.rows) != 0 {
		t.Errorf("a hub that does not lead holds %d rows", n)
	}
}

// TestHeldRowsPeriodicReload: the minute's whole read takes the table's
// rows where they differ from what is held (a row marked undelivered
// behind the leader's back, say by a previous leader's late mark, and one
// deleted), counts each difference, and the pass then sends the row
// again and places the deleted one again.
func TestHeldRowsPeriodicReload(t *testing.T) {
	t.Parallel()
	f := newHeldFixture(t)
	p := f.placer(&testLead{leads: true, epoch: 1})
	f.put(t, "w1", 1)
	f.put(t, "w2", 1)
	settle(t, p, "w1, w2 placed", func() bool { return f.delivered(t, p) && len(f.table(t)) == 2 })
	ctx := context.Background()
	if err := f.store.MarkUndelivered(ctx, "w1", "a"); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Store.InTx(ctx, placerActor, func(tx *pgstore.Tx) error { return tx.DeletePlacements(ctx, "w2") }); err != nil {
		t.Fatal(err)
	}
	f.bus.mu.Lock()
	sent := f.bus.sent[protocol.DesiredBatchSubject("a")]
	f.bus.mu.Unlock()
	// Before the minute: the rows held stand.
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.table(t)) != 1 || f.counter(t, "placement.held.reloads", reloadPeriodic) != 0 {
		t.Fatalf("want no whole read before the minute; got %d reads, table %+v", f.counter(t, "placement.held.reloads", reloadPeriodic), f.table(t))
	}
	p.held.loadedAt = time.Now().Add(-heldReloadEvery)
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.counter(t, "placement.held.drift", ""); got != 2 {
		t.Errorf("want 2 rows of drift (one undelivered, one gone); got %d", got)
	}
	if got := f.counter(t, "placement.held.reloads", reloadPeriodic); got != 1 {
		t.Errorf("want one periodic read; got %d", got)
	}
	f.bus.mu.Lock()
	again := f.bus.sent[protocol.DesiredBatchSubject("a")]
	f.bus.mu.Unlock()
	if again == sent {
		t.Error("the row the table had undelivered was not sent again")
	}
	settle(t, p, "both rows back and acknowledged", func() bool { return f.delivered(t, p) && len(f.table(t)) == 2 })
	sameAsTable(t, f, p, "after the periodic read")
	if got := f.counter(t, "placement.held.rows", ""); got != 2 {
		t.Errorf("want the gauge at 2 rows held; got %d", got)
	}
}

// TestHeldMarkOfAnOlderEpoch: an acknowledgement recorded after its row
// was placed again (a new epoch committed between the send and the
// record) leaves the row to be sent, as the SQL's epoch match does; one
// of the row's own epoch marks it delivered; a failed record leaves the
// rows to be read whole.
func TestHeldMarkOfAnOlderEpoch(t *testing.T) {
	t.Parallel()
	p := NewPlacer(nil, nil, fakeHealth{}, nil, nil, time.Now, sdkmetric.NewMeterProvider().Meter(""), 0)
	p.held.load([]pgstore.Placement{{Workload: "w", Cluster: "a", Replicas: 1, Epoch: 5, Generation: 1}}, 0, time.Now())
	mark := func(epoch int64, failed bool) {
		m := &markWrite{done: make(chan struct{}), acked: map[ackKey]int64{{"a", "w"}: epoch}, failed: failed}
		close(m.done)
		p.acking[ackKey{"a", "w"}] = epoch
		p.marks = append(p.marks, m)
	}
	mark(5, false)
	p.held.put([]pgstore.Placement{{Workload: "w", Cluster: "a", Replicas: 2, Generation: 2}}, 6)
	p.waitMarks(0)
	if r := p.held.of("w")[0]; r.Epoch != 6 || r.DeliveredEpoch != 0 || len(p.acking) != 0 {
		t.Fatalf("epoch 5's mark after epoch 6 was placed: want the row at 6 undelivered and nothing acking; got %+v, %v", r, p.acking)
	}
	mark(6, false)
	p.waitMarks(0)
	if r := p.held.of("w")[0]; r.DeliveredEpoch != 6 {
		t.Fatalf("epoch 6's mark: want delivered at 6; got %+v", r)
	}
	mark(6, true)
	p.waitMarks(0)
	if p.held.valid || p.held.why != reloadUnknown {
		t.Errorf("a failed mark: want the rows read whole next pass; valid %v, why %q", p.held.valid, p.held.why)
	}
}
