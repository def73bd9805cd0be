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

// Rebalance is what a decision made of a rebalance: the replicas it moved
// toward a fresh split, or why it moved none.
type Rebalance struct {
	// Moves are the replicas moved this decision, from a cluster above
	// its share of the fresh split to one below it. Make-before-break
	// keeps the donors' replicas until the moved ones are ready.
	Moves []api.RebalanceMove
	// Blocked says why nothing moved although a rebalance was asked for
	// or the policy is auto and the split differs ("" when nothing
	// blocks it).
	Blocked string
	// Done says an operator's request was carried out (possibly with
	// nothing to move): the placer records it as answered. A blocked
	// request waits.
	Done bool
}

// rebalanceState is what the rebalance step works from besides the
// decision.
type rebalanceState struct {
	w        *api.Workload
	current  map[string]int32
	snap     []placement.Cluster
	clusters []Cluster
	// lost is what failover takes off lost clusters this decision; from
	// failback's record after it ran; back what failback moved this
	// decision; pending what moved earlier and is not ready yet.
	lost, from, back, pending map[string]int32
	asked                     bool // an operator asked, and has not been answered
	now                       time.Time
	bucket                    *Bucket
}

// rebalance moves replicas toward the split a fresh placement would
// choose, when an operator asked (once: unlimited, make-before-break) or
// the workload's policy is auto (continually, over clusters Ready for
// the stabilisation window, within failbackRate, never onto a cluster
// failback still keeps a record for). It moves nothing while a failover
// is under way, while earlier moves are not ready, while a cluster
// running the workload is not Ready, or for an exclusive workload (moving
// it would stop it). It edits the decision and returns the moves, when to
// decide again (a window runs out) and the failback bucket it shares.
func rebalance(s rebalanceState, d *placement.Decision) (out Rebalance, wake time.Time, bucket *Bucket) {
	bucket = s.bucket
	fp := s.w.Spec.Failover
	if fp == nil {
		fp = &api.FailoverPolicy{}
	}
	auto := fp.Rebalance == api.RebalanceAuto
	if !s.asked && !auto {
		return out, wake, bucket
	}
	live := ByName(s.clusters)
	blocked := ""
	switch {
	case PolicyOf(s.w).Exclusive:
		blocked = "an exclusive workload does not move while it runs: moving it would stop it (drain its cluster to move it)"
	case len(s.lost) > 0:
		blocked = "a failover is under way"
	case len(s.pending) > 0 || len(s.back) > 0:
		blocked = "replicas moved earlier are not ready yet (" + SplitText(mergeCounts(s.pending, s.back)) + ")"
	default:
		for _, c := range slices.Sorted(maps.Keys(s.current)) {
			lc, ok := live[c]
			if s.current[c] > 0 && ok && !lc.Ready() {
				blocked = fmt.Sprintf("%s, which runs %d of its replicas, is %s: replicas stay where they run while a cluster is unhealthy", c, s.current[c], orUnknown(lc))
				break
			}
		}
	}
	if blocked != "" {
		if s.asked {
			out.Blocked = blocked
			d.Explanation = append(d.Explanation, "rebalance waits: "+blocked)
		}
		return out, wake, bucket
	}
	window := fp.StabilizationWindow.Get(DefaultWindow)
	target, room := freshSplit(s.w, s.snap, s.current, d)
	// Which clusters take replicas: eligible, Ready and, for auto, Ready
	// for the window and not held by failback's record.
	var takers []string
	for _, c := range slices.Sorted(maps.Keys(target)) {
		lc, ok := live[c]
		if target[c] <= d.Assignment[c] || d.Filtered[c] != "" || (ok && !lc.Ready()) {
			continue
		}
		if auto && !s.asked {
			if s.from[c] > 0 {
				continue // failback moves what it took off c, at its own pace
			}
			if ok && lc.Known {
				if at := lc.Live.Since.Add(window); s.now.Before(at) {
					wake = earliest(wake, at)
					continue
				}
			}
		}
		takers = append(takers, c)
	}
	budget := int32(1 << 30) // an operator's request moves everything at once
	if !s.asked {
		budget, bucket = refill(bucket, fp.FailbackRate, s.now)
	}
	moved := map[[2]string]int32{}
	for _, c := range takers {
		want := min(target[c]-d.Assignment[c], budget)
		if r, bounded := room[c]; bounded {
			want = min(want, r)
		}
		for ; want > 0; want-- {
			donor := moveOne(d, target, c)
			if donor == "" {
				break
			}
			moved[[2]string{donor, c}]++
			budget--
		}
	}
	if !s.asked {
		spend(bucket, moved)
	}
	var words []string
	for _, k := range slices.SortedFunc(maps.Keys(moved), func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) }) {
		out.Moves = append(out.Moves, api.RebalanceMove{From: k[0], To: k[1], Replicas: moved[k]})
		words = append(words, fmt.Sprintf("%d %s→%s", moved[k], k[0], k[1]))
	}
	out.Done = s.asked
	switch {
	case len(words) > 0:
		d.Explanation = append(d.Explanation, "rebalance: moving "+strings.Join(words, ", ")+" toward the fresh split "+SplitText(target)+", each kept where it runs until its replacement is ready")
	case s.asked:
		d.Explanation = append(d.Explanation, "rebalance: nothing to move; the replicas already run at the fresh split "+SplitText(target))
	}
	return out, wake, bucket
}

// orUnknown names a cluster's live health, Unknown when unheard.
func orUnknown(c Cluster) string {
	if c.Known && c.Live.Health != "" {
		return c.Live.Health
	}
	if c.Status.Health != "" {
		return c.Status.Health
	}
	return "Unknown"
}

// mergeCounts adds two per-cluster counts into a new map.
func mergeCounts(a, b map[string]int32) map[string]int32 {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]int32{}
	}
	for c, n := range b {
		out[c] += n
	}
	return out
}
