package scheduler

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/atollhq/atoll/api"
)

// scenario is a region and the Schedule calls made on one Scheduler.
type scenario struct {
	snap Snapshot
	reqs []Request
}

var (
	zonesGen  = rapid.SampledFrom([]string{"a", "b", "c", ""})
	diskGen   = rapid.SampledFrom([]string{"ssd", "hdd", ""})
	cpuGen    = rapid.SampledFrom([]int64{0, 500, 1000, 2000, 4000})
	memGen    = rapid.SampledFrom([]int64{0, 1 * gib, 2 * gib, 4 * gib})
	reqCPUGen = rapid.SampledFrom([]int64{0, 100, 500, 1000, 2500, -5})
	reqMemGen = rapid.SampledFrom([]int64{0, gib / 4, 1 * gib, 3 * gib})
	portGen   = rapid.SampledFrom([]Port{{80, "TCP"}, {80, "UDP"}, {443, ""}, {443, "TCP"}, {0, "TCP"}})
	taintGen  = rapid.SampledFrom([]api.Taint{
		{Key: "dedicated", Value: "batch", Effect: "NoSchedule"},
		{Key: "dedicated", Value: "web", Effect: "NoExecute"},
		{Key: "gpu", Effect: "NoExecute"},
		{Key: "spot", Value: "true", Effect: "PreferNoSchedule"},
	})
	tolGen = rapid.SampledFrom([]api.Toleration{
		{Operator: "Exists"},
		{Key: "dedicated", Operator: "Exists"},
		{Key: "dedicated", Value: "batch"},
		{Key: "dedicated", Operator: "Equal", Value: "web", Effect: "NoSchedule"},
		{Key: "gpu", Operator: "Exists", Effect: "NoExecute"},
	})
	requiredGen = rapid.SampledFrom([]*api.LabelSelector{
		nil,
		{},
		{MatchLabels: map[string]string{"disk": "ssd"}},
		{MatchExpressions: []api.Requirement{{Key: "disk", Operator: "In", Values: []string{"ssd", "hdd"}}}},
		{MatchExpressions: []api.Requirement{{Key: "gpu", Operator: "DoesNotExist"}}},
		{MatchExpressions: []api.Requirement{{Key: "zone", Operator: "NotIn", Values: []string{"a"}}}},
	})
	policyGen = rapid.Custom(func(t *rapid.T) Policy {
		return Policy{
			Strategy:     rapid.SampledFrom([]string{"", StrategySpread, StrategyBinpack}).Draw(t, "strategy"),
			ZoneSpread:   rapid.Bool().Draw(t, "zoneSpread"),
			AntiAffinity: rapid.Bool().Draw(t, "antiAffinity"),
		}
	})
)

func genNodes(t *rapid.T, max int) []Node {
	n := rapid.IntRange(0, max).Draw(t, "nodes")
	nodes := make([]Node, n)
	for i := range nodes {
		nd := Node{
			Name:          fmt.Sprintf("n%02d", i),
			Zone:          zonesGen.Draw(t, "zone"),
			Labels:        map[string]string{},
			Ready:         rapid.IntRange(0, 9).Draw(t, "ready") > 0,
			Unschedulable: rapid.IntRange(0, 9).Draw(t, "cordoned") == 0,
			Allocatable:   Resources{cpuGen.Draw(t, "cpu"), memGen.Draw(t, "mem")},
		}
		if d := diskGen.Draw(t, "disk"); d != "" {
			nd.Labels["disk"] = d
		}
		if rapid.Bool().Draw(t, "gpu") {
			nd.Labels["gpu"] = "true"
		}
		nd.Labels["zone"] = nd.Zone
		nd.Taints = rapid.SliceOfN(taintGen, 0, 2).Draw(t, "taints")
		nodes[i] = nd
	}
	return nodes
}

func genScenario(t *rapid.T) scenario {
	var sc scenario
	sc.snap.Nodes = genNodes(t, 10)
	names := []string{"ghost"} // a node not in the snapshot
	for _, n := range sc.snap.Nodes {
		names = append(names, n.Name)
	}
	for i := range rapid.IntRange(0, 8).Draw(t, "bindings") {
		sc.snap.Bindings = append(sc.snap.Bindings, Binding{
			Replica:   fmt.Sprintf("old-%d", i),
			Workload:  rapid.SampledFrom([]string{"web", "db"}).Draw(t, "workload"),
			Node:      rapid.SampledFrom(names).Draw(t, "node"),
			Requests:  Resources{reqCPUGen.Draw(t, "cpu"), reqMemGen.Draw(t, "mem")},
			HostPorts: rapid.SliceOfN(portGen, 0, 1).Draw(t, "ports"),
		})
	}
	for k := range rapid.IntRange(1, 3).Draw(t, "requests") {
		req := Request{Workload: rapid.SampledFrom([]string{"web", "db"}).Draw(t, "workload"), Policy: policyGen.Draw(t, "policy")}
		for i := range rapid.IntRange(0, 10).Draw(t, "replicas") {
			r := Replica{
				ID:          fmt.Sprintf("r%d-%d", k, i),
				Requests:    Resources{reqCPUGen.Draw(t, "cpu"), reqMemGen.Draw(t, "mem")},
				Required:    requiredGen.Draw(t, "required"),
				Tolerations: rapid.SliceOfN(tolGen, 0, 2).Draw(t, "tolerations"),
				HostPorts:   rapid.SliceOfN(portGen, 0, 1).Draw(t, "ports"),
			}
			if rapid.IntRange(0, 3).Draw(t, "selector") == 0 {
				r.NodeSelector = map[string]string{"disk": "ssd"}
			}
			if rapid.Bool().Draw(t, "preferred") {
				r.Preferred = []WeightedSelector{{Weight: rapid.Int32Range(1, 100).Draw(t, "weight"), Selector: api.LabelSelector{MatchLabels: map[string]string{"gpu": "true"}}}}
			}
			req.Replicas = append(req.Replicas, r)
		}
		sc.reqs = append(sc.reqs, req)
	}
	return sc
}

func run(sc scenario) []Plan {
	s := New(sc.snap)
	var plans []Plan
	for _, r := range sc.reqs {
		plans = append(plans, s.Schedule(r))
	}
	return plans
}

// region is the test's own model of a region: what each node holds, built
// from the snapshot and replayed binding by binding.
type region struct {
	nodes     map[string]Node
	cpu, mem  map[string]int64
	ports     map[string]map[string]bool
	workloads map[string]map[string]int // workload -> zone -> replicas
}

func newRegion(snap Snapshot) *region {
	rg := &region{nodes: map[string]Node{}, cpu: map[string]int64{}, mem: map[string]int64{}, ports: map[string]map[string]bool{}, workloads: map[string]map[string]int{}}
	for _, n := range snap.Nodes {
		rg.nodes[n.Name] = n
		rg.ports[n.Name] = map[string]bool{}
	}
	for _, b := range snap.Bindings {
		if _, ok := rg.nodes[b.Node]; ok {
			rg.add(b)
		}
	}
	return rg
}

func (rg *region) add(b Binding) {
	rg.cpu[b.Node] += max(b.Requests.MilliCPU, 0)
	rg.mem[b.Node] += max(b.Requests.Memory, 0)
	for _, p := range b.HostPorts {
		if k := portName(p); k != "" {
			rg.ports[b.Node][k] = true
		}
	}
	if rg.workloads[b.Workload] == nil {
		rg.workloads[b.Workload] = map[string]int{}
	}
	rg.workloads[b.Workload][rg.nodes[b.Node].Zone]++
}

func portName(p Port) string {
	if p.Port < 1 || p.Port > 65535 {
		return ""
	}
	return fmt.Sprintf("%d/%s", p.Port, cmp.Or(strings.ToUpper(p.Protocol), "TCP"))
}

// accepts is every filter, written again from the rules.
func (rg *region) accepts(node string, r Replica) error {
	n, ok := rg.nodes[node]
	switch {
	case !ok:
		return fmt.Errorf("node %q is not in the snapshot", node)
	case !n.Ready:
		return fmt.Errorf("node %s is not ready", node)
	case n.Unschedulable:
		return fmt.Errorf("node %s is cordoned", node)
	}
	for k, v := range r.NodeSelector {
		if got, ok := n.Labels[k]; !ok || got != v {
			return fmt.Errorf("node %s labels %v miss node selector %v", node, n.Labels, r.NodeSelector)
		}
	}
	if r.Required != nil && !r.Required.Selector().Matches(n.Labels) {
		return fmt.Errorf("node %s labels %v fail required affinity %+v", node, n.Labels, *r.Required)
	}
	for _, t := range n.Taints {
		if t.Effect != "NoSchedule" && t.Effect != "NoExecute" {
			continue
		}
		tolerated := false
		for _, tol := range r.Tolerations {
			effect := tol.Effect == "" || tol.Effect == t.Effect
			key := tol.Key == "" || tol.Key == t.Key
			value := tol.Operator == "Exists" || (tol.Operator == "" || tol.Operator == "Equal") && tol.Value == t.Value
			tolerated = tolerated || effect && key && value
		}
		if !tolerated {
			return fmt.Errorf("node %s taint %+v not tolerated by %+v", node, t, r.Tolerations)
		}
	}
	for _, p := range r.HostPorts {
		if k := portName(p); k != "" && rg.ports[node][k] {
			return fmt.Errorf("node %s already uses host port %s", node, k)
		}
	}
	if c := r.Requests.MilliCPU; c > 0 && rg.cpu[node]+c > n.Allocatable.MilliCPU {
		return fmt.Errorf("node %s: %dm CPU used + %dm requested > %dm allocatable", node, rg.cpu[node], c, n.Allocatable.MilliCPU)
	}
	if m := r.Requests.Memory; m > 0 && rg.mem[node]+m > n.Allocatable.Memory {
		return fmt.Errorf("node %s: %d memory used + %d requested > %d allocatable", node, rg.mem[node], m, n.Allocatable.Memory)
	}
	return nil
}

// reasonOf renders counts the documented way, independently of the code.
func reasonOf(nodes int, counts map[string]int) string {
	type rc struct {
		r string
		n int
	}
	var rcs []rc
	for r, n := range counts {
		rcs = append(rcs, rc{r, n})
	}
	slices.SortFunc(rcs, func(a, b rc) int { return cmp.Or(b.n-a.n, strings.Compare(a.r, b.r)) })
	var parts []string
	for _, x := range rcs {
		parts = append(parts, fmt.Sprintf("%d %s", x.n, x.r))
	}
	if nodes == 0 {
		return "0/0 nodes: the region has no nodes"
	}
	return fmt.Sprintf("0/%d nodes: %s", nodes, strings.Join(parts, ", "))
}

// TestPropertyPlansAreValid replays every plan against the test's own
// model of the region: every placement passes every filter given what was
// bound before it (so no node is ever over-committed, tainted without a
// toleration, not ready, cordoned, mismatched or given a used host port,
// across one call and later calls), a replica is left pending only when
// no node accepts it, and its counts add up to the number of nodes.
func TestPropertyPlansAreValid(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		sc := genScenario(t)
		plans := run(sc)
		rg := newRegion(sc.snap)
		for k, req := range sc.reqs {
			plan := plans[k]
			placed := map[string]Binding{}
			for _, b := range plan.Bindings {
				placed[b.Replica] = b
			}
			pending := map[string]Pending{}
			for _, p := range plan.Pending {
				pending[p.Replica] = p
			}
			if len(placed)+len(pending) != len(req.Replicas) {
				t.Fatalf("request %d: %d replicas, plan has %d bindings and %d pending", k, len(req.Replicas), len(plan.Bindings), len(plan.Pending))
			}
			for _, r := range req.Replicas {
				if b, ok := placed[r.ID]; ok {
					if err := rg.accepts(b.Node, r); err != nil {
						t.Fatalf("replica %s placed on %s: %v", r.ID, b.Node, err)
					}
					if b.Workload != cmp.Or(r.Workload, req.Workload) {
						t.Fatalf("replica %s: binding workload %q, want %q", r.ID, b.Workload, req.Workload)
					}
					rg.add(b)
					continue
				}
				p := pending[r.ID]
				for name := range rg.nodes {
					if rg.accepts(name, r) == nil {
						t.Fatalf("replica %s left pending (%s) though node %s accepts it", r.ID, p.Reason, name)
					}
				}
				sum := 0
				for _, c := range p.Counts {
					sum += c
				}
				if sum != len(rg.nodes) {
					t.Fatalf("replica %s: counts %v add up to %d, want %d nodes", r.ID, p.Counts, sum, len(rg.nodes))
				}
				if want := reasonOf(len(rg.nodes), p.Counts); p.Reason != want {
					t.Fatalf("replica %s: reason %q, want %q", r.ID, p.Reason, want)
				}
			}
		}
	})
}

// TestPropertyDeterministic: the same input gives the same plans, and so
// does the same snapshot listed in another order.
func TestPropertyDeterministic(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		sc := genScenario(t)
		first := run(sc)
		if again := run(sc); !reflect.DeepEqual(first, again) {
			t.Fatalf("same input, different plans:\n%+v\n%+v", first, again)
		}
		shuffled := sc
		shuffled.snap.Nodes = rapid.Permutation(sc.snap.Nodes).Draw(t, "nodeOrder")
		shuffled.snap.Bindings = rapid.Permutation(sc.snap.Bindings).Draw(t, "bindingOrder")
		if other := run(shuffled); !reflect.DeepEqual(first, other) {
			t.Fatalf("snapshot order changed the plans:\n%+v\n%+v", first, other)
		}
	})
}

// TestPropertyZoneSkew: with ZoneSpread, on regions where every zone has
// equal nodes with room for every replica, a workload's replicas per zone
// never differ by more than one, after every call.
func TestPropertyZoneSkew(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		zones := rapid.IntRange(1, 4).Draw(t, "zones")
		perZone := rapid.IntRange(1, 4).Draw(t, "nodesPerZone")
		var snap Snapshot
		for z := range zones {
			for i := range perZone {
				snap.Nodes = append(snap.Nodes, Node{
					Name: fmt.Sprintf("z%d-n%d", z, i), Zone: fmt.Sprintf("zone-%d", z),
					Ready: true, Allocatable: Resources{200_000, 400 * gib},
				})
			}
		}
		for i := range rapid.IntRange(0, 10).Draw(t, "otherBindings") {
			snap.Bindings = append(snap.Bindings, Binding{
				Replica: fmt.Sprintf("other-%d", i), Workload: "other",
				Node:     rapid.SampledFrom(snap.Nodes).Draw(t, "node").Name,
				Requests: Resources{reqCPUGen.Draw(t, "cpu"), reqMemGen.Draw(t, "mem")},
			})
		}
		s := New(snap)
		perZoneCount := map[string]int{}
		for call := range rapid.IntRange(1, 3).Draw(t, "calls") {
			pol := policyGen.Draw(t, "policy")
			pol.ZoneSpread = true
			req := Request{Workload: "web", Policy: pol}
			for i := range rapid.IntRange(0, 25).Draw(t, "replicas") {
				req.Replicas = append(req.Replicas, Replica{
					ID:       fmt.Sprintf("web-%d-%d", call, i),
					Requests: Resources{reqCPUGen.Draw(t, "cpu"), reqMemGen.Draw(t, "mem")},
					Preferred: rapid.SliceOfN(rapid.Just(WeightedSelector{Weight: 100, Selector: api.LabelSelector{
						MatchLabels: map[string]string{"never": "matches"}}}), 0, 1).Draw(t, "preferred"),
				})
			}
			plan := s.Schedule(req)
			if len(plan.Pending) > 0 {
				t.Fatalf("every replica fits, yet %+v", plan.Pending)
			}
			zoneOf := map[string]string{}
			for _, n := range snap.Nodes {
				zoneOf[n.Name] = n.Zone
			}
			for _, b := range plan.Bindings {
				perZoneCount[zoneOf[b.Node]]++
			}
			lo, hi := len(snap.Nodes)*1000, 0
			for z := range zones {
				c := perZoneCount[fmt.Sprintf("zone-%d", z)]
				lo, hi = min(lo, c), max(hi, c)
			}
			if hi-lo > 1 {
				t.Fatalf("after call %d: replicas per zone %v, skew %d > 1", call, perZoneCount, hi-lo)
			}
		}
	})
}

// fullScan is pick without its shortcuts (share buckets, bounds, zone
// order): every node through every filter and every score step.
func fullScan(s *Scheduler, p *pipeline, g *group, w *workload, d *demand) int32 {
	s.scoreZones(g, w)
	feasible := make([]bool, len(s.nodes))
	minCount := int32(1 << 30)
	for i := range s.nodes {
		feasible[i] = g.reasons[i] == 0
		for _, f := range p.dynamic {
			feasible[i] = feasible[i] && f.pass(s, int32(i), d)
		}
		if feasible[i] {
			minCount = min(minCount, w.inZone[s.hot[i].zone])
		}
	}
	best := none
	for i := range s.nodes {
		n := &s.hot[i]
		if !feasible[i] || p.zoneSpread && w.inZone[n.zone] != minCount {
			continue
		}
		res := freeShare(n, d.MilliCPU, d.Memory)
		if p.binpack {
			res = MaxScore - res
		}
		score := p.wResources*res + p.wZone*s.zoneScore[n.zone]
		if p.wAnti != 0 {
			score += p.wAnti * antiScore(w.onNode[int32(i)])
		}
		if g.pref != nil {
			score += p.wPreferred * g.pref[i]
		}
		if c := (candidate{score: score, hash: mix(n.hash ^ d.seed), node: int32(i)}); c.better(best) {
			best = c
		}
	}
	return best.node
}

// TestPropertyPickIsFullScan: the pruned, bucketed scan picks exactly the
// node a full scan picks, replica after replica.
func TestPropertyPickIsFullScan(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		var snap Snapshot
		snap.Nodes = genNodes(t, 30)
		for i := range snap.Nodes { // varied sizes, so buckets and bounds matter
			snap.Nodes[i].Allocatable = Resources{rapid.Int64Range(0, 64_000).Draw(t, "cpu"), rapid.Int64Range(0, 256*gib).Draw(t, "mem")}
		}
		if len(snap.Nodes) > 0 {
			for i := range rapid.IntRange(0, 40).Draw(t, "bindings") {
				snap.Bindings = append(snap.Bindings, Binding{
					Replica: fmt.Sprintf("old-%d", i), Workload: rapid.SampledFrom([]string{"web", "db"}).Draw(t, "workload"),
					Node:     rapid.SampledFrom(snap.Nodes).Draw(t, "node").Name,
					Requests: Resources{rapid.Int64Range(0, 8000).Draw(t, "cpu"), rapid.Int64Range(0, 32*gib).Draw(t, "mem")},
				})
			}
		}
		s := New(snap)
		for i := range rapid.IntRange(1, 40).Draw(t, "replicas") {
			pol := policyGen.Draw(t, "policy")
			r := Replica{
				ID:          fmt.Sprintf("web-%d", i),
				Requests:    Resources{rapid.Int64Range(0, 8000).Draw(t, "cpu"), rapid.Int64Range(0, 32*gib).Draw(t, "mem")},
				Required:    requiredGen.Draw(t, "required"),
				Tolerations: rapid.SliceOfN(tolGen, 0, 2).Draw(t, "tolerations"),
				HostPorts:   rapid.SliceOfN(portGen, 0, 1).Draw(t, "ports"),
			}
			if rapid.Bool().Draw(t, "preferred") {
				r.Preferred = []WeightedSelector{{Weight: 50, Selector: api.LabelSelector{MatchLabels: map[string]string{"gpu": "true"}}}}
			}
			p := newPipeline(pol)
			w := s.workloadFor("web")
			s.use(w)
			d := demand{Resources: clampResources(r.Requests), ports: slices.Clone(s.portKeys(r.HostPorts)), seed: hashString(r.ID)}
			want := fullScan(s, &p, s.group(&p, &r), w, &d)

			plan := s.Schedule(Request{Workload: "web", Policy: pol, Replicas: []Replica{r}})
			got := int32(-1)
			if len(plan.Bindings) == 1 {
				got = int32(slices.IndexFunc(s.nodes, func(n Node) bool { return n.Name == plan.Bindings[0].Node }))
			}
			if got != want {
				t.Fatalf("replica %d (%+v, policy %+v): pick chose node %d, a full scan chooses %d", i, r, pol, got, want)
			}
			if err := s.checkIndex(); err != nil {
				t.Fatalf("after replica %d: %v", i, err)
			}
		}
	})
}

// checkIndex checks the share buckets against the nodes: each node is in
// exactly the bucket of its zone and share0, at the position pos says.
func (s *Scheduler) checkIndex() error {
	seen := 0
	for k, bucket := range s.buckets {
		for at, i := range bucket {
			h := s.hot[i]
			if want := int(h.zone)*(MaxScore+1) + int(h.share0); k != want {
				return fmt.Errorf("node %d (zone %d, share0 %d) in bucket %d, want %d", i, h.zone, h.share0, k, want)
			}
			if h.share0 != uint8(freeShare(&h, 0, 0)) {
				return fmt.Errorf("node %d: share0 %d, free share %d", i, h.share0, freeShare(&h, 0, 0))
			}
			if int(s.pos[i]) != at {
				return fmt.Errorf("node %d at %d in its bucket, pos says %d", i, at, s.pos[i])
			}
			seen++
		}
	}
	if seen != len(s.nodes) {
		return fmt.Errorf("%d nodes in buckets, want %d", seen, len(s.nodes))
	}
	return nil
}
