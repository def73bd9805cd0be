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

// TestPlanWarnings: the plan warns of workloads unavailable before the
// fault, of objectives the fault makes impossible, and of policies that
// cannot hold while it lasts.
func TestPlanWarnings(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cluster := func(name string) failover.Cluster {
		return failover.Cluster{Cluster: api.Cluster{Metadata: api.ObjectMeta{Name: name, Labels: map[string]string{api.LabelRegion: name}}},
			Known: true, Live: failover.Live{Health: api.HealthReady, Heard: true, Seen: now, Since: now.Add(-time.Hour),
				Capacity: protocol.Capacity{CPUAllocatable: 100000, MemoryAllocatable: 1 << 40}}}
	}
	view := []failover.Cluster{cluster("a"), cluster("b"), cluster("c")}
	wl := func(name string, replicas, ready int32) api.Workload {
		w := api.Workload{Metadata: api.ObjectMeta{Name: name}, Spec: api.WorkloadSpec{Replicas: replicas,
			Template: api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "100m"}}}}
		w.Status.ReadyReplicas = ready
		return w
	}
	healthy, broken := wl("web", 6, 6), wl("broken", 2, 0)
	spread := wl("spread", 3, 3)
	spread.Spec.Placement = &api.PlacementPolicy{Spread: []api.SpreadConstraint{{TopologyKey: api.LabelRegion, MinGroups: 3}}}
	fast := wl("fast", 2, 2)
	fast.Spec.Failover = &api.FailoverPolicy{GracePeriod: "1s"}
	i32 := func(n int32) *int32 { return &n }
	type warn struct{ typ, workload, field string }
	cases := []struct {
		name      string
		kind      string
		slo       *api.DrillSLO
		workloads []api.Workload
		current   map[string]map[string]int32
		want      []warn
	}{
		{"healthy, no SLO: nothing to warn of", api.DrillOutage, nil, []api.Workload{healthy},
			map[string]map[string]int32{"web": {"a": 2, "b": 2, "c": 2}}, nil},
		{"an affected workload already broken is named", api.DrillOutage, nil, []api.Workload{healthy, broken},
			map[string]map[string]int32{"web": {"a": 2, "b": 2, "c": 2}, "broken": {"a": 1, "b": 1}},
			[]warn{{api.WarnAlreadyUnavailable, "broken", ""}}},
		{"a broken workload off the targets is not the drill's business", api.DrillOutage, nil, []api.Workload{healthy, broken},
			map[string]map[string]int32{"web": {"a": 2, "b": 2, "c": 2}, "broken": {"b": 2}}, nil},
		{"outage: max-unavailable below what the target holds", api.DrillOutage, &api.DrillSLO{MaxUnavailableReplicas: i32(1)}, []api.Workload{healthy},
			map[string]map[string]int32{"web": {"a": 2, "b": 2, "c": 2}}, []warn{{api.WarnSLOUnreachable, "", "slo.maxUnavailableReplicas"}}},
		{"outage: max-unavailable equal to what the target holds can be met", api.DrillOutage, &api.DrillSLO{MaxUnavailableReplicas: i32(2)}, []api.Workload{healthy},
			map[string]map[string]int32{"web": {"a": 2, "b": 2, "c": 2}}, nil},
		{"partition: the targets' replicas cannot be heard either", api.DrillPartition, &api.DrillSLO{MaxUnavailableReplicas: i32(1)}, []api.Workload{healthy},
			map[string]map[string]int32{"web": {"a": 2, "b": 2, "c": 2}}, []warn{{api.WarnSLOUnreachable, "", "slo.maxUnavailableReplicas"}}},
		{"evacuate drains gracefully: no such bound", api.DrillEvacuate, &api.DrillSLO{MaxUnavailableReplicas: i32(0)}, []api.Workload{healthy},
			map[string]map[string]int32{"web": {"a": 2, "b": 2, "c": 2}}, nil},
		{"evacuate: replicas already down count", api.DrillEvacuate, &api.DrillSLO{MaxUnavailableReplicas: i32(1)}, []api.Workload{broken},
			map[string]map[string]int32{"broken": {"a": 1, "b": 1}},
			[]warn{{api.WarnAlreadyUnavailable, "broken", ""}, {api.WarnSLOUnreachable, "", "slo.maxUnavailableReplicas"}}},
		{"outage: max-rto within the failover grace (default 5s)", api.DrillOutage, &api.DrillSLO{MaxRTO: "5s"}, []api.Workload{healthy},
			map[string]map[string]int32{"web": {"a": 2, "b": 2, "c": 2}}, []warn{{api.WarnSLOUnreachable, "", "slo.maxRTO"}}},
		{"outage: max-rto beyond a short grace", api.DrillOutage, &api.DrillSLO{MaxRTO: "5s"}, []api.Workload{fast},
			map[string]map[string]int32{"fast": {"a": 1, "b": 1}}, nil},
		{"spread over three regions cannot hold with one dark", api.DrillOutage, nil, []api.Workload{spread},
			map[string]map[string]int32{"spread": {"a": 1, "b": 1, "c": 1}}, []warn{{api.WarnPolicyUnsatisfiable, "spread", ""}}},
		{"nothing on the targets: nothing to warn of", api.DrillOutage, &api.DrillSLO{MaxRTO: "1s", MaxUnavailableReplicas: i32(0)}, []api.Workload{healthy},
			map[string]map[string]int32{"web": {"b": 3, "c": 3}}, nil},
	}
	for _, c := range cases {
		ws := map[string]api.Workload{}
		for _, w := range c.workloads {
			ws[w.Metadata.Name] = w
		}
		plan := planDrill(c.kind, "d", c.slo, []string{"a"}, view, ws, c.current, now)
		var got []warn
		for _, w := range plan.Warnings {
			got = append(got, warn{w.Type, w.Workload, w.Field})
			if w.Message == "" {
				t.Errorf("%s: warning %+v has no message", c.name, w)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: want warnings %+v, got %+v", c.name, c.want, plan.Warnings)
		}
	}
	// The message says what to allow instead.
	plan := planDrill(api.DrillOutage, "d", &api.DrillSLO{MaxUnavailableReplicas: i32(1)}, []string{"a"}, view,
		map[string]api.Workload{"web": healthy}, map[string]map[string]int32{"web": {"a": 2, "b": 2, "c": 2}}, now)
	if len(plan.Warnings) != 1 || !strings.Contains(plan.Warnings[0].Message, "allow 2 or more") {
		t.Errorf("want the warning to say what would be met; got %+v", plan.Warnings)
	}
}

// TestMeasureNamesBlockers: a workload that has not recovered says why,
// per cluster; one unavailable before the fault does not hold up the
// drill's recovery.
func TestMeasureNamesBlockers(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	web := &affectedWorkload{name: "web", desired: 4, before: map[string]int32{"a": 2, "b": 2}, onTargets: 2, outsideBefore: 2}
	broken := &affectedWorkload{name: "broken", desired: 2, before: map[string]int32{"a": 1, "b": 1}, onTargets: 1, unavailableBefore: true}
	stuck := &affectedWorkload{name: "stuck", desired: 2, before: map[string]int32{"a": 2}, onTargets: 2, unplacedReason: "no cluster matches the selector"}
	type blocked struct{ cluster, reason string }
	cases := []struct {
		name      string
		affected  []*affectedWorkload
		o         observation
		recovered bool
		want      map[string][]blocked // workload -> its blockers (nil: recovered)
	}{
		{"still placed on the target", []*affectedWorkload{web}, observation{
			placements: map[string]map[string]int32{"web": {"a": 2, "b": 2}}, ready: map[string]map[string]int32{"web": {"b": 2}},
		}, false, map[string][]blocked{"web": {{"a", api.BlockedStillOnTarget}}}},
		{"placed elsewhere, not ready", []*affectedWorkload{web}, observation{
			placements: map[string]map[string]int32{"web": {"b": 2, "c": 2}}, ready: map[string]map[string]int32{"web": {"b": 2, "c": 1}},
		}, false, map[string][]blocked{"web": {{"c", api.BlockedNotReady}}}},
		{"no cluster for some", []*affectedWorkload{stuck}, observation{
			placements: map[string]map[string]int32{"stuck": {"b": 1}}, ready: map[string]map[string]int32{"stuck": {"b": 1}},
		}, false, map[string][]blocked{"stuck": {{"", api.BlockedUnplaced}}}},
		{"a workload broken before does not hold the drill up", []*affectedWorkload{web, broken}, observation{
			placements: map[string]map[string]int32{"web": {"b": 2, "c": 2}, "broken": {"b": 2}},
			ready:      map[string]map[string]int32{"web": {"b": 2, "c": 2}},
		}, true, map[string][]blocked{"web": nil, "broken": {{"b", api.BlockedNotReady}}}},
		{"only broken workloads: recovered when they are", []*affectedWorkload{broken}, observation{
			placements: map[string]map[string]int32{"broken": {"b": 2}}, ready: map[string]map[string]int32{"broken": {"b": 1}},
		}, false, map[string][]blocked{"broken": {{"b", api.BlockedNotReady}}}},
	}
	// Nor does it hold up failback.
	back := measure([]*affectedWorkload{web, broken}, []string{"a"}, observation{at: t0, health: map[string]string{"a": api.HealthReady},
		placements: map[string]map[string]int32{"web": {"a": 2, "b": 2}, "broken": {"a": 1, "b": 1}},
		ready:      map[string]map[string]int32{"web": {"a": 2, "b": 2}}, failedOver: map[string]map[string]int32{}})
	if !back.failedBack {
		t.Errorf("want failback complete on web alone, broken not ready anywhere; got %+v", back)
	}
	for _, c := range cases {
		c.o.at = t0
		m := measure(c.affected, []string{"a"}, c.o)
		if m.recovered != c.recovered {
			t.Errorf("%s: want recovered %v, got %v", c.name, c.recovered, m.recovered)
		}
		for name, want := range c.want {
			wr := m.workloads[name]
			var got []blocked
			for _, b := range wr.blockedBy {
				got = append(got, blocked{b.Cluster, b.Reason})
				if b.Message == "" {
					t.Errorf("%s: %s blocker %+v has no message", c.name, name, b)
				}
			}
			if !slices.Equal(got, want) || wr.recovered != (want == nil) {
				t.Errorf("%s: %s: want blockers %+v, got %+v", c.name, name, want, wr.blockedBy)
			}
		}
	}
}

// TestVerdict: only a drill that ran to its end is judged.
func TestVerdict(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		final          string
		passed         bool
		phase, verdict string
	}{
		{api.DrillCompleted, true, api.DrillCompleted, api.DrillVerdictPassed},
		{api.DrillCompleted, false, api.DrillCompleted, api.DrillVerdictFailed},
		{api.DrillAborted, true, api.DrillAborted, ""},
		{api.DrillError, false, api.DrillError, ""},
	} {
		phase, verdict := verdict(c.final, &api.DrillReport{Passed: c.passed})
		if phase != c.phase || verdict != c.verdict {
			t.Errorf("%s, passed %v: want %s/%q, got %s/%q", c.final, c.passed, c.phase, c.verdict, phase, verdict)
		}
	}
	// A drill that affected nothing has no RTO to miss.
	rep := &api.DrillReport{RTONotApplicable: true}
	evaluate(api.DrillSpec{SLO: &api.DrillSLO{MaxRTO: "10s"}}, rep)
	if !rep.Passed || len(rep.Missed) != 0 || !strings.Contains(rep.SLOs[0].Actual, "not applicable") {
		t.Errorf("nothing affected: want maxRTO not applicable and met; got %+v", rep)
	}
	rep = &api.DrillReport{PeakUnavailableReplicas: 3}
	two := int32(2)
	evaluate(api.DrillSpec{SLO: &api.DrillSLO{MaxRTO: "10s", MaxUnavailableReplicas: &two}}, rep)
	if rep.Passed || !slices.Equal(rep.Missed, []string{"maxRTO not recovered (target 10s)", "maxUnavailableReplicas 3 (target 2)"}) {
		t.Errorf("want both misses listed; got %q", rep.Missed)
	}
}

// TestBoundWorkloads: the report lists the workloads that did not recover
// first, then the slowest, and no more than it keeps.
func TestBoundWorkloads(t *testing.T) {
	t.Parallel()
	secs := func(f float64) *float64 { return &f }
	var ws []api.DrillWorkloadReport
	for i := range maxReportWorkloads + 5 {
		ws = append(ws, api.DrillWorkloadReport{Workload: fmt.Sprintf("w%03d", i), RTOSeconds: secs(float64(i))})
	}
	ws = append(ws, api.DrillWorkloadReport{Workload: "stuck-b"}, api.DrillWorkloadReport{Workload: "stuck-a"})
	got := boundWorkloads(ws)
	if len(got) != maxReportWorkloads || got[0].Workload != "stuck-a" || got[1].Workload != "stuck-b" || got[2].Workload != fmt.Sprintf("w%03d", maxReportWorkloads+4) {
		t.Fatalf("want %d workloads, stuck-a and stuck-b first, then the slowest; got %d starting %+v", maxReportWorkloads, len(got), got[:3])
	}
	if last := got[len(got)-1]; *last.RTOSeconds != 7 {
		t.Errorf("want the fastest left out; the last kept has RTO %v", *last.RTOSeconds)
	}
}
