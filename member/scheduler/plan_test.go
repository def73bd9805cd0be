package scheduler

import (
	"fmt"
	"testing"
)

func TestFormatReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		nodes  int
		counts map[string]int
		want   string
	}{
		{5, map[string]int{ReasonTainted: 2, ReasonInsufficientMemory: 3}, "0/5 nodes: 3 insufficient memory, 2 tainted (no toleration)"},
		{4, map[string]int{ReasonTainted: 2, ReasonCordoned: 2}, "0/4 nodes: 2 cordoned, 2 tainted (no toleration)"},
		{1, map[string]int{ReasonNotReady: 1}, "0/1 nodes: 1 not ready"},
		{3, map[string]int{ReasonNotReady: 3, ReasonCordoned: 0}, "0/3 nodes: 3 not ready"},
		{0, map[string]int{}, "0/0 nodes: the region has no nodes"},
	}
	for _, tc := range tests {
		if got := formatReason(tc.nodes, tc.counts); got != tc.want {
			t.Errorf("formatReason(%d, %v) = %q, want %q", tc.nodes, tc.counts, got, tc.want)
		}
	}
}

func TestEmptyRegion(t *testing.T) {
	t.Parallel()
	plan := New(Snapshot{}).Schedule(Request{Workload: "web", Replicas: []Replica{{ID: "r"}}})
	want := Pending{Replica: "r", Reason: "0/0 nodes: the region has no nodes", Counts: map[string]int{}}
	if len(plan.Bindings) != 0 || len(plan.Pending) != 1 || plan.Pending[0].Reason != want.Reason {
		t.Fatalf("want %+v, got %+v", want, plan)
	}
}

// TestBoundReplicaKeepsItsNode: scheduling a replica the view already
// holds repeats its binding and counts nothing twice.
func TestBoundReplicaKeepsItsNode(t *testing.T) {
	t.Parallel()
	snap := Snapshot{
		Nodes:    []Node{{Name: "a", Ready: true, Allocatable: Resources{1000, gib}}, {Name: "b", Ready: true, Allocatable: Resources{1000, gib}}},
		Bindings: []Binding{{Replica: "web-0", Workload: "web", Node: "a", Requests: Resources{1000, gib}}},
	}
	s := New(snap)
	plan := s.Schedule(Request{Workload: "web", Replicas: []Replica{
		{ID: "web-0", Requests: Resources{1000, gib}}, // already on a
		{ID: "web-1", Requests: Resources{1000, gib}}, // b is the only room
		{ID: "web-1", Requests: Resources{1000, gib}}, // the same replica again
	}})
	if len(plan.Pending) != 0 || len(plan.Bindings) != 3 {
		t.Fatalf("want three bindings and nothing pending, got %+v", plan)
	}
	for k, want := range []string{"a", "b", "b"} {
		if plan.Bindings[k].Node != want {
			t.Errorf("binding %d (%s) on %s, want %s", k, plan.Bindings[k].Replica, plan.Bindings[k].Node, want)
		}
	}
	plan = s.Schedule(Request{Workload: "web", Replicas: []Replica{{ID: "web-2", Requests: Resources{1, 0}}}})
	if want := "0/2 nodes: 2 insufficient cpu"; len(plan.Pending) != 1 || plan.Pending[0].Reason != want {
		t.Fatalf("a later call sees the region full: want pending %q, got %+v", want, plan)
	}
}

// TestBindingsOnUnknownNodes are ignored: they hold nothing.
func TestBindingsOnUnknownNodes(t *testing.T) {
	t.Parallel()
	s := New(Snapshot{
		Nodes:    []Node{{Name: "a", Ready: true, Allocatable: Resources{1000, gib}}},
		Bindings: []Binding{{Replica: "web-0", Workload: "web", Node: "gone", Requests: Resources{1000, gib}}},
	})
	plan := s.Schedule(Request{Workload: "web", Replicas: []Replica{{ID: "web-0", Requests: Resources{1000, gib}}}})
	if len(plan.Bindings) != 1 || plan.Bindings[0].Node != "a" {
		t.Fatalf("want web-0 placed again, on a, got %+v", plan)
	}
}

// TestBatchSeesItsOwnPlacements: within one call, anti-affinity and host
// ports see the replicas placed before.
func TestBatchSeesItsOwnPlacements(t *testing.T) {
	t.Parallel()
	var snap Snapshot
	for i := range 3 {
		snap.Nodes = append(snap.Nodes, Node{Name: fmt.Sprintf("n%d", i), Ready: true, Allocatable: Resources{4000, 8 * gib}})
	}
	tests := []struct {
		name    string
		policy  Policy
		replica Replica
	}{
		{"anti-affinity", Policy{Strategy: StrategyBinpack, AntiAffinity: true}, Replica{}},
		{"host ports", Policy{Strategy: StrategyBinpack}, Replica{HostPorts: []Port{{8080, "TCP"}}}},
	}
	for _, tc := range tests {
		req := Request{Workload: "web", Policy: tc.policy}
		for i := range 3 {
			r := tc.replica
			r.ID = fmt.Sprintf("web-%d", i)
			req.Replicas = append(req.Replicas, r)
		}
		plan := New(snap).Schedule(req)
		used := map[string]bool{}
		for _, b := range plan.Bindings {
			used[b.Node] = true
		}
		if len(plan.Bindings) != 3 || len(used) != 3 {
			t.Errorf("%s: want the 3 replicas on 3 different nodes, got %+v", tc.name, plan)
		}
	}
}
