package placer

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/internal/natstest"
	"github.com/atollhq/atoll/protocol"
)

// registerClusters creates the clusters' objects (the folder forgets a
// cluster the store does not hold: deregistered).
func registerClusters(t *testing.T, store *pgstore.Store, names ...string) {
	t.Helper()
	for _, c := range names {
		if _, err := store.Create(t.Context(), pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster", Meta: api.ObjectMeta{Name: c}, Spec: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFoldFromStoredRows: the folder keeps no cluster's report once
// folded; a fold takes the other clusters' rows from the stored status,
// a report that says nothing new folds nothing, an Unreachable cluster's
// row turns into history and stays so until the cluster, back and asked
// for its whole status, reports again.
func TestFoldFromStoredRows(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openStore(t)
	registerClusters(t, store, "a", "b")
	_, nc := natstest.JetStream(t)
	asks := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe(protocol.StatusFullSubject("*"), asks); err != nil {
		t.Fatal(err)
	}
	createWorkloads(t, store, 3, "w")
	var health healths
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f := NewStatusFolder(store, health.get, nil, nil, func() time.Time { return now }, noop.NewMeterProvider().Meter(""), 0)
	f.nc = nc
	report := func(cluster string, ready int32) {
		b, _ := json.Marshal(protocol.StatusReport{Version: protocol.Version, Cluster: cluster,
			Workloads: []protocol.WorkloadStatus{{Workload: "w", Desired: ready, Scheduled: ready, Ready: ready,
				States: map[string]int32{protocol.StateReady: ready}}}})
		f.Observe(protocol.StatusSubject(cluster), b)
	}
	run := func(want int) {
		t.Helper()
		if n, err := f.RunOnce(ctx); err != nil || n != want {
			t.Fatalf("RunOnce wrote %d, %v; want %d", n, err, want)
		}
		if len(f.pending) != 0 || len(f.dirty) != 0 {
			t.Fatalf("reports kept after the fold: pending %v, dirty %v", f.pending, f.dirty)
		}
	}
	status := func() api.WorkloadStatus { return storedStatus(t, store, "w") }
	row := func(st api.WorkloadStatus, c string) api.ClusterReplicas {
		t.Helper()
		for _, r := range st.Clusters {
			if r.Cluster == c {
				return r
			}
		}
		t.Fatalf("no row of %s: %+v", c, st.Clusters)
		return api.ClusterReplicas{}
	}
	drainAsks := func() map[string]bool {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for {
			select {
			case m := <-asks:
				got[strings.Split(m.Subject, ".")[2]] = true
			case <-time.After(200 * time.Millisecond):
				return got
			}
		}
	}
	tick := func() { now = now.Add(2 * time.Second) } // past the asks' once a second

	report("a", 2)
	report("b", 1)
	run(1)
	drainAsks() // the first run leads: it asks a and b
	if st := status(); st.ReadyReplicas != 3 || row(st, "a").Ready != 2 || row(st, "b").Ready != 1 {
		t.Fatalf("first fold: %+v", st)
	}

	// Leading began with the first run: every cluster's next report
	// folds (b's says what it said). Then a alone reports: b's row
	// comes from the stored status.
	report("b", 1)
	run(1)
	report("a", 1)
	run(1)
	if st := status(); st.ReadyReplicas != 2 || row(st, "a").Ready != 1 || row(st, "b").Ready != 1 {
		t.Fatalf("a's change: %+v", st)
	}
	// The same again folds nothing.
	report("a", 1)
	report("b", 1)
	run(0)

	// b is lost: its row is history, and stays so while a reports.
	health.set("b", api.HealthUnreachable)
	tick()
	run(1)
	if st := status(); st.ReadyReplicas != 1 || !isHistory(row(st, "b")) || row(st, "b").Ready != 0 {
		t.Fatalf("b lost: %+v", st)
	}
	report("a", 2)
	run(1)
	st := status()
	if b := row(st, "b"); st.ReadyReplicas != 2 || !isHistory(b) || len(b.Conditions) != 1 || !strings.Contains(b.Conditions[0].Message, "last reported 1 ready") {
		t.Fatalf("b's history folded again: %+v", st)
	}

	// b is back: asked for its whole status; its row is history until
	// it reports, even what it said before.
	health.set("b", api.HealthReady)
	tick()
	run(1)
	if got := drainAsks(); !got["b"] || got["a"] {
		t.Fatalf("asked %v; want b only", got)
	}
	if st := status(); st.ReadyReplicas != 2 || !isHistory(row(st, "b")) {
		t.Fatalf("b back, not reported yet: %+v", st)
	}
	report("b", 1)
	run(1)
	if st := status(); st.ReadyReplicas != 3 || isHistory(row(st, "b")) || row(st, "b").Ready != 1 || row(st, "b").States[protocol.StateReady] != 1 {
		t.Fatalf("b reported again: %+v", st)
	}
}

// TestFolderLeadingAgain: a hub that does not lead keeps no report; when
// it leads it asks every cluster for its whole status and folds the next
// report of each workload even when it says what the last one did (the
// last leader may not have written it).
func TestFolderLeadingAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openStore(t)
	registerClusters(t, store, "a", "b")
	_, nc := natstest.JetStream(t)
	asks := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe(protocol.StatusFullSubject("*"), asks); err != nil {
		t.Fatal(err)
	}
	createWorkloads(t, store, 1, "w")
	lead := &testLead{}
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f := NewStatusFolder(store, nil, lead, nil, func() time.Time { return now }, noop.NewMeterProvider().Meter(""), 0)
	f.nc = nc
	b, _ := json.Marshal(protocol.StatusReport{Version: protocol.Version, Cluster: "a", Workloads: []protocol.WorkloadStatus{{Workload: "w", Desired: 1, Ready: 1}}})
	f.Observe(protocol.StatusSubject("a"), b)
	if n, err := f.RunOnce(ctx); n != 0 || err != nil {
		t.Fatalf("a hub that does not lead wrote %d, %v", n, err)
	}
	if len(f.pending) != 0 || ready(f, "w", "a") != 1 {
		t.Fatalf("not leading: pending %v, ready %d; want no report kept, its mark kept", f.pending, ready(f, "w", "a"))
	}
	f.Observe(protocol.StatusSubject("a"), b) // the same: nothing to fold
	lead.set(true, 1, "")
	if n, err := f.RunOnce(ctx); n != 0 || err != nil {
		t.Fatalf("the first run as leader wrote %d, %v; want nothing (no report yet)", n, err)
	}
	select {
	case m := <-asks:
		if m.Subject != protocol.StatusFullSubject("a") {
			t.Fatalf("asked on %s", m.Subject)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the new leader did not ask a for its whole status")
	}
	f.Observe(protocol.StatusSubject("a"), b) // what it said before, folded now
	if n, err := f.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("the resend folded %d, %v; want 1", n, err)
	}
	if st := storedStatus(t, store, "w"); st.ReadyReplicas != 1 || len(st.Clusters) != 1 {
		t.Fatalf("status %+v", st)
	}
}

// TestFoldDropsRowsLeftUnwritten: a cluster's row of a workload it no
// longer runs goes even when the removal was heard and not written (the
// last leader stopped first; a follower drops what it takes), once the
// cluster's whole status says it does not report the workload. Kept, the
// row counted the cluster's replicas as ready, and its epoch and
// generation as current, for good.
func TestFoldDropsRowsLeftUnwritten(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openStore(t)
	registerClusters(t, store, "a", "b")
	createWorkloads(t, store, 2, "w", "v")
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	report := func(f *StatusFolder, cluster string, workloads ...string) {
		r := protocol.StatusReport{Version: protocol.Version, Cluster: cluster}
		for _, w := range workloads {
			r.Workloads = append(r.Workloads, protocol.WorkloadStatus{Workload: w, Desired: 1, Scheduled: 1, Ready: 1})
		}
		b, _ := json.Marshal(r)
		f.Observe(protocol.StatusSubject(cluster), b)
	}
	clustersOf := func(w string) (map[string]bool, int32) {
		t.Helper()
		st := storedStatus(t, store, w)
		return rowClusters(st), st.ReadyReplicas
	}
	run := func(f *StatusFolder) {
		t.Helper()
		if _, err := f.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}

	lead := &testLead{}
	lead.set(true, 1, "")
	f := NewStatusFolder(store, nil, lead, nil, clock, noop.NewMeterProvider().Meter(""), 0)
	report(f, "a", "w", "v")
	report(f, "b", "w", "v")
	run(f)
	if got, ready := clustersOf("w"); !got["a"] || !got["b"] || ready != 2 {
		t.Fatalf("first fold: rows %v, ready %d", got, ready)
	}

	// This hub stops leading; b's report says w left it, and what this
	// hub took it drops (the leader then stopped before it wrote it).
	lead.set(false, 1, "")
	report(f, "b", "v")
	run(f)
	// Leading again: b's whole status still says it runs v only.
	lead.set(true, 1, "")
	run(f)
	report(f, "a", "w", "v")
	report(f, "b", "v")
	run(f)
	if got, ready := clustersOf("w"); got["b"] || ready != 1 {
		t.Fatalf("after the new term's whole reports, w has rows %v, ready %d; want a's alone, 1 ready", got, ready)
	}

	// A hub that starts afresh knows no marks: b's row of v, which b
	// left while no hub ran, goes once b's whole status says so.
	f2 := NewStatusFolder(store, nil, nil, nil, clock, noop.NewMeterProvider().Meter(""), 0)
	run(f2)
	report(f2, "a", "w", "v")
	report(f2, "b")
	run(f2)
	if got, ready := clustersOf("v"); got["b"] || ready != 1 {
		t.Fatalf("after a restart, v has rows %v, ready %d; want a's alone, 1 ready", got, ready)
	}
	if got, _ := clustersOf("w"); !got["a"] {
		t.Fatalf("w lost a's row: %v", got)
	}
}

// TestFoldBackFromUnreachableResentEarly: a cluster back from
// Unreachable whose whole status comes before the folder's pass sees it
// back (its member restarted: a new session's delta is a gap, and the
// folder asks at once) has its rows folded live from that resend, though
// it says what the cluster said before it was lost, and though the pass
// may not ask again within the second.
func TestFoldBackFromUnreachableResentEarly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openStore(t)
	registerClusters(t, store, "a", "b")
	_, nc := natstest.JetStream(t)
	createWorkloads(t, store, 2, "w")
	var health healths
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f := NewStatusFolder(store, health.get, nil, nil, func() time.Time { return now }, noop.NewMeterProvider().Meter(""), 0)
	f.nc = nc
	ws := protocol.WorkloadStatus{Workload: "w", Desired: 1, Scheduled: 1, Ready: 1}
	resend := func(session string) {
		b, _ := json.Marshal(protocol.StatusDelta{Version: protocol.Version, Cluster: "b", Session: session, Seq: 1, Reset: true,
			Workloads: []protocol.WorkloadStatus{ws}})
		f.ObserveDelta(protocol.StatusDeltaSubject("b"), b)
	}
	b, _ := json.Marshal(protocol.StatusReport{Version: protocol.Version, Cluster: "a", Workloads: []protocol.WorkloadStatus{ws}})
	f.Observe(protocol.StatusSubject("a"), b)
	resend("s1")
	status := func() api.WorkloadStatus {
		t.Helper()
		if _, err := f.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		return storedStatus(t, store, "w")
	}
	if st := status(); st.ReadyReplicas != 2 {
		t.Fatalf("first fold: %+v", st)
	}
	resend("s1") // folded again (the first pass led anew): its mark now has its fingerprint
	if st := status(); st.ReadyReplicas != 2 {
		t.Fatalf("second fold: %+v", st)
	}
	health.set("b", api.HealthUnreachable)
	now = now.Add(2 * time.Second)
	if st := status(); st.ReadyReplicas != 1 {
		t.Fatalf("b lost: %+v", st)
	}

	// b is back; its member restarted: a delta of a new session is a gap
	// (asked now), and the resend answers before the folder's pass.
	health.set("b", api.HealthReady)
	now = now.Add(2 * time.Second)
	gap, _ := json.Marshal(protocol.StatusDelta{Version: protocol.Version, Cluster: "b", Session: "s2", Seq: 4})
	f.ObserveDelta(protocol.StatusDeltaSubject("b"), gap)
	resend("s2")
	st := status()
	for _, r := range st.Clusters {
		if r.Cluster == "b" && isHistory(r) {
			t.Fatalf("b reported again and its row is still history: %+v", st)
		}
	}
	if st.ReadyReplicas != 2 {
		t.Fatalf("b reported again: %d ready, want 2: %+v", st.ReadyReplicas, st)
	}
}

// TestFolderNewTermBetweenPasses: a hub that lost its term and won
// another between two of its folder's passes leads anew: what the hub
// that led meanwhile wrote is not what its marks say, so the next report
// of each workload is folded even when it says what the last one did.
func TestFolderNewTermBetweenPasses(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openStore(t)
	registerClusters(t, store, "a", "b")
	createWorkloads(t, store, 1, "w")
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	b, _ := json.Marshal(protocol.StatusReport{Version: protocol.Version, Cluster: "a", Workloads: []protocol.WorkloadStatus{{Workload: "w", Desired: 1, Ready: 1}}})
	lead := &testLead{}
	lead.set(true, 1, "")
	f := NewStatusFolder(store, nil, lead, nil, clock, noop.NewMeterProvider().Meter(""), 0)
	for range 2 { // the second time with its fingerprint kept
		f.Observe(protocol.StatusSubject("a"), b)
		if _, err := f.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	readyNow := func() int32 {
		t.Helper()
		return storedStatus(t, store, "w").ReadyReplicas
	}
	if n := readyNow(); n != 1 {
		t.Fatalf("folded %d ready, want 1", n)
	}
	// Another hub leads for a while: it had a Unreachable and wrote its
	// row as history. Then this hub leads again, in a new term.
	other := NewStatusFolder(store, func(string) string { return api.HealthUnreachable }, nil, nil, clock, noop.NewMeterProvider().Meter(""), 0)
	other.Observe(protocol.StatusSubject("a"), b)
	if _, err := other.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := readyNow(); n != 0 {
		t.Fatalf("the other hub folded %d ready, want 0", n)
	}
	lead.set(true, 2, "")
	if _, err := f.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	f.Observe(protocol.StatusSubject("a"), b) // a's whole status, as asked by the new term
	if _, err := f.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := readyNow(); n != 1 {
		t.Fatalf("after a new term, a's report folded %d ready, want 1", n)
	}
}

// TestMadeUpWorkloadsForgottenByFollowers: a hub that does not lead
// forgets the workloads a member names that the store does not hold, as
// the leader does, and a resend that never ends keeps none of them: a
// hostile member naming ever new workloads in deltas does not grow a
// hub's memory without bound.
func TestMadeUpWorkloadsForgottenByFollowers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openStore(t)
	registerClusters(t, store, "a")
	createWorkloads(t, store, 1, "real")
	for _, leads := range []bool{false, true} {
		lead := &testLead{}
		lead.set(leads, 1, "")
		f := NewStatusFolder(store, nil, lead, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
		for seq := uint64(1); seq <= 3; seq++ {
			ws := []protocol.WorkloadStatus{{Workload: "real", Desired: 1, Ready: int32(seq)}}
			for i := range 50 {
				ws = append(ws, protocol.WorkloadStatus{Workload: fmt.Sprintf("fake-%d-%d", seq, i), Desired: 1})
			}
			// A resend begun and never ended (More on every part).
			b, _ := json.Marshal(protocol.StatusDelta{Version: protocol.Version, Cluster: "a", Session: "s", Seq: seq, Reset: seq == 1, More: true, Workloads: ws})
			f.ObserveDelta(protocol.StatusDeltaSubject("a"), b)
			if _, err := f.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
		}
		f.mu.Lock()
		resending := len(f.streams["a"].resending)
		f.mu.Unlock()
		if h := reportedBy(f); len(h) != 1 || !h["real"] || resending != 1 || ready(f, "real", "a") != 3 {
			t.Fatalf("leading %v: held %v, %d named by the resend; want the real workload alone, 3 ready", leads, h, resending)
		}
	}
}

// TestFoldForgetsDeregisteredClusters: a cluster whose Cluster object is
// gone (deregistered) leaves no row in its workloads' status and nothing
// in the folder: before, its rows stayed history in every workload it
// ran, and its marks in memory, for good.
func TestFoldForgetsDeregisteredClusters(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openStore(t)
	test := pgstore.Actor{Name: "test"}
	registerClusters(t, store, "a", "b")
	createWorkloads(t, store, 2, "w")
	var health healths
	f := NewStatusFolder(store, health.get, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	for _, c := range []string{"a", "b"} {
		b, _ := json.Marshal(protocol.StatusReport{Version: protocol.Version, Cluster: c, Workloads: []protocol.WorkloadStatus{{Workload: "w", Desired: 1, Ready: 1}}})
		f.Observe(protocol.StatusSubject(c), b)
	}
	rows := func() map[string]bool {
		t.Helper()
		if _, err := f.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		return rowClusters(storedStatus(t, store, "w"))
	}
	if got := rows(); !got["a"] || !got["b"] {
		t.Fatalf("rows %v; want a and b", got)
	}
	// b is lost, its rows history; then it is deregistered.
	health.set("b", api.HealthUnreachable)
	if got := rows(); !got["b"] {
		t.Fatalf("rows %v; want b's as history", got)
	}
	if _, _, err := store.Delete(ctx, test, "Cluster", "b", ""); err != nil {
		t.Fatal(err)
	}
	if got := rows(); !got["a"] || got["b"] {
		t.Fatalf("rows %v after b was deregistered; want a's alone", got)
	}
	f.mu.Lock()
	_, kept := f.reported["b"]
	f.mu.Unlock()
	if kept {
		t.Fatal("the folder still holds b's marks")
	}
}

// createWorkloads creates sim workloads of replicas each.
func createWorkloads(t *testing.T, store *pgstore.Store, replicas int32, names ...string) {
	t.Helper()
	spec, _ := json.Marshal(api.WorkloadSpec{Replicas: replicas, Template: api.ReplicaTemplate{Driver: "sim"}})
	for _, name := range names {
		if _, err := store.Create(t.Context(), pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: name}, Spec: spec}); err != nil {
			t.Fatal(err)
		}
	}
}

// storedStatus is a workload's status as stored.
func storedStatus(t *testing.T, store *pgstore.Store, name string) api.WorkloadStatus {
	t.Helper()
	rec, err := store.Get(t.Context(), "Workload", name)
	if err != nil {
		t.Fatal(err)
	}
	var st api.WorkloadStatus
	if err := json.Unmarshal(rec.Status, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// rowClusters names the clusters a status has rows of.
func rowClusters(st api.WorkloadStatus) map[string]bool {
	out := map[string]bool{}
	for _, r := range st.Clusters {
		out[r.Cluster] = true
	}
	return out
}

// healths is the clusters' health a test sets (Ready unless set).
type healths struct {
	mu sync.Mutex
	of map[string]string
}

func (h *healths) set(c, health string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.of == nil {
		h.of = map[string]string{}
	}
	h.of[c] = health
}

func (h *healths) get(c string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.of[c]; ok {
		return v
	}
	return api.HealthReady
}
