package scheduler

import (
	"maps"
	"slices"

	"github.com/atollhq/atoll/api"
)

// Filter reasons, as they appear in Pending.Counts and Pending.Reason.
const (
	ReasonNotReady           = "not ready"
	ReasonCordoned           = "cordoned"
	ReasonNodeSelector       = "node selector mismatch"
	ReasonAffinity           = "affinity mismatch"
	ReasonTainted            = "tainted (no toleration)"
	ReasonHostPort           = "host port conflict"
	ReasonInsufficientCPU    = "insufficient cpu"
	ReasonInsufficientMemory = "insufficient memory"
)

// MaxScore is the most any one score step gives a node.
const MaxScore = 100

// pipeline is the placement of one replica: filter steps, then score
// steps. The order of the filters is the order in which a rejected node is
// charged to a reason (each node counts once, under its first failing
// filter); the set of filters, not their order, decides feasibility.
type pipeline struct {
	// static filters depend only on the node and the replica's placement
	// spec, never on what is bound: they run once per distinct spec and
	// are memoised (see group).
	static []staticFilter
	// dynamic filters depend on what is already bound: they run for every
	// replica and node. The hot loop (scanNodes) inlines the same tests;
	// explain runs them from here, and a property test checks that a
	// replica is left pending only when no node passes them.
	dynamic []dynamicFilter
	// zoneSpread is the zone skew filter. It runs after the scan because
	// it needs to know which zones have a feasible node at all.
	zoneSpread bool

	// Score weights: a node's score is the weighted sum of the steps'
	// scores, each in 0..MaxScore. A zero weight turns a step off.
	wResources, wZone, wAnti, wPreferred int64
	binpack                              bool
}

type staticFilter struct {
	reason string
	pass   func(n *Node, sp *compiledSpec) bool
}

type dynamicFilter struct {
	reason string
	pass   func(s *Scheduler, i int32, d *demand) bool
}

// newPipeline builds the filter and score steps for a policy.
func newPipeline(pol Policy) pipeline {
	p := pipeline{
		static: []staticFilter{
			// First: a node that cannot run anything is reported as such,
			// whatever the replica asks.
			{ReasonNotReady, func(n *Node, _ *compiledSpec) bool { return n.Ready }},
			// Next: the operator's explicit "nothing new here" outranks any
			// property of the replica.
			{ReasonCordoned, func(n *Node, _ *compiledSpec) bool { return !n.Unschedulable }},
			// The replica's own choice of nodes comes before the nodes'
			// choice of replicas: a node it never wanted is a mismatch, not
			// a taint or a lack of room.
			{ReasonNodeSelector, func(n *Node, sp *compiledSpec) bool { return matchLabels(sp.nodeSelector, n.Labels) }},
			{ReasonAffinity, func(n *Node, sp *compiledSpec) bool { return !sp.hasRequired || sp.required.Matches(n.Labels) }},
			// Taints last among the static filters: they only matter on
			// nodes the replica would otherwise accept.
			{ReasonTainted, func(n *Node, sp *compiledSpec) bool { return toleratesAll(n.Taints, sp.tolerations) }},
		},
		dynamic: []dynamicFilter{
			// Host ports before resources: no amount of freed capacity
			// fixes a port conflict, so it is the more useful message.
			{ReasonHostPort, func(s *Scheduler, i int32, d *demand) bool { return !s.portConflict(i, d.ports) }},
			// Resources last: "insufficient" is then reported only for
			// nodes that would take the replica if they had room.
			{ReasonInsufficientCPU, func(s *Scheduler, i int32, d *demand) bool { return fits(d.MilliCPU, s.hot[i].freeCPU) }},
			{ReasonInsufficientMemory, func(s *Scheduler, i int32, d *demand) bool { return fits(d.Memory, s.hot[i].freeMem) }},
		},
		zoneSpread: pol.ZoneSpread,

		// Free (spread) or used (binpack) share of the node: the base
		// score, at weight 1 so that every other step outweighs it.
		wResources: 1,
		// Zones holding fewer replicas of the workload: a soft spread in
		// every policy, as Kubernetes' default topology spread.
		wZone: 2,
		// Nodes holding fewer replicas of the workload, when asked.
		wAnti: 0,
		// Preferred node affinity, normalised to 0..MaxScore.
		wPreferred: 2,
		binpack:    pol.Strategy == StrategyBinpack,
	}
	if pol.AntiAffinity {
		p.wAnti = 2
	}
	return p
}

// fits reports whether a request fits in what is free. A zero request
// always fits, as in Kubernetes, even on an over-committed node.
func fits(req, free int64) bool { return req == 0 || req <= free }

// matchLabels reports whether labels carry every key and value of sel.
func matchLabels(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// toleratesAll reports whether every NoSchedule and NoExecute taint is
// tolerated. Taints with other effects (PreferNoSchedule) do not filter.
func toleratesAll(taints []api.Taint, tols []api.Toleration) bool {
	for _, t := range taints {
		if t.Effect != "NoSchedule" && t.Effect != "NoExecute" {
			continue
		}
		if !slices.ContainsFunc(tols, func(tol api.Toleration) bool { return tol.Tolerates(t) }) {
			return false
		}
	}
	return true
}

// portConflict reports whether node i already uses one of the ports.
func (s *Scheduler) portConflict(i int32, ports []uint32) bool {
	for _, used := range s.ports[i] {
		if slices.Contains(ports, used) {
			return true
		}
	}
	return false
}

// compiledSpec is a replica's placement spec with its selectors parsed.
type compiledSpec struct {
	nodeSelector map[string]string
	hasRequired  bool
	required     api.Selector
	tolerations  []api.Toleration
}

// group is the memoised static part of the pipeline for one placement
// spec (node selector, required and preferred affinity, tolerations).
// Replicas of a workload share their spec, so a batch builds one group
// and the scan touches only the nodes that passed.
type group struct {
	// the spec it was built for
	nodeSelector map[string]string
	required     *api.LabelSelector
	preferred    []WeightedSelector
	tolerations  []api.Toleration

	reasons   []uint8 // per node: 0 passed, k: failed static filter k-1
	feasible  []int32 // nodes that passed, by zone, then index
	zoneStart []int   // zone z's nodes are feasible[zoneStart[z]:zoneStart[z+1]]
	pref      []int64 // per node preferred-affinity score 0..MaxScore; nil when no term matches anywhere
	zoneOK    []bool  // per zone: some node passed
}

// maxGroups bounds the memo; a batch of replicas with many distinct specs
// only rebuilds groups more often.
const maxGroups = 16

// group returns the memoised static filters for r's spec, building them
// when needed. Static filters do not depend on the policy, so groups are
// shared by every Schedule call on the Scheduler.
func (s *Scheduler) group(p *pipeline, r *Replica) *group {
	for k := len(s.groups) - 1; k >= 0; k-- {
		if g := s.groups[k]; g.matches(r) {
			if k != len(s.groups)-1 { // most recent last: the next lookup hits at once
				copy(s.groups[k:], s.groups[k+1:])
				s.groups[len(s.groups)-1] = g
			}
			return g
		}
	}
	g := s.newGroup(p, r)
	if len(s.groups) == maxGroups {
		s.groups = slices.Delete(s.groups, 0, 1)
	}
	s.groups = append(s.groups, g)
	return g
}

func (g *group) matches(r *Replica) bool {
	return maps.Equal(g.nodeSelector, r.NodeSelector) &&
		equalSelector(g.required, r.Required) &&
		slices.Equal(g.tolerations, r.Tolerations) &&
		slices.EqualFunc(g.preferred, r.Preferred, func(a, b WeightedSelector) bool {
			return a.Weight == b.Weight && equalSelector(&a.Selector, &b.Selector)
		})
}

func equalSelector(a, b *api.LabelSelector) bool {
	if a == nil || b == nil {
		return a == b
	}
	return maps.Equal(a.MatchLabels, b.MatchLabels) &&
		slices.EqualFunc(a.MatchExpressions, b.MatchExpressions, func(x, y api.Requirement) bool {
			return x.Key == y.Key && x.Operator == y.Operator && slices.Equal(x.Values, y.Values)
		})
}

func (s *Scheduler) newGroup(p *pipeline, r *Replica) *group {
	g := &group{
		nodeSelector: maps.Clone(r.NodeSelector),
		required:     cloneSelector(r.Required),
		tolerations:  slices.Clone(r.Tolerations),
		reasons:      make([]uint8, len(s.nodes)),
		feasible:     make([]int32, 0, len(s.nodes)),
		zoneOK:       make([]bool, len(s.zones)),
	}
	for _, w := range r.Preferred {
		g.preferred = append(g.preferred, WeightedSelector{Weight: w.Weight, Selector: *cloneSelector(&w.Selector)})
	}
	sp := compiledSpec{
		nodeSelector: r.NodeSelector,
		hasRequired:  r.Required != nil,
		required:     r.Required.Selector(),
		tolerations:  r.Tolerations,
	}
	for i := range s.nodes {
		n := &s.nodes[i]
		for k, f := range p.static {
			if !f.pass(n, &sp) {
				g.reasons[i] = uint8(k + 1)
				break
			}
		}
		if g.reasons[i] == 0 {
			g.feasible = append(g.feasible, int32(i))
			g.zoneOK[s.hot[i].zone] = true
		}
	}
	slices.SortStableFunc(g.feasible, func(a, b int32) int { return int(s.hot[a].zone - s.hot[b].zone) })
	g.zoneStart = make([]int, len(s.zones)+1)
	for z := range s.zones {
		g.zoneStart[z+1], _ = slices.BinarySearchFunc(g.feasible, int32(z+1), func(i, z int32) int { return int(s.hot[i].zone - z) })
	}

	// Preferred affinity: the sum of matching terms' weights, normalised
	// so the best feasible node scores MaxScore.
	if len(r.Preferred) == 0 {
		return g
	}
	sels := make([]api.Selector, len(r.Preferred))
	for k := range r.Preferred {
		sels[k] = r.Preferred[k].Selector.Selector()
	}
	raw := make([]int64, len(s.nodes))
	var top int64
	for _, i := range g.feasible {
		for k, w := range r.Preferred {
			if sels[k].Matches(s.nodes[i].Labels) {
				raw[i] += int64(min(max(w.Weight, 0), 100))
			}
		}
		top = max(top, raw[i])
	}
	if top == 0 {
		return g
	}
	for _, i := range g.feasible {
		raw[i] = raw[i] * MaxScore / top
	}
	g.pref = raw
	return g
}

func cloneSelector(ls *api.LabelSelector) *api.LabelSelector {
	if ls == nil {
		return nil
	}
	c := &api.LabelSelector{MatchLabels: maps.Clone(ls.MatchLabels)}
	for _, r := range ls.MatchExpressions {
		r.Values = slices.Clone(r.Values)
		c.MatchExpressions = append(c.MatchExpressions, r)
	}
	return c
}

// explain charges every node to the first filter that rejects it. It runs
// only for a replica the scan could not place, so it may be slow.
func (s *Scheduler) explain(p *pipeline, g *group, d *demand, replica string) Pending {
	counts := make(map[string]int)
	for i := range s.nodes {
		if k := g.reasons[i]; k != 0 {
			counts[p.static[k-1].reason]++
			continue
		}
		for _, f := range p.dynamic {
			if !f.pass(s, int32(i), d) {
				counts[f.reason]++
				break
			}
		}
	}
	return Pending{Replica: replica, Reason: formatReason(len(s.nodes), counts), Counts: counts}
}
