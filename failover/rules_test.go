package failover

// The hub's failover tests (hub/failover_test.go), ported to the rules as
// this package has them: the same inputs and the same assertions.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/placement"
	"github.com/atollhq/atoll/protocol"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestEvictAt(t *testing.T) {
	t.Parallel()
	live := Live{Seen: t0, Since: t0.Add(2 * time.Second), Health: api.HealthUnreachable, Heard: true}
	cases := []struct {
		name string
		f    Policy
		live Live
		want time.Time
	}{
		{"stateless: the grace after Unreachable", Policy{Grace: 5 * time.Second}, live, t0.Add(7 * time.Second)},
		{"stateless, no grace: at once", Policy{}, live, t0.Add(2 * time.Second)},
		{"exclusive: the member's fence plus the margin when later", Policy{Exclusive: true}, live, t0.Add(DefaultFence + FenceMargin)},
		{"exclusive: the fence the member reported", Policy{Exclusive: true}, withFence(live, 10*time.Second), t0.Add(10*time.Second + FenceMargin)},
		{"exclusive: the grace when later", Policy{Exclusive: true, Grace: 30 * time.Second}, live, t0.Add(32 * time.Second)},
		{"exclusive, not heard since the hub started: the longest fence", Policy{Exclusive: true}, unheard(live), t0.Add(protocol.MaxFenceAfter + FenceMargin)},
		{"exclusive, a previous leader's acks may run later: from then", Policy{Exclusive: true}, leaseFrom(live, t0.Add(4*time.Second)), t0.Add(4*time.Second + DefaultFence + FenceMargin)},
	}
	for _, c := range cases {
		if got := EvictAt(c.f, c.live); !got.Equal(c.want) {
			t.Errorf("%s: want eviction at +%s; got +%s", c.name, c.want.Sub(t0), got.Sub(t0))
		}
	}
}

func withFence(l Live, d time.Duration) Live { l.FenceAfter = d; return l }

func leaseFrom(l Live, t time.Time) Live { l.LeaseFrom = t; return l }

func unheard(l Live) Live { l.Heard = false; return l }

func TestPolicyOfDefaultsAndZeroGrace(t *testing.T) {
	t.Parallel()
	w := &api.Workload{}
	if f := PolicyOf(w); f.Grace != DefaultGrace || f.Exclusive || f.Graceful {
		t.Errorf("want defaults (grace %s, stateless, immediate); got %+v", DefaultGrace, f)
	}
	w.Spec.Failover = &api.FailoverPolicy{GracePeriod: "0s", Mode: "exclusive", Purge: "graceful"}
	if f := PolicyOf(w); f.Grace != 0 || !f.Exclusive || !f.Graceful {
		t.Errorf("want an explicit 0s grace, exclusive and graceful; got %+v", f)
	}
}

// lc is a cluster the monitor knows, with its health since `since`.
func lc(name, health string, seen, since time.Time, taints ...api.Taint) Cluster {
	c := Cluster{Known: true, Live: Live{Seen: seen, Since: since, Heard: true, Health: health}}
	c.Metadata.Name = name
	c.Metadata.Labels = map[string]string{api.LabelRegion: name}
	c.Spec.Taints = taints
	return c
}

func TestSnapshotGraceAndFailover(t *testing.T) {
	t.Parallel()
	clusters := []Cluster{
		lc("a", api.HealthReady, t0.Add(10*time.Second), t0),
		lc("b", api.HealthUnreachable, t0, t0.Add(2*time.Second)),
		lc("c", api.HealthReady, t0.Add(10*time.Second), t0),
	}
	w := &api.Workload{Spec: api.WorkloadSpec{Replicas: 6, Failover: &api.FailoverPolicy{GracePeriod: "5s"}}}
	current := map[string]int32{"a": 2, "b": 2, "c": 2}

	// Within the grace: b keeps its 2, nothing moves, a pass is due when
	// the grace ends.
	snap, next := Snapshot(clusters, w, t0.Add(4*time.Second))
	if !next.Equal(t0.Add(7 * time.Second)) {
		t.Errorf("want the next pass when b's grace ends (+7s); got %v", next.Sub(t0))
	}
	d := placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	if !maps.Equal(d.Assignment, current) {
		t.Errorf("want nothing moved within the grace; got %v (%v)", d.Assignment, d.Filtered)
	}
	if !strings.HasPrefix(d.Filtered["b"], "Unreachable; failover at") || len(Lost(d, current)) != 0 {
		t.Errorf("want b filtered as within its grace and nothing lost; got %q, lost %v", d.Filtered["b"], Lost(d, current))
	}

	// After it: b's replicas go to a and c, and that is a failover.
	snap, next = Snapshot(clusters, w, t0.Add(7*time.Second))
	d = placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	if !next.IsZero() || d.Assignment["b"] != 0 || d.Assignment["a"]+d.Assignment["c"] != 6 {
		t.Errorf("want b's replicas re-placed on a and c once the grace ran out; got %v (next %v)", d.Assignment, next)
	}
	if lost := Lost(d, current); !maps.Equal(lost, map[string]int32{"b": 2}) {
		t.Errorf("want 2 replicas lost off b; got %v", lost)
	}
	if txt := FailoverText(Lost(d, current), d); !strings.Contains(txt, "2 off b (Unreachable)") {
		t.Errorf("want the event to say 2 moved off b because it is Unreachable; got %q", txt)
	}

	// Exclusive: confined to one cluster, and kept on b until the fence.
	w.Spec.Failover.Mode = "exclusive"
	w.Spec.Replicas = 1
	snap, _ = Snapshot(clusters, w, t0.Add(4*time.Second))
	d = placement.Decide(placement.Input{Replicas: 1, Policy: PlacementPolicy(w), Clusters: snap, Current: map[string]int32{"b": 1}})
	if !maps.Equal(d.Assignment, map[string]int32{"b": 1}) {
		t.Errorf("want the exclusive replica left on b before the fence runs out; got %v", d.Assignment)
	}
	snap, _ = Snapshot(clusters, w, t0.Add(7*time.Second))
	d = placement.Decide(placement.Input{Replicas: 1, Policy: PlacementPolicy(w), Clusters: snap, Current: map[string]int32{"b": 1}})
	if len(d.Assignment) != 1 || d.Assignment["b"] != 0 {
		t.Errorf("want the exclusive replica on exactly one other cluster after the fence; got %v", d.Assignment)
	}
	w.Spec.Replicas = 3
	snap, _ = Snapshot(clusters[:1], w, t0.Add(7*time.Second))
	snap2, _ := Snapshot(clusters, w, t0.Add(7*time.Second))
	d = placement.Decide(placement.Input{Replicas: 3, Policy: PlacementPolicy(w), Clusters: append(snap, snap2[2])})
	if len(d.Assignment) != 1 {
		t.Errorf("want an exclusive workload's 3 replicas in one cluster; got %v", d.Assignment)
	}
}

func TestPurgeGracefully(t *testing.T) {
	t.Parallel()
	drill := api.Taint{Key: api.DrillTaintKey, Value: "d1", Effect: "NoExecute"}
	clusters := []Cluster{lc("a", api.HealthReady, t0, t0, drill), lc("b", api.HealthReady, t0, t0), lc("c", api.HealthReady, t0, t0)}
	w := &api.Workload{Spec: api.WorkloadSpec{Replicas: 6}}
	w.Metadata.Generation = 1
	current := map[string]int32{"a": 2, "b": 2, "c": 2}
	snap, _ := Snapshot(clusters, w, t0)
	d := placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	if d.Assignment["a"] != 0 {
		t.Fatalf("want the NoExecute taint to take a's replicas; got %v", d.Assignment)
	}
	// The replacements are not ready: a keeps its 2.
	w.Status.Clusters = []api.ClusterReplicas{{Cluster: "b", Generation: 1, Ready: 2}, {Cluster: "c", Generation: 1, Ready: 3}}
	kept := PurgeGracefully(w, &d, current, clusters)
	if len(kept) != 1 || d.Assignment["a"] != 2 {
		t.Errorf("want a's 2 replicas kept until b and c run 6; got kept %v, %v", kept, d.Assignment)
	}
	// They are: purge.
	d = placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	w.Status.Clusters = []api.ClusterReplicas{{Cluster: "b", Generation: 1, Ready: 3}, {Cluster: "c", Generation: 1, Ready: 3}}
	if kept := PurgeGracefully(w, &d, current, clusters); len(kept) != 0 || d.Assignment["a"] != 0 {
		t.Errorf("want a purged once 6 run elsewhere; got kept %v, %v", kept, d.Assignment)
	}
	// An exclusive workload never keeps its old copy.
	d = placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	w.Status.Clusters = nil
	w.Spec.Failover = &api.FailoverPolicy{Mode: "exclusive"}
	if kept := PurgeGracefully(w, &d, current, clusters); len(kept) != 0 {
		t.Errorf("want no graceful purge for an exclusive workload; kept %v", kept)
	}
	w.Spec.Failover = nil
	// An ordinary NoExecute taint with purge immediate does not wait.
	clusters[0].Spec.Taints = []api.Taint{{Key: "maintenance", Effect: "NoExecute"}}
	snap, _ = Snapshot(clusters, w, t0)
	d = placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	w.Status.Clusters = nil
	if kept := PurgeGracefully(w, &d, current, clusters); len(kept) != 0 {
		t.Errorf("want purge immediate for a plain NoExecute taint; kept %v", kept)
	}
}

// TestFailback is the hub's TestFailback with the rate limit's bucket
// passed in and out instead of kept by a Placer: bucket holds what the
// Placer's map held for the workload between calls (nil: no entry).
func TestFailback(t *testing.T) {
	t.Parallel()
	clusters := []Cluster{
		lc("a", api.HealthReady, t0, t0), // back, Ready since t0
		lc("b", api.HealthReady, t0, t0.Add(-time.Hour)),
		lc("c", api.HealthReady, t0, t0.Add(-time.Hour)),
	}
	w := &api.Workload{Spec: api.WorkloadSpec{Replicas: 6, Failover: &api.FailoverPolicy{StabilizationWindow: "30s"}}}
	w.Metadata.Name = "web"
	var decided map[string]int32 // what the last decision started from
	decide := func(now time.Time, current map[string]int32) placement.Decision {
		snap, _ := Snapshot(clusters, w, now)
		decided = current
		return placement.Decide(placement.Input{Replicas: 6, Policy: PlacementPolicy(w), Clusters: snap, Current: current})
	}
	var bucket *Bucket // the rate limit as the last call left it
	var snap []placement.Cluster
	fb := func(d *placement.Decision, prev map[string]int32, now time.Time) (from, back map[string]int32, wake time.Time) {
		from, back, wake, bucket = failback(failbackState{w: w, current: decided, prev: prev, snap: snap, clusters: clusters, now: now, bucket: bucket}, d)
		return from, back, wake
	}
	current := map[string]int32{"b": 3, "c": 3}
	prev := map[string]int32{"a": 2}

	// Within the window: nothing moves, the record stays.
	d := decide(t0.Add(10*time.Second), current)
	snap, _ = Snapshot(clusters, w, t0.Add(10*time.Second))
	from, back, wake := fb(&d, prev, t0.Add(10*time.Second))
	if len(back) != 0 || !maps.Equal(from, prev) || !maps.Equal(d.Assignment, current) {
		t.Errorf("want nothing moved back within the window; got back %v, from %v, %v", back, from, d.Assignment)
	}
	if !wake.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("want a pass asked for when a's window ends (+30s); got %v", wake)
	}
	// After it: a gets its share back (2 of 6), taken from b and c.
	d = decide(t0.Add(31*time.Second), current)
	from, back, wake = fb(&d, prev, t0.Add(31*time.Second))
	if !maps.Equal(back, map[string]int32{"a": 2}) || len(from) != 0 || d.Assignment["a"] != 2 || d.Assignment["b"]+d.Assignment["c"] != 4 {
		t.Errorf("want 2 back to a and the record cleared; got back %v, from %v, %v", back, from, d.Assignment)
	}
	if !wake.IsZero() || bucket != nil {
		t.Errorf("want no pass asked for and no rate limit kept without a failbackRate; got wake %v, bucket %+v", wake, bucket)
	}
	// Make-before-break: b and c keep their replicas until a runs the 2
	// moved back ready; then the next decision trims b and c.
	w.Metadata.Generation = 1
	w.Status.Clusters = []api.ClusterReplicas{{Cluster: "a", Generation: 1, Ready: 0}, {Cluster: "b", Generation: 1, Ready: 3}, {Cluster: "c", Generation: 1, Ready: 3}}
	pending := keepUntilFailedBack(w, &d, current, nil, back, clusters)
	if !maps.Equal(pending, map[string]int32{"a": 2}) || !maps.Equal(d.Assignment, map[string]int32{"a": 2, "b": 3, "c": 3}) {
		t.Errorf("want b and c kept at 3 while a's 2 are not ready; got pending %v, %v", pending, d.Assignment)
	}
	surged := maps.Clone(d.Assignment)
	d = decide(t0.Add(32*time.Second), surged)
	if _, back, _ = fb(&d, nil, t0.Add(32*time.Second)); len(back) != 0 {
		t.Errorf("want nothing more moved back; got %v", back)
	}
	w.Status.Clusters[0].Ready = 1
	if pending = keepUntilFailedBack(w, &d, surged, pending, nil, clusters); d.Assignment["a"] != 2 || d.Assignment["b"]+d.Assignment["c"] != 5 || pending["a"] != 2 {
		t.Errorf("want one extra kept on b or c while a has 1 of 2 ready; got pending %v, %v", pending, d.Assignment)
	}
	d = decide(t0.Add(33*time.Second), surged)
	w.Status.Clusters[0].Ready = 2
	if pending = keepUntilFailedBack(w, &d, surged, pending, nil, clusters); len(pending) != 0 || d.Assignment["a"] != 2 || d.Assignment["b"]+d.Assignment["c"] != 4 {
		t.Errorf("want b and c trimmed to 4 once a's 2 are ready, a kept; got pending %v, %v", pending, d.Assignment)
	}
	// A Suspect blip (or a cordon) of a during the wait: the decision
	// trims a first (it takes nothing new and the total is over); a keeps
	// its 2 and the wait goes on, and when a's 2 are ready, b and c give
	// way, whatever a's health.
	for _, health := range []string{api.HealthSuspect, "cordoned"} {
		a := clusters[0]
		if health == "cordoned" {
			clusters[0].Spec.Unschedulable = true
		} else {
			clusters[0].Live.Health = health
		}
		snap, _ := Snapshot(clusters, w, t0.Add(32*time.Second))
		d = placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: surged})
		if d.Assignment["a"] >= 2 {
			t.Fatalf("%s: the test needs a decision that trims a; got %v", health, d.Assignment)
		}
		w.Status.Clusters[0].Ready = 0
		if pending = keepUntilFailedBack(w, &d, surged, map[string]int32{"a": 2}, nil, clusters); pending["a"] != 2 || !maps.Equal(d.Assignment, surged) {
			t.Errorf("%s: want a kept at 2 and b, c at 3 while a's are not ready; got pending %v, %v", health, pending, d.Assignment)
		}
		d = placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: surged})
		w.Status.Clusters[0].Ready = 2
		if pending = keepUntilFailedBack(w, &d, surged, map[string]int32{"a": 2}, nil, clusters); len(pending) != 0 || d.Assignment["a"] != 2 || d.Assignment["b"]+d.Assignment["c"] != 4 {
			t.Errorf("%s: want a kept at 2 and b, c down to 4 once a's are ready; got pending %v, %v", health, pending, d.Assignment)
		}
		clusters[0] = a
	}
	// A scale-down during the wait is honoured: to 3, the others keep no
	// more than the 2 not ready on a; to 0, nothing is kept at all.
	w.Status.Clusters[0].Ready = 0
	snap, _ = Snapshot(clusters, w, t0.Add(34*time.Second))
	d = placement.Decide(placement.Input{Replicas: 3, Clusters: snap, Current: surged})
	if pending = keepUntilFailedBack(w, &d, surged, map[string]int32{"a": 2}, nil, clusters); total(d.Assignment) > 3+2 || d.Assignment["a"] == 0 {
		t.Errorf("scaled to 3: want at most 3 + the 2 not ready on a; got pending %v, %v", pending, d.Assignment)
	}
	d = placement.Decide(placement.Input{Replicas: 0, Clusters: snap, Current: surged})
	if pending = keepUntilFailedBack(w, &d, surged, map[string]int32{"a": 2}, nil, clusters); len(d.Assignment) != 0 || len(pending) != 0 {
		t.Errorf("scaled to 0: want nothing kept and the wait over; got pending %v, %v", pending, d.Assignment)
	}
	w.Status.Clusters = nil

	// Rate 1 per minute: one now, the next a minute later.
	w.Spec.Failover.FailbackRate = 1
	d = decide(t0.Add(31*time.Second), current)
	from, back, _ = fb(&d, prev, t0.Add(31*time.Second))
	if !maps.Equal(back, map[string]int32{"a": 1}) || from["a"] != 1 {
		t.Errorf("want 1 back to a at 1/minute, 1 left to move; got back %v, from %v", back, from)
	}
	if bucket == nil || bucket.Tokens != 0 || !bucket.At.Equal(t0.Add(31*time.Second)) {
		t.Errorf("want the bucket spent at +31s; got %+v", bucket)
	}
	current = maps.Clone(d.Assignment)
	d = decide(t0.Add(40*time.Second), current)
	if _, back, _ = fb(&d, from, t0.Add(40*time.Second)); len(back) != 0 {
		t.Errorf("want nothing more within the minute; got %v", back)
	}
	d = decide(t0.Add(92*time.Second), current)
	if from, back, _ = fb(&d, from, t0.Add(92*time.Second)); !maps.Equal(back, map[string]int32{"a": 1}) || len(from) != 0 {
		t.Errorf("want the second replica back a minute later and the record cleared; got back %v, from %v", back, from)
	}
	// Exclusive: it stays where it runs; the record ends after the window.
	w.Spec.Failover.Mode = "exclusive"
	d = decide(t0.Add(31*time.Second), map[string]int32{"b": 6})
	if from, back, _ = fb(&d, prev, t0.Add(31*time.Second)); len(back) != 0 || len(from) != 0 {
		t.Errorf("want an exclusive workload left where it runs and its record cleared after the window; got back %v, from %v", back, from)
	}
	w.Spec.Failover.Mode = ""
	// Manual: the record is kept, nothing moves.
	w.Spec.Failover.Failback = "manual"
	d = decide(t0.Add(31*time.Second), map[string]int32{"b": 3, "c": 3})
	if from, back, _ = fb(&d, prev, t0.Add(31*time.Second)); len(back) != 0 || from["a"] != 2 {
		t.Errorf("want manual failback to move nothing and keep the record; got back %v, from %v", back, from)
	}
	w.Spec.Failover.Failback, w.Spec.Failover.FailbackRate = "", 0

	// A spread over every cluster (minGroups 3) makes a fresh decision put
	// a replica back on a at once; failback holds it where it runs until
	// the window has passed, then moves it (found in an outage drill: the
	// replica moved back at the restore, with no FailedBack event).
	w.Spec.Placement = &api.PlacementPolicy{Spread: []api.SpreadConstraint{{TopologyKey: "name", MinGroups: 3}}}
	spreadCur := map[string]int32{"b": 4, "c": 2}
	for i := range clusters {
		clusters[i].Metadata.Labels = map[string]string{"name": clusters[i].Metadata.Name}
	}
	snap, _ = Snapshot(clusters, w, t0.Add(10*time.Second))
	d = decide(t0.Add(10*time.Second), spreadCur)
	if d.Assignment["a"] == 0 {
		t.Fatalf("the test needs a decision that spreads onto a at once; got %v", d.Assignment)
	}
	from, back, _ = fb(&d, prev, t0.Add(10*time.Second))
	if len(back) != 0 || !maps.Equal(d.Assignment, spreadCur) || !maps.Equal(from, prev) {
		t.Errorf("want the spread's move back held within the window; got back %v, from %v, %v", back, from, d.Assignment)
	}
	if !slices.ContainsFunc(d.Explanation, func(e string) bool { return strings.Contains(e, "stay where they run until a takes them back") }) {
		t.Errorf("want the hold explained; got %q", d.Explanation)
	}
	// Replicas that ran nowhere may still go to a: capacity only grows.
	d = decide(t0.Add(10*time.Second), map[string]int32{"b": 3, "c": 2})
	if _, _, _ = fb(&d, prev, t0.Add(10*time.Second)); d.Assignment["a"] != 1 || d.Assignment["b"]+d.Assignment["c"] != 5 {
		t.Errorf("want the unplaced sixth replica on a, nothing taken from b or c; got %v", d.Assignment)
	}
	// After the window they move back, as a failback: recorded, and
	// within the rate (one a minute here).
	d = decide(t0.Add(31*time.Second), spreadCur)
	if from, back, _ = fb(&d, prev, t0.Add(31*time.Second)); back["a"] != 2 || len(from) != 0 || d.Assignment["a"] != 2 {
		t.Errorf("want 2 moved back to a after the window, the record cleared; got back %v, from %v, %v", back, from, d.Assignment)
	}
	w.Spec.Failover.FailbackRate = 1
	bucket = nil // the hub test forgot the workload's bucket here
	d = decide(t0.Add(31*time.Second), spreadCur)
	if from, back, _ = fb(&d, prev, t0.Add(31*time.Second)); back["a"] != 1 || from["a"] != 1 || d.Assignment["a"] != 1 {
		t.Errorf("want 1 moved back at 1/minute, though the spread wants more; got back %v, from %v, %v", back, from, d.Assignment)
	}
}

// TestPassDoesNotPileOnOneCluster: ten workloads lose their cluster in
// one pass; the survivor with room for 5 replicas gets 5, not one per
// workload, because each decision takes its room off the ledger.
func TestPassDoesNotPileOnOneCluster(t *testing.T) {
	t.Parallel()
	small := lc("b", api.HealthReady, t0.Add(time.Minute), t0)
	small.Live.Capacity = protocol.Capacity{CPUAllocatable: 5000, MemoryAllocatable: 64 << 30}
	big := lc("c", api.HealthReady, t0.Add(time.Minute), t0)
	big.Live.Capacity = protocol.Capacity{CPUAllocatable: 100000, MemoryAllocatable: 64 << 30}
	view := []Cluster{lc("a", api.HealthUnreachable, t0, t0), small, big}
	ledger := NewLedger(view)
	onB := int32(0)
	for i := range 10 {
		w := api.Workload{Spec: api.WorkloadSpec{Replicas: 2, Template: api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "1"}},
			Failover: &api.FailoverPolicy{GracePeriod: "0s"}}}
		w.Metadata.Name, w.Metadata.Generation = fmt.Sprintf("w%d", i), 1
		res := Decide(Input{Workload: &w, Clusters: view, Current: map[string]int32{"a": 2}, Epochs: map[string]int64{"a": 0}, Now: t0.Add(time.Minute)}, ledger)
		if res.Decision.Assignment["a"] != 0 || !maps.Equal(res.Lost, map[string]int32{"a": 2}) {
			t.Fatalf("want %s moved off the lost cluster a; got %+v", w.Metadata.Name, res)
		}
		onB += res.Decision.Assignment["b"]
	}
	if onB != 5 {
		t.Errorf("want b (room for 5) given exactly 5 replicas over the pass; got %d", onB)
	}
	if got := ledger["b"].CPUAllocated; got != 5000 {
		t.Errorf("want b's 5000m all taken in the ledger; got %dm", got)
	}
}

// TestSequenceExclusive: an exclusive workload drained off a reachable
// cluster starts elsewhere only once that cluster reports, at the epoch
// that took it away, that no copy is present any more.
func TestSequenceExclusive(t *testing.T) {
	t.Parallel()
	drain := api.Taint{Key: api.DrainTaintKey, Effect: "NoExecute"}
	clusters := []Cluster{lc("a", api.HealthReady, t0, t0, drain), lc("b", api.HealthReady, t0, t0)}
	w := &api.Workload{Spec: api.WorkloadSpec{Replicas: 1, Failover: &api.FailoverPolicy{Mode: "exclusive"}}}
	decide := func(current map[string]int32) placement.Decision {
		snap, _ := Snapshot(clusters, w, t0)
		return placement.Decide(placement.Input{Replicas: 1, Policy: PlacementPolicy(w), Clusters: snap, Current: current})
	}
	// First pass: a is told to stop; b gets nothing yet.
	d := decide(map[string]int32{"a": 1})
	epochs := map[string]int64{"a": 4}
	if !SequenceExclusive(w, &d, map[string]int32{"a": 1}, epochs, clusters, t0) || d.Assignment["b"] != 0 || d.Assignment["a"] != 0 {
		t.Fatalf("want a told to stop and nothing started on b yet; got %v", d.Assignment)
	}
	// a's row is 0 at epoch 5; its report is still of epoch 4, then of
	// epoch 5 with the copy stopping, then gone.
	epochs["a"] = 5
	for _, r := range []api.ClusterReplicas{{Cluster: "a", Epoch: 4, Present: 1}, {Cluster: "a", Epoch: 5, Present: 1}} {
		w.Status.Clusters = []api.ClusterReplicas{r}
		d = decide(map[string]int32{})
		if !SequenceExclusive(w, &d, map[string]int32{}, epochs, clusters, t0) || d.Assignment["b"] != 0 {
			t.Errorf("want b held while a reports %+v; got %v", r, d.Assignment)
		}
	}
	w.Status.Clusters = []api.ClusterReplicas{{Cluster: "a", Epoch: 5, Present: 0}}
	d = decide(map[string]int32{})
	if SequenceExclusive(w, &d, map[string]int32{}, epochs, clusters, t0) || d.Assignment["b"] != 1 {
		t.Errorf("want b started once a reports no copy at epoch 5; got %v", d.Assignment)
	}
	// A stateless workload is not sequenced.
	w.Spec.Failover = nil
	d = decide(map[string]int32{"a": 1})
	if SequenceExclusive(w, &d, map[string]int32{"a": 1}, epochs, clusters, t0) {
		t.Errorf("want no sequencing for a stateless workload")
	}
}

// TestTexts: the event, condition and metric wording the hub records.
func TestTexts(t *testing.T) {
	t.Parallel()
	d := placement.Decision{Assignment: map[string]int32{"a": 3, "c": 3, "z": 0}, Filtered: map[string]string{"b": api.HealthUnreachable}}
	if got, want := FailoverText(map[string]int32{"b": 2}, d), "moved 2 off b (Unreachable); now a 3, c 3"; got != want {
		t.Errorf("FailoverText: want %q; got %q", want, got)
	}
	if got, want := FailbackText(map[string]int32{"b": 1}, d), "moved 1 back to b (Ready for the stabilisation window); now a 3, c 3"; got != want {
		t.Errorf("FailbackText: want %q; got %q", want, got)
	}
	if got := SplitText(nil); got != "nowhere" {
		t.Errorf("SplitText(nil): want nowhere; got %q", got)
	}
	if Reason(api.HealthUnreachable) != "unreachable" || Reason(placement.ReasonTainted) != "noexecute" {
		t.Errorf("Reason: want unreachable and noexecute; got %q, %q", Reason(api.HealthUnreachable), Reason(placement.ReasonTainted))
	}
	if c := FailedOverCondition(nil, nil); c.Type != ConditionFailedOver || c.Status != "False" || c.Reason != "AllHome" {
		t.Errorf("FailedOverCondition(nothing away): got %+v", c)
	}
	c := FailedOverCondition(map[string]int32{"b": 2, "a": 1}, &api.FailoverPolicy{Failback: "manual"})
	if c.Status != "True" || c.Reason != "ClusterLost" || c.Message != "replicas failed over: 1 off a, 2 off b; failback is manual" {
		t.Errorf("FailedOverCondition(manual): got %+v", c)
	}
	if c := FailedOverCondition(map[string]int32{"b": 2}, nil); !strings.HasSuffix(c.Message, "they move back once the cluster has been Ready for the stabilisation window") {
		t.Errorf("FailedOverCondition(auto): got %+v", c)
	}
}

func total(m map[string]int32) (n int32) {
	for _, v := range m {
		n += v
	}
	return n
}

// TestPurgeHonoursBudget: a workload with a disruption budget loses, at
// once, only what its budget allows from clusters a NoExecute taint
// evacuates (a plain taint with purge immediate included): the rest stay
// until replacements are ready elsewhere; a drain keeps everything until
// then anyway; an exclusive workload still moves at once.
func TestPurgeHonoursBudget(t *testing.T) {
	t.Parallel()
	plain := api.Taint{Key: "maintenance", Effect: "NoExecute"}
	drain := api.Taint{Key: api.DrainTaintKey, Effect: "NoExecute"}
	minAv := func(s string) *api.DisruptionBudget {
		return &api.DisruptionBudget{MinAvailable: api.IntOrPercentOf(s)}
	}
	maxUn := func(s string) *api.DisruptionBudget {
		return &api.DisruptionBudget{MaxUnavailable: api.IntOrPercentOf(s)}
	}
	cases := []struct {
		name      string
		budget    *api.DisruptionBudget
		exclusive bool
		taintA    api.Taint
		taintB    *api.Taint
		current   map[string]int32
		ready     map[string]int32 // ready replicas reported elsewhere
		want      map[string]int32 // kept on the evacuated clusters
	}{
		{"no budget: purge immediate", nil, false, plain, nil, map[string]int32{"a": 4}, nil, map[string]int32{}},
		{"maxUnavailable 1, nothing ready: 3 stay", maxUn("1"), false, plain, nil, map[string]int32{"a": 4}, nil, map[string]int32{"a": 3}},
		{"maxUnavailable 1, 2 ready elsewhere: 1 stays", maxUn("1"), false, plain, nil, map[string]int32{"a": 4}, map[string]int32{"d": 2}, map[string]int32{"a": 1}},
		{"maxUnavailable 1, 3 ready elsewhere: purge", maxUn("1"), false, plain, nil, map[string]int32{"a": 4}, map[string]int32{"d": 2, "c": 1}, map[string]int32{}},
		{"minAvailable 50%: 2 stay", minAv("50%"), false, plain, nil, map[string]int32{"a": 4}, nil, map[string]int32{"a": 2}},
		{"minAvailable 0: purge", minAv("0"), false, plain, nil, map[string]int32{"a": 4}, nil, map[string]int32{}},
		{"maxUnavailable 25%: rounds up to 1 away", maxUn("25%"), false, plain, nil, map[string]int32{"a": 2, "c": 2}, map[string]int32{"c": 2}, map[string]int32{"a": 1}},
		{"two clusters evacuated: kept in name order", maxUn("1"), false, plain, &plain, map[string]int32{"a": 2, "b": 2}, nil, map[string]int32{"a": 2, "b": 1}},
		{"a drain keeps everything until replacements are ready", maxUn("1"), false, drain, nil, map[string]int32{"a": 4}, nil, map[string]int32{"a": 4}},
		{"exclusive moves at once", minAv("100%"), true, plain, nil, map[string]int32{"a": 4}, nil, map[string]int32{}},
	}
	for _, c := range cases {
		clusters := []Cluster{lc("a", api.HealthReady, t0, t0, c.taintA), lc("b", api.HealthReady, t0, t0), lc("c", api.HealthReady, t0, t0), lc("d", api.HealthReady, t0, t0)}
		if c.taintB != nil {
			clusters[1].Spec.Taints = []api.Taint{*c.taintB}
		}
		w := &api.Workload{Spec: api.WorkloadSpec{Replicas: 4, DisruptionBudget: c.budget}}
		w.Metadata.Generation = 1
		if c.exclusive {
			w.Spec.Failover = &api.FailoverPolicy{Mode: "exclusive"}
		}
		for cl, n := range c.ready {
			w.Status.Clusters = append(w.Status.Clusters, api.ClusterReplicas{Cluster: cl, Generation: 1, Ready: n})
		}
		snap, _ := Snapshot(clusters, w, t0)
		d := placement.Decide(placement.Input{Replicas: 4, Clusters: snap, Current: c.current})
		kept := PurgeGracefully(w, &d, c.current, clusters)
		got := map[string]int32{}
		for _, cl := range []string{"a", "b"} {
			if n := d.Assignment[cl]; n > 0 && (cl == "a" || c.taintB != nil) {
				got[cl] = n
			}
		}
		if !maps.Equal(got, c.want) || len(kept) != len(c.want) {
			t.Errorf("%s: want %v kept on the evacuated clusters, got %v (kept %v)\n%v", c.name, c.want, got, kept, d.Explanation)
		}
		if len(c.want) > 0 && c.budget != nil && !c.exclusive && c.taintA == plain && !strings.Contains(strings.Join(d.Explanation, "\n"), "disruption budget "+c.budget.String()) {
			t.Errorf("%s: want the explanation to name the budget; got %v", c.name, d.Explanation)
		}
	}
}
