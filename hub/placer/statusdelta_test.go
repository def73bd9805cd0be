package placer

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/internal/natstest"
	"github.com/atollhq/atoll/protocol"
)

// TestStatusFolderDeltas: deltas apply in order on top of a resend; one
// that does not follow (a gap, another session, none held yet) is
// dropped and the member asked for its whole status, at most once a
// second; a resend in several parts drops what it did not name only at
// its end.
func TestStatusFolderDeltas(t *testing.T) {
	t.Parallel()
	_, nc := natstest.JetStream(t)
	asks := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe(protocol.StatusFullSubject("a"), asks); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f := NewStatusFolder(nil, nil, nil, nil, func() time.Time { return now }, noop.NewMeterProvider().Meter(""), 0)
	if err := f.Start(t.Context(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	delta := func(d protocol.StatusDelta) {
		t.Helper()
		d.Version, d.Cluster = protocol.Version, "a"
		if d.Session == "" {
			d.Session = "s1"
		}
		b, _ := json.Marshal(d)
		f.ObserveDelta(protocol.StatusDeltaSubject("a"), b)
	}
	ws := func(name string, ready int32) protocol.WorkloadStatus {
		return protocol.WorkloadStatus{Workload: name, Desired: 2, Ready: ready}
	}
	asked := func(want bool) {
		t.Helper()
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-asks:
			if !want {
				t.Fatalf("asked for the whole status again: %s", m.Data)
			}
			var req protocol.StatusFullRequest
			if json.Unmarshal(m.Data, &req) != nil || req.Version != protocol.Version {
				t.Fatalf("the request: %s", m.Data)
			}
		case <-time.After(map[bool]time.Duration{true: 30 * time.Second, false: 200 * time.Millisecond}[want]):
			if want {
				t.Fatal("the member was not asked for its whole status")
			}
		}
	}

	// A hub that holds nothing of the cluster cannot apply a delta.
	delta(protocol.StatusDelta{Seq: 7, Workloads: []protocol.WorkloadStatus{ws("w", 1)}})
	if n := len(reportedBy(f)); n != 0 {
		t.Fatalf("a delta with nothing under it was applied: %v", reportedBy(f))
	}
	asked(true)
	delta(protocol.StatusDelta{Seq: 8})
	asked(false) // once a second at most

	// The resend, in two parts: w and v, then u; x (held from before)
	// goes only at its end.
	f.mu.Lock()
	f.putLocked("a", ws("x", 2), 1, false)
	f.mu.Unlock()
	delta(protocol.StatusDelta{Seq: 1, Reset: true, More: true, Workloads: []protocol.WorkloadStatus{ws("w", 1), ws("v", 2)}})
	if _, ok := readyOf(f, "x", "a"); !ok || ready(f, "w", "a") != 1 {
		t.Fatalf("the first part of a resend: %v", reportedBy(f))
	}
	delta(protocol.StatusDelta{Seq: 2, Workloads: []protocol.WorkloadStatus{ws("u", 0)}, ImagesSet: true,
		Images: []protocol.ImagePresence{{Workload: "u", Image: "img", Wanted: 1, Present: 1}}})
	if h := reportedBy(f); h["x"] || len(h) != 3 || f.images["u"]["a"].Present != 1 || f.pending["x"]["a"] != nil {
		t.Fatalf("after the resend's end: held %v, images %+v", h, f.images)
	}

	// Deltas in order: a change, a removal; nothing else is touched.
	f.dirty = map[string]bool{}
	delta(protocol.StatusDelta{Seq: 3, Workloads: []protocol.WorkloadStatus{ws("w", 2)}, Removed: []string{"v"}})
	if ready(f, "w", "a") != 2 || reportedBy(f)["v"] || !f.dirty["w"] || !f.dirty["v"] || f.dirty["u"] {
		t.Fatalf("after a delta: held %v, dirty %v", reportedBy(f), f.dirty)
	}
	if f.images["u"]["a"].Present != 1 {
		t.Fatalf("a delta without images changed them: %+v", f.images)
	}
	// A gap: seq 5 after 3 is dropped, and so is another session's.
	now = now.Add(2 * time.Second)
	delta(protocol.StatusDelta{Seq: 5, Workloads: []protocol.WorkloadStatus{ws("w", 0)}})
	delta(protocol.StatusDelta{Seq: 4, Session: "s2", Workloads: []protocol.WorkloadStatus{ws("w", 0)}})
	if ready(f, "w", "a") != 2 {
		t.Fatalf("a delta after a gap was applied: %v", f.pending["w"])
	}
	asked(true)
	delta(protocol.StatusDelta{Seq: 4, Workloads: []protocol.WorkloadStatus{ws("w", 1)}})
	if ready(f, "w", "a") != 1 {
		t.Fatalf("the next delta of the session was not applied: %v", f.pending["w"])
	}

	// A whole report (a member back on a hub without deltas) replaces
	// everything; deltas then wait for a resend.
	b, _ := json.Marshal(protocol.StatusReport{Version: protocol.Version, Cluster: "a", Workloads: []protocol.WorkloadStatus{ws("w", 2)}})
	f.Observe(protocol.StatusSubject("a"), b)
	if reportedBy(f)["u"] || ready(f, "w", "a") != 2 {
		t.Fatalf("after a whole report: %v", reportedBy(f))
	}
	delta(protocol.StatusDelta{Seq: 5, Workloads: []protocol.WorkloadStatus{ws("w", 0)}})
	if ready(f, "w", "a") != 2 {
		t.Fatalf("a delta after a whole report was applied: %v", f.pending["w"])
	}
}

// TestStatusDeltaRefused: hostile or broken deltas are dropped whole.
func TestStatusDeltaRefused(t *testing.T) {
	t.Parallel()
	f := NewStatusFolder(nil, nil, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	many := make([]protocol.WorkloadStatus, protocol.MaxStatusDeltaWorkloads+1)
	for i := range many {
		many[i].Workload = fmt.Sprintf("w%d", i)
	}
	for name, d := range map[string]protocol.StatusDelta{
		"another cluster":  {Version: protocol.Version, Cluster: "b", Session: "s", Seq: 1, Reset: true, Workloads: many[:1]},
		"no session":       {Version: protocol.Version, Cluster: "a", Seq: 1, Reset: true, Workloads: many[:1]},
		"seq 0":            {Version: protocol.Version, Cluster: "a", Session: "s", Reset: true, Workloads: many[:1]},
		"a bad name":       {Version: protocol.Version, Cluster: "a", Session: "s", Seq: 1, Reset: true, Workloads: []protocol.WorkloadStatus{{Workload: "../x"}}},
		"a bad removal":    {Version: protocol.Version, Cluster: "a", Session: "s", Seq: 1, Reset: true, Removed: []string{"A B"}},
		"too many":         {Version: protocol.Version, Cluster: "a", Session: "s", Seq: 1, Reset: true, Workloads: many},
		"a future version": {Version: protocol.Version + 1, Cluster: "a", Session: "s", Seq: 1, Reset: true, Workloads: many[:1]},
	} {
		b, _ := json.Marshal(d)
		f.ObserveDelta(protocol.StatusDeltaSubject("a"), b)
		if len(reportedBy(f)) != 0 || len(f.pending) != 0 || len(f.streams) != 0 {
			t.Fatalf("%s: taken: %v", name, reportedBy(f))
		}
	}
	f.ObserveDelta(protocol.StatusDeltaSubject("a"), []byte("{"))
	if len(f.streams) != 0 {
		t.Fatal("garbage taken")
	}
}

// TestReadyReported: drills read the ready replicas of the workloads
// they ask for, from clusters whose last report fresh accepts.
func TestReadyReported(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f := NewStatusFolder(nil, nil, nil, nil, func() time.Time { return now }, noop.NewMeterProvider().Meter(""), 0)
	report := func(cluster string, ws ...protocol.WorkloadStatus) {
		b, _ := json.Marshal(protocol.StatusReport{Version: protocol.Version, Cluster: cluster, Workloads: ws})
		f.Observe(protocol.StatusSubject(cluster), b)
	}
	report("a", protocol.WorkloadStatus{Workload: "w", Ready: 2}, protocol.WorkloadStatus{Workload: "v", Ready: 1}, protocol.WorkloadStatus{Workload: "u"})
	now = now.Add(time.Second)
	report("b", protocol.WorkloadStatus{Workload: "w", Ready: 3})
	heardAt := map[string]time.Time{}
	got := f.ReadyReported(map[string]bool{"w": true, "u": true}, func(c string, at time.Time) bool {
		heardAt[c] = at
		return c == "a"
	})
	if fmt.Sprint(got) != "map[w:map[a:2]]" {
		t.Errorf("ready: %v", got)
	}
	if !heardAt["b"].Equal(now) || !heardAt["a"].Equal(now.Add(-time.Second)) {
		t.Errorf("fresh was asked with %v", heardAt)
	}
}

// TestMadeUpWorkloadsForgotten: a workload a member names that the store
// does not hold (deleted, or made up) is forgotten at the next write, so
// deltas naming ever new ones do not pile up.
func TestMadeUpWorkloadsForgotten(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := openStore(t)
	registerClusters(t, store, "a")
	createWorkloads(t, store, 1, "real")
	f := NewStatusFolder(store, nil, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	b, _ := json.Marshal(protocol.StatusDelta{Version: protocol.Version, Cluster: "a", Session: "s", Seq: 1, Reset: true,
		Workloads: []protocol.WorkloadStatus{{Workload: "real", Desired: 1}, {Workload: "fake-1", Desired: 1}, {Workload: "fake-2", Desired: 1}}})
	f.ObserveDelta(protocol.StatusDeltaSubject("a"), b)
	if n, err := f.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("written %d, %v; want the real one", n, err)
	}
	if h := reportedBy(f); !h["real"] || len(h) != 1 || len(f.pending) != 0 || len(f.dirty) != 0 {
		t.Fatalf("after the write: held %v, pending %v, dirty %v", h, f.pending, f.dirty)
	}
}

// reportedBy is every workload some cluster's last report names.
func reportedBy(f *StatusFolder) map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for _, ws := range f.reported {
		for w := range ws {
			out[w] = true
		}
	}
	return out
}

// readyOf is the ready replicas of cluster's last report of w, and
// whether it has one.
func readyOf(f *StatusFolder, w, cluster string) (int32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.reported[cluster][w]
	return m.ready, ok
}

// ready is readyOf's count (-1: none).
func ready(f *StatusFolder, w, cluster string) int32 {
	if n, ok := readyOf(f, w, cluster); ok {
		return n
	}
	return -1
}
