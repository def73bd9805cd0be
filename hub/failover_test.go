package hub

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/placement"
	"github.com/atollhq/atoll/protocol"
	"go.opentelemetry.io/otel/metric/noop"
)

func TestEvictAt(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	live := LiveHealth{Seen: t0, Since: t0.Add(2 * time.Second), Health: api.HealthUnreachable, Heard: true}
	cases := []struct {
		name string
		f    failoverPolicy
		live LiveHealth
		want time.Time
	}{
		{"stateless: the grace after Unreachable", failoverPolicy{grace: 5 * time.Second}, live, t0.Add(7 * time.Second)},
		{"stateless, no grace: at once", failoverPolicy{}, live, t0.Add(2 * time.Second)},
		{"exclusive: the member's fence plus the margin when later", failoverPolicy{exclusive: true}, live, t0.Add(defaultFence + fenceMargin)},
		{"exclusive: the fence the member reported", failoverPolicy{exclusive: true}, withFence(live, 10*time.Second), t0.Add(10*time.Second + fenceMargin)},
		{"exclusive: the grace when later", failoverPolicy{exclusive: true, grace: 30 * time.Second}, live, t0.Add(32 * time.Second)},
		{"exclusive, not heard since the hub started: the longest fence", failoverPolicy{exclusive: true}, unheard(live), t0.Add(protocol.MaxFenceAfter + fenceMargin)},
		{"exclusive, a previous leader's acks may run later: from then", failoverPolicy{exclusive: true}, leaseFrom(live, t0.Add(4*time.Second)), t0.Add(4*time.Second + defaultFence + fenceMargin)},
	}
	for _, c := range cases {
		if got := evictAt(c.f, c.live); !got.Equal(c.want) {
			t.Errorf("%s: want eviction at +%s; got +%s", c.name, c.want.Sub(t0), got.Sub(t0))
		}
	}
}

func withFence(l LiveHealth, d time.Duration) LiveHealth { l.FenceAfter = d; return l }

func leaseFrom(l LiveHealth, t time.Time) LiveHealth { l.LeaseFrom = t; return l }

func unheard(l LiveHealth) LiveHealth { l.Heard = false; return l }

func TestFailoverOfDefaultsAndZeroGrace(t *testing.T) {
	w := &api.Workload{}
	if f := failoverOf(w); f.grace != defaultGrace || f.exclusive || f.graceful {
		t.Errorf("want defaults (grace %s, stateless, immediate); got %+v", defaultGrace, f)
	}
	w.Spec.Failover = &api.FailoverPolicy{GracePeriod: "0s", Mode: "exclusive", Purge: "graceful"}
	if f := failoverOf(w); f.grace != 0 || !f.exclusive || !f.graceful {
		t.Errorf("want an explicit 0s grace, exclusive and graceful; got %+v", f)
	}
}

// lc is a cluster the monitor knows, with its health since `since`.
func lc(name, health string, seen, since time.Time, taints ...api.Taint) liveCluster {
	c := liveCluster{known: true, live: LiveHealth{Seen: seen, Since: since, Heard: true, Health: health}}
	c.Metadata.Name = name
	c.Metadata.Labels = map[string]string{api.LabelRegion: name}
	c.Spec.Taints = taints
	return c
}

func TestSnapshotGraceAndFailover(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clusters := []liveCluster{
		lc("a", api.HealthReady, t0.Add(10*time.Second), t0),
		lc("b", api.HealthUnreachable, t0, t0.Add(2*time.Second)),
		lc("c", api.HealthReady, t0.Add(10*time.Second), t0),
	}
	w := &api.Workload{Spec: api.WorkloadSpec{Replicas: 6, Failover: &api.FailoverPolicy{GracePeriod: "5s"}}}
	current := map[string]int32{"a": 2, "b": 2, "c": 2}

	// Within the grace: b keeps its 2, nothing moves, a pass is due when
	// the grace ends.
	snap, next := snapshot(clusters, w, t0.Add(4*time.Second))
	if !next.Equal(t0.Add(7 * time.Second)) {
		t.Errorf("want the next pass when b's grace ends (+7s); got %v", next.Sub(t0))
	}
	d := placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	if !maps.Equal(d.Assignment, current) {
		t.Errorf("want nothing moved within the grace; got %v (%v)", d.Assignment, d.Filtered)
	}
	if !strings.HasPrefix(d.Filtered["b"], "Unreachable; failover at") || len(lostClusters(d, current)) != 0 {
		t.Errorf("want b filtered as within its grace and nothing lost; got %q, lost %v", d.Filtered["b"], lostClusters(d, current))
	}

	// After it: b's replicas go to a and c, and that is a failover.
	snap, next = snapshot(clusters, w, t0.Add(7*time.Second))
	d = placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	if !next.IsZero() || d.Assignment["b"] != 0 || d.Assignment["a"]+d.Assignment["c"] != 6 {
		t.Errorf("want b's replicas re-placed on a and c once the grace ran out; got %v (next %v)", d.Assignment, next)
	}
	if lost := lostClusters(d, current); !maps.Equal(lost, map[string]int32{"b": 2}) {
		t.Errorf("want 2 replicas lost off b; got %v", lost)
	}
	if txt := failoverText(lostClusters(d, current), d); !strings.Contains(txt, "2 off b (Unreachable)") {
		t.Errorf("want the event to say 2 moved off b because it is Unreachable; got %q", txt)
	}

	// Exclusive: confined to one cluster, and kept on b until the fence.
	w.Spec.Failover.Mode = "exclusive"
	w.Spec.Replicas = 1
	snap, _ = snapshot(clusters, w, t0.Add(4*time.Second))
	d = placement.Decide(placement.Input{Replicas: 1, Policy: placementPolicy(w), Clusters: snap, Current: map[string]int32{"b": 1}})
	if !maps.Equal(d.Assignment, map[string]int32{"b": 1}) {
		t.Errorf("want the exclusive replica left on b before the fence runs out; got %v", d.Assignment)
	}
	snap, _ = snapshot(clusters, w, t0.Add(7*time.Second))
	d = placement.Decide(placement.Input{Replicas: 1, Policy: placementPolicy(w), Clusters: snap, Current: map[string]int32{"b": 1}})
	if len(d.Assignment) != 1 || d.Assignment["b"] != 0 {
		t.Errorf("want the exclusive replica on exactly one other cluster after the fence; got %v", d.Assignment)
	}
	w.Spec.Replicas = 3
	snap, _ = snapshot(clusters[:1], w, t0.Add(7*time.Second))
	snap2, _ := snapshot(clusters, w, t0.Add(7*time.Second))
	d = placement.Decide(placement.Input{Replicas: 3, Policy: placementPolicy(w), Clusters: append(snap, snap2[2])})
	if len(d.Assignment) != 1 {
		t.Errorf("want an exclusive workload's 3 replicas in one cluster; got %v", d.Assignment)
	}
}

func TestPurgeGracefully(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	drill := api.Taint{Key: api.DrillTaintKey, Value: "d1", Effect: "NoExecute"}
	clusters := []liveCluster{lc("a", api.HealthReady, t0, t0, drill), lc("b", api.HealthReady, t0, t0), lc("c", api.HealthReady, t0, t0)}
	w := &api.Workload{Spec: api.WorkloadSpec{Replicas: 6}}
	w.Metadata.Generation = 1
	current := map[string]int32{"a": 2, "b": 2, "c": 2}
	snap, _ := snapshot(clusters, w, t0)
	d := placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	if d.Assignment["a"] != 0 {
		t.Fatalf("want the NoExecute taint to take a's replicas; got %v", d.Assignment)
	}
	// The replacements are not ready: a keeps its 2.
	w.Status.Clusters = []api.ClusterReplicas{{Cluster: "b", Generation: 1, Ready: 2}, {Cluster: "c", Generation: 1, Ready: 3}}
	kept := purgeGracefully(w, &d, current, clusters)
	if len(kept) != 1 || d.Assignment["a"] != 2 {
		t.Errorf("want a's 2 replicas kept until b and c run 6; got kept %v, %v", kept, d.Assignment)
	}
	// They are: purge.
	d = placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	w.Status.Clusters = []api.ClusterReplicas{{Cluster: "b", Generation: 1, Ready: 3}, {Cluster: "c", Generation: 1, Ready: 3}}
	if kept := purgeGracefully(w, &d, current, clusters); len(kept) != 0 || d.Assignment["a"] != 0 {
		t.Errorf("want a purged once 6 run elsewhere; got kept %v, %v", kept, d.Assignment)
	}
	// An exclusive workload never keeps its old copy.
	d = placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	w.Status.Clusters = nil
	w.Spec.Failover = &api.FailoverPolicy{Mode: "exclusive"}
	if kept := purgeGracefully(w, &d, current, clusters); len(kept) != 0 {
		t.Errorf("want no graceful purge for an exclusive workload; kept %v", kept)
	}
	w.Spec.Failover = nil
	// An ordinary NoExecute taint with purge immediate does not wait.
	clusters[0].Spec.Taints = []api.Taint{{Key: "maintenance", Effect: "NoExecute"}}
	snap, _ = snapshot(clusters, w, t0)
	d = placement.Decide(placement.Input{Replicas: 6, Clusters: snap, Current: current})
	w.Status.Clusters = nil
	if kept := purgeGracefully(w, &d, current, clusters); len(kept) != 0 {
		t.Errorf("want purge immediate for a plain NoExecute taint; kept %v", kept)
	}
}

func TestFailback(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &Placer{buckets: map[string]*failbackBucket{}, now: func() time.Time { return t0 }}
	t.Cleanup(p.Stop)
	clusters := []liveCluster{
		lc("a", api.HealthReady, t0, t0), // back, Ready since t0
		lc("b", api.HealthReady, t0, t0.Add(-time.Hour)),
		lc("c", api.HealthReady, t0, t0.Add(-time.Hour)),
	}
	w := &api.Workload{Spec: api.WorkloadSpec{Replicas: 6, Failover: &api.FailoverPolicy{StabilizationWindow: "30s"}}}
	w.Metadata.Name = "web"
	var decided map[string]int32 // what the last decision started from
	decide := func(now time.Time, current map[string]int32) placement.Decision {
		snap, _ := snapshot(clusters, w, now)
		decided = current
		return placement.Decide(placement.Input{Replicas: 6, Policy: placementPolicy(w), Clusters: snap, Current: current})
	}
	current := map[string]int32{"b": 3, "c": 3}
	prev := map[string]int32{"a": 2}

	// Within the window: nothing moves, the record stays.
	d := decide(t0.Add(10*time.Second), current)
	snap, _ := snapshot(clusters, w, t0.Add(10*time.Second))
	from, back := p.failback(w, &d, decided, prev, nil, snap, clusters, t0.Add(10*time.Second))
	if len(back) != 0 || !maps.Equal(from, prev) || !maps.Equal(d.Assignment, current) {
		t.Errorf("want nothing moved back within the window; got back %v, from %v, %v", back, from, d.Assignment)
	}
	// After it: a gets its share back (2 of 6), taken from b and c.
	d = decide(t0.Add(31*time.Second), current)
	from, back = p.failback(w, &d, decided, prev, nil, snap, clusters, t0.Add(31*time.Second))
	if !maps.Equal(back, map[string]int32{"a": 2}) || len(from) != 0 || d.Assignment["a"] != 2 || d.Assignment["b"]+d.Assignment["c"] != 4 {
		t.Errorf("want 2 back to a and the record cleared; got back %v, from %v, %v", back, from, d.Assignment)
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
	if _, back = p.failback(w, &d, decided, nil, nil, snap, clusters, t0.Add(32*time.Second)); len(back) != 0 {
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
			clusters[0].live.Health = health
		}
		snap, _ := snapshot(clusters, w, t0.Add(32*time.Second))
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
	snap, _ = snapshot(clusters, w, t0.Add(34*time.Second))
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
	from, back = p.failback(w, &d, decided, prev, nil, snap, clusters, t0.Add(31*time.Second))
	if !maps.Equal(back, map[string]int32{"a": 1}) || from["a"] != 1 {
		t.Errorf("want 1 back to a at 1/minute, 1 left to move; got back %v, from %v", back, from)
	}
	current = maps.Clone(d.Assignment)
	d = decide(t0.Add(40*time.Second), current)
	if _, back = p.failback(w, &d, decided, from, nil, snap, clusters, t0.Add(40*time.Second)); len(back) != 0 {
		t.Errorf("want nothing more within the minute; got %v", back)
	}
	d = decide(t0.Add(92*time.Second), current)
	if from, back = p.failback(w, &d, decided, from, nil, snap, clusters, t0.Add(92*time.Second)); !maps.Equal(back, map[string]int32{"a": 1}) || len(from) != 0 {
		t.Errorf("want the second replica back a minute later and the record cleared; got back %v, from %v", back, from)
	}
	// Exclusive: it stays where it runs; the record ends after the window.
	w.Spec.Failover.Mode = "exclusive"
	d = decide(t0.Add(31*time.Second), map[string]int32{"b": 6})
	if from, back = p.failback(w, &d, decided, prev, nil, snap, clusters, t0.Add(31*time.Second)); len(back) != 0 || len(from) != 0 {
		t.Errorf("want an exclusive workload left where it runs and its record cleared after the window; got back %v, from %v", back, from)
	}
	w.Spec.Failover.Mode = ""
	// Manual: the record is kept, nothing moves.
	w.Spec.Failover.Failback = "manual"
	d = decide(t0.Add(31*time.Second), map[string]int32{"b": 3, "c": 3})
	if from, back = p.failback(w, &d, decided, prev, nil, snap, clusters, t0.Add(31*time.Second)); len(back) != 0 || from["a"] != 2 {
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
	snap, _ = snapshot(clusters, w, t0.Add(10*time.Second))
	d = decide(t0.Add(10*time.Second), spreadCur)
	if d.Assignment["a"] == 0 {
		t.Fatalf("the test needs a decision that spreads onto a at once; got %v", d.Assignment)
	}
	from, back = p.failback(w, &d, decided, prev, nil, snap, clusters, t0.Add(10*time.Second))
	if len(back) != 0 || !maps.Equal(d.Assignment, spreadCur) || !maps.Equal(from, prev) {
		t.Errorf("want the spread's move back held within the window; got back %v, from %v, %v", back, from, d.Assignment)
	}
	if !slices.ContainsFunc(d.Explanation, func(e string) bool { return strings.Contains(e, "stay where they run until a takes them back") }) {
		t.Errorf("want the hold explained; got %q", d.Explanation)
	}
	// Replicas that ran nowhere may still go to a: capacity only grows.
	d = decide(t0.Add(10*time.Second), map[string]int32{"b": 3, "c": 2})
	if _, _ = p.failback(w, &d, decided, prev, nil, snap, clusters, t0.Add(10*time.Second)); d.Assignment["a"] != 1 || d.Assignment["b"]+d.Assignment["c"] != 5 {
		t.Errorf("want the unplaced sixth replica on a, nothing taken from b or c; got %v", d.Assignment)
	}
	// After the window they move back, as a failback: recorded, and
	// within the rate (one a minute here).
	d = decide(t0.Add(31*time.Second), spreadCur)
	if from, back = p.failback(w, &d, decided, prev, nil, snap, clusters, t0.Add(31*time.Second)); back["a"] != 2 || len(from) != 0 || d.Assignment["a"] != 2 {
		t.Errorf("want 2 moved back to a after the window, the record cleared; got back %v, from %v, %v", back, from, d.Assignment)
	}
	w.Spec.Failover.FailbackRate = 1
	delete(p.buckets, "web")
	d = decide(t0.Add(31*time.Second), spreadCur)
	if from, back = p.failback(w, &d, decided, prev, nil, snap, clusters, t0.Add(31*time.Second)); back["a"] != 1 || from["a"] != 1 || d.Assignment["a"] != 1 {
		t.Errorf("want 1 moved back at 1/minute, though the spread wants more; got back %v, from %v, %v", back, from, d.Assignment)
	}
}

// TestPassDoesNotPileOnOneCluster: ten workloads lose their cluster in
// one pass; the survivor with room for 5 replicas gets 5, not one per
// workload, because each decision takes its room off the ledger.
func TestPassDoesNotPileOnOneCluster(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &Placer{buckets: map[string]*failbackBucket{}, purging: map[string]bool{}, now: func() time.Time { return t0.Add(time.Minute) }}
	t.Cleanup(p.Stop)
	small := lc("b", api.HealthReady, t0.Add(time.Minute), t0)
	small.live.Capacity = protocol.Capacity{CPUAllocatable: 5000, MemoryAllocatable: 64 << 30}
	big := lc("c", api.HealthReady, t0.Add(time.Minute), t0)
	big.live.Capacity = protocol.Capacity{CPUAllocatable: 100000, MemoryAllocatable: 64 << 30}
	view := []liveCluster{lc("a", api.HealthUnreachable, t0, t0), small, big}
	ledger := newCapacityLedger(view)
	onB := int32(0)
	for i := range 10 {
		w := api.Workload{Spec: api.WorkloadSpec{Replicas: 2, Template: api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "1"}},
			Failover: &api.FailoverPolicy{GracePeriod: "0s"}}}
		w.Metadata.Name, w.Metadata.Generation = fmt.Sprintf("w%d", i), 1
		ch := p.decide(w, view, []pgstore.Placement{{Workload: w.Metadata.Name, Cluster: "a", Replicas: 2, Generation: 1}}, t0.Add(time.Minute), ledger)
		if ch == nil || ch.decision.Assignment["a"] != 0 {
			t.Fatalf("want %s moved off the lost cluster a; got %+v", w.Metadata.Name, ch)
		}
		onB += ch.decision.Assignment["b"]
	}
	if onB != 5 {
		t.Errorf("want b (room for 5) given exactly 5 replicas over the pass; got %d", onB)
	}
}

// TestSamePlacementStatusIgnoresEmptyMaps: a stored status (empty maps
// dropped) and a fresh decision (empty maps) with the same outcome are
// the same, so re-deciding a settled workload writes nothing.
func TestSamePlacementStatusIgnoresEmptyMaps(t *testing.T) {
	stored := &api.PlacementStatus{Epoch: 3, Clusters: map[string]int32{"a": 1}}
	fresh := &api.PlacementStatus{Clusters: map[string]int32{"a": 1}, Filtered: map[string]string{}, FailedOverFrom: map[string]int32{}}
	if !samePlacementStatus(stored, fresh) {
		t.Errorf("want a stored status and a fresh decision with the same outcome judged the same")
	}
	fresh.Filtered["b"] = "cordoned"
	if samePlacementStatus(stored, fresh) {
		t.Errorf("want a new filter reason judged a change")
	}
}

// TestSequenceExclusive: an exclusive workload drained off a reachable
// cluster starts elsewhere only once that cluster reports, at the epoch
// that took it away, that no copy is present any more.
func TestSequenceExclusive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	drain := api.Taint{Key: api.DrainTaintKey, Effect: "NoExecute"}
	clusters := []liveCluster{lc("a", api.HealthReady, t0, t0, drain), lc("b", api.HealthReady, t0, t0)}
	w := &api.Workload{Spec: api.WorkloadSpec{Replicas: 1, Failover: &api.FailoverPolicy{Mode: "exclusive"}}}
	decide := func(current map[string]int32) placement.Decision {
		snap, _ := snapshot(clusters, w, t0)
		return placement.Decide(placement.Input{Replicas: 1, Policy: placementPolicy(w), Clusters: snap, Current: current})
	}
	// First pass: a is told to stop; b gets nothing yet.
	d := decide(map[string]int32{"a": 1})
	have := map[string]pgstore.Placement{"a": {Cluster: "a", Replicas: 1, Epoch: 4}}
	if !sequenceExclusive(w, &d, map[string]int32{"a": 1}, have, clusters, t0) || d.Assignment["b"] != 0 || d.Assignment["a"] != 0 {
		t.Fatalf("want a told to stop and nothing started on b yet; got %v", d.Assignment)
	}
	// a's row is 0 at epoch 5; its report is still of epoch 4, then of
	// epoch 5 with the copy stopping, then gone.
	have["a"] = pgstore.Placement{Cluster: "a", Replicas: 0, Epoch: 5}
	for _, r := range []api.ClusterReplicas{{Cluster: "a", Epoch: 4, Present: 1}, {Cluster: "a", Epoch: 5, Present: 1}} {
		w.Status.Clusters = []api.ClusterReplicas{r}
		d = decide(map[string]int32{})
		if !sequenceExclusive(w, &d, map[string]int32{}, have, clusters, t0) || d.Assignment["b"] != 0 {
			t.Errorf("want b held while a reports %+v; got %v", r, d.Assignment)
		}
	}
	w.Status.Clusters = []api.ClusterReplicas{{Cluster: "a", Epoch: 5, Present: 0}}
	d = decide(map[string]int32{})
	if sequenceExclusive(w, &d, map[string]int32{}, have, clusters, t0) || d.Assignment["b"] != 1 {
		t.Errorf("want b started once a reports no copy at epoch 5; got %v", d.Assignment)
	}
	// A stateless workload is not sequenced.
	w.Spec.Failover = nil
	d = decide(map[string]int32{"a": 1})
	if sequenceExclusive(w, &d, map[string]int32{"a": 1}, have, clusters, t0) {
		t.Errorf("want no sequencing for a stateless workload")
	}
}

// termLeader is a Leadership a test sets to lead in a given term (0: not).
type termLeader struct{ term int64 }

func (l *termLeader) IsLeader() bool                              { return l.term != 0 }
func (l *termLeader) Epoch() int64                                { return l.term }
func (l *termLeader) Changes() <-chan struct{}                    { return nil }
func (l *termLeader) Fence(context.Context, leader.Querier) error { return nil }

// TestLeaseFromFollowsTheTerm: the lease a new leader counts from starts
// at its term's start, as of the first look (no heartbeat or tick needed
// to learn it leads), and again at every new term, even one that follows
// another without this hub ever seeing itself not lead.
func TestLeaseFromFollowsTheTerm(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	lead := &termLeader{}
	m := NewMonitor(nil, nil, func() time.Time { return now }, noop.NewMeterProvider().Meter(""), HealthConfig{})
	m.leader = lead
	m.Add("c")
	wait := LeaderAckGrace + leaderOverlap
	if l, _ := m.Live("c"); !l.LeaseFrom.Equal(l.Seen) {
		t.Errorf("a follower: want the lease counted from the last heartbeat; got %+v", l)
	}
	now, lead.term = t0.Add(time.Minute), 7
	if l, _ := m.Live("c"); !l.LeaseFrom.Equal(now.Add(wait)) {
		t.Errorf("first look as leader (term 7): want the lease counted from %s on; got %s", wait, l.LeaseFrom.Sub(now))
	}
	now = t0.Add(2 * time.Minute)
	if l, _ := m.Live("c"); !l.LeaseFrom.Equal(t0.Add(time.Minute + wait)) {
		t.Errorf("later in term 7: want the term's start kept; got %s", l.LeaseFrom.Sub(t0))
	}
	now, lead.term = t0.Add(3*time.Minute), 9 // term 9, with no look at term 7's end
	if l, _ := m.Live("c"); !l.LeaseFrom.Equal(now.Add(wait)) {
		t.Errorf("term 9: want the lease counted from its start plus %s; got %s", wait, l.LeaseFrom.Sub(now))
	}
	// A sole hub (no election) never follows another leader: nothing to
	// wait out.
	sole := NewMonitor(nil, nil, func() time.Time { return now }, noop.NewMeterProvider().Meter(""), HealthConfig{})
	sole.leader = term{Leadership: soleHub{}}
	sole.Add("c")
	if l, _ := sole.Live("c"); !l.LeaseFrom.Equal(l.Seen) {
		t.Errorf("a sole hub: want the lease counted from the last heartbeat; got %+v", l)
	}
	// A hub that stopped leading acks for the grace, counted from when it
	// last saw itself lead.
	if !m.mayAck(now) {
		t.Error("want a leader to ack")
	}
	lead.term = 0
	if !m.mayAck(now.Add(LeaderAckGrace - time.Millisecond)) {
		t.Error("want acks within the grace after stepping down")
	}
	if m.mayAck(now.Add(LeaderAckGrace)) {
		t.Error("want no acks once the grace has passed")
	}
}

func total(m map[string]int32) (n int32) {
	for _, v := range m {
		n += v
	}
	return n
}
