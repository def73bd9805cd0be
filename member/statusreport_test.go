package member

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/atollhq/atoll/protocol"
)

func decodeDeltas(t *testing.T, msgs []statusMsg) []protocol.StatusDelta {
	t.Helper()
	var out []protocol.StatusDelta
	for _, m := range msgs {
		if !m.delta {
			t.Fatalf("a whole report where deltas were due: %s", m.data)
		}
		d, err := protocol.DecodeStatusDelta(protocol.StatusDeltaSubject("a"), m.data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// TestStatusReporterDeltas: a session begins with its whole status, then
// sends only what changed (or an empty delta to say it lives), numbered
// without gaps; a hub's request, a failed publish and the minute's
// resend send everything again.
func TestStatusReporterDeltas(t *testing.T) {
	r := newStatusReporter()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	w := protocol.WorkloadStatus{Workload: "w", Desired: 2, Ready: 1}
	v := protocol.WorkloadStatus{Workload: "v", Desired: 1, Ready: 1}
	images := []protocol.ImagePresence{{Workload: "u", Image: "img", Wanted: 1}}
	seq := uint64(0)
	next := func(status ...protocol.WorkloadStatus) []protocol.StatusDelta {
		t.Helper()
		ds := decodeDeltas(t, r.next(now, "a", status, images, true))
		for _, d := range ds {
			seq++
			if d.Seq != seq || d.Session != r.session {
				t.Fatalf("delta %d of session %s, want %d of %s", d.Seq, d.Session, seq, r.session)
			}
		}
		return ds
	}
	ds := next(w, v)
	if len(ds) != 1 || !ds[0].Reset || ds[0].More || len(ds[0].Workloads) != 2 || !ds[0].ImagesSet || len(ds[0].Images) != 1 {
		t.Fatalf("the first report: %+v", ds)
	}
	now = now.Add(statusTick)
	if ds := next(w, v); len(ds) != 0 {
		t.Fatalf("nothing changed, yet: %+v", ds)
	}
	now = now.Add(statusTick)
	w.Ready = 2
	ds = next(w, v)
	if len(ds) != 1 || ds[0].Reset || len(ds[0].Workloads) != 1 || ds[0].Workloads[0].Ready != 2 || ds[0].ImagesSet || len(ds[0].Removed) != 0 {
		t.Fatalf("one change: %+v", ds)
	}
	now = now.Add(statusTick)
	images = []protocol.ImagePresence{{Workload: "u", Image: "img", Wanted: 1, Present: 1}}
	ds = next(w)
	if len(ds) != 1 || len(ds[0].Workloads) != 0 || len(ds[0].Removed) != 1 || ds[0].Removed[0] != "v" || !ds[0].ImagesSet || ds[0].Images[0].Present != 1 {
		t.Fatalf("a removal and new images: %+v", ds)
	}
	now = now.Add(statusEvery)
	ds = next(w)
	if len(ds) != 1 || len(ds[0].Workloads)+len(ds[0].Removed) != 0 || ds[0].Reset {
		t.Fatalf("after %s of nothing: %+v", statusEvery, ds)
	}

	// A hub asks: everything again, but not twice within a second.
	now = now.Add(statusResendMin)
	r.ask()
	if ds := next(w); len(ds) != 1 || !ds[0].Reset || len(ds[0].Workloads) != 1 {
		t.Fatalf("after a request: %+v", ds)
	}
	r.ask()
	now = now.Add(statusTick)
	if ds := next(w); len(ds) != 0 {
		t.Fatalf("a second request within a second was answered at once: %+v", ds)
	}
	now = now.Add(statusResendMin)
	if ds := next(w); len(ds) != 1 || !ds[0].Reset {
		t.Fatalf("the request was forgotten: %+v", ds)
	}
	// A publish that failed: everything again.
	r.failed()
	now = now.Add(statusTick)
	if ds := next(w); len(ds) != 1 || !ds[0].Reset {
		t.Fatalf("after a failed publish: %+v", ds)
	}
	// The minute's resend, for hubs that could not ask.
	for end := now.Add(statusResendEvery - statusTick); now.Before(end); now = now.Add(statusEvery) {
		if ds := next(w); len(ds) == 1 && ds[0].Reset {
			t.Fatalf("a resend %s after the last", now.Sub(end.Add(-statusResendEvery+statusTick)))
		}
	}
	now = now.Add(statusEvery)
	if ds := next(w); len(ds) != 1 || !ds[0].Reset {
		t.Fatalf("no resend after %s: %+v", statusResendEvery, ds)
	}
}

// TestStatusReporterParts: a status larger than a delta's bound goes in
// parts: Reset on the first, More on all but the last, images on the
// last; a change as large also splits, each part within the bound.
func TestStatusReporterParts(t *testing.T) {
	r := newStatusReporter()
	now := time.Now()
	n := 2*protocol.MaxStatusDeltaWorkloads + 5
	status := make([]protocol.WorkloadStatus, n)
	for i := range status {
		status[i] = protocol.WorkloadStatus{Workload: fmt.Sprintf("w%d", i), Desired: 1}
	}
	ds := decodeDeltas(t, r.next(now, "a", status, nil, true))
	if len(ds) != 3 {
		t.Fatalf("%d parts, want 3", len(ds))
	}
	total := 0
	for i, d := range ds {
		total += len(d.Workloads)
		if d.Reset != (i == 0) || d.More != (i < 2) || d.ImagesSet != (i == 2) || d.Seq != uint64(i+1) {
			t.Fatalf("part %d: reset %v, more %v, images %v, seq %d", i, d.Reset, d.More, d.ImagesSet, d.Seq)
		}
	}
	if total != n {
		t.Fatalf("%d workloads in the parts, want %d", total, n)
	}
	for i := range status {
		status[i].Ready = 1
	}
	ds = decodeDeltas(t, r.next(now.Add(statusTick), "a", status[:n-3], nil, true))
	changed, removed := 0, 0
	for _, d := range ds {
		changed += len(d.Workloads)
		removed += len(d.Removed)
		if d.Reset || d.More {
			t.Fatalf("a change's part is no resend: %+v", d)
		}
	}
	if len(ds) != 3 || changed != n-3 || removed != 3 {
		t.Fatalf("%d parts, %d changed, %d removed", len(ds), changed, removed)
	}
}

// TestStatusReporterWhole: to a hub that takes no deltas, the whole
// report whenever it changed and every statusEvery; back on deltas, a
// resend first.
func TestStatusReporterWhole(t *testing.T) {
	r := newStatusReporter()
	now := time.Now()
	w := protocol.WorkloadStatus{Workload: "w", Desired: 2}
	whole := func() *protocol.StatusReport {
		t.Helper()
		msgs := r.next(now, "a", []protocol.WorkloadStatus{w}, nil, false)
		if len(msgs) == 0 {
			return nil
		}
		var rep protocol.StatusReport
		if len(msgs) != 1 || msgs[0].delta || json.Unmarshal(msgs[0].data, &rep) != nil {
			t.Fatalf("want one whole report: %+v", msgs)
		}
		return &rep
	}
	if rep := whole(); rep == nil || rep.Cluster != "a" || len(rep.Workloads) != 1 {
		t.Fatalf("the first: %+v", rep)
	}
	now = now.Add(statusTick)
	if rep := whole(); rep != nil {
		t.Fatal("sent again unchanged")
	}
	w.Ready = 1
	if rep := whole(); rep == nil || rep.Workloads[0].Ready != 1 {
		t.Fatalf("a change: %+v", rep)
	}
	now = now.Add(statusEvery)
	if rep := whole(); rep == nil {
		t.Fatalf("nothing after %s", statusEvery)
	}
	ds := decodeDeltas(t, r.next(now, "a", []protocol.WorkloadStatus{w}, nil, true))
	if len(ds) != 1 || !ds[0].Reset {
		t.Fatalf("back on deltas: %+v", ds)
	}
}

// BenchmarkStatusReporter: one look at a region's status of 1,000
// workloads with nothing changed, as deltas (compared workload by
// workload) and as whole reports (encoded whole, as before deltas).
//
//	go test ./member -run '^$' -bench BenchmarkStatusReporter -benchmem
func BenchmarkStatusReporter(b *testing.B) {
	status := make([]protocol.WorkloadStatus, 1000)
	for i := range status {
		status[i] = protocol.WorkloadStatus{Workload: fmt.Sprintf("w%d", i), Epoch: 3, Generation: 1, Desired: 10, Scheduled: 10, Running: 10, Present: 10, Ready: 10, Updated: 10,
			States: map[string]int32{protocol.StateReady: 10}, Data: "cfg=1",
			Examples: []protocol.ReplicaSummary{{Replica: fmt.Sprintf("w%d-abc", i), Node: "n1", State: protocol.StateReady}}}
	}
	for _, deltas := range []bool{true, false} {
		b.Run(fmt.Sprintf("deltas=%v", deltas), func(b *testing.B) {
			r := newStatusReporter()
			now := time.Now()
			r.next(now, "a", status, nil, deltas)
			for b.Loop() {
				if msgs := r.next(now, "a", status, nil, deltas); len(msgs) != 0 {
					b.Fatalf("sent %d unchanged", len(msgs))
				}
			}
		})
	}
}

// TestStatusReporterIdle: a tick may skip looking at the status only
// while nothing is due by the clock or asked for: not before the first
// report, not once statusEvery passed since the last one, not when a hub
// asked for the whole status or a publish failed, not when the minute's
// resend is due; to a hub that takes no deltas, only while its last
// whole report is younger than statusEvery.
func TestStatusReporterIdle(t *testing.T) {
	r := newStatusReporter()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	w := protocol.WorkloadStatus{Workload: "w", Desired: 1, Ready: 1}
	check := func(what string, deltas, want bool) {
		t.Helper()
		if got := r.idle(now, deltas); got != want {
			t.Errorf("%s: idle %v, want %v", what, got, want)
		}
	}
	check("before the first report", true, false)
	r.next(now, "a", []protocol.WorkloadStatus{w}, nil, true)
	check("just after it", true, true)
	now = now.Add(statusEvery)
	check("statusEvery later: a report to say it lives", true, false)
	r.next(now, "a", []protocol.WorkloadStatus{w}, nil, true)
	check("after that report", true, true)
	r.ask()
	check("a hub asked for the whole status", true, false)
	now = now.Add(statusResendMin)
	r.next(now, "a", []protocol.WorkloadStatus{w}, nil, true)
	check("after the resend", true, true)
	r.failed()
	check("a publish failed", true, false)
	r.next(now, "a", []protocol.WorkloadStatus{w}, nil, true)
	check("after the resend that followed", true, true)
	r.lastResend = now.Add(-statusResendEvery) // the last report is fresh, the last resend a minute old
	check("the minute's resend due", true, false)
	r.next(now, "a", []protocol.WorkloadStatus{w}, nil, true)
	check("the minute's resend went out", true, true)

	check("to a hub that takes no deltas, before a whole report", false, false)
	r.next(now, "a", []protocol.WorkloadStatus{w}, nil, false)
	check("after a whole report", false, true)
	now = now.Add(statusEvery)
	check("statusEvery after the whole report", false, false)
}
