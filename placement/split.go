package placement

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// quotas computes each eligible cluster's fair, real-valued share of the
// desired count: tier by tier (a tier gets what the earlier tiers could
// not hold), within a tier in proportion to the weights, bounded by each
// cluster's hi (water-filling: a cluster whose share exceeds its bound
// gets its bound, and the rest is shared again among the others).
// Quotas of keep-only and evicted clusters are 0. Arithmetic is float64
// with no fused operations, so it is the same on every machine.
func (d *decider) quotas() {
	rem := float64(d.r)
	idx := make([]int, 0, len(d.ms))
	var parts []string
	for t := 0; t <= len(d.tiers) && rem > 0; t++ {
		idx = idx[:0]
		for i := range d.ms {
			if m := &d.ms[i]; m.disp == eligible && m.tier == t && m.weight > 0 && m.hi > 0 {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		// The clusters whose bound binds first come first.
		slices.SortFunc(idx, func(a, b int) int {
			ma, mb := &d.ms[a], &d.ms[b]
			return cmp.Or(cmp.Compare(float64(ma.hi)/float64(ma.weight), float64(mb.hi)/float64(mb.weight)), cmp.Compare(a, b))
		})
		var w float64
		for _, i := range idx {
			w += float64(d.ms[i].weight)
		}
		before := rem
		for k, i := range idx {
			m := &d.ms[i]
			if share := float64(rem*float64(m.weight)) / w; float64(m.hi) <= share {
				m.q = float64(m.hi)
				rem -= float64(m.hi)
				w -= float64(m.weight)
				continue
			}
			for _, j := range idx[k:] {
				mj := &d.ms[j]
				mj.q = float64(rem*float64(mj.weight)) / w
			}
			rem = 0
			break
		}
		if len(d.tiers) > 0 {
			label := "clusters matching no preference"
			if t < len(d.tiers) {
				label = "preference " + itoa(t+1) + " (" + d.tiers[t].String() + ")"
			}
			took := before - rem
			full := ""
			if rem > 0 {
				full = ", full"
			}
			parts = append(parts, label+": "+itoa(len(idx))+" clusters take "+ftoa(took)+full)
		}
	}
	if len(parts) > 0 {
		d.note("tiers, filled in order: %s", strings.Join(parts, "; "))
	}
	d.note("quotas for %d replicas: %s", d.r, d.list(func(m *member) (string, bool) {
		return ftoa(m.q), m.disp == eligible && m.q > 0
	}))
}

// keep starts from what runs now, minus what must move: everything on
// evicted clusters, and what is above a cluster's bound.
func (d *decider) keep() {
	for i := range d.ms {
		m := &d.ms[i]
		if m.cur == 0 {
			continue
		}
		if m.disp == evicted {
			d.lost += m.cur
			d.note("%s: its %d replicas are re-placed (%s)", m.name, m.cur, m.evictReason)
			continue
		}
		keep := min(m.cur, m.hi)
		if d.in.Rebalance && m.disp == eligible {
			keep = 0
		}
		if keep < m.cur && keep == m.hi && m.hi < d.r {
			d.note("%s: keeps %d of its %d replicas (maxReplicasPerCluster %d)", m.name, keep, m.cur, d.max)
		}
		d.give(m, keep)
	}
	if d.in.Rebalance {
		d.note("rebalance: the split is computed afresh; cordoned and unhealthy clusters keep what they run")
	} else if kept := d.placed(); kept > 0 {
		d.note("kept from the current placement: %s", d.list(func(m *member) (string, bool) { return itoa(int(m.n)), m.n > 0 }))
	}
}

// remove takes replicas away while there are more than desired: first
// from clusters that take nothing new, then from the cluster furthest
// above its quota (so the least preferred tier goes first), never leaving
// a cluster below minReplicasPerCluster nor uncovering a spread group
// needed for minGroups when another choice exists.
func (d *decider) remove() {
	excess := d.placed() - d.r
	if excess <= 0 {
		return
	}
	removed := make(map[int]int32)
	for excess > 0 {
		v := d.victim(excess, true)
		if v < 0 {
			v = d.victim(excess, false)
		}
		if v < 0 {
			break
		}
		m := &d.ms[v]
		amount := int32(1)
		if m.disp == eligible && d.min > 1 && m.n <= d.min && m.n <= excess {
			amount = m.n
		}
		d.give(m, -amount)
		removed[v] += amount
		excess -= amount
	}
	d.note("removed %d: %s (from clusters taking nothing new, then the furthest above their quota)",
		sumValues(removed), d.listIdx(removed, "-"))
}

// victim picks the cluster to lose the next replica. strict keeps the
// per-cluster minimum and spread minGroups.
func (d *decider) victim(excess int32, strict bool) int {
	best := -1
	for i := range d.ms {
		m := &d.ms[i]
		if m.n == 0 {
			continue
		}
		if strict {
			amount := int32(1)
			if m.disp == eligible && d.min > 1 && m.n <= d.min {
				if m.n > excess {
					continue
				}
				amount = m.n
			}
			if m.n == amount && d.uncovers(m) {
				continue
			}
		}
		if best < 0 || d.lessWanted(m, &d.ms[best]) {
			best = i
		}
	}
	return best
}

// lessWanted orders clusters for removal: keep-only first, then the
// furthest above quota, then the later tier, lower weight, higher count,
// and the name, last first.
func (d *decider) lessWanted(a, b *member) bool {
	if (a.disp == keepOnly) != (b.disp == keepOnly) {
		return a.disp == keepOnly
	}
	return cmp.Or(
		cmp.Compare(float64(a.q-float64(a.n)), float64(b.q-float64(b.n))),
		cmp.Compare(b.tier, a.tier),
		cmp.Compare(a.weight, b.weight),
		cmp.Compare(b.n, a.n),
		cmp.Compare(b.rank, a.rank),
		strings.Compare(b.name, a.name),
	) < 0
}

// uncovers reports whether emptying m would drop a spread constraint's
// coverage below (or further below) its minGroups.
func (d *decider) uncovers(m *member) bool {
	for k, g := range m.groups {
		sp := &d.spreads[k]
		if sp.min > 0 && g >= 0 && sp.total[g] == m.n && d.covered(k) <= sp.min {
			return true
		}
	}
	return false
}

// covered counts the groups of spread constraint k holding replicas.
func (d *decider) covered(k int) int32 {
	var n int32
	for _, t := range d.spreads[k].total {
		if t > 0 {
			n++
		}
	}
	return n
}

// add places replicas while there are fewer than desired, one at a time
// to the cluster furthest below its quota. From zero this is exactly
// largest-remainder rounding: every cluster first gets the whole part of
// its quota, then the left-over replicas go to the largest remainders.
// While a spread constraint covers fewer groups than its minGroups, a
// cluster in an uncovered group goes first. A cluster that runs nothing
// yet gets minReplicasPerCluster at once, or nothing.
func (d *decider) add() {
	need := d.r - d.placed()
	if need <= 0 {
		return
	}
	start := make([]int32, len(d.ms))
	for i := range d.ms {
		start[i] = d.ms[i].n
	}
	var rems, below []string

	// Fast path, same outcome as one at a time: the whole parts of the
	// shortfalls, when they all fit in what is needed.
	var sum int64
	for i := range d.ms {
		sum += int64(d.wholeShortfall(&d.ms[i]))
	}
	if sum > 0 && sum <= int64(need) && d.spreadMet() {
		for i := range d.ms {
			if f := d.wholeShortfall(&d.ms[i]); f > 0 {
				d.give(&d.ms[i], f)
				need -= f
			}
		}
	}

	for need > 0 {
		i, fallback := d.recipient(need)
		if i < 0 {
			break
		}
		m := &d.ms[i]
		amount := int32(1)
		switch {
		case fallback:
			amount = min(need, m.hi)
			below = append(below, m.name)
		case m.n == 0 && d.min > 1:
			amount = d.min
		}
		if short := m.q - float64(m.n); short > 0 && short < 1 && !fallback {
			rems = append(rems, m.name+" "+ftoa(short))
		}
		d.give(m, amount)
		need -= amount
	}

	added := make(map[int]int32)
	for i := range d.ms {
		if n := d.ms[i].n - start[i]; n > 0 {
			added[i] = n
		}
	}
	if len(added) == 0 {
		return
	}
	d.note("added %d: %s (each to the cluster furthest below its quota)", sumValues(added), d.listIdx(added, "+"))
	if len(rems) > 0 {
		d.note("rounding: after the whole parts of the quotas, %d went to the largest remainders: %s",
			len(rems), strings.Join(rems, ", "))
	}
	if len(below) > 0 {
		d.note("%s got fewer than minReplicasPerCluster %d: no cluster already running the workload had room",
			strings.Join(below, ", "), d.min)
	}
}

// wholeShortfall is the whole part of how far m is below its quota, as
// far as adding it one at a time would go (respecting the block rule of
// minReplicasPerCluster).
func (d *decider) wholeShortfall(m *member) int32 {
	if m.disp != eligible || m.n >= m.hi {
		return 0
	}
	f := int32(math.Floor(m.q - float64(m.n)))
	if f <= 0 || (m.n == 0 && d.min > 1 && f < d.min) {
		return 0
	}
	return min(f, m.hi-m.n)
}

// spreadMet reports whether every minGroups is met (or the fast path of
// add cannot be told apart from one at a time).
func (d *decider) spreadMet() bool {
	for k := range d.spreads {
		if d.spreads[k].min > 0 && d.covered(k) < d.spreads[k].min {
			return false
		}
	}
	return true
}

// recipient picks the cluster for the next replica: clusters covering an
// uncovered spread group first, then the furthest below quota, the
// earlier tier, the higher weight, the name. fallback is set when the
// only clusters with room are empty ones that would get fewer than
// minReplicasPerCluster.
func (d *decider) recipient(need int32) (best int, fallback bool) {
	best, fb := -1, -1
	bestHelps, fbHelps := 0, 0
	for i := range d.ms {
		m := &d.ms[i]
		if m.disp != eligible || m.n >= m.hi {
			continue
		}
		helps := d.helps(m)
		if m.n == 0 && d.min > 1 && (need < d.min || m.hi < d.min) {
			if fb < 0 || d.moreWanted(m, helps, &d.ms[fb], fbHelps) {
				fb, fbHelps = i, helps
			}
			continue
		}
		if best < 0 || d.moreWanted(m, helps, &d.ms[best], bestHelps) {
			best, bestHelps = i, helps
		}
	}
	if best < 0 && fb >= 0 {
		return fb, true
	}
	return best, false
}

func (d *decider) moreWanted(a *member, ah int, b *member, bh int) bool {
	return cmp.Or(
		cmp.Compare(bh, ah),
		cmp.Compare(float64(b.q-float64(b.n)), float64(a.q-float64(a.n))),
		cmp.Compare(a.tier, b.tier),
		cmp.Compare(b.weight, a.weight),
		cmp.Compare(a.rank, b.rank),
		strings.Compare(a.name, b.name),
	) < 0
}

// helps counts the spread constraints below minGroups whose coverage a
// replica on m would raise.
func (d *decider) helps(m *member) int {
	n := 0
	for k, g := range m.groups {
		if sp := &d.spreads[k]; sp.min > 0 && g >= 0 && sp.total[g] == 0 && d.covered(k) < sp.min {
			n++
		}
	}
	return n
}

// cover moves replicas into uncovered groups while a spread constraint
// covers fewer than minGroups and replicas can be spared elsewhere
// (adding could not do it because the count was already right).
func (d *decider) cover() {
	block := max(d.min, 1)
	for k := range d.spreads {
		sp := &d.spreads[k]
		if sp.min == 0 || d.r == 0 {
			continue
		}
		for d.covered(k) < sp.min {
			t := -1
			for i := range d.ms {
				m := &d.ms[i]
				if m.disp != eligible || m.hi-m.n < block || m.groups[k] < 0 || sp.total[m.groups[k]] > 0 {
					continue
				}
				if t < 0 || cmp.Or(cmp.Compare(m.tier, d.ms[t].tier), cmp.Compare(d.ms[t].weight, m.weight), cmp.Compare(d.ms[t].q, m.q), strings.Compare(m.name, d.ms[t].name)) < 0 {
					t = i
				}
			}
			if t < 0 {
				break
			}
			var from []int
			for range block {
				v := d.donor(t)
				if v < 0 {
					break
				}
				d.give(&d.ms[v], -1)
				from = append(from, v)
			}
			if int32(len(from)) < block {
				for _, v := range from {
					d.give(&d.ms[v], 1)
				}
				break
			}
			d.give(&d.ms[t], block)
			names := make([]string, 0, len(from))
			for _, v := range from {
				names = append(names, d.ms[v].name)
			}
			slices.Sort(names)
			names = slices.Compact(names)
			d.note("spread by %s needs %d groups: moved %d from %s to %s (%s=%s)",
				sp.key, sp.min, block, strings.Join(names, ", "), d.ms[t].name, sp.key, sp.names[d.ms[t].groups[k]])
		}
	}
}

// donor picks the cluster to give up one replica for a fix-up: one that
// keeps at least minReplicasPerCluster (or is keep-only) and whose group
// coverage does not drop below a minGroups, least wanted first.
func (d *decider) donor(target int) int {
	best := -1
	for i := range d.ms {
		m := &d.ms[i]
		if i == target || m.n == 0 {
			continue
		}
		if m.disp == eligible && m.n-1 < max(d.min, 1) {
			continue
		}
		if m.n == 1 && d.uncovers(m) {
			continue
		}
		if best < 0 || d.lessWanted(m, &d.ms[best]) {
			best = i
		}
	}
	return best
}

// raise brings clusters holding fewer than minReplicasPerCluster up to it
// with replicas from clusters above it.
func (d *decider) raise() {
	if d.min <= 1 {
		return
	}
	for i := range d.ms {
		m := &d.ms[i]
		if m.disp != eligible || m.n == 0 || m.n >= d.min {
			continue
		}
		if m.hi < d.min {
			d.note("%s holds %d, below minReplicasPerCluster %d: it has room for no more", m.name, m.n, d.min)
			continue
		}
		start := m.n
		for m.n < d.min {
			v := d.donor(i)
			if v < 0 {
				break
			}
			d.give(&d.ms[v], -1)
			d.give(m, 1)
		}
		switch {
		case m.n < d.min:
			d.note("%s holds %d, below minReplicasPerCluster %d: no other cluster can spare a replica", m.name, m.n, d.min)
		case m.n > start:
			d.note("%s raised from %d to minReplicasPerCluster %d", m.name, start, d.min)
		}
	}
}

// duplicate gives every eligible cluster the desired count (bounded by
// maxReplicasPerCluster and room); keep-only clusters keep what they run,
// up to that count.
func (d *decider) duplicate() {
	for i := range d.ms {
		m := &d.ms[i]
		switch m.disp {
		case evicted:
			if m.cur > 0 {
				d.lost += m.cur
				d.note("%s: its %d replicas are re-placed (%s)", m.name, m.cur, m.evictReason)
			}
		default:
			d.give(m, m.hi)
		}
	}
	d.note("Duplicated: %d replicas in each eligible cluster: %s", d.want(), d.list(func(m *member) (string, bool) {
		return itoa(int(m.n)), m.n > 0
	}))
}

// want is the count each selected cluster should hold in Duplicated mode.
func (d *decider) want() int32 {
	if d.max > 0 {
		return min(d.r, d.max)
	}
	return d.r
}

// checkSpread reports minGroups that could not be met.
func (d *decider) checkSpread() {
	if d.r == 0 {
		return
	}
	for k := range d.spreads {
		sp := &d.spreads[k]
		if sp.min == 0 {
			continue
		}
		got := d.covered(k)
		if got >= sp.min {
			continue
		}
		var open []string
		for g, name := range sp.names {
			for i := range d.ms {
				m := &d.ms[i]
				if (m.disp == eligible && m.hi > 0 || m.n > 0) && m.groups[k] == int32(g) {
					open = append(open, name)
					break
				}
			}
		}
		var why string
		switch {
		case int32(len(open)) < sp.min:
			why = "spread by " + sp.key + " needs " + itoa(int(sp.min)) + " groups, but only " + itoa(len(open)) +
				" have a cluster that can run the workload" + listOrNone(open)
		case d.divided && d.r < sp.min*max(d.min, 1):
			why = "spread by " + sp.key + " needs " + itoa(int(sp.min)) + " groups, but " + itoa(int(d.r)) +
				" replicas cannot cover them"
		default:
			why = "spread by " + sp.key + " covers " + itoa(int(got)) + " of the " + itoa(int(sp.min)) +
				" groups it needs: the other groups' clusters are full"
		}
		d.unsat = append(d.unsat, why)
		d.note("%s", why)
	}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return " (" + strings.Join(s, ", ") + ")"
}

func sumValues(m map[int]int32) int32 {
	var s int32
	for _, v := range m {
		s += v
	}
	return s
}
