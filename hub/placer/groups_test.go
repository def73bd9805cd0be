package placer

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// TestFailoverGroups: the urgent workloads (replicas on a lost cluster)
// come first, in chunks, in name order; the rest after, in one group; a
// pass with nothing to decide still has one (empty) group, which
// delivers.
func TestFailoverGroups(t *testing.T) {
	urgent := map[string]bool{"b": true, "d": true, "e": true}
	for _, tc := range []struct {
		names []string
		chunk int
		want  string
	}{
		{[]string{"a", "b", "c", "d", "e"}, 2, "[[b d] [e] [a c]]"},
		{[]string{"a", "b", "c", "d", "e"}, 5, "[[b d e] [a c]]"},
		{[]string{"b", "d"}, 1, "[[b] [d]]"},
		{[]string{"a", "c"}, 2, "[[a c]]"},
		{nil, 2, "[[]]"},
		{[]string{"b", "c", "d"}, 0, "[[b] [d] [c]]"},
	} {
		if got := fmt.Sprint(failoverGroups(tc.names, urgent, tc.chunk)); got != tc.want {
			t.Errorf("failoverGroups(%v, chunk %d) = %s; want %s", tc.names, tc.chunk, got, tc.want)
		}
	}
	// A chunk is capped: appending to it does not write into the next.
	g := failoverGroups([]string{"b", "d", "e"}, urgent, 1)
	_ = append(g[0], "x")
	if g[1][0] != "d" {
		t.Errorf("appending to the first chunk wrote into the second: %v", g)
	}
}

// TestMayFailBack: a failed-over workload is decided by the clock only
// while a cluster it failed over from is Ready.
func TestMayFailBack(t *testing.T) {
	ready := map[string]bool{"a": true}
	for _, tc := range []struct {
		ps   *api.PlacementStatus
		want bool
	}{
		{nil, false},
		{&api.PlacementStatus{}, false},
		{&api.PlacementStatus{FailedOverFrom: map[string]int32{"b": 2}}, false},
		{&api.PlacementStatus{FailedOverFrom: map[string]int32{"b": 2, "a": 1}}, true},
	} {
		if got := mayFailBack(tc.ps, ready); got != tc.want {
			t.Errorf("mayFailBack(%+v) = %v; want %v", tc.ps, got, tc.want)
		}
	}
}

// lossFixture is clusters a, b and c, Ready, their members answering
// through a gatedBus (open), and n workloads of 3 replicas Divided over
// them (failover grace 0s), placed and acknowledged.
type lossFixture struct {
	store   *pgstore.Store
	monitor *lockedHealth
	bus     *gatedBus
	p       *Placer
	n       int
}

func newLossFixture(t *testing.T, n, chunk int) *lossFixture {
	t.Helper()
	return newLossFixtureOn(t, openStore(t), n, chunk)
}

// newLossFixtureOn is newLossFixture on store.
func newLossFixtureOn(t *testing.T, store *pgstore.Store, n, chunk int) *lossFixture {
	t.Helper()
	ctx := context.Background()
	f := &lossFixture{store: store, monitor: &lockedHealth{live: fakeHealth{}}, bus: &gatedBus{fleet: fleetBus{}, open: make(chan struct{})}, n: n}
	close(f.bus.open)
	for c, l := range readyClusters(t, f.store, "a", "b", "c") {
		f.monitor.set(c, l)
		f.bus.fleet[c] = &memberBus{batches: true, held: map[string]int64{}, sent: map[string]int{}}
	}
	spec, _ := json.Marshal(api.WorkloadSpec{Replicas: 3, Template: api.ReplicaTemplate{Driver: "sim"},
		Placement: &api.PlacementPolicy{ReplicaMode: "Divided"}, Failover: &api.FailoverPolicy{GracePeriod: "0s"}})
	for i := range n {
		if _, err := f.store.Create(ctx, pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: fmt.Sprintf("w%d", i)}, Spec: spec}); err != nil {
			t.Fatal(err)
		}
	}
	f.p = NewPlacer(f.store, f.bus, f.monitor, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	f.p.chunk = chunk
	for _, c := range []string{"a", "b", "c"} {
		f.p.lastCheck[c] = time.Now().Add(time.Hour)
	}
	// Settled when the workloads cache has read every status write back
	// (unread): a pass then decides them all.
	settle(t, f.p, "every workload placed on a, b and c, acknowledged and read back", func() bool {
		if len(f.p.unread) > 0 {
			return false
		}
		rs, err := f.store.Placements(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Replicas != 1 || r.DeliveredEpoch != r.Epoch {
				return false
			}
		}
		return len(rs) == 3*n
	})
	return f
}

// rows says whether no row on c holds a replica and each workload's rows
// hold its 3, and whether every row off c is acknowledged.
func (f *lossFixture) rows(t *testing.T) (moved, delivered bool) {
	t.Helper()
	rs, err := f.store.Placements(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	per, onC := map[string]int32{}, int32(0)
	delivered = true
	for _, r := range rs {
		per[r.Workload] += r.Replicas
		if r.Cluster == "c" {
			onC += r.Replicas
		} else if r.DeliveredEpoch != r.Epoch {
			delivered = false
		}
	}
	moved = onC == 0 && len(per) == f.n
	for _, got := range per {
		moved = moved && got == 3
	}
	return moved, delivered
}

// lose marks c Unreachable.
func (f *lossFixture) lose() {
	f.monitor.set("c", failover.Live{Health: api.HealthUnreachable, Heard: true, Version: protocol.Version})
}

// TestFailoverChunksDoNotWaitForMembers: a lost cluster's workloads are
// stored a chunk at a time, each chunk delivered while the next ones are
// decided and stored: every replacement row is written while the members
// have not answered the first chunk's delivery yet, and delivered once
// they do.
func TestFailoverChunksDoNotWaitForMembers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLossFixture(t, 7, 2) // four chunks of the seven
	p, bus := f.p, f.bus
	rows := func() (bool, bool) { return f.rows(t) }

	// The members stop answering; c is lost.
	bus.mu.Lock()
	bus.open, bus.asked = make(chan struct{}), 0
	bus.mu.Unlock()
	f.lose()
	passed := make(chan error, 1)
	go func() { passed <- p.pass(ctx) }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if moved, _ := rows(); moved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replacement rows not all written after 30 s while the members held the first chunk's delivery")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		bus.mu.Lock()
		asked := bus.asked
		bus.mu.Unlock()
		if asked > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no delivery asked of the members after 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	bus.mu.Lock()
	close(bus.open)
	bus.mu.Unlock()
	if err := <-passed; err != nil {
		t.Logf("the pass: %v", err) // a delivery may have outlived its timeout: the next pass sends it again
	}
	settle(t, p, "every replacement acknowledged once the members answer", func() bool {
		moved, delivered := rows()
		return moved && delivered
	})
}

// gatedBus is members that answer desired state only once open is
// closed (their answer then comes too late if the request timed out
// meanwhile); asked counts the requests that waited.
type gatedBus struct {
	fleet fleetBus
	mu    sync.Mutex
	open  chan struct{}
	asked int
}

func (g *gatedBus) Request(ctx context.Context, cluster, subject string, data []byte) ([]byte, error) {
	g.mu.Lock()
	open := g.open
	g.asked++
	g.mu.Unlock()
	<-open
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return g.fleet.Request(ctx, cluster, subject, data)
}

// TestNewLossWaitsForStatusWrites: a pass that finds a cluster newly lost
// waits for the status writes under way (which give way to the loss)
// before it reads the workloads, so that theirs are decided with the
// others in that pass rather than put off to the next.
func TestNewLossWaitsForStatusWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLossFixture(t, 4, failoverChunk)
	f.p.lossWait = time.Minute // the test closes the write once the pass waits
	// A status write of w1 under way, from an earlier pass.
	w := &statusWrite{done: make(chan struct{}), names: map[string]bool{"w1": true}}
	f.p.writes = append(f.p.writes, w)
	waiting := make(chan struct{})
	f.p.waitingForWrites = func() { close(waiting) }
	f.lose()
	passed := make(chan error, 1)
	go func() { passed <- f.p.pass(ctx) }()
	select {
	case <-waiting:
	case err := <-passed:
		t.Fatalf("the pass ended (%v) without waiting for the status write under way", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the pass did not wait for the status write under way within 30 s")
	}
	close(w.done)
	if err := <-passed; err != nil {
		t.Fatal(err)
	}
	if moved, _ := f.rows(t); !moved {
		t.Fatal("not every workload moved off c in the pass that found it lost")
	}
	// The next pass, with c still lost, does not wait.
	f.p.writes = append(f.p.writes, &statusWrite{done: make(chan struct{}), names: map[string]bool{"w2": true}})
	f.p.waitingForWrites = func() { t.Error("a pass waited for status writes with no new loss") }
	if err := f.p.pass(ctx); err != nil {
		t.Fatal(err)
	}
	close(f.p.writes[len(f.p.writes)-1].done)
}

// TestReturnDoesNotWaitForStatusWrites: a pass waits for the status
// writes under way only when a cluster is newly lost, not when one of the
// lost clusters returns while another stays lost.
func TestReturnDoesNotWaitForStatusWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLossFixture(t, 2, failoverChunk)
	f.lose()
	if err := f.p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	f.monitor.set("b", failover.Live{Health: api.HealthUnreachable, Heard: true, Version: protocol.Version})
	if err := f.p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// b returns, c stays lost; a status write that ended is still kept
	// (as the loop keeps the last pass's until the next).
	f.monitor.set("b", failover.Live{Health: api.HealthReady, Heard: true, Version: protocol.Version})
	w := &statusWrite{done: make(chan struct{}), names: map[string]bool{"other": true}}
	close(w.done)
	f.p.writes = append(f.p.writes, w)
	waited := false
	f.p.waitingForWrites = func() { waited = true }
	if err := f.p.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if waited {
		t.Error("a pass waited for the status writes under way when a cluster returned and none was newly lost")
	}
	// A cluster newly lost again: it waits.
	f.monitor.set("b", failover.Live{Health: api.HealthUnreachable, Heard: true, Version: protocol.Version})
	f.p.writes = append(f.p.writes, w)
	if err := f.p.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if !waited {
		t.Error("a pass did not wait for the status writes under way when b was lost again")
	}
	if err := f.p.waitStatus(0); err != nil {
		t.Fatal(err)
	}
}

// TestNewLossReadsOwnStatusWritesOn: the pass that finds a cluster newly
// lost reads the change log on, a chunk at a time, until it has read back
// the status writes it waited for, and decides their workloads with the
// others in that pass rather than putting them off.
func TestNewLossReadsOwnStatusWritesOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLossFixture(t, 6, failoverChunk)
	f.p.workloads.SetChunk(2) // the six status writes of c's loss: three chunks
	f.lose()
	if err := f.p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.p.unread) != 6 {
		t.Fatalf("%d status writes not read back after c's loss; want its 6", len(f.p.unread))
	}
	// They are readable (the watch horizon, every test's, passed them).
	last := int64(0)
	for _, rv := range f.p.unread {
		last = max(last, rv)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		cs, err := f.store.Changes(ctx, "Workload", f.p.workloads.Version(), 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) > 0 && cs[len(cs)-1].ResourceVersion >= last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the status writes of c's loss not readable after 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.monitor.set("b", failover.Live{Health: api.HealthUnreachable, Heard: true, Version: protocol.Version})
	if err := f.p.pass(ctx); err != nil {
		t.Fatal(err)
	}
	rs, err := f.store.Placements(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Cluster == "b" && r.Replicas > 0 {
			t.Errorf("%s keeps %d replicas on b after the pass that found b lost", r.Workload, r.Replicas)
		}
	}
	if err := f.p.waitStatus(0); err != nil {
		t.Fatal(err)
	}
}

// TestNewLossWaitIsBounded: a status write held up does not hold a new
// loss's failover past lossWait: its workload is put off (as any whose
// write is under way), the others move.
func TestNewLossWaitIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLossFixture(t, 3, failoverChunk)
	f.p.lossWait = 100 * time.Millisecond
	stuck := &statusWrite{done: make(chan struct{}), names: map[string]bool{"w1": true}}
	f.p.writes = append(f.p.writes, stuck)
	f.lose()
	passed := make(chan error, 1)
	go func() { passed <- f.p.pass(ctx) }()
	movedOffC := func() map[string]bool {
		rs, err := f.store.Placements(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{"w0": true, "w1": true, "w2": true}
		for _, r := range rs {
			if r.Cluster == "c" && r.Replicas > 0 {
				delete(out, r.Workload)
			}
		}
		return out
	}
	var moved map[string]bool
	for deadline := time.Now().Add(30 * time.Second); ; {
		if moved = movedOffC(); moved["w0"] && moved["w2"] {
			break
		}
		if time.Now().After(deadline) {
			close(stuck.done)
			<-passed
			t.Fatalf("w0 and w2 not moved off c 30 s after its loss while a status write of w1 was held up (moved: %v)", moved)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if moved["w1"] {
		t.Error("w1 moved while its status write was still under way")
	}
	close(stuck.done)
	if err := <-passed; err != nil {
		t.Fatal(err)
	}
	settle(t, f.p, "w1 moved off c once its write ended", func() bool { return len(movedOffC()) == 3 })
}

// TestLossMidPassCutsThePassShort: a pass that finds a cluster lost while
// it decides (here, a new placer deciding every workload) leaves what it
// has not decided yet to the next pass, which it asks for at once, and
// that pass fails the lost cluster's workloads over.
func TestLossMidPassCutsThePassShort(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, p, _ := newCutFixture(t)
	if err := p.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(p.owed)); fmt.Sprint(got) != "[w2 w3 w4 w5 w6]" {
		t.Errorf("owed after a loss at the second workload's check: %v; want w2..w6", got)
	}
	select {
	case <-p.wake:
	default:
		t.Error("no pass asked for after the pass was cut short")
	}
	settle(t, p, "every workload moved off c", func() bool {
		moved, _ := f.rows(t)
		return moved
	})
}

// newCutFixture is a lossFixture of 7 workloads and a new placer on it
// (its first pass decides every workload) that looks for a loss every 2
// decisions, through a losingHealth whose second look at the lost
// clusters (the first inside the pass's decisions) finds c lost.
func newCutFixture(t *testing.T) (*lossFixture, *Placer, *losingHealth) {
	t.Helper()
	f := newLossFixture(t, 7, failoverChunk)
	mon := &losingHealth{lockedHealth: f.monitor, after: 1, lose: "c"}
	p := NewPlacer(f.store, f.bus, mon, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	p.lossCheckEvery = 2
	for _, c := range []string{"a", "b", "c"} {
		p.lastCheck[c] = time.Now().Add(time.Hour)
	}
	return f, p, mon
}

// losingHealth is a lockedHealth that marks lose Unreachable once
// Unreachable was asked after times (loseAfter: after more from now).
type losingHealth struct {
	*lockedHealth
	mu    sync.Mutex
	after int32
	lose  string
	asked int32 // status writes ask too, beside the pass
}

func (h *losingHealth) Unreachable() []string {
	h.mu.Lock()
	if h.asked++; h.asked == h.after+1 {
		h.set(h.lose, failover.Live{Health: api.HealthUnreachable, Heard: true, Version: protocol.Version})
	}
	h.mu.Unlock()
	return h.lockedHealth.Unreachable()
}

// loseAfter marks cluster Unreachable once Unreachable is asked after n
// more times.
func (h *losingHealth) loseAfter(cluster string, n int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lose, h.after = cluster, h.asked+n
}

// TestPassAfterACutIsNotCut: the pass after one cut short decides all it
// has, whatever is lost meanwhile: losses one after another (a partition
// flapping over clusters) would otherwise cut every pass, and every
// workload is decided again in name order on a health change, so those
// late in it would never be.
func TestPassAfterACutIsNotCut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, p, mon := newCutFixture(t)
	if err := p.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if len(p.owed) == 0 {
		t.Fatal("the first pass was not cut short by c's loss")
	}
	// No status write of the first pass asks any more: the next asking
	// after the second pass's first is its own check, which finds b lost.
	if err := p.waitStatus(0); err != nil {
		t.Fatal(err)
	}
	mon.loseAfter("b", 1)
	if err := p.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(p.owed)); len(got) > 0 {
		t.Errorf("the pass after a cut was cut too (b lost meanwhile): %v owed", got)
	}
	if _, ok := mon.Live("b"); !ok || !slices.Contains(mon.Unreachable(), "b") {
		t.Error("b was never lost: the test tested nothing")
	}
}

// TestStoredFilterReasonsNeverNameHealth: a status written while a
// cluster was Suspect (here, a workload created then) does not go on
// saying so once it is Ready: a health change alone writes no status, so
// a stored one that named the health would be false from its return on
// (the console's "why not c: Suspect" beside c's Ready badge).
func TestStoredFilterReasonsNeverNameHealth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLossFixture(t, 0, failoverChunk)
	f.monitor.set("c", failover.Live{Health: api.HealthSuspect, Heard: true, Version: protocol.Version})
	spec, _ := json.Marshal(api.WorkloadSpec{Replicas: 2, Template: api.ReplicaTemplate{Driver: "sim"},
		Placement: &api.PlacementPolicy{ReplicaMode: "Divided"}})
	if _, err := f.store.Create(ctx, pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "x"}, Spec: spec}); err != nil {
		t.Fatal(err)
	}
	stored := func() *api.PlacementStatus {
		rec, err := f.store.Get(ctx, "Workload", "x")
		if err != nil {
			t.Fatal(err)
		}
		var w api.Workload
		if err := rec.Decode(&w); err != nil {
			t.Fatal(err)
		}
		return w.Status.Placement
	}
	settle(t, f.p, "x placed on a and b while c is Suspect", func() bool {
		ps := stored()
		return len(f.p.unread) == 0 && ps != nil && ps.Clusters["a"] == 1 && ps.Clusters["b"] == 1
	})
	if why := stored().Filtered["c"]; why != "" {
		t.Errorf("stored status says c was left out for %q; want no health in a stored status", why)
	}
	f.monitor.set("c", failover.Live{Health: api.HealthReady, Heard: true, Version: protocol.Version})
	settle(t, f.p, "c's return decided", func() bool { return len(f.p.unread) == 0 })
	if ps := stored(); ps.Filtered["c"] != "" {
		t.Errorf("c Ready, yet the stored status says it was left out for %q (placement %v)", ps.Filtered["c"], ps.Clusters)
	}
}
