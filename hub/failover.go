package hub

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/placement"
	"github.com/atollhq/atoll/protocol"
)

// Failover timings and defaults (spec.failover says otherwise per
// workload).
const (
	// defaultGrace is how long a cluster may stay Unreachable before its
	// replicas are re-placed.
	defaultGrace = 5 * time.Second
	// defaultFence is a member's fence when it does not report one (a
	// member before protocol 3).
	defaultFence = 3 * time.Second
	// fenceMargin is added to a member's fence before the hub re-places an
	// exclusive workload it ran: heartbeat transit, the node agents' last
	// lease and the replicas' stop all fit in it.
	fenceMargin = 2 * time.Second
	// clusterLabel is the synthetic label that confines an exclusive
	// workload to one cluster (spread over it with maxGroups 1).
	clusterLabel = "atoll.dev/cluster"
)

// failoverPolicy is a workload's spec.failover with the defaults filled
// in.
type failoverPolicy struct {
	grace     time.Duration
	exclusive bool
	graceful  bool
}

func failoverOf(w *api.Workload) failoverPolicy {
	f := failoverPolicy{grace: defaultGrace}
	if fp := w.Spec.Failover; fp != nil {
		if fp.GracePeriod != "" {
			if d, err := time.ParseDuration(string(fp.GracePeriod)); err == nil && d >= 0 {
				f.grace = d
			}
		}
		f.exclusive = fp.Mode == "exclusive"
		f.graceful = fp.Purge == "graceful"
	}
	return f
}

// evictAt is when an Unreachable cluster's replicas of a workload are
// re-placed: the failover grace after it became Unreachable and, for an
// exclusive workload, not before the member's fence plus the margin has
// passed since its last heartbeat (its nodes have stopped the replicas
// by then).
func evictAt(f failoverPolicy, live LiveHealth) time.Time {
	at := live.Since.Add(f.grace)
	if f.exclusive {
		fence := live.FenceAfter
		switch {
		case fence > 0:
		case !live.Heard:
			// Not heard since this hub started: its fence is unknown, so
			// assume the longest a member may have.
			fence = protocol.MaxFenceAfter
		default:
			fence = defaultFence // a member before protocol 3
		}
		from := live.Seen
		if live.LeaseFrom.After(from) {
			from = live.LeaseFrom // a previous leader may still have acked
		}
		if t := from.Add(fence + fenceMargin); t.After(at) {
			at = t
		}
	}
	return at
}

// placementPolicy is the policy placement decides with: the workload's
// own, confined to a single cluster when the workload is exclusive.
func placementPolicy(w *api.Workload) *api.PlacementPolicy {
	if !failoverOf(w).exclusive {
		return w.Spec.Placement
	}
	var pol api.PlacementPolicy
	if w.Spec.Placement != nil {
		pol = *w.Spec.Placement
	}
	pol.Spread = append(slices.Clone(pol.Spread), api.SpreadConstraint{TopologyKey: clusterLabel, MaxGroups: 1})
	return &pol
}

// snapshot turns clusters into placement input for one workload: health
// from the monitor (an Unreachable cluster within the workload's failover
// grace keeps what it runs), room from the last heartbeat's free capacity
// and the replica's requests. next is the earliest time a grace runs out
// (zero: none pending), when the workload must be decided again.
func snapshot(clusters []liveCluster, w *api.Workload, now time.Time) (out []placement.Cluster, next time.Time) {
	cpu, mem := requests(w.Spec.Template)
	f := failoverOf(w)
	out = make([]placement.Cluster, 0, len(clusters))
	for _, c := range clusters {
		if c.Metadata.DeletionTimestamp != nil {
			continue
		}
		pc := placement.Cluster{Name: c.Metadata.Name, Labels: c.Metadata.Labels, Taints: c.Spec.Taints, Unschedulable: c.Spec.Unschedulable,
			Health: c.Status.Health, Room: placement.Unbounded}
		if c.known {
			pc.Health = c.live.Health
			if c.live.Heard {
				pc.Room = room(c.live.Capacity, cpu, mem)
			}
			if pc.Health == api.HealthUnreachable {
				if at := evictAt(f, c.live); now.Before(at) {
					pc.Grace = "Unreachable; failover at " + at.UTC().Format(time.TimeOnly)
					if next.IsZero() || at.Before(next) {
						next = at
					}
				}
			}
		}
		if f.exclusive {
			labels := maps.Clone(pc.Labels)
			if labels == nil {
				labels = map[string]string{}
			}
			labels[clusterLabel] = pc.Name
			pc.Labels = labels
		}
		out = append(out, pc)
	}
	return out, next
}

// lostClusters lists the clusters a decision takes replicas off because
// they were lost (Unreachable past the grace) or evicted by a NoExecute
// taint, with how many each loses.
func lostClusters(d placement.Decision, current map[string]int32) map[string]int32 {
	lost := map[string]int32{}
	for c, n := range current {
		if by := d.Evicted[c]; n <= d.Assignment[c] || (by != api.HealthUnreachable && by != placement.ReasonTainted) {
			continue
		}
		lost[c] = n - d.Assignment[c]
	}
	return lost
}

// purgeGracefully keeps, on reachable clusters being evacuated by a
// NoExecute taint, the replicas they run until the replacements elsewhere
// are ready (purge: graceful, or a drain or evacuation drill), so an
// evacuation never drops capacity (an exclusive workload moves at once:
// it may never run twice). It edits the decision and returns the clusters
// it kept replicas on.
func purgeGracefully(w *api.Workload, d *placement.Decision, current map[string]int32, clusters []liveCluster) []string {
	f := failoverOf(w)
	if f.exclusive {
		return nil // two copies at once, even briefly, is what exclusive forbids
	}
	graceful := f.graceful
	evacuating := map[string]bool{}
	for _, c := range clusters {
		name := c.Metadata.Name
		if current[name] <= d.Assignment[name] || !c.known || c.live.Health != api.HealthReady {
			continue
		}
		if d.Evicted[name] != placement.ReasonTainted {
			continue
		}
		drain := graceful || slices.ContainsFunc(c.Spec.Taints, func(t api.Taint) bool {
			return t.Effect == "NoExecute" && (t.Key == api.DrillTaintKey || t.Key == api.DrainTaintKey)
		})
		if drain {
			evacuating[name] = true
		}
	}
	if len(evacuating) == 0 {
		return nil
	}
	var want, ready int32
	for c, n := range d.Assignment {
		if !evacuating[c] {
			want += n
		}
	}
	for _, cr := range w.Status.Clusters {
		if !evacuating[cr.Cluster] && cr.Generation == w.Metadata.Generation {
			ready += min(cr.Ready, d.Assignment[cr.Cluster])
		}
	}
	if ready >= want {
		return nil // the replacements run: purge
	}
	kept := slices.Sorted(maps.Keys(evacuating))
	for _, c := range kept {
		d.Assignment[c] = current[c]
	}
	d.Explanation = append(d.Explanation, fmt.Sprintf("purge graceful: keeping the replicas on %s until the replacements are ready (%d/%d ready elsewhere)",
		strings.Join(kept, ", "), ready, want))
	return kept
}

// failoverText describes a failover move for its event.
func failoverText(lost map[string]int32, d placement.Decision) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(lost)) {
		parts = append(parts, fmt.Sprintf("%d off %s (%s)", lost[c], c, d.Filtered[c]))
	}
	return "moved " + strings.Join(parts, ", ") + "; now " + splitText(d.Assignment)
}

// failoverReason is a low-cardinality metric label for why replicas
// moved (lostClusters keeps only these two).
func failoverReason(evictedBy string) string {
	if evictedBy == api.HealthUnreachable {
		return "unreachable"
	}
	return "noexecute"
}

// defaultWindow is how long a returned cluster must stay Ready before
// replicas move back to it.
const defaultWindow = 30 * time.Second

// failbackBucket rate-limits one workload's failback (replicas per
// minute), kept by the leader in memory: a new leader starts afresh.
type failbackBucket struct {
	tokens float64
	at     time.Time
}

// failback keeps the record of what failover moved off each cluster and,
// for failback auto, moves replicas back to a cluster that has been Ready
// for the stabilisation window, within the workload's failbackRate. It
// edits the decision and returns the record to store and what moved back.
func (p *Placer) failback(w *api.Workload, d *placement.Decision, current, prev, lost map[string]int32, snap []placement.Cluster,
	clusters []liveCluster, now time.Time) (from, back map[string]int32) {
	from = maps.Clone(prev)
	for c, n := range lost {
		if from == nil {
			from = map[string]int32{}
		}
		from[c] += n
	}
	if len(from) == 0 {
		delete(p.buckets, w.Metadata.Name)
		return nil, nil
	}
	fp := w.Spec.Failover
	if fp == nil {
		fp = &api.FailoverPolicy{}
	}
	window := defaultWindow
	if fp.StabilizationWindow != "" {
		if v, err := time.ParseDuration(string(fp.StabilizationWindow)); err == nil && v >= 0 {
			window = v
		}
	}
	live := byName(clusters)
	exclusive := failoverOf(w).exclusive
	var due []string
	held := map[string]string{} // returned clusters that take nothing back yet, and until when
	for _, c := range slices.Sorted(maps.Keys(from)) {
		lc, ok := live[c]
		switch {
		case !ok || from[c] <= 0:
			delete(from, c) // deregistered, or nothing left to move back
		case fp.Failback == "manual":
			held[c] = "failback is manual"
		case len(lost) > 0:
			held[c] = "a failover is under way"
		case exclusive && lc.known && lc.live.Health == api.HealthReady:
			// An exclusive workload runs in one cluster: moving it back would
			// stop it a second time. It stays; the record ends once the
			// cluster has been Ready for the window.
			if at := lc.live.Since.Add(window); now.Before(at) {
				p.wakeAt(at)
			} else {
				delete(from, c)
				d.Explanation = append(d.Explanation, fmt.Sprintf("failback: %s is back, but an exclusive workload stays where it runs (moving it would stop it again)", c))
			}
		case lc.known && lc.live.Health == api.HealthReady && d.Filtered[c] == "":
			if at := lc.live.Since.Add(window); now.Before(at) {
				p.wakeAt(at)
				held[c] = "Ready for the stabilisation window at " + at.UTC().Format(time.TimeOnly)
			} else {
				due = append(due, c)
			}
		}
	}
	// What the decision moved onto a returned cluster is undone: held ones
	// take nothing back yet, and due ones take it back below, as failback,
	// within the rate limit and recorded.
	for _, c := range due {
		held[c] = "failback, within its rate"
	}
	holdReturns(d, current, held)
	if len(due) == 0 {
		return from, nil
	}
	if d.Assignment == nil {
		d.Assignment = map[string]int32{}
	}
	// Where a fresh split would put the replicas, counted from now.
	target := placement.Decide(placement.Input{Workload: w.Metadata.Name, Replicas: w.Spec.Replicas, Policy: placementPolicy(w),
		Clusters: snap, Current: d.Assignment, Rebalance: true}).Assignment
	budget := int32(1 << 30)
	if fp.FailbackRate > 0 {
		b := p.buckets[w.Metadata.Name]
		if b == nil {
			b = &failbackBucket{tokens: 1, at: now}
			p.buckets[w.Metadata.Name] = b
		}
		b.tokens = min(b.tokens+now.Sub(b.at).Minutes()*float64(fp.FailbackRate), float64(fp.FailbackRate))
		b.at = now
		budget = int32(b.tokens)
		defer func() {
			for _, n := range back {
				b.tokens -= float64(n)
			}
		}()
	}
	for _, c := range due {
		want := min(target[c]-d.Assignment[c], from[c], budget)
		for want > 0 {
			// Take one from the cluster with the most beyond its fresh share.
			donor, surplus := "", int32(0)
			for _, x := range slices.Sorted(maps.Keys(d.Assignment)) {
				if s := d.Assignment[x] - target[x]; x != c && s > surplus {
					donor, surplus = x, s
				}
			}
			if donor == "" {
				break
			}
			d.Assignment[donor]--
			if d.Assignment[donor] == 0 {
				delete(d.Assignment, donor)
			}
			d.Assignment[c]++
			if back == nil {
				back = map[string]int32{}
			}
			back[c]++
			from[c]--
			budget--
			want--
		}
		if from[c] <= 0 || target[c] <= d.Assignment[c] {
			delete(from, c) // back to its share (or the split no longer wants more there)
		}
	}
	if len(back) > 0 {
		d.Explanation = append(d.Explanation, "failback: "+failbackText(back, *d))
	}
	if len(from) == 0 {
		from = nil
	}
	return from, back
}

// holdReturns undoes what a decision moved onto returned clusters that
// take nothing back yet (held: cluster -> until when) from clusters that
// keep running it: a fresh split (spread minGroups, say) would otherwise
// move replicas back at once, past the stabilisation window, the rate
// limit and a manual failback. Replicas that ran nowhere may still go
// there: that only adds capacity.
func holdReturns(d *placement.Decision, current map[string]int32, held map[string]string) {
	for _, c := range slices.Sorted(maps.Keys(held)) {
		extra := d.Assignment[c] - current[c]
		var kept int32
		for _, x := range slices.Sorted(maps.Keys(current)) {
			if extra <= 0 {
				break
			}
			if x == c || d.Evicted[x] != "" {
				continue // a lost or evicted cluster gives nothing back
			}
			if give := min(extra, current[x]-d.Assignment[x]); give > 0 {
				d.Assignment[x] += give
				d.Assignment[c] -= give
				extra -= give
				kept += give
			}
		}
		if d.Assignment[c] == 0 {
			delete(d.Assignment, c)
		}
		if kept > 0 {
			d.Explanation = append(d.Explanation, fmt.Sprintf("failback: %d replicas stay where they run until %s takes them back (%s)", kept, c, held[c]))
		}
	}
}

// keepUntilFailedBack makes failback make-before-break for a stateless
// workload: the clusters replicas move back from keep theirs until the
// returned clusters run the moved ones ready. What is still to be ready
// (returned cluster -> replicas moved back) is kept in the placement
// status between passes (prev), with this pass's moves (back) added; it
// returns what is still pending. The wait lasts while the moved replicas
// are not ready (it has no deadline: a rollout that never gets ready keeps
// the others, as a drain does); it ends when the cluster is lost again.
func keepUntilFailedBack(w *api.Workload, d *placement.Decision, current, prev, back map[string]int32, clusters []liveCluster) map[string]int32 {
	if failoverOf(w).exclusive {
		return nil // it never moves back: two copies at once is what it forbids
	}
	pending := maps.Clone(prev)
	for c, n := range back {
		if pending == nil {
			pending = map[string]int32{}
		}
		pending[c] += n
	}
	ready := map[string]int32{}
	for _, cr := range w.Status.Clusters {
		if cr.Generation == w.Metadata.Generation {
			ready[cr.Cluster] += cr.Ready
		}
	}
	live := byName(clusters)
	ok := func(c string) bool {
		lc, found := live[c]
		return found && lc.known && lc.live.Health == api.HealthReady
	}
	for _, c := range slices.Sorted(maps.Keys(pending)) {
		if _, found := live[c]; !found || d.Evicted[c] != "" {
			delete(pending, c) // gone or lost again: failover records what it loses
			continue
		}
		// The decision sees more replicas than wanted (the ones kept while
		// these start) and trims the cluster moved back to first when it
		// takes nothing new (Suspect, cordoned): it keeps them, one for
		// each the others give up, so a scale-down still shrinks the total.
		names := slices.Sorted(maps.Keys(d.Assignment)) // only c, never a candidate, can join below
		for short := current[c] - d.Assignment[c]; short > 0; short-- {
			x := ""
			for _, y := range names {
				if pending[y] == 0 && d.Assignment[y] > 0 && (x == "" || d.Assignment[y] > d.Assignment[x]) {
					x = y
				}
			}
			if x == "" {
				break
			}
			d.Assignment[x]--
			d.Assignment[c]++
		}
		if d.Assignment[c] == 0 || ready[c] >= d.Assignment[c] {
			delete(pending, c)
		}
	}
	for c, n := range d.Assignment {
		if n == 0 {
			delete(d.Assignment, c)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	// The others keep what they give up, as many as were moved back and
	// are not ready yet: never more (a scale-down meanwhile still shrinks
	// them).
	var surge int32
	for c, n := range pending {
		surge += min(n, max(d.Assignment[c]-ready[c], 0))
	}
	var kept []string
	for _, x := range slices.Sorted(maps.Keys(current)) {
		if surge <= 0 {
			break
		}
		if pending[x] > 0 || current[x] <= d.Assignment[x] || d.Evicted[x] != "" || !ok(x) {
			continue
		}
		give := min(current[x]-d.Assignment[x], surge)
		d.Assignment[x] += give
		surge -= give
		kept = append(kept, x)
	}
	if len(kept) > 0 {
		var wait []string
		for _, c := range slices.Sorted(maps.Keys(pending)) {
			wait = append(wait, fmt.Sprintf("%s %d/%d", c, ready[c], d.Assignment[c]))
		}
		d.Explanation = append(d.Explanation, fmt.Sprintf("failback: keeping the replicas on %s until the ones moved back are ready (%s ready)",
			strings.Join(kept, ", "), strings.Join(wait, ", ")))
	}
	return pending
}

// byName indexes clusters by name.
func byName(clusters []liveCluster) map[string]liveCluster {
	out := make(map[string]liveCluster, len(clusters))
	for _, c := range clusters {
		out[c.Metadata.Name] = c
	}
	return out
}

// failbackText describes a failback move.
func failbackText(back map[string]int32, d placement.Decision) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(back)) {
		parts = append(parts, fmt.Sprintf("%d back to %s", back[c], c))
	}
	return "moved " + strings.Join(parts, ", ") + " (Ready for the stabilisation window); now " + splitText(d.Assignment)
}

// ConditionFailedOver is True while replicas failover moved off a cluster
// have not moved back.
const ConditionFailedOver = "FailedOver"

// failedOverCondition reports failover progress in Workload.status.
func failedOverCondition(from map[string]int32, fp *api.FailoverPolicy) api.Condition {
	if len(from) == 0 {
		return api.Condition{Type: ConditionFailedOver, Status: "False", Reason: "AllHome", Message: "no replica is away from its cluster"}
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(from)) {
		parts = append(parts, fmt.Sprintf("%d off %s", from[c], c))
	}
	how := "they move back once the cluster has been Ready for the stabilisation window"
	if fp != nil && fp.Failback == "manual" {
		how = "failback is manual"
	}
	return api.Condition{Type: ConditionFailedOver, Status: "True", Reason: "ClusterLost", Message: "replicas failed over: " + strings.Join(parts, ", ") + "; " + how}
}

// capacityLedger is the clusters' free capacity as one pass's decisions
// use it up: each workload's new replicas are taken off before the next
// workload is decided, so one pass (a mass failover above all) cannot
// pile everything on the cluster that looked emptiest at its start. It
// starts from the last heartbeats.
type capacityLedger map[string]protocol.Capacity

func newCapacityLedger(view []liveCluster) capacityLedger {
	l := capacityLedger{}
	for _, c := range view {
		if c.known && c.live.Heard {
			l[c.Metadata.Name] = c.live.Capacity
		}
	}
	return l
}

// bound sets each bounded cluster's room from what is left in the ledger.
func (l capacityLedger) bound(clusters []placement.Cluster, cpu, mem int64) {
	for i := range clusters {
		if capa, ok := l[clusters[i].Name]; ok && clusters[i].Room != placement.Unbounded {
			clusters[i].Room = room(capa, cpu, mem)
		}
	}
}

// take records the replicas a decision adds beyond current.
func (l capacityLedger) take(assignment, current map[string]int32, cpu, mem int64) {
	for c, n := range assignment {
		if add := int64(n - current[c]); add > 0 {
			if capa, ok := l[c]; ok {
				capa.CPUAllocated += add * cpu
				capa.MemoryAllocated += add * mem
				l[c] = capa
			}
		}
	}
}

// sequenceExclusive makes an exclusive workload's move stop-then-start,
// whatever moves it (a lost cluster, a drain, a taint, a policy change):
// replicas are added on a cluster only once every cluster it leaves can
// run none of it any more. A reachable cluster must have reported, at the
// epoch that took its replicas away, that none is present (stopping ones
// included); an unreachable one must be past the member's fence plus the
// margin (evictAt). Until then the decision keeps only the removals. It
// reports whether it held additions back.
func sequenceExclusive(w *api.Workload, d *placement.Decision, current map[string]int32, have map[string]pgstore.Placement, clusters []liveCluster, now time.Time) bool {
	f := failoverOf(w)
	if !f.exclusive {
		return false
	}
	var adding []string
	for c, n := range d.Assignment {
		if n > current[c] {
			adding = append(adding, c)
		}
	}
	if len(adding) == 0 {
		return false
	}
	live := byName(clusters)
	reports := map[string]api.ClusterReplicas{}
	for _, r := range w.Status.Clusters {
		reports[r.Cluster] = r
	}
	var waiting []string
	for _, c := range slices.Sorted(maps.Keys(live)) {
		if d.Assignment[c] > 0 || (current[c] == 0 && reports[c].Present == 0) {
			continue // keeps its share, or never ran any
		}
		lc := live[c]
		switch {
		case lc.known && lc.live.Health != api.HealthReady:
			if at := evictAt(f, lc.live); now.Before(at) {
				waiting = append(waiting, fmt.Sprintf("%s (%s; fenced at %s)", c, lc.live.Health, at.UTC().Format(time.TimeOnly)))
			}
		case current[c] > 0:
			waiting = append(waiting, c+" (told to stop it now)")
		case reports[c].Epoch < have[c].Epoch || reports[c].Present > 0:
			waiting = append(waiting, fmt.Sprintf("%s (%d still present)", c, reports[c].Present))
		}
	}
	if len(waiting) == 0 {
		return false
	}
	for _, c := range adding {
		if current[c] > 0 {
			d.Assignment[c] = current[c]
		} else {
			delete(d.Assignment, c)
		}
	}
	d.Explanation = append(d.Explanation, "exclusive: starts on "+strings.Join(adding, ", ")+" once the old copy is gone from "+strings.Join(waiting, ", "))
	return true
}
