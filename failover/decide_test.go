package failover

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// outcome is what a test expects of a Result: every field, exactly (a
// nil map and an empty one are the same outcome).
type outcome struct {
	Assignment                              map[string]int32
	Lost, Back, FailedOverFrom, FailingBack map[string]int32
	Waiting                                 bool
	WakeAt                                  time.Time
	Bucket                                  *Bucket
	Explains                                string // a line of the explanation contains it ("": not checked)
}

func sameCounts(a, b map[string]int32) bool { return len(a) == 0 && len(b) == 0 || maps.Equal(a, b) }

// expect compares a Result with what is wanted, field by field.
func expect(t *testing.T, name string, got Result, want outcome) {
	t.Helper()
	if !sameCounts(got.Decision.Assignment, want.Assignment) {
		t.Errorf("%s: assignment: want %v; got %v\n%s", name, want.Assignment, got.Decision.Assignment, strings.Join(got.Decision.Explanation, "\n"))
	}
	for _, f := range []struct {
		field     string
		got, want map[string]int32
	}{{"lost", got.Lost, want.Lost}, {"back", got.Back, want.Back}, {"failedOverFrom", got.FailedOverFrom, want.FailedOverFrom}, {"failingBack", got.FailingBack, want.FailingBack}} {
		if !sameCounts(f.got, f.want) {
			t.Errorf("%s: %s: want %v; got %v", name, f.field, f.want, f.got)
		}
	}
	if got.Waiting != want.Waiting {
		t.Errorf("%s: waiting: want %v; got %v", name, want.Waiting, got.Waiting)
	}
	if !got.WakeAt.Equal(want.WakeAt) {
		t.Errorf("%s: wake at: want %v; got %v", name, want.WakeAt, got.WakeAt)
	}
	switch {
	case (got.Bucket == nil) != (want.Bucket == nil):
		t.Errorf("%s: bucket: want %+v; got %+v", name, want.Bucket, got.Bucket)
	case got.Bucket != nil && (got.Bucket.Tokens != want.Bucket.Tokens || !got.Bucket.At.Equal(want.Bucket.At)):
		t.Errorf("%s: bucket: want %+v; got %+v", name, *want.Bucket, *got.Bucket)
	}
	// The FailedOver condition follows the record.
	i := slices.IndexFunc(got.Decision.Conditions, func(c api.Condition) bool { return c.Type == ConditionFailedOver })
	if wantStatus := map[bool]string{true: "True", false: "False"}[len(want.FailedOverFrom) > 0]; i < 0 || got.Decision.Conditions[i].Status != wantStatus {
		t.Errorf("%s: want the FailedOver condition %s; got %+v", name, wantStatus, got.Decision.Conditions)
	}
	if want.Explains != "" && !slices.ContainsFunc(got.Decision.Explanation, func(e string) bool { return strings.Contains(e, want.Explains) }) {
		t.Errorf("%s: want the explanation to say %q; got %q", name, want.Explains, got.Decision.Explanation)
	}
}

// workload is "web" at generation 1 with a failover policy.
func workload(replicas int32, fp *api.FailoverPolicy) *api.Workload {
	w := &api.Workload{Spec: api.WorkloadSpec{Replicas: replicas, Failover: fp}}
	w.Metadata.Name, w.Metadata.Generation = "web", 1
	return w
}

// with returns a copy of w changed by edit.
func with(w *api.Workload, edit func(w *api.Workload)) *api.Workload {
	c := *w
	if w.Spec.Failover != nil {
		fp := *w.Spec.Failover
		c.Spec.Failover = &fp
	}
	c.Status.Clusters = slices.Clone(w.Status.Clusters)
	edit(&c)
	return &c
}

// ready reports each cluster's replicas ready at generation 1.
func ready(counts map[string]int32) []api.ClusterReplicas {
	var out []api.ClusterReplicas
	for _, c := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, api.ClusterReplicas{Cluster: c, Generation: 1, Ready: counts[c], Present: counts[c]})
	}
	return out
}

func away(from, back map[string]int32) func(w *api.Workload) {
	return func(w *api.Workload) {
		w.Status.Placement = &api.PlacementStatus{FailedOverFrom: from, FailingBack: back}
	}
}

func set[T any](l T, edit func(*T)) T { edit(&l); return l }

// TestDecide: one workload, one pass, one rule at a time.
func TestDecide(t *testing.T) {
	t.Parallel()
	drain := api.Taint{Key: api.DrainTaintKey, Effect: "NoExecute"}
	plain := api.Taint{Key: "maintenance", Effect: "NoExecute"}
	hourAgo := t0.Add(-time.Hour)
	// b has been Unreachable since +2s, heard last at t0; a and c are Ready.
	lostB := []Cluster{
		lc("a", api.HealthReady, t0.Add(10*time.Second), hourAgo),
		lc("b", api.HealthUnreachable, t0, t0.Add(2*time.Second)),
		lc("c", api.HealthReady, t0.Add(10*time.Second), hourAgo),
	}
	// b is Unreachable too, with a 10s fence.
	fencedB := slices.Clone(lostB)
	fencedB[1].Live.FenceAfter = 10 * time.Second
	leasedB := slices.Clone(fencedB)
	leasedB[1].Live.LeaseFrom = t0.Add(4 * time.Second) // a previous leader may have acked until then
	// a is drained (Ready, NoExecute drain taint); a plain NoExecute taint.
	drainedA := []Cluster{lc("a", api.HealthReady, t0, hourAgo, drain), lc("b", api.HealthReady, t0, hourAgo), lc("c", api.HealthReady, t0, hourAgo)}
	taintedA := slices.Clone(drainedA)
	taintedA[0].Spec.Taints = []api.Taint{plain}
	// a is back, Ready since t0; b and c never left.
	backA := []Cluster{lc("a", api.HealthReady, t0, t0), lc("b", api.HealthReady, t0, hourAgo), lc("c", api.HealthReady, t0, hourAgo)}

	stateless := workload(6, &api.FailoverPolicy{GracePeriod: "5s"})
	exclusive := workload(1, &api.FailoverPolicy{GracePeriod: "0s", Mode: "exclusive"})
	web := workload(6, nil)
	failedOver := with(workload(6, &api.FailoverPolicy{StabilizationWindow: "30s"}), away(map[string]int32{"a": 2}, nil))
	manual := with(failedOver, func(w *api.Workload) { w.Spec.Failover.Failback = "manual" })
	even := map[string]int32{"a": 2, "b": 2, "c": 2}
	onBC := map[string]int32{"b": 3, "c": 3}
	surged := map[string]int32{"a": 2, "b": 3, "c": 3}

	cases := []struct {
		name     string
		clusters []Cluster
		w        *api.Workload
		current  map[string]int32
		epochs   map[string]int64
		now      time.Time
		want     outcome
	}{
		// Grace: an Unreachable cluster keeps what it runs until Since+Grace.
		{"grace: b keeps its replicas within the grace", lostB, stateless, even, nil, t0.Add(7*time.Second - time.Millisecond),
			outcome{Assignment: even, WakeAt: t0.Add(7 * time.Second)}},
		{"grace: at Since+Grace b's replicas move", lostB, stateless, even, nil, t0.Add(7 * time.Second),
			outcome{Assignment: map[string]int32{"a": 3, "c": 3}, Lost: map[string]int32{"b": 2}, FailedOverFrom: map[string]int32{"b": 2}}},

		// Exclusive: the fence plus the margin from the last heartbeat, or
		// from LeaseFrom when later; and stop-then-start.
		{"exclusive: held on b within its fence", fencedB, exclusive, map[string]int32{"b": 1}, nil, t0.Add(12*time.Second - time.Millisecond),
			outcome{Assignment: map[string]int32{"b": 1}, WakeAt: t0.Add(10*time.Second + FenceMargin)}},
		{"exclusive: a later LeaseFrom holds it longer", leasedB, exclusive, map[string]int32{"b": 1}, nil, t0.Add(16*time.Second - time.Millisecond),
			outcome{Assignment: map[string]int32{"b": 1}, WakeAt: t0.Add(4*time.Second + 10*time.Second + FenceMargin)}},
		{"exclusive: past the fence it moves to one cluster", fencedB, exclusive, map[string]int32{"b": 1}, nil, t0.Add(12 * time.Second),
			outcome{Assignment: map[string]int32{"a": 1}, Lost: map[string]int32{"b": 1}, FailedOverFrom: map[string]int32{"b": 1}}},
		{"exclusive: past the fence but not the lease it stays", leasedB, exclusive, map[string]int32{"b": 1}, nil, t0.Add(12 * time.Second),
			outcome{Assignment: map[string]int32{"b": 1}, WakeAt: t0.Add(16 * time.Second)}},
		{"exclusive drain: a told to stop, nothing started", drainedA, exclusive, map[string]int32{"a": 1}, map[string]int64{"a": 4}, t0,
			outcome{Lost: map[string]int32{"a": 1}, FailedOverFrom: map[string]int32{"a": 1}, Waiting: true, Explains: "a (told to stop it now)"}},
		{"exclusive drain: a still reports the old epoch", drainedA,
			with(exclusive, func(w *api.Workload) { w.Status.Clusters = []api.ClusterReplicas{{Cluster: "a", Epoch: 4, Present: 1}} }),
			map[string]int32{}, map[string]int64{"a": 5}, t0, outcome{Waiting: true, Explains: "a (1 still present)"}},
		{"exclusive drain: a reports the new epoch with the copy stopping", drainedA,
			with(exclusive, func(w *api.Workload) { w.Status.Clusters = []api.ClusterReplicas{{Cluster: "a", Epoch: 5, Present: 1}} }),
			map[string]int32{}, map[string]int64{"a": 5}, t0, outcome{Waiting: true}},
		{"exclusive drain: none present at the new epoch, b starts", drainedA,
			with(exclusive, func(w *api.Workload) { w.Status.Clusters = []api.ClusterReplicas{{Cluster: "a", Epoch: 5}} }),
			map[string]int32{}, map[string]int64{"a": 5}, t0, outcome{Assignment: map[string]int32{"b": 1}}},

		// Graceful purge: a drained Ready cluster keeps its replicas until
		// the replacements are ready.
		{"drain: a kept while 5 of 6 are ready elsewhere", drainedA,
			with(web, func(w *api.Workload) { w.Status.Clusters = ready(map[string]int32{"b": 2, "c": 3}) }), even, nil, t0,
			outcome{Assignment: map[string]int32{"a": 2, "b": 3, "c": 3}, Waiting: true, Explains: "purge graceful: keeping the replicas on a until the replacements are ready (5/6 ready elsewhere)"}},
		{"drain: a purged once 6 are ready elsewhere", drainedA,
			with(web, func(w *api.Workload) { w.Status.Clusters = ready(map[string]int32{"a": 2, "b": 3, "c": 3}) }), surged, nil, t0,
			outcome{Assignment: onBC, Lost: map[string]int32{"a": 2}, FailedOverFrom: map[string]int32{"a": 2}}},
		{"drain: readiness of an old generation does not count", drainedA,
			with(web, func(w *api.Workload) {
				w.Metadata.Generation = 2
				w.Status.Clusters = ready(map[string]int32{"b": 3, "c": 3})
			}), surged, nil, t0,
			outcome{Assignment: surged, Waiting: true, Explains: "(0/6 ready elsewhere)"}},
		{"plain NoExecute taint, purge immediate: a loses its replicas at once", taintedA, web, even, nil, t0,
			outcome{Assignment: onBC, Lost: map[string]int32{"a": 2}, FailedOverFrom: map[string]int32{"a": 2}}},
		{"plain NoExecute taint, purge graceful: a kept until the replacements are ready", taintedA,
			with(web, func(w *api.Workload) { w.Spec.Failover = &api.FailoverPolicy{Purge: "graceful"} }), even, nil, t0,
			outcome{Assignment: surged, Waiting: true}},
		{"drain of an exclusive workload: no graceful purge", drainedA,
			with(exclusive, func(w *api.Workload) { w.Spec.Failover.Purge = "graceful" }), map[string]int32{"a": 1}, map[string]int64{"a": 4}, t0,
			outcome{Lost: map[string]int32{"a": 1}, FailedOverFrom: map[string]int32{"a": 1}, Waiting: true}},

		// Failback: after the stabilisation window, make-before-break.
		{"failback: within the window nothing moves back", backA, failedOver, onBC, nil, t0.Add(10 * time.Second),
			outcome{Assignment: onBC, FailedOverFrom: map[string]int32{"a": 2}, WakeAt: t0.Add(30 * time.Second)}},
		{"failback auto: after the window a takes its 2 back, b and c keep theirs until they are ready", backA, failedOver, onBC, nil, t0.Add(30 * time.Second),
			outcome{Assignment: surged, Back: map[string]int32{"a": 2}, FailingBack: map[string]int32{"a": 2}, Waiting: true,
				Explains: "make-before-break: keeping the replicas on b, c until the ones moved are ready (a 0/2 ready)"}},
		{"make-before-break: 1 of 2 ready on a, one kept on b", backA,
			with(failedOver, func(w *api.Workload) {
				away(nil, map[string]int32{"a": 2})(w)
				w.Status.Clusters = ready(map[string]int32{"a": 1, "b": 3, "c": 3})
			}), surged, nil, t0.Add(40 * time.Second),
			outcome{Assignment: map[string]int32{"a": 2, "b": 3, "c": 2}, FailingBack: map[string]int32{"a": 2}, Waiting: true}},
		{"make-before-break: a's 2 ready, b and c trimmed", backA,
			with(failedOver, func(w *api.Workload) {
				away(nil, map[string]int32{"a": 2})(w)
				w.Status.Clusters = ready(surged)
			}), surged, nil, t0.Add(50 * time.Second),
			outcome{Assignment: even}},
		{"make-before-break: a lost again ends the wait", []Cluster{set(backA[0], func(c *Cluster) { c.Live.Health = api.HealthUnreachable }), backA[1], backA[2]},
			with(failedOver, func(w *api.Workload) {
				w.Spec.Failover.GracePeriod = "0s"
				away(nil, map[string]int32{"a": 2})(w)
			}), surged, nil, t0.Add(50 * time.Second),
			outcome{Assignment: onBC, Lost: map[string]int32{"a": 2}, FailedOverFrom: map[string]int32{"a": 2}}},
		{"manual failback: never moves back", backA, manual, onBC, nil, t0.Add(time.Hour),
			outcome{Assignment: onBC, FailedOverFrom: map[string]int32{"a": 2}}},
		{"manual failback: holds a spread's move back too", backA,
			with(manual, func(w *api.Workload) {
				w.Spec.Placement = &api.PlacementPolicy{Spread: []api.SpreadConstraint{{TopologyKey: api.LabelRegion, MinGroups: 3}}}
			}), map[string]int32{"b": 4, "c": 2}, nil, t0.Add(time.Hour),
			outcome{Assignment: map[string]int32{"b": 4, "c": 2}, FailedOverFrom: map[string]int32{"a": 2},
				Explains: "failback: 1 replicas stay where they run until a takes them back (failback is manual)"}},
		{"exclusive failback: within the window the record stays", backA,
			with(exclusive, func(w *api.Workload) { away(map[string]int32{"a": 1}, nil)(w) }), map[string]int32{"b": 1}, nil, t0.Add(10 * time.Second),
			outcome{Assignment: map[string]int32{"b": 1}, FailedOverFrom: map[string]int32{"a": 1}, WakeAt: t0.Add(DefaultWindow)}},
		{"exclusive failback: it stays where it runs, the record ends", backA,
			with(exclusive, func(w *api.Workload) { away(map[string]int32{"a": 1}, nil)(w) }), map[string]int32{"b": 1}, nil, t0.Add(DefaultWindow),
			outcome{Assignment: map[string]int32{"b": 1}, Explains: "an exclusive workload stays where it runs"}},
	}
	for _, c := range cases {
		in := Input{Workload: c.w, Clusters: c.clusters, Current: c.current, Epochs: c.epochs, Now: c.now}
		expect(t, c.name, Decide(in, NewLedger(c.clusters)), c.want)
	}
}

// next is the input of the pass after res was carried out: its
// assignment is current, its record is in the status and its bucket
// kept.
func next(in Input, res Result, now time.Time) Input {
	w := *in.Workload
	w.Status.Placement = &api.PlacementStatus{Clusters: res.Decision.Assignment, FailedOverFrom: res.FailedOverFrom, FailingBack: res.FailingBack}
	in.Workload, in.Current, in.Bucket, in.Now = &w, maps.Clone(res.Decision.Assignment), res.Bucket, now
	return in
}

// TestDecideFailbackRate: failbackRate 1 moves one replica back a minute,
// the bucket passed from one decision to the next; the clusters it comes
// from keep theirs until it is ready (a never reports one here).
func TestDecideFailbackRate(t *testing.T) {
	t.Parallel()
	clusters := []Cluster{lc("a", api.HealthReady, t0, t0), lc("b", api.HealthReady, t0, t0.Add(-time.Hour)), lc("c", api.HealthReady, t0, t0.Add(-time.Hour))}
	w := with(workload(6, &api.FailoverPolicy{StabilizationWindow: "30s", FailbackRate: 1}), away(map[string]int32{"a": 2}, nil))
	at := t0.Add(31 * time.Second)
	in := Input{Workload: w, Clusters: clusters, Current: map[string]int32{"b": 3, "c": 3}, Now: at}
	steps := []struct {
		name string
		now  time.Time
		want outcome
	}{
		{"one back at once", at, outcome{Assignment: map[string]int32{"a": 1, "b": 3, "c": 3}, Back: map[string]int32{"a": 1},
			FailedOverFrom: map[string]int32{"a": 1}, FailingBack: map[string]int32{"a": 1}, Waiting: true, Bucket: &Bucket{Tokens: 0, At: at}}},
		{"decided again at once: nothing more", at, outcome{Assignment: map[string]int32{"a": 1, "b": 3, "c": 3},
			FailedOverFrom: map[string]int32{"a": 1}, FailingBack: map[string]int32{"a": 1}, Waiting: true, Bucket: &Bucket{Tokens: 0, At: at}}},
		{"half a minute later: half a token, nothing more", at.Add(30 * time.Second), outcome{Assignment: map[string]int32{"a": 1, "b": 3, "c": 3},
			FailedOverFrom: map[string]int32{"a": 1}, FailingBack: map[string]int32{"a": 1}, Waiting: true, Bucket: &Bucket{Tokens: 0.5, At: at.Add(30 * time.Second)}}},
		{"a minute later: the second one back, the record cleared", at.Add(time.Minute), outcome{Assignment: map[string]int32{"a": 2, "b": 3, "c": 3},
			Back: map[string]int32{"a": 1}, FailingBack: map[string]int32{"a": 2}, Waiting: true, Bucket: &Bucket{Tokens: 0, At: at.Add(time.Minute)}}},
	}
	var res Result
	for i, s := range steps {
		if i > 0 {
			in = next(in, res, s.now)
		}
		res = Decide(in, NewLedger(clusters))
		expect(t, s.name, res, s.want)
	}
	// Without the bucket (a new leader), the second replica moves back at
	// once, within the rate's first token.
	in = next(in, res, at)
	in.Current = map[string]int32{"a": 1, "b": 3, "c": 3}
	in.Workload.Status.Placement = &api.PlacementStatus{FailedOverFrom: map[string]int32{"a": 1}, FailingBack: map[string]int32{"a": 1}}
	in.Bucket = nil
	expect(t, "a new leader's fresh bucket", Decide(in, NewLedger(clusters)), outcome{Assignment: map[string]int32{"a": 2, "b": 3, "c": 3},
		Back: map[string]int32{"a": 1}, FailingBack: map[string]int32{"a": 2}, Waiting: true, Bucket: &Bucket{Tokens: 0, At: at}})
}

// TestDecideLedger: two workloads lose cluster a in one pass; b has room
// for one of their replicas and c for many. Decided in turn with one
// ledger, the first takes b's room and the second goes to c; each with a
// ledger of its own, both would land on b.
func TestDecideLedger(t *testing.T) {
	t.Parallel()
	b := lc("b", api.HealthReady, t0, t0.Add(-time.Hour))
	b.Live.Capacity = protocol.Capacity{CPUAllocatable: 1500, CPUAllocated: 500}
	c := lc("c", api.HealthReady, t0, t0.Add(-time.Hour))
	c.Live.Capacity = protocol.Capacity{CPUAllocatable: 10000}
	clusters := []Cluster{lc("a", api.HealthUnreachable, t0, t0), b, c}
	in := func(name string) Input {
		w := workload(1, &api.FailoverPolicy{GracePeriod: "0s"})
		w.Metadata.Name = name
		w.Spec.Template.Resources.CPU = "1"
		return Input{Workload: w, Clusters: clusters, Current: map[string]int32{"a": 1}, Now: t0.Add(time.Minute)}
	}
	lost := outcome{Lost: map[string]int32{"a": 1}, FailedOverFrom: map[string]int32{"a": 1}}
	onB := set(lost, func(o *outcome) { o.Assignment = map[string]int32{"b": 1} })
	onC := set(lost, func(o *outcome) { o.Assignment = map[string]int32{"c": 1} })

	// Both workloads order b before c among equal clusters (placement's
	// per-workload tie order): only the ledger can send the second to c.
	ledger := NewLedger(clusters)
	expect(t, "w2, first in the pass", Decide(in("w2"), ledger), onB)
	expect(t, "w4, after w2 took b's room", Decide(in("w4"), ledger), onC)
	if got := ledger["b"]; got.CPUAllocated != 1500 || got.CPUAllocated > got.CPUAllocatable {
		t.Errorf("want b's room used up in the ledger (1500m of 1500m); got %+v", got)
	}
	if got := ledger["c"].CPUAllocated; got != 1000 {
		t.Errorf("want w4's 1000m taken off c; got %dm", got)
	}
	if got := ledger["a"]; got != (protocol.Capacity{}) {
		t.Errorf("want nothing taken off the lost cluster a; got %+v", got)
	}
	// The control: without a shared ledger both pick b (the test above
	// would pass for nothing if they did not).
	expect(t, "w4 with a fresh ledger", Decide(in("w4"), NewLedger(clusters)), onB)
}

// TestFailbackRespectsRoom: a returned cluster with room for one more
// replica must not be given two. It was, by the hub's placer before this
// package and by Decide alike: placement adds the unplaced replica to a
// (its room), then failback's fresh split, counted from that assignment
// with the same room, moved one more back to a. Failback now cuts each
// cluster's room by what the decision already adds there; with room for
// two, it still moves the second one back.
func TestFailbackRespectsRoom(t *testing.T) {
	t.Parallel()
	// room: a's room in replicas; onA: what a may hold (the decision's
	// unplaced replica, then what failback moves back within the room).
	for _, c := range []struct{ room, onA, back int32 }{{1, 1, 0}, {2, 2, 1}} {
		a := lc("a", api.HealthReady, t0, t0) // back, Ready since t0
		a.Live.Capacity = protocol.Capacity{CPUAllocatable: int64(c.room) * 1000}
		clusters := []Cluster{a, lc("b", api.HealthReady, t0, t0.Add(-time.Hour))} // b: heard, no free capacity
		w := with(workload(4, nil), away(map[string]int32{"a": 2}, nil))
		w.Spec.Template.Resources.CPU = "1"
		ledger := NewLedger(clusters)
		res := Decide(Input{Workload: w, Clusters: clusters, Current: map[string]int32{"b": 3}, Now: t0.Add(time.Minute)}, ledger)
		if res.Decision.Assignment["a"] != c.onA || res.Back["a"] != c.back || ledger["a"].CPUAllocated > ledger["a"].CPUAllocatable {
			t.Errorf("a has room for %d replicas: want it given %d, %d of them moved back; got %d (ledger %dm of %dm), back %v\n%v", c.room, c.onA, c.back,
				res.Decision.Assignment["a"], ledger["a"].CPUAllocated, ledger["a"].CPUAllocatable, res.Back, strings.Join(res.Decision.Explanation, "\n"))
		}
	}
}

// TestSequenceExclusiveWaitsForTheEpoch: an exclusive workload drained
// off a must not start on b while a's report predates the epoch that took
// its copy away, even if that report says none is present (a stale one:
// the member may have started the copy since). SequenceExclusive (and the
// hub's sequenceExclusive before it) skipped every cluster with no replica
// placed and none reported present before it looked at the epoch, so its
// epoch check was never reached. The rows that must not hold the move
// follow: a tombstone its member dropped, no rows at all (the first
// placement), a cluster past its fence, deregistered or unknown.
func TestSequenceExclusiveWaitsForTheEpoch(t *testing.T) {
	t.Parallel()
	clusters := []Cluster{lc("a", api.HealthReady, t0, t0.Add(-time.Hour), api.Taint{Key: api.DrainTaintKey, Effect: "NoExecute"}),
		lc("b", api.HealthReady, t0, t0.Add(-time.Hour))}
	w := workload(1, &api.FailoverPolicy{Mode: "exclusive"})
	w.Status.Clusters = []api.ClusterReplicas{{Cluster: "a", Epoch: 4}} // before epoch 5 took a's copy away
	res := Decide(Input{Workload: w, Clusters: clusters, Current: map[string]int32{}, Epochs: map[string]int64{"a": 5}, Now: t0}, NewLedger(clusters))
	if res.Decision.Assignment["b"] != 0 || !res.Waiting {
		t.Errorf("started on b (%v, waiting %v) on a's report of epoch 4, not 5\n%s", res.Decision.Assignment, res.Waiting,
			strings.Join(res.Decision.Explanation, "\n"))
	}

	stale := w.Status.Clusters
	lost := slices.Clone(clusters) // a heard last at t0: fenced until t0+5s (DefaultFence+FenceMargin)
	lost[0] = lc("a", api.HealthUnreachable, t0, t0)
	unknown := slices.Clone(clusters)
	unknown[0].Known = false
	deleting := slices.Clone(clusters)
	deleting[0].Metadata.DeletionTimestamp = &t0
	zeroRow, epoch5 := map[string]int32{"a": 0}, map[string]int64{"a": 5}
	cases := []struct {
		name     string
		clusters []Cluster
		reports  []api.ClusterReplicas
		current  map[string]int32
		epochs   map[string]int64
		now      time.Time
		waits    string // what the explanation says a is waited for ("": b starts)
	}{
		{"a's row of 0 at epoch 5, its report of epoch 4", clusters, stale, zeroRow, epoch5, t0, "a (its report of epoch 4 predates epoch 5)"},
		{"a's row of 0 at epoch 5, no report from a yet", clusters, nil, zeroRow, epoch5, t0, "a (no report of epoch 5 yet)"},
		{"a Unreachable within its fence, its report of epoch 4", lost, stale, zeroRow, epoch5, t0.Add(5*time.Second - time.Millisecond), "a (Unreachable; fenced at"},
		{"a reports none present at epoch 5", clusters, []api.ClusterReplicas{{Cluster: "a", Epoch: 5}}, zeroRow, epoch5, t0, ""},
		{"a Unreachable past its fence", lost, stale, zeroRow, epoch5, t0.Add(5 * time.Second), ""},
		{"a's tombstone, the workload dropped by its member", clusters, nil, map[string]int32{}, epoch5, t0, ""},
		{"the first placement: no rows anywhere", clusters, nil, map[string]int32{}, nil, t0, ""},
		{"a deregistered", clusters[1:], stale, zeroRow, epoch5, t0, ""},
		{"a not known to the monitor", unknown, stale, zeroRow, epoch5, t0, ""},
		{"a being deregistered", deleting, stale, zeroRow, epoch5, t0, ""},
	}
	for _, c := range cases {
		w := with(w, func(w *api.Workload) { w.Status.Clusters = c.reports })
		res := Decide(Input{Workload: w, Clusters: c.clusters, Current: c.current, Epochs: c.epochs, Now: c.now}, NewLedger(c.clusters))
		why := strings.Join(res.Decision.Explanation, "\n")
		switch {
		case c.waits != "" && (len(res.Decision.Assignment) != 0 || !res.Waiting || !strings.Contains(why, c.waits)):
			t.Errorf("%s: want nothing started, waiting for %q; got %v (waiting %v)\n%s", c.name, c.waits, res.Decision.Assignment, res.Waiting, why)
		case c.waits == "" && (!maps.Equal(res.Decision.Assignment, map[string]int32{"b": 1}) || res.Waiting):
			t.Errorf("%s: want it started on b at once; got %v (waiting %v)\n%s", c.name, res.Decision.Assignment, res.Waiting, why)
		}
	}
}
