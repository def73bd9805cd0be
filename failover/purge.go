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
// it may never run twice). It edits the decision and returns the clusters
// it kept replicas on.
func PurgeGracefully(w *api.Workload, d *placement.Decision, current map[string]int32, clusters []Cluster) []string {
	f := PolicyOf(w)
	if f.Exclusive {
		return nil // two copies at once, even briefly, is what exclusive forbids
	}
	evacuating := map[string]bool{}
	for _, c := range clusters {
		name := c.Metadata.Name
		if current[name] <= d.Assignment[name] || !c.Ready() || d.Evicted[name] != placement.ReasonTainted {
			continue
		}
		drain := f.Graceful || slices.ContainsFunc(c.Spec.Taints, func(t api.Taint) bool {
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
