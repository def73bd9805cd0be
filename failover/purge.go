package failover

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/placement"
)

// Lost lists the clusters a decision takes replicas off because they were
// lost (Unreachable past the grace) or evicted by a NoExecute taint, with
// how many each loses.
func Lost(d placement.Decision, current map[string]int32) map[string]int32 {
	lost := map[string]int32{}
	for c, n := range current {
		if by := d.Evicted[c]; n <= d.Assignment[c] || (by != api.HealthUnreachable && by != placement.ReasonTainted) {
			continue
		}
		lost[c] = n - d.Assignment[c]
	}
	return lost
}

// PurgeGracefully keeps, on reachable clusters being evacuated by a
// NoExecute taint, the replicas they run until the replacements elsewhere
// are ready (purge: graceful, or a drain or evacuation drill), so an
// evacuation never drops capacity (an exclusive workload moves at once:
// it may never run twice). A workload with a disruption budget also keeps,
// on any such cluster (a plain NoExecute taint with purge immediate
// included), as many replicas as the budget needs available while the
// replacements are not ready (BudgetKeep). It edits the decision and
// returns the clusters it kept replicas on.
func PurgeGracefully(w *api.Workload, d *placement.Decision, current map[string]int32, clusters []Cluster) []string {
	f := PolicyOf(w)
	if f.Exclusive {
		return nil // two copies at once, even briefly, is what exclusive forbids
	}
	evacuating, graceful := map[string]bool{}, map[string]bool{}
	for _, c := range clusters {
		name := c.Metadata.Name
		if current[name] <= d.Assignment[name] || !c.Ready() || d.Evicted[name] != placement.ReasonTainted {
			continue
		}
		evacuating[name] = true
		if f.Graceful || slices.ContainsFunc(c.Spec.Taints, func(t api.Taint) bool {
			return t.Effect == "NoExecute" && (t.Key == api.DrillTaintKey || t.Key == api.DrainTaintKey)
		}) {
			graceful[name] = true
		}
	}
	if len(evacuating) == 0 {
		return nil
	}
	var kept []string
	if want, ready := readyOutside(w, d, graceful); len(graceful) > 0 && ready < want {
		kept = slices.Sorted(maps.Keys(graceful))
		for _, c := range kept {
			d.Assignment[c] = current[c]
		}
		d.Explanation = append(d.Explanation, fmt.Sprintf("purge graceful: keeping the replicas on %s until the replacements are ready (%d/%d ready elsewhere)",
			strings.Join(kept, ", "), ready, want))
	}
	if w.Spec.DisruptionBudget == nil {
		return kept
	}
	// What stays available: the replicas ready outside every evacuating
	// cluster, and those the decision keeps on the evacuating ones.
	_, available := readyOutside(w, d, evacuating)
	for c := range evacuating {
		available += d.Assignment[c]
	}
	desired := w.Spec.Replicas
	if w.Spec.Placement != nil && w.Spec.Placement.ReplicaMode == placement.ModeDuplicated {
		desired = 0
		for _, n := range current {
			desired += n
		}
	}
	floor := w.Spec.DisruptionBudget.Floor(desired)
	keep := BudgetKeep(floor, available, current, d.Assignment, slices.Sorted(maps.Keys(evacuating)))
	if len(keep) == 0 {
		return kept
	}
	var words []string
	for _, c := range slices.Sorted(maps.Keys(keep)) {
		d.Assignment[c] += keep[c]
		words = append(words, fmt.Sprintf("%d on %s", keep[c], c))
		if !slices.Contains(kept, c) {
			kept = append(kept, c)
		}
	}
	slices.Sort(kept)
	d.Explanation = append(d.Explanation, fmt.Sprintf("disruption budget %s: keeping %s until replacements are ready (%d of %d replicas available, %d must be)",
		w.Spec.DisruptionBudget, strings.Join(words, ", "), available, desired, floor))
	return kept
}

// readyOutside is what the decision assigns outside the clusters in skip
// and how many of those replicas run ready at the workload's generation.
func readyOutside(w *api.Workload, d *placement.Decision, skip map[string]bool) (want, ready int32) {
	for c, n := range d.Assignment {
		if !skip[c] {
			want += n
		}
	}
	for _, cr := range w.Status.Clusters {
		if !skip[cr.Cluster] && cr.Generation == w.GivenGeneration(cr.Cluster) {
			ready += min(cr.Ready, d.Assignment[cr.Cluster])
		}
	}
	return want, ready
}

// BudgetKeep is how many more replicas to keep on each evacuating cluster
// (taken in the order given) so that available reaches floor, each
// cluster keeping at most what it runs (current) beyond what it is
// assigned: a budget lets an evacuation take away only what it allows at
// once. Clusters that keep nothing are left out.
func BudgetKeep(floor, available int32, current, assigned map[string]int32, evacuating []string) map[string]int32 {
	need := floor - available
	out := map[string]int32{}
	for _, c := range evacuating {
		if need <= 0 {
			break
		}
		if k := min(need, current[c]-assigned[c]); k > 0 {
			out[c] = k
			need -= k
		}
	}
	return out
}

// SequenceExclusive makes an exclusive workload's move stop-then-start,
// whatever moves it (a lost cluster, a drain, a taint, a policy change):
// replicas are added on a cluster only once every cluster it leaves can
// run none of it any more. A reachable cluster must have reported, at the
// epoch that took its replicas away (epochs: each cluster's placement
// epoch), that none is present (stopping ones included); an unreachable
// one must be past the member's fence plus the margin (EvictAt). Until
// then the decision keeps only the removals. It reports whether it held
// additions back.
//
// A cluster it leaves is one that runs it (current), reports a copy
// present, or has a placement row newer than its report. A row of 0
// replicas (in current with 0) is reported by its member at the row's
// epoch: until then, an older report (or none) may predate a copy the
// member started since. A tombstone's member drops the workload and
// reports it no more, so only a report still there is waited for. A
// cluster with no row and no copy reported never ran any (an exclusive
// workload's first placement has no rows at all); one being deregistered
// or not known to the monitor is not waited for on its row's epoch.
func SequenceExclusive(w *api.Workload, d *placement.Decision, current map[string]int32, epochs map[string]int64, clusters []Cluster, now time.Time) bool {
	f := PolicyOf(w)
	if !f.Exclusive {
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
	live := ByName(clusters)
	reports := map[string]api.ClusterReplicas{}
	for _, r := range w.Status.Clusters {
		reports[r.Cluster] = r
	}
	var waiting []string
	for _, c := range slices.Sorted(maps.Keys(live)) {
		lc := live[c]
		r, reported := reports[c]
		epoch, row := epochs[c]
		_, placed := current[c] // a row, not a tombstone
		watched := lc.Known && lc.Metadata.DeletionTimestamp == nil
		stale := watched && row && r.Epoch < epoch && (placed || reported)
		if d.Assignment[c] > 0 || (current[c] == 0 && r.Present == 0 && !stale) {
			continue // keeps its share, or runs none (and said so at its row's epoch)
		}
		switch {
		case lc.Known && lc.Live.Health != api.HealthReady:
			if at := EvictAt(f, lc.Live); now.Before(at) {
				waiting = append(waiting, fmt.Sprintf("%s (%s; fenced at %s)", c, lc.Live.Health, at.UTC().Format(time.TimeOnly)))
			}
		case current[c] > 0:
			waiting = append(waiting, c+" (told to stop it now)")
		case r.Present > 0:
			waiting = append(waiting, fmt.Sprintf("%s (%d still present)", c, r.Present))
		case !reported:
			waiting = append(waiting, fmt.Sprintf("%s (no report of epoch %d yet)", c, epoch))
		default:
			waiting = append(waiting, fmt.Sprintf("%s (its report of epoch %d predates epoch %d)", c, r.Epoch, epoch))
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
