package scheduler

import (
	"fmt"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestScores places one replica of workload "web" on a small region where
// every node passes the filters: each case checks that one score step
// decides the node.
func TestScores(t *testing.T) {
	t.Parallel()
	node := func(name, zone string, cpu, mem int64, labels ...string) Node {
		n := Node{Name: name, Zone: zone, Ready: true, Allocatable: Resources{cpu, mem}, Labels: map[string]string{}}
		for k := 0; k+1 < len(labels); k += 2 {
			n.Labels[labels[k]] = labels[k+1]
		}
		return n
	}
	on := func(nodeName, workload string, cpu, mem int64) Binding {
		return Binding{Replica: fmt.Sprintf("%s-on-%s-%d-%d", workload, nodeName, cpu, mem), Workload: workload, Node: nodeName, Requests: Resources{cpu, mem}}
	}
	small := Resources{500, 1 * gib}
	ssd := []WeightedSelector{{Weight: 100, Selector: api.LabelSelector{MatchLabels: map[string]string{"disk": "ssd"}}}}

	tests := []struct {
		name     string
		policy   Policy
		nodes    []Node
		bindings []Binding
		replica  Replica
		want     string
	}{
		// Least-allocated (spread) and most-allocated (binpack).
		{"spread: the emptier of two equal nodes", Policy{},
			[]Node{node("a", "", 4000, 8*gib), node("b", "", 4000, 8*gib)},
			[]Binding{on("a", "other", 2000, 4*gib)}, Replica{Requests: small}, "b"},
		{"spread: share free after the request, not before", Policy{Strategy: StrategySpread},
			[]Node{node("a", "", 2000, 4*gib), node("b", "", 16000, 32*gib)},
			[]Binding{on("b", "other", 6000, 12*gib)}, Replica{Requests: Resources{1500, 3 * gib}}, "b"},
		{"binpack: the fuller of two equal nodes", Policy{Strategy: StrategyBinpack},
			[]Node{node("a", "", 4000, 8*gib), node("b", "", 4000, 8*gib)},
			[]Binding{on("a", "other", 2000, 4*gib)}, Replica{Requests: small}, "a"},
		{"binpack: the fuller share on a bigger node", Policy{Strategy: StrategyBinpack},
			[]Node{node("a", "", 4000, 8*gib), node("b", "", 16000, 32*gib)},
			[]Binding{on("a", "other", 1000, 2*gib), on("b", "other", 12000, 24*gib)}, Replica{Requests: small}, "b"},
		{"unknown strategy is spread", Policy{Strategy: "pack-ish"},
			[]Node{node("a", "", 4000, 8*gib), node("b", "", 4000, 8*gib)},
			[]Binding{on("a", "other", 2000, 4*gib)}, Replica{Requests: small}, "b"},

		// Zone spread, soft and hard.
		{"zone spread score: the zone with fewer replicas", Policy{},
			[]Node{node("a1", "a", 4000, 8*gib), node("a2", "a", 4000, 8*gib), node("b1", "b", 4000, 8*gib)},
			[]Binding{on("a1", "web", 0, 0), on("b1", "other", 100, 0)}, Replica{Requests: small}, "b1"},
		{"zone spread score: other workloads do not count", Policy{},
			[]Node{node("a1", "a", 4000, 8*gib), node("b1", "b", 4000, 8*gib)},
			[]Binding{on("a1", "db", 0, 0), on("a1", "db", 0, 1), on("b1", "other", 100, 0)}, Replica{Requests: small}, "a1"},
		{"zone spread score is soft: preferred affinity outweighs it", Policy{},
			[]Node{node("a1", "a", 4000, 8*gib, "disk", "ssd"), node("b1", "b", 4000, 8*gib)},
			[]Binding{on("a1", "web", 0, 0), on("b1", "other", 1000, 2*gib)}, Replica{Requests: small, Preferred: ssd}, "a1"},
		{"ZoneSpread is a filter: it outweighs everything", Policy{ZoneSpread: true},
			[]Node{node("a1", "a", 4000, 8*gib, "disk", "ssd"), node("b1", "b", 4000, 8*gib)},
			[]Binding{on("a1", "web", 0, 0), on("b1", "other", 3000, 6*gib)}, Replica{Requests: small, Preferred: ssd}, "b1"},
		{"ZoneSpread: the emptiest zone is full, the next has room", Policy{ZoneSpread: true},
			[]Node{node("a1", "a", 4000, 8*gib), node("b1", "b", 4000, 8*gib), node("c1", "c", 4000, 8*gib)},
			[]Binding{on("a1", "web", 0, 0), on("b1", "web", 0, 0), on("b1", "web", 0, 1), on("c1", "other", 4000, 0)},
			Replica{Requests: small}, "a1"},
		{"ZoneSpread: zones the replica cannot use do not count", Policy{ZoneSpread: true},
			[]Node{node("a1", "a", 4000, 8*gib, "disk", "ssd"), node("b1", "b", 4000, 8*gib)},
			[]Binding{on("a1", "web", 0, 0)}, Replica{Requests: small, NodeSelector: map[string]string{"disk": "ssd"}}, "a1"},

		// Anti-affinity.
		{"anti-affinity: the node without a replica", Policy{AntiAffinity: true},
			[]Node{node("a", "", 16000, 32*gib), node("b", "", 4000, 8*gib)},
			[]Binding{on("a", "web", 0, 0)}, Replica{Requests: small}, "b"},
		{"without anti-affinity the emptier node wins", Policy{},
			[]Node{node("a", "", 16000, 32*gib), node("b", "", 4000, 8*gib)},
			[]Binding{on("a", "web", 0, 0)}, Replica{Requests: small}, "a"},
		{"anti-affinity: fewer replicas is better", Policy{AntiAffinity: true},
			[]Node{node("a", "", 4000, 8*gib), node("b", "", 4000, 8*gib)},
			[]Binding{on("a", "web", 0, 0), on("b", "web", 0, 0), on("b", "web", 0, 1), on("a", "other", 1000, 2*gib)},
			Replica{Requests: small}, "a"},

		// Preferred affinity.
		{"preferred affinity: the matching node", Policy{},
			[]Node{node("a", "", 4000, 8*gib), node("b", "", 4000, 8*gib, "disk", "ssd")},
			[]Binding{on("b", "other", 1000, 2*gib)}, Replica{Requests: small, Preferred: ssd}, "b"},
		{"preferred affinity: the heavier term", Policy{},
			[]Node{node("a", "", 4000, 8*gib, "disk", "ssd"), node("b", "", 4000, 8*gib, "gpu", "true")},
			nil, Replica{Requests: small, Preferred: []WeightedSelector{
				{Weight: 10, Selector: api.LabelSelector{MatchLabels: map[string]string{"disk": "ssd"}}},
				{Weight: 90, Selector: api.LabelSelector{MatchLabels: map[string]string{"gpu": "true"}}},
			}}, "b"},
		{"preferred affinity: weights add up", Policy{},
			[]Node{node("a", "", 4000, 8*gib, "disk", "ssd", "gpu", "true"), node("b", "", 4000, 8*gib, "gpu", "true")},
			[]Binding{on("a", "other", 1000, 2*gib)}, Replica{Requests: small, Preferred: []WeightedSelector{
				{Weight: 60, Selector: api.LabelSelector{MatchLabels: map[string]string{"disk": "ssd"}}},
				{Weight: 40, Selector: api.LabelSelector{MatchLabels: map[string]string{"gpu": "true"}}},
			}}, "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.replica.ID = "r1"
			s := New(Snapshot{Nodes: tc.nodes, Bindings: tc.bindings})
			plan := s.Schedule(Request{Workload: "web", Policy: tc.policy, Replicas: []Replica{tc.replica}})
			if len(plan.Bindings) != 1 || plan.Bindings[0].Node != tc.want {
				t.Fatalf("want the replica on %s, got %+v", tc.want, plan)
			}
		})
	}
}

// TestTieBreak: replicas that score the same everywhere do not all land
// on the first node by name, and the same input gives the same nodes.
func TestTieBreak(t *testing.T) {
	t.Parallel()
	var snap Snapshot
	for i := range 10 {
		snap.Nodes = append(snap.Nodes, Node{Name: fmt.Sprintf("n%d", i), Ready: true, Allocatable: Resources{4000, 8 * gib}})
	}
	req := Request{Workload: "web", Policy: Policy{Strategy: StrategyBinpack}}
	for i := range 10 {
		req.Replicas = append(req.Replicas, Replica{ID: fmt.Sprintf("web-%d", i)}) // no requests: every node scores the same
	}
	first := New(snap).Schedule(req)
	nodes := map[string]bool{}
	for _, b := range first.Bindings {
		nodes[b.Node] = true
	}
	if len(nodes) < 3 {
		t.Errorf("want ties broken over several nodes, got all ten replicas on %v", nodes)
	}
	second := New(snap).Schedule(req)
	for i := range first.Bindings {
		if first.Bindings[i].Node != second.Bindings[i].Node {
			t.Fatalf("replica %s: first run %s, second run %s", first.Bindings[i].Replica, first.Bindings[i].Node, second.Bindings[i].Node)
		}
	}
}

// TestScoreSteps checks the score functions' ranges and shapes.
func TestScoreSteps(t *testing.T) {
	t.Parallel()
	share := func(alloc, free, req Resources) int64 {
		var n nodeHot
		n.cpuShift, n.cpuRecip = scale(alloc.MilliCPU)
		n.memShift, n.memRecip = scale(alloc.Memory)
		n.freeCPU, n.freeMem = free.MilliCPU, free.Memory
		return freeShare(&n, req.MilliCPU, req.Memory)
	}
	tests := []struct {
		name              string
		alloc, free, req  Resources
		wantLow, wantHigh int64
	}{
		{"empty node, no request", Resources{4000, 8 * gib}, Resources{4000, 8 * gib}, Resources{}, 100, 100},
		{"half taken", Resources{4000, 8 * gib}, Resources{4000, 8 * gib}, Resources{2000, 4 * gib}, 49, 50},
		{"full", Resources{4000, 8 * gib}, Resources{1000, 2 * gib}, Resources{1000, 2 * gib}, 0, 0},
		{"over-committed", Resources{4000, 8 * gib}, Resources{-1000, -2 * gib}, Resources{}, 0, 0},
		{"cpu free, memory full", Resources{4000, 8 * gib}, Resources{4000, 0}, Resources{}, 50, 50},
		{"huge memory", Resources{256000, 4 << 40}, Resources{256000, 2 << 40}, Resources{}, 74, 75},
		{"tiny node", Resources{1, 1}, Resources{1, 1}, Resources{}, 100, 100},
		{"no allocatable", Resources{}, Resources{}, Resources{}, 0, 0},
	}
	for _, tc := range tests {
		if got := share(tc.alloc, tc.free, tc.req); got < tc.wantLow || got > tc.wantHigh {
			t.Errorf("%s: freeShare = %d, want %d..%d", tc.name, got, tc.wantLow, tc.wantHigh)
		}
	}
	for c, want := range map[int32]int64{0: 100, 1: 50, 3: 25, 99: 1, 1000: 0} {
		if got := antiScore(c); got != want {
			t.Errorf("antiScore(%d) = %d, want %d", c, got, want)
		}
	}
}
