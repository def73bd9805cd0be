package placement

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/atollhq/atoll/api"
)

// Filter reasons, as counted in UnplacedReason. Filtered holds the same
// words, with details for taints, health and spread.
const (
	ReasonGone            = "not in the cluster snapshot"
	ReasonExcluded        = "excluded"
	ReasonNotListed       = "not in clusters list"
	ReasonOutsideSelector = "outside clusterSelector"
	ReasonNoSpreadLabel   = "no spread label"
	ReasonTainted         = "tainted (no toleration)"
	ReasonCordoned        = "cordoned"
	ReasonWeightZero      = "weight 0"
	ReasonNoRoom          = "no room"
	ReasonBeyondMaxGroups = "beyond spread maxGroups"
	// Health other than Ready is reported as the health itself:
	// "Unreachable", "Suspect" or "Unknown".
)

// HealthReason says whether a filter reason is a cluster's health, as the
// health filter gives it (the health itself, or an Unreachable cluster's
// grace, Cluster.Grace: "Unreachable; ..."), rather than the workload's
// own policy: it changes by the second, with the cluster.
func HealthReason(reason string) bool {
	switch reason {
	case api.HealthSuspect, api.HealthUnknown, api.HealthUnreachable:
		return true
	}
	return strings.HasPrefix(reason, api.HealthUnreachable+";")
}

// clusterFilter is one filter step. check returns eligible when the
// cluster passes; otherwise keepOnly (no new replicas, keeps what it
// runs) or evicted (what it runs is re-placed), with a reason.
type clusterFilter struct {
	category string
	// selection marks the filters that are the workload's own choice of
	// clusters: when they leave nothing, the policy is unsatisfiable.
	selection bool
	check     func(d *decider, c *Cluster) (disposition, string)
}

// newFilters lists the filters in the order a rejected cluster is charged
// to a reason (each cluster counts once, under the first filter that
// rejects it). The set of filters, not their order, decides what a
// cluster may do: the strictest effect among all that fail wins.
func newFilters(pol *api.PlacementPolicy, spreads []spread) []clusterFilter {
	var fs []clusterFilter
	// The workload's own choice of clusters comes first: a cluster it
	// never wanted is reported as such whatever its state, so the counts
	// users see stay stable while health flaps.
	if len(pol.ExcludeClusters) > 0 {
		fs = append(fs, clusterFilter{ReasonExcluded, true, func(_ *decider, c *Cluster) (disposition, string) {
			if slices.Contains(pol.ExcludeClusters, c.Name) {
				return evicted, ReasonExcluded
			}
			return eligible, ""
		}})
	}
	if len(pol.Clusters) > 0 {
		fs = append(fs, clusterFilter{ReasonNotListed, true, func(_ *decider, c *Cluster) (disposition, string) {
			if !slices.Contains(pol.Clusters, c.Name) {
				return evicted, ReasonNotListed
			}
			return eligible, ""
		}})
	}
	if pol.ClusterSelector != nil {
		sel := pol.ClusterSelector.Selector()
		fs = append(fs, clusterFilter{ReasonOutsideSelector, true, func(_ *decider, c *Cluster) (disposition, string) {
			if !sel.Matches(c.Labels) {
				return evicted, ReasonOutsideSelector
			}
			return eligible, ""
		}})
	}
	// A spread constraint on a label the cluster lacks: the cluster
	// belongs to no group, so spread could neither count nor bound it.
	if len(spreads) > 0 {
		fs = append(fs, clusterFilter{ReasonNoSpreadLabel, true, func(d *decider, c *Cluster) (disposition, string) {
			for _, sp := range d.spreads {
				if _, ok := c.Labels[sp.key]; !ok {
					return evicted, "no " + sp.key + " label (spread)"
				}
			}
			return eligible, ""
		}})
	}
	// Then what the cluster asks of the workload: taints. NoSchedule keeps
	// what runs, NoExecute moves it, as in Kubernetes.
	fs = append(fs, clusterFilter{ReasonTainted, false, func(_ *decider, c *Cluster) (disposition, string) {
		disp, first := eligible, ""
		for _, t := range c.Taints {
			if t.Effect != "NoSchedule" && t.Effect != "NoExecute" {
				continue
			}
			if slices.ContainsFunc(pol.Tolerations, func(tol api.Toleration) bool { return tol.Tolerates(t) }) {
				continue
			}
			if first == "" {
				first = "tainted: " + taintString(t) + " (no toleration)"
			}
			if t.Effect == "NoExecute" {
				disp = evicted
			} else {
				disp = max(disp, keepOnly)
			}
		}
		return disp, first
	}})
	// Then the cluster's state, which changes by the second: health, then
	// the operator's cordon.
	fs = append(fs,
		clusterFilter{"health", false, func(_ *decider, c *Cluster) (disposition, string) {
			switch c.Health {
			case api.HealthReady:
				return eligible, ""
			case api.HealthUnreachable:
				if c.Grace != "" {
					return keepOnly, c.Grace
				}
				return evicted, api.HealthUnreachable
			case "":
				return keepOnly, api.HealthUnknown
			default:
				return keepOnly, c.Health
			}
		}},
		clusterFilter{ReasonCordoned, false, func(_ *decider, c *Cluster) (disposition, string) {
			if c.Unschedulable {
				return keepOnly, ReasonCordoned
			}
			return eligible, ""
		}},
	)
	return fs
}

// filter runs the filters over every cluster.
func (d *decider) filter() {
	fs := newFilters(d.pol, d.spreads)
	for i := range d.ms {
		m := &d.ms[i]
		if m.c == nil {
			m.disp, m.reason, m.category, m.evictReason, m.evictedBy = evicted, ReasonGone, ReasonGone, ReasonGone, ReasonGone
			continue
		}
		selected := true
		for _, f := range fs {
			disp, why := f.check(d, m.c)
			if disp == eligible {
				continue
			}
			if f.selection {
				selected = false
			}
			if m.reason == "" {
				m.reason, m.category = why, f.category
				if f.category == "health" {
					m.category = why
				}
			}
			if disp == evicted && m.disp != evicted {
				m.evictReason, m.evictedBy = why, f.category
				if f.category == "health" {
					m.evictedBy = why
				}
			}
			m.disp = max(m.disp, disp)
		}
		if selected {
			d.matched++
		}
	}
}

// weigh gives each cluster its weight and its bound. Static weights of 0
// filter clusters out (and move what they run); clusters that cannot take
// one more replica are reported as having no room.
func (d *decider) weigh() {
	w := d.pol.Weights
	static := d.divided && w != nil && w.Type == "static"
	dynamic := d.divided && w != nil && w.Type == "dynamic"
	byName := map[string]int64{}
	if static {
		for _, sw := range w.Static {
			if _, seen := byName[sw.Cluster]; sw.Cluster != "" && !seen {
				byName[sw.Cluster] = int64(max(sw.Weight, 0))
			}
		}
	}
	var known int64 // dynamic: the largest known capacity, for clusters whose room is unknown
	for i := range d.ms {
		m := &d.ms[i]
		switch m.disp {
		case evicted:
			continue
		case keepOnly:
			m.hi = min(m.cur, d.r)
			if d.max > 0 {
				m.hi = min(m.hi, d.max)
			}
			continue
		}
		m.hi = d.r
		if d.max > 0 {
			m.hi = min(m.hi, d.max)
		}
		if m.c.Room >= 0 {
			m.hi = min(m.hi, m.cur+m.c.Room)
		}
		switch {
		case static:
			wt, ok := byName[m.name]
			if !ok {
				for _, sw := range w.Static {
					if sw.Cluster == "" && sw.LabelKey != "" && m.c.Labels[sw.LabelKey] == sw.LabelValue {
						if _, has := m.c.Labels[sw.LabelKey]; has {
							wt = int64(max(sw.Weight, 0))
							break
						}
					}
				}
			}
			m.weight = wt
			if wt == 0 {
				m.disp, m.reason, m.category, m.evictReason, m.evictedBy = evicted, ReasonWeightZero, ReasonWeightZero, ReasonWeightZero, ReasonWeightZero
				m.hi = 0
				continue
			}
		case dynamic:
			if m.c.Room >= 0 {
				m.weight = int64(m.cur) + int64(m.c.Room)
				known = max(known, m.weight)
			}
		default:
			m.weight = 1
		}
		if m.c.Room == 0 && d.r > 0 {
			// Full: it keeps what it runs and stays in the split, capped.
			m.reason, m.category = ReasonNoRoom, ReasonNoRoom
		}
	}
	if dynamic {
		known = max(known, 1)
		for i := range d.ms {
			if m := &d.ms[i]; m.disp == eligible && m.c.Room < 0 {
				m.weight = known
			}
		}
	}
	d.explainWeights(static, dynamic)
}

// chooseGroups applies spread maxGroups: it keeps the groups that hold the
// most replicas now (unless rebalancing), then those with a cluster that
// can take replicas, the best preference tier and the most weight, and
// filters out every cluster of the other groups.
func (d *decider) chooseGroups() {
	for k := range d.spreads {
		sp := &d.spreads[k]
		if sp.max == 0 {
			continue
		}
		type rank struct {
			g        int32
			holds    int64
			grow     bool
			tier     int
			weight   int64
			occupied bool
		}
		rs := make([]rank, len(sp.names))
		for g := range rs {
			rs[g] = rank{g: int32(g), tier: len(d.tiers) + 1}
		}
		for i := range d.ms {
			m := &d.ms[i]
			if m.disp == evicted || m.groups == nil || m.groups[k] < 0 {
				continue
			}
			r := &rs[m.groups[k]]
			r.occupied = true
			r.holds += int64(min(m.cur, m.hi))
			if m.disp == eligible && m.hi > 0 {
				r.grow = true
				r.tier = min(r.tier, m.tier)
				r.weight += m.weight
			}
		}
		rs = slices.DeleteFunc(rs, func(r rank) bool { return !r.occupied })
		if int32(len(rs)) <= sp.max {
			continue
		}
		slices.SortFunc(rs, func(a, b rank) int {
			if !d.in.Rebalance {
				if c := cmp.Compare(b.holds, a.holds); c != 0 {
					return c
				}
			}
			return cmp.Or(
				compareBool(b.grow, a.grow),
				cmp.Compare(a.tier, b.tier),
				cmp.Compare(b.weight, a.weight),
				strings.Compare(sp.names[a.g], sp.names[b.g]),
			)
		})
		keep := make([]bool, len(sp.names))
		chosen := make([]string, 0, sp.max)
		for _, r := range rs[:sp.max] {
			keep[r.g] = true
			chosen = append(chosen, sp.names[r.g])
		}
		slices.Sort(chosen)
		for i := range d.ms {
			m := &d.ms[i]
			if m.disp == evicted || m.groups == nil || m.groups[k] < 0 || keep[m.groups[k]] {
				continue
			}
			why := fmt.Sprintf("spread: %s=%s beyond maxGroups %d", sp.key, sp.names[m.groups[k]], sp.max)
			m.disp, m.reason, m.category, m.evictReason, m.evictedBy, m.hi, m.weight = evicted, why, ReasonBeyondMaxGroups, why, ReasonBeyondMaxGroups, 0, 0
		}
		d.note("spread by %s: at most %d groups, chose %s", sp.key, sp.max, strings.Join(chosen, ", "))
	}
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}

func taintString(t api.Taint) string {
	if t.Value == "" {
		return t.Key + ":" + t.Effect
	}
	return t.Key + "=" + t.Value + ":" + t.Effect
}
