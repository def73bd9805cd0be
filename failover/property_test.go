package failover

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/placement"
	"github.com/atollhq/atoll/protocol"
)

var (
	clusterNames = []string{"a", "b", "c", "d"}
	regions      = []string{"eu", "us", "ap"}
	healthGen    = rapid.SampledFrom([]string{api.HealthReady, api.HealthReady, api.HealthReady, api.HealthSuspect, api.HealthUnreachable, api.HealthUnreachable, api.HealthUnknown})
	taintGen     = rapid.SampledFrom([][]api.Taint{
		nil, nil, nil, nil,
		{{Key: api.DrainTaintKey, Effect: "NoExecute"}},
		{{Key: api.DrillTaintKey, Value: "d1", Effect: "NoExecute"}},
		{{Key: "maintenance", Effect: "NoExecute"}},
		{{Key: "maintenance", Effect: "NoSchedule"}},
	})
	secs = func(lo, hi int) *rapid.Generator[time.Duration] {
		return rapid.Custom(func(t *rapid.T) time.Duration {
			return time.Duration(rapid.IntRange(lo, hi).Draw(t, "s")) * time.Second
		})
	}
)

// genFleet draws one to four clusters, named a to d, seen from now: some
// unhealthy, tainted, cordoned, being deleted or unknown to the monitor,
// some with a bounded capacity (never over-allocated to start with).
func genFleet(t *rapid.T, now time.Time) []Cluster {
	n := rapid.IntRange(1, len(clusterNames)).Draw(t, "clusters")
	fleet := make([]Cluster, n)
	for i := range fleet {
		c := Cluster{Known: rapid.IntRange(0, 9).Draw(t, "unknown") > 0}
		c.Metadata.Name = clusterNames[i]
		c.Metadata.Labels = map[string]string{api.LabelRegion: rapid.SampledFrom(regions).Draw(t, "region")}
		c.Status.Health = healthGen.Draw(t, "storedHealth")
		c.Spec.Taints = taintGen.Draw(t, "taints")
		c.Spec.Unschedulable = rapid.IntRange(0, 9).Draw(t, "cordoned") == 0
		if rapid.IntRange(0, 14).Draw(t, "deleting") == 0 {
			at := now.Add(-time.Second)
			c.Metadata.DeletionTimestamp = &at
		}
		seen := now.Add(-secs(0, 60).Draw(t, "seenAgo"))
		c.Live = Live{
			Seen:       seen,
			Heard:      rapid.IntRange(0, 4).Draw(t, "unheard") > 0,
			Health:     healthGen.Draw(t, "health"),
			Since:      now.Add(-secs(0, 90).Draw(t, "sinceAgo")),
			FenceAfter: rapid.SampledFrom([]time.Duration{0, 3 * time.Second, 10 * time.Second}).Draw(t, "fence"),
		}
		if rapid.IntRange(0, 3).Draw(t, "hasLease") == 0 {
			c.Live.LeaseFrom = seen.Add(secs(-10, 20).Draw(t, "leaseFrom"))
		}
		if rapid.Bool().Draw(t, "bounded") {
			cpu := int64(rapid.SampledFrom([]int{0, 500, 1000, 2500, 8000}).Draw(t, "cpu"))
			mem := int64(rapid.SampledFrom([]int{0, 1 << 30, 4 << 30, 64 << 30}).Draw(t, "mem"))
			c.Live.Capacity = protocol.Capacity{CPUAllocatable: cpu, CPUAllocated: int64(rapid.IntRange(0, int(cpu)).Draw(t, "cpuUsed")),
				MemoryAllocatable: mem, MemoryAllocated: int64(rapid.IntRange(0, int(mem>>20)).Draw(t, "memUsedMi")) << 20}
		} else {
			c.Live.Capacity = protocol.Capacity{CPUAllocatable: 1 << 40, MemoryAllocatable: 1 << 50}
		}
		fleet[i] = c
	}
	return fleet
}

// counts draws replicas on some of the clusters named (and on a
// deregistered one, z).
func counts(t *rapid.T, label string, most int) map[string]int32 {
	out := map[string]int32{}
	for _, name := range append(clusterNames, "z") {
		if rapid.IntRange(0, 2).Draw(t, label+"On") == 0 {
			out[name] = int32(rapid.IntRange(1, most).Draw(t, label))
		}
	}
	return out
}

// genWorkload draws a Divided workload with a failover policy, the
// members' reports and a failover record.
func genWorkload(t *rapid.T, name string) *api.Workload {
	w := &api.Workload{Spec: api.WorkloadSpec{Replicas: int32(rapid.IntRange(0, 8).Draw(t, "replicas"))}}
	w.Metadata.Name = name
	w.Metadata.Generation = int64(rapid.IntRange(1, 2).Draw(t, "generation"))
	w.Spec.Template.Resources.CPU = rapid.SampledFrom([]string{"", "", "500m", "1"}).Draw(t, "cpuRequest")
	w.Spec.Template.Resources.Memory = rapid.SampledFrom([]string{"", "", "1Gi"}).Draw(t, "memRequest")
	if rapid.IntRange(0, 4).Draw(t, "hasFailover") > 0 {
		w.Spec.Failover = &api.FailoverPolicy{
			GracePeriod:         api.Duration(rapid.SampledFrom([]string{"", "0s", "5s", "30s"}).Draw(t, "grace")),
			Mode:                rapid.SampledFrom([]string{"", "stateless", "exclusive"}).Draw(t, "mode"),
			Purge:               rapid.SampledFrom([]string{"", "immediate", "graceful"}).Draw(t, "purge"),
			Failback:            rapid.SampledFrom([]string{"", "auto", "manual"}).Draw(t, "failback"),
			StabilizationWindow: api.Duration(rapid.SampledFrom([]string{"", "0s", "30s"}).Draw(t, "window")),
			FailbackRate:        int32(rapid.IntRange(0, 2).Draw(t, "rate")),
			Rebalance:           rapid.SampledFrom([]string{"", "manual", "auto"}).Draw(t, "rebalance"),
		}
	}
	if rapid.IntRange(0, 3).Draw(t, "hasSpread") == 0 {
		s := api.SpreadConstraint{TopologyKey: api.LabelRegion, MinGroups: int32(rapid.IntRange(0, 3).Draw(t, "minGroups"))}
		if rapid.Bool().Draw(t, "hasMax") {
			s.MaxGroups = max(s.MinGroups, 1)
		}
		w.Spec.Placement = &api.PlacementPolicy{Spread: []api.SpreadConstraint{s}}
	}
	for _, c := range clusterNames {
		if rapid.Bool().Draw(t, "reports") {
			w.Status.Clusters = append(w.Status.Clusters, api.ClusterReplicas{Cluster: c,
				Epoch:      int64(rapid.IntRange(0, 6).Draw(t, "reportEpoch")),
				Generation: int64(rapid.IntRange(1, 2).Draw(t, "reportGeneration")),
				Ready:      int32(rapid.IntRange(0, 4).Draw(t, "ready")),
				Present:    int32(rapid.IntRange(0, 4).Draw(t, "present"))})
		}
	}
	if rapid.Bool().Draw(t, "hasRecord") {
		w.Status.Placement = &api.PlacementStatus{FailedOverFrom: counts(t, "failedOver", 4), FailingBack: counts(t, "failingBack", 4)}
	}
	switch rapid.IntRange(0, 3).Draw(t, "budget") {
	case 1:
		w.Spec.DisruptionBudget = &api.DisruptionBudget{MinAvailable: api.IntOrPercentOf(rapid.SampledFrom([]string{"0", "1", "3", "50%", "100%"}).Draw(t, "minAvailable"))}
	case 2:
		w.Spec.DisruptionBudget = &api.DisruptionBudget{MaxUnavailable: api.IntOrPercentOf(rapid.SampledFrom([]string{"0", "1", "2", "25%"}).Draw(t, "maxUnavailable"))}
	}
	return w
}

// genInput draws one workload's decision input over a fleet.
func genInput(t *rapid.T, fleet []Cluster, now time.Time, name string) Input {
	in := Input{Workload: genWorkload(t, name), Clusters: fleet, Current: counts(t, "current", 5), Now: now,
		RebalanceAsked: rapid.IntRange(0, 3).Draw(t, "rebalanceAsked") == 0}
	if rapid.Bool().Draw(t, "hasEpochs") {
		// Every cluster has a row: the ones in Current, rows of 0 replicas
		// (listed with 0) and tombstones (left out).
		in.Epochs = map[string]int64{}
		for _, c := range clusterNames {
			in.Epochs[c] = int64(rapid.IntRange(0, 6).Draw(t, "epoch"))
			if _, ok := in.Current[c]; !ok && rapid.Bool().Draw(t, "zeroRow") {
				in.Current[c] = 0
			}
		}
	}
	if rapid.Bool().Draw(t, "hasBucket") {
		in.Bucket = &Bucket{Tokens: float64(rapid.IntRange(0, 4).Draw(t, "halfTokens")) / 2, At: now.Add(-secs(0, 120).Draw(t, "bucketAgo"))}
	}
	return in
}

func draw(t *rapid.T) Input {
	now := t0.Add(time.Hour)
	return genInput(t, genFleet(t, now), now, "web")
}

// takesNew says whether placement may give the cluster new replicas of
// the workload at all: known to the hub as Ready (stored health when the
// monitor does not know it), not cordoned, not being deleted, no taint
// against it (the generated workloads tolerate none).
func takesNew(c Cluster) bool {
	health := c.Status.Health
	if c.Known {
		health = c.Live.Health
	}
	return health == api.HealthReady && !c.Spec.Unschedulable && c.Metadata.DeletionTimestamp == nil &&
		!slices.ContainsFunc(c.Spec.Taints, func(t api.Taint) bool { return t.Effect == "NoSchedule" || t.Effect == "NoExecute" })
}

// evacuating says whether graceful purge may keep the workload's replicas
// on the cluster: Ready, evacuated by a NoExecute taint that drains
// gracefully (any, for purge: graceful, or when the workload has a
// disruption budget), the workload not exclusive.
func evacuating(w *api.Workload, c Cluster) bool {
	f := PolicyOf(w)
	return !f.Exclusive && c.Ready() && c.Metadata.DeletionTimestamp == nil && slices.ContainsFunc(c.Spec.Taints, func(t api.Taint) bool {
		return t.Effect == "NoExecute" && (f.Graceful || w.Spec.DisruptionBudget != nil || t.Key == api.DrainTaintKey || t.Key == api.DrillTaintKey)
	})
}

// TestPropertyBudgetHonoured: an evacuation by NoExecute taints takes away
// at once only what a workload's disruption budget allows. What stays
// available after graceful purge (the replicas ready elsewhere, and those
// kept on the evacuating clusters) is at least the budget's floor, or, when
// not even keeping every replica there reaches it, everything there is
// kept; and nothing is kept beyond what a cluster runs.
func TestPropertyBudgetHonoured(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := draw(t)
		w := in.Workload
		if w.Spec.DisruptionBudget == nil || PolicyOf(w).Exclusive {
			t.Skip("no budget, or exclusive (moves at once)")
		}
		snap, _ := Snapshot(in.Clusters, w, in.Now)
		d := placement.Decide(placement.Input{Workload: w.Metadata.Name, Replicas: w.Spec.Replicas, Policy: PlacementPolicy(w), Clusters: snap, Current: in.Current})
		before := maps.Clone(d.Assignment)
		evac := map[string]bool{}
		for _, c := range in.Clusters {
			if n := c.Metadata.Name; c.Ready() && d.Evicted[n] == placement.ReasonTainted && in.Current[n] > before[n] {
				evac[n] = true
			}
		}
		PurgeGracefully(w, &d, in.Current, in.Clusters)
		_, available := readyOutside(w, &d, evac)
		most := available // available if every evacuating replica stayed
		for c := range evac {
			available += d.Assignment[c]
			most += in.Current[c]
			if d.Assignment[c] > in.Current[c] {
				t.Fatalf("%s keeps %d, more than the %d it runs", c, d.Assignment[c], in.Current[c])
			}
		}
		desired := w.Spec.Replicas
		if w.Spec.Placement != nil && w.Spec.Placement.ReplicaMode == placement.ModeDuplicated {
			desired = total(in.Current)
		}
		if floor := w.Spec.DisruptionBudget.Floor(desired); available < min(floor, most) {
			t.Fatalf("budget %s (floor %d of %d): %d available after the decision, %d could have been kept\n%v\n%v",
				w.Spec.DisruptionBudget, floor, desired, available, most, d.Assignment, d.Explanation)
		}
		for c, n := range d.Assignment {
			if !evac[c] && n != before[c] {
				t.Fatalf("purge changed %s (not evacuating) from %d to %d", c, before[c], n)
			}
		}
	})
}

// TestPropertyAssignmentBounds: what a decision assigns is placement's
// split (spec.replicas at most) plus only what the rules keep explicitly:
// graceful purge the replicas of the clusters it evacuates, make-before-
// break no more than the replicas moved back and not ready (FailingBack).
// No cluster is ever assigned a replica that is not a positive count.
func TestPropertyAssignmentBounds(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := draw(t)
		res := Decide(in, NewLedger(in.Clusters))
		w := in.Workload
		limit := int64(w.Spec.Replicas)
		for _, c := range in.Clusters {
			if evacuating(w, c) {
				limit += int64(in.Current[c.Metadata.Name])
				if n := res.Decision.Assignment[c.Metadata.Name]; n > in.Current[c.Metadata.Name] {
					t.Fatalf("evacuated %s went from %d to %d", c.Metadata.Name, in.Current[c.Metadata.Name], n)
				}
			}
		}
		for _, n := range res.FailingBack {
			limit += int64(n)
		}
		if got := int64(total(res.Decision.Assignment)); got > limit {
			t.Fatalf("assigned %d, more than the %d replicas plus what purge and make-before-break keep (%d): %v\n%v",
				got, w.Spec.Replicas, limit, res.Decision.Assignment, res.Decision.Explanation)
		}
		for c, n := range res.Decision.Assignment {
			if n <= 0 {
				t.Fatalf("assignment lists %s with %d", c, n)
			}
		}
		if res.Decision.Unplaced < 0 || int64(res.Decision.Unplaced) > int64(w.Spec.Replicas) {
			t.Fatalf("unplaced %d of %d", res.Decision.Unplaced, w.Spec.Replicas)
		}
	})
}

// TestPropertyAllPlacedWhenNothingIsWrong: every cluster Ready, untainted,
// unbounded, no failover record: the decision places exactly
// spec.replicas (an exclusive workload running on one cluster at most).
func TestPropertyAllPlacedWhenNothingIsWrong(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := draw(t)
		clusters := slices.Clone(in.Clusters)
		for i := range clusters {
			c := &clusters[i]
			c.Known, c.Live.Health, c.Live.Heard = true, api.HealthReady, false
			c.Spec.Taints, c.Spec.Unschedulable, c.Metadata.DeletionTimestamp = nil, false, nil
		}
		in.Clusters = clusters
		in.Workload.Status.Placement = nil
		// A rebalance is a rule at work (its moves surge, make-before-break).
		in.RebalanceAsked = false
		if fp := in.Workload.Spec.Failover; fp != nil {
			fp.Rebalance = ""
		}
		delete(in.Current, "z")
		// Rows of 0 replicas become tombstones: one whose member has not
		// reported its epoch yet would rightly hold an exclusive move.
		maps.DeleteFunc(in.Current, func(_ string, n int32) bool { return n == 0 })
		if PolicyOf(in.Workload).Exclusive {
			// It runs in one cluster, and no other reports a copy.
			in.Workload.Status.Clusters = nil
			if len(in.Current) > 1 {
				k := rapid.SampledFrom(slices.Sorted(maps.Keys(in.Current))).Draw(t, "runsOn")
				in.Current = map[string]int32{k: in.Current[k]}
			}
		}
		for c := range in.Current {
			if !slices.ContainsFunc(clusters, func(x Cluster) bool { return x.Metadata.Name == c }) {
				delete(in.Current, c)
			}
		}
		res := Decide(in, NewLedger(in.Clusters))
		if got := total(res.Decision.Assignment); got != in.Workload.Spec.Replicas || res.Decision.Unplaced != 0 {
			t.Fatalf("want all %d placed; got %d (%d unplaced): %v\n%v", in.Workload.Spec.Replicas, got, res.Decision.Unplaced,
				res.Decision.Assignment, res.Decision.Explanation)
		}
		if len(res.Lost) != 0 || len(res.Back) != 0 || len(res.FailedOverFrom) != 0 || len(res.FailingBack) != 0 || res.Waiting {
			t.Fatalf("want no rule at work; got %+v", res)
		}
	})
}

// TestPropertyNoNewReplicasWhereTheyCannotRun: a cluster that takes
// nothing new (not Ready, cordoned, tainted, being deleted) never holds
// more than it runs; an Unreachable one past its EvictAt (or one the
// monitor does not know, stored Unreachable) holds nothing; a cluster
// being deleted holds nothing.
func TestPropertyNoNewReplicasWhereTheyCannotRun(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := draw(t)
		res := Decide(in, NewLedger(in.Clusters))
		f := PolicyOf(in.Workload)
		for _, c := range in.Clusters {
			name := c.Metadata.Name
			n, cur := res.Decision.Assignment[name], in.Current[name]
			if !takesNew(c) && n > cur {
				t.Fatalf("%s (%+v, taints %v, cordoned %v) went from %d to %d\n%v", name, c.Live, c.Spec.Taints, c.Spec.Unschedulable, cur, n, res.Decision.Explanation)
			}
			lost := c.Known && c.Live.Health == api.HealthUnreachable && !in.Now.Before(EvictAt(f, c.Live)) ||
				!c.Known && c.Status.Health == api.HealthUnreachable
			if lost && n > 0 {
				t.Fatalf("%s Unreachable past its eviction (%v) still holds %d\n%v", name, EvictAt(f, c.Live), n, res.Decision.Explanation)
			}
			if c.Metadata.DeletionTimestamp != nil && n > 0 {
				t.Fatalf("%s being deleted holds %d", name, n)
			}
		}
		if n := res.Decision.Assignment["z"]; n > 0 {
			t.Fatalf("the deregistered z holds %d", n)
		}
	})
}

// TestPropertyExclusiveStopThenStart: an exclusive workload runs in one
// cluster at most, and adds replicas on a cluster only once every cluster
// it leaves can run none any more: past its fence (EvictAt) if the
// monitor has it unhealthy, else told to run none and reported with none
// present at the epoch that took it away. A cluster it leaves runs it,
// reports a copy present, or (watched by the monitor, not being deleted)
// has a row newer than its report: a row of 0 replicas whether or not it
// reported at all, a tombstone only while a report is still there (its
// member drops the workload and reports it no more).
func TestPropertyExclusiveStopThenStart(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := draw(t)
		w := in.Workload
		if w.Spec.Failover == nil {
			w.Spec.Failover = &api.FailoverPolicy{}
		}
		w.Spec.Failover.Mode = "exclusive"
		res := Decide(in, NewLedger(in.Clusters))
		a := res.Decision.Assignment
		if len(a) > 1 {
			t.Fatalf("exclusive in %d clusters: %v\n%v", len(a), a, res.Decision.Explanation)
		}
		var adding []string
		for c, n := range a {
			if n > in.Current[c] {
				adding = append(adding, c)
			}
		}
		if len(adding) == 0 {
			return
		}
		f := PolicyOf(w)
		for _, c := range in.Clusters {
			name := c.Metadata.Name
			var report api.ClusterReplicas
			reported := false
			for _, r := range w.Status.Clusters {
				if r.Cluster == name {
					report, reported = r, true
				}
			}
			epoch, row := in.Epochs[name]
			_, zeroRow := in.Current[name]
			stale := c.Known && c.Metadata.DeletionTimestamp == nil && row && report.Epoch < epoch && (zeroRow || reported)
			if a[name] > 0 || (in.Current[name] == 0 && report.Present == 0 && !stale) {
				continue // keeps its share, or never ran any
			}
			switch {
			case c.Known && c.Live.Health != api.HealthReady:
				if at := EvictAt(f, c.Live); in.Now.Before(at) {
					t.Fatalf("started on %v while %s (%s) is within its fence until %v: %v -> %v", adding, name, c.Live.Health, at, in.Current, a)
				}
			case in.Current[name] > 0:
				t.Fatalf("started on %v while %s is still told to run %d: %v -> %v", adding, name, in.Current[name], in.Current, a)
			default:
				t.Fatalf("started on %v while %s reports %d present at epoch %d (reported %v, placed at %d, row of 0 %v)", adding, name,
					report.Present, report.Epoch, reported, epoch, zeroRow)
			}
		}
		if res.Back != nil || res.FailingBack != nil {
			t.Fatalf("an exclusive workload moved back: back %v, failing back %v", res.Back, res.FailingBack)
		}
	})
}

// TestPropertyExclusiveFirstPlacement: an exclusive workload placed for
// the first time (no rows anywhere, no report of a copy) is never held:
// it gets placement's split at once, however stale other reports are.
func TestPropertyExclusiveFirstPlacement(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := draw(t)
		w := in.Workload
		if w.Spec.Failover == nil {
			w.Spec.Failover = &api.FailoverPolicy{}
		}
		w.Spec.Failover.Mode = "exclusive"
		w.Status.Placement = nil
		for i := range w.Status.Clusters {
			w.Status.Clusters[i].Present = 0
		}
		in.Current, in.Epochs, in.Bucket = map[string]int32{}, nil, nil
		res := Decide(in, NewLedger(in.Clusters))
		if res.Waiting || slices.ContainsFunc(res.Decision.Explanation, func(e string) bool { return strings.HasPrefix(e, "exclusive:") }) {
			t.Fatalf("a first placement held: %v (waiting %v)\n%v", res.Decision.Assignment, res.Waiting, res.Decision.Explanation)
		}
		if got := total(res.Decision.Assignment); got+res.Decision.Unplaced != max(w.Spec.Replicas, 0) {
			t.Fatalf("a first placement places %d and leaves %d unplaced of %d: %v\n%v", got, res.Decision.Unplaced, w.Spec.Replicas,
				res.Decision.Assignment, res.Decision.Explanation)
		}
	})
}

// TestPropertyDeterministicAndPure: the same input decides the same
// result (deep-equal) and uses the same capacity, whatever the order of
// the clusters, and Decide leaves its input as it found it.
func TestPropertyDeterministicAndPure(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := draw(t)
		before := deepCopy(in)
		if !reflect.DeepEqual(before, in) {
			t.Fatalf("the test's deep copy differs from the input")
		}
		l1, l2 := NewLedger(in.Clusters), NewLedger(in.Clusters)
		r1 := Decide(in, l1)
		if !reflect.DeepEqual(before, in) {
			t.Fatalf("Decide changed its input:\nbefore %#v\nafter  %#v", before, in)
		}
		again := deepCopy(before)
		if rapid.Bool().Draw(t, "shuffle") {
			again.Clusters = rapid.Permutation(again.Clusters).Draw(t, "order")
		}
		r2 := Decide(again, l2)
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("same input, different results:\n%#v\n%#v", r1, r2)
		}
		if !maps.Equal(l1, l2) {
			t.Fatalf("same input, different capacity used:\n%v\n%v", l1, l2)
		}
	})
}

// TestPropertyLedgerNeverOvercommits: a pass that decides several
// workloads in turn with one ledger takes exactly what each decision adds
// beyond what runs now, and never takes more of a bounded cluster than it
// has free: the split, and what failback moves back, are bounded by the
// room the ledger leaves (failback once used a returned cluster's room a
// second time: TestFailbackRespectsRoom).
func TestPropertyLedgerNeverOvercommits(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		now := t0.Add(time.Hour)
		fleet := genFleet(t, now)
		ledger := NewLedger(fleet)
		over := func(used, total int64) int64 { return max(used-total, 0) }
		for i := range rapid.IntRange(1, 4).Draw(t, "workloads") {
			in := genInput(t, fleet, now, fmt.Sprintf("w%d", i))
			before := maps.Clone(ledger)
			res := Decide(in, ledger)
			name := in.Workload.Metadata.Name
			cpu, mem := Requests(in.Workload.Spec.Template)
			if !slices.Equal(slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(ledger))) {
				t.Fatalf("%s: the ledger's clusters changed: %v -> %v", name, before, ledger)
			}
			for c, capa := range ledger {
				was := before[c]
				add := int64(max(res.Decision.Assignment[c]-in.Current[c], 0))
				if want := was.CPUAllocated + add*cpu; capa.CPUAllocated != want {
					t.Fatalf("%s: %s took %dm of CPU, want %dm (%d added)", name, c, capa.CPUAllocated-was.CPUAllocated, want-was.CPUAllocated, add)
				}
				if want := was.MemoryAllocated + add*mem; capa.MemoryAllocated != want {
					t.Fatalf("%s: %s took %d bytes of memory, want %d", name, c, capa.MemoryAllocated-was.MemoryAllocated, want-was.MemoryAllocated)
				}
				if capa.CPUAllocatable != was.CPUAllocatable || capa.MemoryAllocatable != was.MemoryAllocatable {
					t.Fatalf("%s: %s's allocatable changed: %+v -> %+v", name, c, was, capa)
				}
				if over(capa.CPUAllocated, capa.CPUAllocatable) > over(was.CPUAllocated, was.CPUAllocatable) ||
					over(capa.MemoryAllocated, capa.MemoryAllocatable) > over(was.MemoryAllocated, was.MemoryAllocatable) {
					t.Fatalf("%s overcommitted by %s (%d moved back): %+v (was %+v); %v -> %v\n%v", c, name, res.Back[c], capa, was,
						in.Current, res.Decision.Assignment, res.Decision.Explanation)
				}
			}
		}
	})
}

// deepCopy copies v with nothing shared (maps, slices, pointers), so a
// change Decide made to its input would show against the copy.
func deepCopy[T any](v T) T {
	return copyValue(reflect.ValueOf(v)).Interface().(T)
}

func copyValue(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			p := reflect.New(v.Type().Elem())
			p.Elem().Set(copyValue(v.Elem()))
			out.Set(p)
		}
	case reflect.Map:
		if !v.IsNil() {
			m := reflect.MakeMapWithSize(v.Type(), v.Len())
			for it := v.MapRange(); it.Next(); {
				m.SetMapIndex(copyValue(it.Key()), copyValue(it.Value()))
			}
			out.Set(m)
		}
	case reflect.Slice:
		if !v.IsNil() {
			s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			for i := range v.Len() {
				s.Index(i).Set(copyValue(v.Index(i)))
			}
			out.Set(s)
		}
	case reflect.Struct:
		out.Set(v) // unexported fields (time.Time's) as they are
		for i := range v.NumField() {
			if out.Field(i).CanSet() {
				out.Field(i).Set(copyValue(v.Field(i)))
			}
		}
	default:
		out.Set(v)
	}
	return out
}
