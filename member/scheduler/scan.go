package scheduler

import (
	"math"
	"slices"
)

// candidate is a node with its score and tie-break hash; node -1 is none.
type candidate struct {
	score int64
	hash  uint64
	node  int32
}

var none = candidate{score: math.MinInt64, node: -1}

// better orders candidates: higher score, then lower tie-break hash, then
// lower index (name). It is a total order, so the best node does not
// depend on the order in which nodes are visited.
func (c candidate) better(o candidate) bool {
	if c.score != o.score {
		return c.score > o.score
	}
	if c.hash != o.hash {
		return c.hash < o.hash
	}
	return c.node < o.node
}

// scan is what the hot loop needs for one replica, gathered so it reads
// locals.
type scan struct {
	needCPU, needMem int64 // the requests, math.MinInt64 for zero: a zero request always fits
	cpu, mem         int64
	ports            []uint32
	seed             uint64
	resBase, resSign int64 // resource score = resBase + resSign*freeShare
	// boundBase + boundSign*share0 bounds the resource score from above
	// (see nodeHot.share0).
	boundBase, boundSign int64
	wAnti, wPref         int64
	maxExtra             int64   // the most anti-affinity and preferred affinity can add
	counts               []int32 // the workload's replicas per node; nil without anti-affinity
	pref                 []int64 // nil without preferred affinity
	reasons              []uint8 // the group's static results, when the scan visits every node
	zoneOff              int64   // the weighted zone score of the zone being scanned
}

// linearBelow: a group whose static filters pass fewer than this share of
// the nodes is scanned through its own list of nodes instead of the
// share buckets, which would visit every node.
const linearBelow = 2 // i.e. half

// pick runs the dynamic filters and the scores and returns the best node,
// or -1 when none passes.
//
// Nodes are visited zone by zone (the zone score and the zone skew filter
// are per zone) and, within a zone, from the emptiest share bucket down:
// a node's score is at most its bucket's bound plus the most the other
// steps can add, so the scan stops at the first bucket whose bound is
// below the best score found. Only a strictly lower bound stops it, so
// the result is exactly the best node of a full scan.
func (s *Scheduler) pick(p *pipeline, g *group, w *workload, d *demand) int32 {
	sc := scan{
		needCPU: d.MilliCPU, needMem: d.Memory,
		cpu: d.MilliCPU, mem: d.Memory,
		ports: d.ports, seed: d.seed,
		resBase: 0, resSign: p.wResources,
		boundBase: 0, boundSign: p.wResources,
		wAnti: p.wAnti, wPref: p.wPreferred,
		pref: g.pref,
	}
	if sc.needCPU == 0 {
		sc.needCPU = math.MinInt64
	}
	if sc.needMem == 0 {
		sc.needMem = math.MinInt64
	}
	if p.binpack { // the used share, MaxScore minus the free share: share0 bounds nothing
		sc.resBase, sc.resSign = p.wResources*MaxScore, -p.wResources
		sc.boundBase, sc.boundSign = p.wResources*MaxScore, 0
	}
	if p.wAnti != 0 {
		sc.counts = s.dense
		sc.maxExtra += p.wAnti * MaxScore
	}
	if g.pref != nil {
		sc.maxExtra += p.wPreferred * MaxScore
	}
	if len(g.feasible)*linearBelow >= len(s.nodes) {
		sc.reasons = g.reasons
	}
	s.scoreZones(g, w)

	if !p.zoneSpread {
		best := none
		for z, ok := range g.zoneOK {
			if ok {
				best = s.scanZone(&sc, p, g, z, best)
			}
		}
		return best.node
	}
	// Zone spread: only the zones holding the fewest replicas among those
	// where the replica fits. Visit zones by count; the first count with a
	// feasible node decides, and zones holding more are never scanned.
	order := s.zoneOrder[:0]
	for z, ok := range g.zoneOK {
		if ok {
			order = append(order, int32(z))
		}
	}
	slices.SortFunc(order, func(a, b int32) int { return int(w.inZone[a] - w.inZone[b]) })
	s.zoneOrder = order
	best := none
	for k := 0; k < len(order) && best.node < 0; {
		count := w.inZone[order[k]]
		for ; k < len(order) && w.inZone[order[k]] == count; k++ {
			best = s.scanZone(&sc, p, g, int(order[k]), best)
		}
	}
	return best.node
}

// scanZone returns the better of best and zone z's best node.
func (s *Scheduler) scanZone(sc *scan, p *pipeline, g *group, z int, best candidate) candidate {
	sc.zoneOff = p.wZone * s.zoneScore[z]
	if sc.reasons == nil {
		return s.scanNodes(sc, g.feasible[g.zoneStart[z]:g.zoneStart[z+1]], best)
	}
	buckets := s.buckets[z*(MaxScore+1) : (z+1)*(MaxScore+1)]
	for share := MaxScore; share >= 0; share-- {
		if len(buckets[share]) == 0 {
			continue
		}
		if sc.boundBase+sc.boundSign*int64(share)+sc.maxExtra+sc.zoneOff < best.score {
			break
		}
		best = s.scanNodes(sc, buckets[share], best)
	}
	return best
}

// scanNodes is the hot loop: the dynamic filters, then the node-level
// scores, over nodes; it returns the better of best and their best.
func (s *Scheduler) scanNodes(sc *scan, nodes []int32, best candidate) candidate {
	hot := s.hot
	for _, i := range nodes {
		if sc.reasons != nil && sc.reasons[i] != 0 {
			continue
		}
		n := &hot[i]
		extra := sc.zoneOff // the scores that do not depend on the request
		if sc.counts != nil {
			extra += sc.wAnti * antiScore(sc.counts[i])
		}
		if sc.pref != nil {
			extra += sc.wPref * sc.pref[i]
		}
		// Skip the exact resource score when even its bound loses.
		if sc.boundBase+sc.boundSign*int64(n.share0)+extra < best.score {
			continue
		}
		if sc.needCPU > n.freeCPU || sc.needMem > n.freeMem {
			continue
		}
		if len(sc.ports) > 0 && s.portConflict(i, sc.ports) {
			continue
		}
		c := candidate{score: sc.resBase + sc.resSign*freeShare(n, sc.cpu, sc.mem) + extra, node: i}
		if c.score < best.score {
			continue
		}
		c.hash = mix(n.hash ^ sc.seed)
		if c.better(best) {
			best = c
		}
	}
	return best
}

// freeShare is the least-allocated score: the mean of the CPU and memory
// shares (0..MaxScore) the node would have free after taking the request.
// It never rises as the request grows, which is what makes share0 a bound.
func freeShare(n *nodeHot, cpu, mem int64) int64 {
	c := (max(n.freeCPU-cpu, 0) >> n.cpuShift) * n.cpuRecip >> 32
	m := (max(n.freeMem-mem, 0) >> n.memShift) * n.memRecip >> 32
	return (c + m) >> 1
}

// antiScore is MaxScore for a node with no replica of the workload,
// falling as 1/(count+1).
func antiScore(count int32) int64 {
	if count == 0 {
		return MaxScore
	}
	return MaxScore / (int64(count) + 1)
}

// scoreZones fills zoneScore: MaxScore for the zones (among those where
// the group has nodes) holding the fewest replicas of the workload, 0 for
// those holding the most, linear between.
func (s *Scheduler) scoreZones(g *group, w *workload) {
	lo, hi := int32(math.MaxInt32), int32(math.MinInt32)
	for z, ok := range g.zoneOK {
		if ok {
			lo, hi = min(lo, w.inZone[z]), max(hi, w.inZone[z])
		}
	}
	for z := range s.zoneScore {
		if hi <= lo {
			s.zoneScore[z] = MaxScore
			continue
		}
		s.zoneScore[z] = MaxScore * int64(hi-max(w.inZone[z], lo)) / int64(hi-lo)
	}
}
