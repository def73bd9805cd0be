package drill

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/protocol"
)

func TestMeasure(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	web := func() *affectedWorkload {
		return &affectedWorkload{name: "web", desired: 4, before: map[string]int32{"a": 2, "b": 2}, onTargets: 2, outsideBefore: 2}
	}
	dup := func() *affectedWorkload {
		return &affectedWorkload{name: "dup", duplicated: true, before: map[string]int32{"a": 3, "b": 3}, onTargets: 3, outsideBefore: 3}
	}
	ledger := func() *affectedWorkload {
		return &affectedWorkload{name: "ledger", exclusive: true, desired: 1, before: map[string]int32{"a": 1}, onTargets: 1}
	}
	type want struct {
		desired, ready, unavailable       int32
		detected, replaced, recovered, fb bool
		duplicates                        int
	}
	cases := []struct {
		name     string
		affected []*affectedWorkload
		o        observation
		want     want
	}{
		{"before anything happens", []*affectedWorkload{web()}, observation{
			health:     map[string]string{"a": api.HealthReady},
			placements: map[string]map[string]int32{"web": {"a": 2, "b": 2}},
			ready:      map[string]map[string]int32{"web": {"a": 2, "b": 2}},
		}, want{desired: 4, ready: 4}},
		{"target dark, not detected yet", []*affectedWorkload{web()}, observation{
			health:     map[string]string{"a": api.HealthSuspect},
			placements: map[string]map[string]int32{"web": {"a": 2, "b": 2}},
			ready:      map[string]map[string]int32{"web": {"b": 2}},
		}, want{desired: 4, ready: 2, unavailable: 2}},
		{"detected, re-placed, one replacement ready", []*affectedWorkload{web()}, observation{
			health:     map[string]string{"a": api.HealthUnreachable},
			placements: map[string]map[string]int32{"web": {"b": 2, "c": 2}},
			ready:      map[string]map[string]int32{"web": {"b": 2, "c": 1}},
		}, want{desired: 4, ready: 3, unavailable: 1, detected: true, replaced: true}},
		{"recovered", []*affectedWorkload{web()}, observation{
			health:     map[string]string{"a": api.HealthUnreachable},
			placements: map[string]map[string]int32{"web": {"b": 2, "c": 2}},
			ready:      map[string]map[string]int32{"web": {"b": 2, "c": 2}},
		}, want{desired: 4, ready: 4, detected: true, replaced: true, recovered: true}},
		{"not recovered while placed on the target", []*affectedWorkload{web()}, observation{
			health:     map[string]string{"a": api.HealthUnreachable},
			placements: map[string]map[string]int32{"web": {"a": 2, "b": 2, "c": 2}},
			ready:      map[string]map[string]int32{"web": {"b": 2, "c": 2}},
		}, want{desired: 4, ready: 4, detected: true, replaced: true}},
		{"not recovered with replicas unplaced", []*affectedWorkload{web()}, observation{
			health:     map[string]string{"a": api.HealthUnreachable},
			placements: map[string]map[string]int32{"web": {"b": 2}},
			ready:      map[string]map[string]int32{"web": {"b": 2}},
		}, want{desired: 4, ready: 2, unavailable: 2, detected: true}},
		{"duplicated: recovered once the target's share is dropped", []*affectedWorkload{dup()}, observation{
			health:     map[string]string{"a": api.HealthUnreachable},
			placements: map[string]map[string]int32{"dup": {"b": 3}},
			ready:      map[string]map[string]int32{"dup": {"b": 3}},
		}, want{desired: 3, ready: 3, detected: true, recovered: true}},
		{"duplicated: the target's share unavailable until dropped", []*affectedWorkload{dup()}, observation{
			health:     map[string]string{"a": api.HealthUnreachable},
			placements: map[string]map[string]int32{"dup": {"a": 3, "b": 3}},
			ready:      map[string]map[string]int32{"dup": {"b": 3}},
		}, want{desired: 6, ready: 3, unavailable: 3, detected: true}},
		{"exclusive ready in two clusters", []*affectedWorkload{ledger()}, observation{
			health:     map[string]string{"a": api.HealthReady},
			placements: map[string]map[string]int32{"ledger": {"b": 1}},
			ready:      map[string]map[string]int32{"ledger": {"a": 1, "b": 1}},
		}, want{desired: 1, ready: 1, replaced: true, recovered: true, duplicates: 1}},
		{"failed back", []*affectedWorkload{web()}, observation{
			health:     map[string]string{"a": api.HealthReady},
			placements: map[string]map[string]int32{"web": {"a": 2, "b": 2}},
			ready:      map[string]map[string]int32{"web": {"a": 2, "b": 2}},
			failedOver: map[string]map[string]int32{},
		}, want{desired: 4, ready: 4, fb: true}},
		{"failback still owed", []*affectedWorkload{web()}, observation{
			health:     map[string]string{"a": api.HealthReady},
			placements: map[string]map[string]int32{"web": {"b": 2, "c": 2}},
			ready:      map[string]map[string]int32{"web": {"b": 2, "c": 2}},
			failedOver: map[string]map[string]int32{"web": {"a": 2}},
		}, want{desired: 4, ready: 4, replaced: true, recovered: true}},
		{"failback placed but not ready yet", []*affectedWorkload{web()}, observation{
			health:     map[string]string{"a": api.HealthReady},
			placements: map[string]map[string]int32{"web": {"a": 2, "b": 2}},
			ready:      map[string]map[string]int32{"web": {"a": 1, "b": 2}},
			failedOver: map[string]map[string]int32{},
		}, want{desired: 4, ready: 3, unavailable: 1}},
	}
	for _, c := range cases {
		c.o.at = t0
		m := measure(c.affected, []string{"a"}, c.o)
		got := want{m.sample.Desired, m.sample.Ready, m.sample.Unavailable, m.detected, m.replaced, m.recovered, m.failedBack, len(m.duplicates)}
		if got != c.want {
			t.Errorf("%s: want %+v, got %+v", c.name, c.want, got)
		}
	}
	// Detection is when the hub declared the last target Unreachable (its
	// event), not when the sample saw it.
	o := observation{at: t0.Add(time.Second), health: map[string]string{"a": api.HealthUnreachable, "b": api.HealthUnreachable},
		noted: map[string]time.Time{"a": t0.Add(300 * time.Millisecond), "b": t0.Add(800 * time.Millisecond)}}
	if m := measure(nil, []string{"a", "b"}, o); !m.detected || !m.detectedAt.Equal(t0.Add(800*time.Millisecond)) {
		t.Errorf("want detection at the later declaration, +800ms; got %v at %s", m.detected, m.detectedAt.Sub(t0))
	}
	o.health["b"] = api.HealthSuspect
	if m := measure(nil, []string{"a", "b"}, o); m.detected {
		t.Error("want no detection while a target is only Suspect")
	}
}

func TestAddSampleBoundsTheSeries(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var samples []api.DrillSample
	samples, added := addSample(samples, api.DrillSample{At: t0, Desired: 4, Ready: 4}, 5*time.Second)
	if !added {
		t.Fatal("the first sample was not added")
	}
	if _, added := addSample(samples, api.DrillSample{At: t0.Add(time.Second), Desired: 4, Ready: 4}, 5*time.Second); added {
		t.Error("a repeat within keepEvery was added")
	}
	for i := 1; i < 3*maxSamples; i++ {
		samples, _ = addSample(samples, api.DrillSample{At: t0.Add(time.Duration(i) * time.Second), Desired: 4, Ready: int32(i % 5)}, 5*time.Second)
	}
	if len(samples) > maxSamples {
		t.Errorf("want at most %d samples, got %d", maxSamples, len(samples))
	}
	if !samples[0].At.Equal(t0) || samples[len(samples)-1].At != t0.Add(time.Duration(3*maxSamples-1)*time.Second) {
		t.Errorf("thinning must keep the first and the latest sample: %v .. %v", samples[0].At, samples[len(samples)-1].At)
	}
	for i := 1; i < len(samples); i++ {
		if !samples[i].At.After(samples[i-1].At) {
			t.Fatalf("samples out of order at %d", i)
		}
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	secs := func(f float64) *float64 { return &f }
	two := int32(2)
	spec := api.DrillSpec{SLO: &api.DrillSLO{MaxRTO: "10s", MaxUnavailableReplicas: &two}}
	cases := []struct {
		name   string
		rep    api.DrillReport
		passed bool
	}{
		{"every SLO met", api.DrillReport{RTOSeconds: secs(9.5), PeakUnavailableReplicas: 2}, true},
		{"RTO too long", api.DrillReport{RTOSeconds: secs(10.5), PeakUnavailableReplicas: 2}, false},
		{"never recovered", api.DrillReport{PeakUnavailableReplicas: 0}, false},
		{"too many unavailable", api.DrillReport{RTOSeconds: secs(1), PeakUnavailableReplicas: 3}, false},
		{"an exclusive duplicate", api.DrillReport{RTOSeconds: secs(1), ExclusiveDuplicates: 1}, false},
		{"interrupted", api.DrillReport{RTOSeconds: secs(1), Interrupted: true}, false},
	}
	for _, c := range cases {
		evaluate(spec, &c.rep)
		if c.rep.Passed != c.passed || len(c.rep.SLOs) != 3 {
			t.Errorf("%s: want passed %v with 3 SLOs; got %v %+v", c.name, c.passed, c.rep.Passed, c.rep.SLOs)
		}
	}
	// No SLOs given: only duplicates are judged.
	rep := api.DrillReport{}
	evaluate(api.DrillSpec{}, &rep)
	if !rep.Passed || len(rep.SLOs) != 1 || rep.SLOs[0].Name != "exclusiveDuplicates" {
		t.Errorf("no SLOs: want passed on exclusiveDuplicates alone; got %+v", rep)
	}
}

func TestReportFromStatus(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := api.DrillStatus{StartedAt: &t0, Plan: &api.DrillPlan{AffectedWorkloads: 2, AffectedReplicas: 5},
		Timeline: []api.DrillEvent{{At: t0, Type: api.DrillEventStarted}, {At: t0.Add(2 * time.Second), Type: api.DrillEventDetected},
			{At: t0.Add(4 * time.Second), Type: api.DrillEventFirstReplacement}, {At: t0.Add(5 * time.Second), Type: api.DrillEventDuplicate}},
		Samples: []api.DrillSample{{Unavailable: 1}, {Unavailable: 3}, {Unavailable: 0}}}
	r := reportFromStatus(st)
	if r.DetectionSeconds == nil || *r.DetectionSeconds != 2 || r.FirstReplacementSeconds == nil || *r.FirstReplacementSeconds != 4 ||
		r.RTOSeconds != nil || r.PeakUnavailableReplicas != 3 || r.ExclusiveDuplicates != 1 || r.AffectedReplicas != 5 {
		t.Errorf("report rebuilt from a stored status: got %+v", r)
	}
}

// TestPlanDrillCapacity: the plan decides workloads one after the other,
// each using the free capacity the ones before it took, so it sees when
// the rest cannot absorb the whole load even if each workload alone fits.
func TestPlanDrillCapacity(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cluster := func(name string, freeCPU int64) failover.Cluster {
		return failover.Cluster{Cluster: api.Cluster{Metadata: api.ObjectMeta{Name: name, Labels: map[string]string{api.LabelRegion: name}}},
			Known: true, Live: failover.Live{Health: api.HealthReady, Heard: true, Seen: now, Since: now.Add(-time.Hour),
				Capacity: protocol.Capacity{CPUAllocatable: freeCPU, MemoryAllocatable: 1 << 40}}}
	}
	view := []failover.Cluster{cluster("a", 10000), cluster("b", 1000)}
	wl := func(name string) api.Workload {
		return api.Workload{Metadata: api.ObjectMeta{Name: name}, Spec: api.WorkloadSpec{Replicas: 2,
			Template: api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "500m"}}}}
	}
	workloads := map[string]api.Workload{"w1": wl("w1"), "w2": wl("w2")}
	current := map[string]map[string]int32{"w1": {"a": 2}, "w2": {"a": 2}}
	// b has room for 2 replicas of 500m: w1 fits, w2 does not.
	plan := planDrill(api.DrillOutage, "d", nil, []string{"a"}, view, workloads, current, now)
	if plan.Absorbed || plan.AffectedWorkloads != 2 || plan.AffectedReplicas != 4 || plan.UnplacedReplicas != 2 {
		t.Fatalf("want 2 of 4 replicas unplaced (b holds only 2); got %+v", plan)
	}
	if plan.Workloads[0].After["b"] != 2 || plan.Workloads[1].Unplaced != 2 {
		t.Errorf("want w1 on b and w2 unplaced; got %+v", plan.Workloads)
	}
	for _, c := range plan.Clusters {
		if c.Cluster == "b" && (c.CPUFreeMillis == nil || *c.CPUFreeMillis != 0 || c.ReplicasAfter != 2) {
			t.Errorf("b after the moves: want 0m free and 2 replicas; got %+v", c)
		}
		if c.Cluster == "a" && (!c.Target || c.ReplicasBefore != 4 || c.ReplicasAfter != 0) {
			t.Errorf("a: want the target, 4 before, 0 after; got %+v", c)
		}
	}
	// With room for both, it is absorbed; an evacuation leaves a workload
	// that tolerates the drill's taint where it is.
	view[1] = cluster("b", 4000)
	tolerant := wl("w2")
	tolerant.Spec.Placement = &api.PlacementPolicy{Tolerations: []api.Toleration{{Key: api.DrillTaintKey, Operator: "Exists"}}}
	workloads["w2"] = tolerant
	plan = planDrill(api.DrillEvacuate, "d", nil, []string{"a"}, view, workloads, current, now)
	if !plan.Absorbed || plan.AffectedWorkloads != 1 || !plan.Workloads[1].Stays || plan.Workloads[1].After["a"] != 2 {
		t.Errorf("evacuation with a tolerant workload: want absorbed, 1 affected, w2 staying on a; got %+v", plan)
	}
	if got := fmt.Sprint(plan.Workloads[0].After); got != "map[b:2]" {
		t.Errorf("w1 after evacuating a: want map[b:2], got %s", got)
	}
	// A workload spread over both regions is placed on b alone during the
	// fault: absorbed, with a note that its spread is not met.
	spread := wl("w1")
	spread.Spec.Placement = &api.PlacementPolicy{Spread: []api.SpreadConstraint{{TopologyKey: api.LabelRegion, MinGroups: 2}}}
	plan = planDrill(api.DrillOutage, "d", nil, []string{"a"}, view, map[string]api.Workload{"w1": spread}, map[string]map[string]int32{"w1": {"a": 1, "b": 1}}, now)
	if !plan.Absorbed || !slices.ContainsFunc(plan.Warnings, func(w api.DrillWarning) bool {
		return w.Type == api.WarnPolicyUnsatisfiable && w.Workload == "w1" && strings.HasPrefix(w.Message, "w1: placed, but its policy cannot hold")
	}) {
		t.Errorf("want the spread that cannot hold during the fault warned of; got absorbed %v, warnings %+v", plan.Absorbed, plan.Warnings)
	}
	if plan = planDrill(api.DrillOutage, "d", nil, []string{"a"}, view, workloads, current, now); slices.ContainsFunc(plan.Warnings, func(w api.DrillWarning) bool { return w.Type == api.WarnPolicyUnsatisfiable }) {
		t.Errorf("want no such warning without a spread; got %+v", plan.Warnings)
	}
	// An exclusive workload moves too: the plan's fault outlasts every
	// lease, however recent the monitor's view of it (LeaseFrom, as
	// Monitor.Live gives it).
	view[0].Live.LeaseFrom = now
	ledger := wl("ledger")
	ledger.Spec.Failover = &api.FailoverPolicy{Mode: "exclusive"}
	plan = planDrill(api.DrillOutage, "d", nil, []string{"a"}, view, map[string]api.Workload{"ledger": ledger}, map[string]map[string]int32{"ledger": {"a": 2}}, now)
	if len(plan.Workloads) != 1 || plan.Workloads[0].After["a"] != 0 || plan.Workloads[0].After["b"] != 2 {
		t.Errorf("want the exclusive workload planned onto b; got %+v", plan.Workloads)
	}
}

// TestEvaluateRequestObjectives: the probe's objectives are judged on
// the requests sent while the fault was in, and a missed one is named.
func TestEvaluateRequestObjectives(t *testing.T) {
	maxFailed, minRatio := int64(2), 0.999
	spec := api.DrillSpec{Probe: &api.DrillProbe{Service: "web", Rate: 10, Through: []string{"r2"}},
		SLO: &api.DrillSLO{MaxFailedRequests: &maxFailed, MinSuccessRatio: &minRatio}}
	cases := []struct {
		name   string
		probe  *api.DrillProbeReport
		missed []string
	}{
		{"none failed", &api.DrillProbeReport{Fault: api.DrillProbeStats{Requests: 1000, Succeeded: 1000, SuccessRatio: 1}}, nil},
		{"one failed", &api.DrillProbeReport{Fault: api.DrillProbeStats{Requests: 1000, Succeeded: 999, Failed: 1, SuccessRatio: 0.999}}, nil},
		{"three failed", &api.DrillProbeReport{Fault: api.DrillProbeStats{Requests: 1000, Succeeded: 997, Failed: 3, SuccessRatio: 0.997}},
			[]string{"maxFailedRequests 3 of 1000 (target 2)", "minSuccessRatio 0.9970 (target 0.9990)"}},
		{"not measured", nil, []string{"maxFailedRequests not measured (target 2)", "minSuccessRatio not measured (target 0.9990)"}},
		{"nothing sent", &api.DrillProbeReport{Fault: api.DrillProbeStats{SuccessRatio: 1}}, []string{"minSuccessRatio no request while the fault was in (target 0.9990)"}},
	}
	for _, c := range cases {
		rep := api.DrillReport{Probe: c.probe}
		evaluate(spec, &rep)
		if fmt.Sprint(rep.Missed) != fmt.Sprint(c.missed) || rep.Passed != (len(c.missed) == 0) {
			t.Errorf("%s: want missed %q (passed %v); got %q (passed %v)", c.name, c.missed, len(c.missed) == 0, rep.Missed, rep.Passed)
		}
	}
}
