package drill

import (
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/protocol"
)

// TestPlanBudgets: an evacuation's plan says per workload whether its
// disruption budget holds, from the replicas placed after the moves; a
// broken budget is a note; other kinds of drill do not judge budgets.
func TestPlanBudgets(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cluster := func(name, region string, cpu int64) failover.Cluster {
		return failover.Cluster{Cluster: api.Cluster{Metadata: api.ObjectMeta{Name: name, Labels: map[string]string{api.LabelRegion: region}}},
			Known: true, Live: failover.Live{Health: api.HealthReady, Heard: true, Seen: now, Since: now.Add(-time.Hour),
				Capacity: protocol.Capacity{CPUAllocatable: cpu, MemoryAllocatable: 1 << 40}}}
	}
	// b has room for two replicas of 100m; c for none.
	view := []failover.Cluster{cluster("a", "eu", 100000), cluster("b", "us", 200), cluster("c", "ap", 0)}
	wl := func(name string, replicas int32, budget *api.DisruptionBudget) api.Workload {
		w := api.Workload{Metadata: api.ObjectMeta{Name: name}, Spec: api.WorkloadSpec{Replicas: replicas, DisruptionBudget: budget,
			Template: api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "100m"}}}}
		w.Status.ReadyReplicas = replicas
		return w
	}
	minAv := func(s string) *api.DisruptionBudget {
		return &api.DisruptionBudget{MinAvailable: api.IntOrPercentOf(s)}
	}
	maxUn := func(s string) *api.DisruptionBudget {
		return &api.DisruptionBudget{MaxUnavailable: api.IntOrPercentOf(s)}
	}
	confined := func(w api.Workload) api.Workload {
		w.Spec.Placement = &api.PlacementPolicy{ClusterSelector: &api.LabelSelector{MatchLabels: map[string]string{api.LabelRegion: "eu"}}}
		return w
	}
	tolerant := func(w api.Workload) api.Workload {
		w.Spec.Placement = &api.PlacementPolicy{Tolerations: []api.Toleration{{Key: api.DrillTaintKey, Operator: "Exists"}}}
		return w
	}
	none := (*bool)(nil)
	yes, no := true, false
	cases := []struct {
		name    string
		kind    string
		w       api.Workload
		current map[string]int32
		want    *bool
	}{
		{"no budget: nothing judged", api.DrillEvacuate, wl("web", 2, nil), map[string]int32{"a": 2}, none},
		{"all placed elsewhere: minAvailable holds", api.DrillEvacuate, wl("web", 2, minAv("2")), map[string]int32{"a": 2}, &yes},
		{"confined to the target: minAvailable 1 breaks", api.DrillEvacuate, confined(wl("web", 2, minAv("1"))), map[string]int32{"a": 2}, &no},
		{"confined to the target: minAvailable 0 holds", api.DrillEvacuate, confined(wl("web", 2, minAv("0"))), map[string]int32{"a": 2}, &yes},
		{"confined: maxUnavailable 100% holds", api.DrillEvacuate, confined(wl("web", 2, maxUn("100%"))), map[string]int32{"a": 2}, &yes},
		{"room for 2 of 4: maxUnavailable 1 breaks", api.DrillEvacuate, wl("web", 4, maxUn("1")), map[string]int32{"a": 4}, &no},
		{"room for 2 of 4: maxUnavailable 50% holds", api.DrillEvacuate, wl("web", 4, maxUn("50%")), map[string]int32{"a": 4}, &yes},
		{"room for 2 of 4: minAvailable 75% breaks", api.DrillEvacuate, wl("web", 4, minAv("75%")), map[string]int32{"a": 4}, &no},
		{"tolerates the drill: holds", api.DrillEvacuate, tolerant(confined(wl("web", 2, minAv("2")))), map[string]int32{"a": 2}, &yes},
		{"outage drills do not judge budgets", api.DrillOutage, confined(wl("web", 2, minAv("2"))), map[string]int32{"a": 2}, none},
	}
	for _, c := range cases {
		plan := planDrill(c.kind, "d", nil, []string{"a"}, view, map[string]api.Workload{"web": c.w}, map[string]map[string]int32{"web": c.current}, now)
		if len(plan.Workloads) != 1 {
			t.Fatalf("%s: want one workload in the plan, got %+v", c.name, plan.Workloads)
		}
		pw := plan.Workloads[0]
		switch {
		case c.want == nil && pw.BudgetHolds != nil:
			t.Errorf("%s: want no budget judged, got %v (%s)", c.name, *pw.BudgetHolds, pw.BudgetNote)
		case c.want != nil && pw.BudgetHolds == nil:
			t.Errorf("%s: want budgetHolds %v, got none", c.name, *c.want)
		case c.want != nil && *pw.BudgetHolds != *c.want:
			t.Errorf("%s: want budgetHolds %v, got %v (%s; after %v)", c.name, *c.want, *pw.BudgetHolds, pw.BudgetNote, pw.After)
		}
		if c.want != nil && (pw.Budget == "" || !strings.Contains(pw.BudgetNote, pw.Budget)) {
			t.Errorf("%s: want the budget named in its note; got budget %q, note %q", c.name, pw.Budget, pw.BudgetNote)
		}
		broken := plan.BrokenBudgets()
		noted := false
		for _, n := range plan.Notes {
			noted = noted || strings.Contains(n, "budget")
		}
		if wantBroken := c.want != nil && !*c.want; (len(broken) == 1) != wantBroken || noted != wantBroken {
			t.Errorf("%s: want broken=%v, got BrokenBudgets %v and notes %q", c.name, wantBroken, broken, plan.Notes)
		}
	}
}
