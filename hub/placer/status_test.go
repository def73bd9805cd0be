package placer

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/placement"
)

// TestStatusAloneGivesWayToALostCluster: a pass that rewrites many
// workloads' status alone (every reason changed when a cluster turned
// Suspect) stops before those writes once another cluster is Unreachable,
// so that cluster's failover pass starts at once; the moves it decided
// are still written, with their events, and the status-only ones are owed
// to the next pass, which is woken. Nothing is deferred when the lost
// cluster was already in the pass's view.
func TestStatusAloneGivesWayToALostCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := openStore(t)
	test := pgstore.Actor{Name: "test"}
	names := []string{"moved", "s1", "s2", "s3"}
	for _, n := range names {
		spec, _ := json.Marshal(api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}})
		if _, err := store.Create(ctx, test, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: n}, Spec: spec, Status: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	monitor := fakeHealth{"a": {Health: api.HealthUnknown}, "b": {Health: api.HealthUnreachable}}
	p := NewPlacer(store, nil, monitor, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)

	changes := func() []*change {
		var out []*change
		for _, n := range names[1:] {
			out = append(out, &change{name: n, status: &api.PlacementStatus{Clusters: map[string]int32{"a": 1}, Filtered: map[string]string{"b": api.HealthSuspect}}})
		}
		// Last in name order, first to be written.
		return append(out, &change{name: "moved", rows: []pgstore.Placement{{Workload: "moved", Cluster: "a", Replicas: 1, Epoch: 1}},
			status: &api.PlacementStatus{Clusters: map[string]int32{"a": 1}}, decision: placement.Decision{Assignment: map[string]int32{"a": 1}}})
	}
	placed := func(name string) bool {
		t.Helper()
		rec, err := store.Get(ctx, "Workload", name)
		if err != nil {
			t.Fatal(err)
		}
		var w api.Workload
		if err := rec.Decode(&w); err != nil {
			t.Fatal(err)
		}
		return w.Status.Placement != nil
	}

	if err := p.commitChanges(ctx, changes(), map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	if !placed("moved") {
		t.Error("the move's status was not written")
	}
	evs, err := store.List(ctx, "Event", pgstore.ListOptions{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) != 1 {
		t.Errorf("want the move's one Placed event; got %d events", len(evs.Items))
	}
	for _, n := range names[1:] {
		if placed(n) {
			t.Errorf("%s: its status alone was written although cluster b was lost meanwhile", n)
		}
		if !p.owedByWrite[n] {
			t.Errorf("%s: not owed to the next pass (owed: %v)", n, p.owedByWrite)
		}
	}
	select {
	case <-p.wake:
	default:
		t.Error("the next pass was not woken")
	}

	// The next pass saw b lost: everything is written.
	clear(p.owedByWrite)
	if err := p.commitChanges(ctx, changes()[:3], map[string]bool{"b": true}); err != nil {
		t.Fatal(err)
	}
	for _, n := range names[1:] {
		if !placed(n) {
			t.Errorf("%s: status not written when no cluster was lost after the pass began", n)
		}
	}
	if len(p.owedByWrite) != 0 {
		t.Errorf("nothing should be owed; got %v", slices.Sorted(maps.Keys(p.owedByWrite)))
	}
}

// TestStatusWrittenWhileAGoneClusterIsUnreachable: a cluster the monitor
// still holds as Unreachable, but the store no longer lists (deregistered
// through another hub), was never in a pass's view. It is not "lost
// meanwhile": status writes go ahead, and the placer does not wake itself
// in a loop.
func TestStatusWrittenWhileAGoneClusterIsUnreachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := openStore(t)
	spec, _ := json.Marshal(api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}})
	if _, err := store.Create(ctx, pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "w"}, Spec: spec, Status: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	monitor := fakeHealth{"gone": {Health: api.HealthUnreachable}}
	p := NewPlacer(store, nil, monitor, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := store.Get(ctx, "Workload", "w")
	if err != nil {
		t.Fatal(err)
	}
	var w api.Workload
	if err := rec.Decode(&w); err != nil {
		t.Fatal(err)
	}
	if w.Status.Placement == nil || w.Status.Placement.Unplaced != 1 {
		t.Errorf("want the workload's placement status written (1 unplaced: no cluster); got %+v", w.Status.Placement)
	}
	select {
	case <-p.wake:
		t.Error("want no pass woken again: no cluster was lost during this one")
	default:
	}
	if len(p.owed) != 0 || len(p.owedByWrite) != 0 {
		t.Errorf("want nothing owed; got %v and %v", p.owed, p.owedByWrite)
	}
}

// fakeHealth is the monitor's live view, fixed by the test.
type fakeHealth map[string]failover.Live

func (f fakeHealth) Live(cluster string) (failover.Live, bool) {
	l, ok := f[cluster]
	return l, ok
}

func (f fakeHealth) Unreachable() []string {
	var out []string
	for name, l := range f {
		if l.Health == api.HealthUnreachable {
			out = append(out, name)
		}
	}
	return out
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// openStore opens a store on a new private database, closed at the end.
func openStore(t testing.TB) *pgstore.Store {
	t.Helper()
	store, err := pgstore.Open(context.Background(), pgstore.Config{DatabaseURL: pgtest.NewDatabase(t), MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	return store
}

// TestStatusWrittenAfterThePass: a pass's status writes run on after it
// returns (the next pass delivers meanwhile); while they run the
// workload counts as being written, so a pass puts it off, and their end
// wakes a pass for it. waitStatus returns once they are in the store.
func TestStatusWrittenAfterThePass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := openStore(t)
	test := pgstore.Actor{Name: "test"}
	spec, _ := json.Marshal(api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}})
	if _, err := store.Create(ctx, test, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "w"}, Spec: spec, Status: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	p := NewPlacer(store, nil, fakeHealth{"a": {Health: api.HealthReady}}, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	// An API write holds the workload's row: the status write waits for it.
	release := holdTx(t, store, nil, func(tx *pgstore.Tx) error {
		_, err := tx.LockAll(ctx, "Workload", []string{"w"})
		return err
	})
	placed := func() bool {
		t.Helper()
		rec, err := store.Get(ctx, "Workload", "w")
		if err != nil {
			t.Fatal(err)
		}
		var w api.Workload
		if err := rec.Decode(&w); err != nil {
			t.Fatal(err)
		}
		return w.Status.Placement != nil
	}
	p.writeStatus(ctx, []*change{{name: "w", status: &api.PlacementStatus{Clusters: map[string]int32{"a": 1}}}}, map[string]bool{})
	if !p.writingStatus("w") || p.writingStatus("other") {
		t.Error("want w, and only w, counted as being written")
	}
	if placed() {
		t.Error("the status was written through another write's row lock")
	}
	select {
	case <-p.wake:
		t.Error("a pass was woken before the write ended")
	default:
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	// Written, and waitStatus not called yet (the loop keeps the last
	// pass's writes until the next pass): still put off by a pass that
	// read the change log before the write ended, not by the next.
	<-p.writes[len(p.writes)-1].done
	if !p.writingStatus("w") {
		t.Error("w decided by a pass whose read of the change log came before its status write ended")
	}
	p.sawWrites() // the next pass, before it reads the log
	if !p.writingStatus("w") {
		t.Error("w decided by a pass that has not read its status write back yet")
	}
	for deadline := time.Now().Add(30 * time.Second); ; { // it reads the log
		if _, _, _, err := p.refresh(ctx); err != nil {
			t.Fatal(err)
		}
		p.readBack()
		if !p.writingStatus("w") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("w still counted as being written 30 s after its write ended, by passes that read the log")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.waitStatus(0); err != nil {
		t.Fatal(err)
	}
	if !placed() {
		t.Error("waitStatus returned before the status was written")
	}
	if p.writingStatus("w") {
		t.Error("w still counted as being written after waitStatus")
	}
	select {
	case <-p.wake:
	case <-time.After(30 * time.Second):
		t.Error("the pass that put w off was never woken")
	}
}
