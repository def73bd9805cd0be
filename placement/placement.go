package placement

import (
	"cmp"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/atollhq/atoll/api"
)

// Unbounded is the Room of a cluster whose room for the workload is
// unknown or unlimited.
const Unbounded int32 = -1

// Cluster is one member cluster as the caller last saw it.
type Cluster struct {
	Name   string
	Labels map[string]string // what selectors, preferences, label weights and spread read
	Taints []api.Taint       // NoSchedule and NoExecute need a toleration; other effects are ignored
	// Health is api.HealthReady, HealthSuspect, HealthUnreachable or
	// HealthUnknown (empty means Unknown). Only Ready clusters take new
	// replicas; Unreachable ones lose what they run (it is re-placed);
	// the others keep it.
	Health string
	// Grace, for an Unreachable cluster, says that the workload's failover
	// grace (or, for an exclusive workload, the member's fence) has not
	// run out yet, e.g. "Unreachable; failover in 3s": until then the
	// cluster keeps what it runs and takes nothing new. Empty: what it
	// runs is re-placed now.
	Grace         string
	Unschedulable bool // cordoned: takes nothing new, keeps what it runs
	// Room is how many more replicas of this workload's shape fit, beyond
	// the ones it runs now (Input.Current), as the caller computed it from
	// the member's capacity report and the workload's requests. A cluster
	// never holds more than Current+Room. Negative (Unbounded) means
	// unknown or unlimited.
	Room int32
}

// Input is everything one decision depends on.
type Input struct {
	Workload string // for messages only
	// Replicas is the desired count: in total (Divided) or per selected
	// cluster (Duplicated). Negative counts as 0.
	Replicas int32
	Policy   *api.PlacementPolicy // nil: every cluster, Divided, equal weights
	Clusters []Cluster            // in any order; a repeated name keeps its first entry
	// Current is what each cluster runs now (the last decision). Entries
	// for clusters missing from Clusters count as lost and are re-placed.
	Current map[string]int32
	// Rebalance computes the split afresh instead of moving as little as
	// possible from Current: set it when the placement policy itself (its
	// weights, preferences or selection) changed, or an operator asks.
	// Replicas on cordoned, Suspect or Unknown clusters are still kept
	// (and are the first to go when there are too many).
	Rebalance bool
}

// Decision is the answer: replicas per cluster and why.
type Decision struct {
	// Assignment lists every cluster given at least one replica.
	Assignment map[string]int32
	// Filtered gives, for every cluster that takes no new replica, the
	// first filter that rejected it, e.g. "outside clusterSelector" or
	// "tainted: maintenance=true:NoSchedule (no toleration)". A filtered
	// cluster may still appear in Assignment when it keeps what it runs
	// (cordoned, Suspect, Unknown, NoSchedule taint, no room).
	Filtered map[string]string
	// Evicted names, for every cluster whose replicas must move whatever
	// it runs now, the filter that evicts it: ReasonTainted (a NoExecute
	// taint), api.HealthUnreachable, ReasonExcluded, ReasonOutsideSelector
	// and so on (the categories UnplacedReason counts).
	Evicted map[string]string
	// Unplaced is how many desired replicas have no cluster, and
	// UnplacedReason says why in one line, e.g. "3 replicas unplaced:
	// 2/5 clusters eligible (3 outside clusterSelector), all full".
	Unplaced       int32
	UnplacedReason string
	// Explanation describes the decision step by step in plain words:
	// eligible clusters, weights, quotas and rounding, what was kept,
	// added, removed or moved, and why.
	Explanation []string
	// Conditions are ConditionPlaced and ConditionUnsatisfiable, ready
	// for Workload.status (the caller sets the transition times).
	Conditions []api.Condition
}

// Condition types of a Decision.
const (
	// ConditionPlaced is True when every desired replica has a cluster.
	ConditionPlaced = "Placed"
	// ConditionUnsatisfiable is True when the policy cannot be met as
	// written: its selection matches no cluster, or a spread constraint
	// asks for more groups than can be covered. The decision still places
	// what it can.
	ConditionUnsatisfiable = "Unsatisfiable"
)

// Condition reasons.
const (
	ReasonAllPlaced            = "AllPlaced"
	ReasonInsufficientCapacity = "InsufficientCapacity" // eligible clusters are full
	ReasonNoEligibleClusters   = "NoEligibleClusters"   // clusters match, but none may take replicas now
	ReasonSatisfiable          = "Satisfiable"
	ReasonNoMatchingClusters   = "NoMatchingClusters" // the policy's selection matches no cluster
	ReasonSpreadUnsatisfiable  = "SpreadUnsatisfiable"
)

// Replica modes.
const (
	ModeDivided    = "Divided"
	ModeDuplicated = "Duplicated"
)

// Decide makes one placement decision. It is a pure function: the same
// input gives the same decision, whatever the order of Clusters.
func Decide(in Input) Decision {
	d := newDecider(in)
	for _, step := range newPipeline(d.divided) {
		step(d)
	}
	return d.decision()
}

type step func(*decider)

// newPipeline lists the steps of a decision, in order.
func newPipeline(divided bool) []step {
	steps := []step{
		// Filters first: they decide which clusters may hold replicas at
		// all (and which must give theirs up); every later step works on
		// what they let through.
		(*decider).filter,
		// Weights next, because a static weight of 0 is a filter too, and
		// choosing spread groups ranks them by weight.
		(*decider).weigh,
		// maxGroups before any count: clusters outside the chosen groups
		// are filtered, and quotas must be computed over the rest only.
		(*decider).chooseGroups,
	}
	if !divided {
		// Duplicated: every selected cluster gets the count, bounded by its
		// room; no split, so no quotas and no fix-ups.
		return append(steps, (*decider).duplicate, (*decider).checkSpread)
	}
	return append(steps,
		// Quotas: the fair, real-valued share of each cluster, tier by tier
		// and bounded by room; the counting steps below chase them.
		(*decider).quotas,
		// Start from what runs now, minus what must move, so that an input
		// that is already satisfied comes back unchanged.
		(*decider).keep,
		// Scale down before scale up: at most one of them does anything.
		// Removal takes from the least preferred clusters first.
		(*decider).remove,
		// Scale up, or replace what was lost: one replica at a time to the
		// cluster furthest below its quota (largest remainder from zero).
		(*decider).add,
		// Spread minGroups after the counts are right: it moves replicas
		// only when adding could not cover a group.
		(*decider).cover,
		// minReplicasPerCluster last: it moves only from clusters above the
		// minimum, so it never uncovers a group cover just filled.
		(*decider).raise,
		// Report minGroups that stayed out of reach.
		(*decider).checkSpread,
	)
}

// disposition is what the filters let a cluster do.
type disposition uint8

const (
	eligible disposition = iota // may take new replicas
	keepOnly                    // keeps what it runs, takes nothing new
	evicted                     // runs nothing: what it ran is re-placed
)

// member is one cluster during a decision.
type member struct {
	c        *Cluster // nil for a cluster known only from Current
	name     string
	cur      int32 // what it runs now
	disp     disposition
	reason   string // first filter that rejected it, for people
	category string // the same, without details, for counts
	// evictReason says why what it runs must move (evicted only), and
	// evictedBy which filter said so (a Reason constant, or the health).
	evictReason string
	evictedBy   string
	tier        int   // index of the first matching preference; len(preferences) if none
	weight      int64 // for the split (0 for keep-only clusters)
	hi          int32 // the most it may hold
	n           int32 // what this decision gives it
	q           float64
	groups      []int32 // per spread constraint: group index, -1 when the label is missing
	// rank breaks ties between otherwise equal clusters, before the
	// name: it differs per workload (tieRank), so that workloads over
	// more equal clusters than they have replicas spread over all of
	// them instead of every one taking the first clusters by name.
	rank uint64
}

// tieRank is a cluster's place among equals for one workload: a hash of
// both names (FNV-1a), the same in every decision.
func tieRank(workload, cluster string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(workload))
	h.Write([]byte{0})
	h.Write([]byte(cluster))
	return h.Sum64()
}

// spread is one spread constraint with its groups.
type spread struct {
	key      string
	min, max int32
	names    []string // group names, sorted
	total    []int32  // replicas per group (kept up to date)
}

type decider struct {
	in       Input
	pol      *api.PlacementPolicy
	divided  bool
	r        int32
	min, max int32 // per-cluster bounds (max 0: none)
	ms       []member
	spreads  []spread
	tiers    []api.Selector
	matched  int // clusters the workload's own selection accepts

	explain []string
	unsat   []string
	lost    int32 // replicas on evicted clusters
}

func newDecider(in Input) *decider {
	d := &decider{in: in, pol: in.Policy, r: max(in.Replicas, 0)}
	if d.pol == nil {
		d.pol = &api.PlacementPolicy{}
	}
	d.divided = d.pol.ReplicaMode != ModeDuplicated
	d.min = max(d.pol.MinReplicasPerCluster, 0)
	d.max = max(d.pol.MaxReplicasPerCluster, 0)
	if d.max > 0 && d.min > d.max {
		d.note("minReplicasPerCluster %d is above maxReplicasPerCluster %d: the maximum wins", d.min, d.max)
		d.min = d.max
	}
	for i := range d.pol.Preferences {
		d.tiers = append(d.tiers, d.pol.Preferences[i].Selector.Selector())
	}
	for _, s := range d.pol.Spread {
		if s.TopologyKey == "" {
			continue
		}
		sp := spread{key: s.TopologyKey, min: max(s.MinGroups, 0), max: max(s.MaxGroups, 0)}
		if sp.max > 0 && sp.min > sp.max {
			sp.min = sp.max
		}
		d.spreads = append(d.spreads, sp)
	}

	// Members in name order; a repeated name keeps its first entry (the
	// input position breaks ties, so the unstable sort is deterministic).
	order := make([]int32, len(in.Clusters))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		return cmp.Or(strings.Compare(in.Clusters[a].Name, in.Clusters[b].Name), cmp.Compare(a, b))
	})
	d.ms = make([]member, 0, len(in.Clusters)+len(in.Current))
	for _, i := range order {
		c := &in.Clusters[i]
		if k := len(d.ms); k > 0 && d.ms[k-1].name == c.Name {
			continue
		}
		d.ms = append(d.ms, member{c: c, name: c.Name, rank: tieRank(in.Workload, c.Name)})
	}
	known := len(d.ms)
	for name, n := range in.Current {
		if n <= 0 {
			continue
		}
		if i, ok := slices.BinarySearchFunc(d.ms[:known], name, func(m member, name string) int { return strings.Compare(m.name, name) }); ok {
			d.ms[i].cur = n
			continue
		}
		d.ms = append(d.ms, member{name: name, cur: n, rank: tieRank(in.Workload, name)})
	}
	if len(d.ms) > known {
		slices.SortFunc(d.ms, func(a, b member) int { return strings.Compare(a.name, b.name) })
	}

	// Group indexes per spread constraint, in name order.
	for k := range d.spreads {
		sp := &d.spreads[k]
		for i := range d.ms {
			if c := d.ms[i].c; c != nil {
				if v, ok := c.Labels[sp.key]; ok {
					sp.names = append(sp.names, v)
				}
			}
		}
		slices.Sort(sp.names)
		sp.names = slices.Compact(sp.names)
		sp.total = make([]int32, len(sp.names))
	}
	var groups []int32 // one backing array for every member's groups
	if len(d.spreads) > 0 {
		groups = make([]int32, len(d.ms)*len(d.spreads))
	}
	for i := range d.ms {
		m := &d.ms[i]
		m.tier = len(d.tiers)
		if m.c == nil {
			continue
		}
		for t, sel := range d.tiers {
			if sel.Matches(m.c.Labels) {
				m.tier = t
				break
			}
		}
		if len(d.spreads) > 0 {
			m.groups = groups[i*len(d.spreads) : (i+1)*len(d.spreads) : (i+1)*len(d.spreads)]
			for k := range d.spreads {
				m.groups[k] = -1
				if v, ok := m.c.Labels[d.spreads[k].key]; ok {
					g, _ := slices.BinarySearch(d.spreads[k].names, v)
					m.groups[k] = int32(g)
				}
			}
		}
	}
	return d
}

// give changes a member's count and its groups' totals together.
func (d *decider) give(m *member, delta int32) {
	m.n += delta
	for k, g := range m.groups {
		if g >= 0 {
			d.spreads[k].total[g] += delta
		}
	}
}

func (d *decider) placed() int32 {
	var s int32
	for i := range d.ms {
		s += d.ms[i].n
	}
	return s
}
