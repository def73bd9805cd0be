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

// Bucket rate-limits one workload's failback (replicas per minute). The
// placement controller keeps it between passes, in memory: a new leader
// starts afresh.
type Bucket struct {
	Tokens float64
	At     time.Time
}

// failbackState is what failback works from besides the decision.
type failbackState struct {
	w                   *api.Workload
	current, prev, lost map[string]int32
	snap                []placement.Cluster
	clusters            []Cluster
	now                 time.Time
	bucket              *Bucket
}

// failback keeps the record of what failover moved off each cluster and,
// for failback auto, moves replicas back to a cluster that has been Ready
// for the stabilisation window, within the workload's failbackRate. It
// edits the decision and returns the record to store, what moved back,
// when to decide again (a window runs out) and the rate limit's bucket
// for the next pass (nil: forget it).
func failback(s failbackState, d *placement.Decision) (from, back map[string]int32, wake time.Time, bucket *Bucket) {
	w, now := s.w, s.now
	from = maps.Clone(s.prev)
	for c, n := range s.lost {
		if from == nil {
			from = map[string]int32{}
		}
		from[c] += n
	}
	if len(from) == 0 {
		return nil, nil, time.Time{}, nil
	}
	bucket = s.bucket
	fp := w.Spec.Failover
	if fp == nil {
		fp = &api.FailoverPolicy{}
	}
	window := fp.StabilizationWindow.Get(DefaultWindow)
	exclusive := PolicyOf(w).Exclusive
	var due []string
	held := map[string]string{} // returned clusters that take nothing back yet, and until when
	for _, c := range slices.Sorted(maps.Keys(from)) {
		lc, ok := named(s.clusters, c)
		switch {
		case !ok || from[c] <= 0:
			delete(from, c) // deregistered, or nothing left to move back
		case fp.Failback == "manual":
			held[c] = "failback is manual"
		case len(s.lost) > 0:
			held[c] = "a failover is under way"
		case exclusive && lc.Ready():
			// An exclusive workload runs in one cluster: moving it back would
			// stop it a second time. It stays; the record ends once the
			// cluster has been Ready for the window.
			if at := lc.Live.Since.Add(window); now.Before(at) {
				wake = earliest(wake, at)
			} else {
				delete(from, c)
				d.Explanation = append(d.Explanation, fmt.Sprintf("failback: %s is back, but an exclusive workload stays where it runs (moving it would stop it again)", c))
			}
		case lc.Ready() && d.Filtered[c] == "":
			if at := lc.Live.Since.Add(window); now.Before(at) {
				wake = earliest(wake, at)
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
	holdReturns(d, s.current, held)
	if len(due) == 0 {
		return from, nil, wake, bucket
	}
	target, room := freshSplit(w, s.snap, s.current, d)
	budget, bucket := refill(bucket, fp.FailbackRate, now)
	for _, c := range due {
		want := min(target[c]-d.Assignment[c], from[c], budget)
		if r, bounded := room[c]; bounded {
			want = min(want, r) // never past its room, whatever the split says
		}
		for want > 0 {
			if moveOne(d, target, c) == "" {
				break
			}
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
	spend(bucket, back)
	if len(back) > 0 {
		d.Explanation = append(d.Explanation, "failback: "+FailbackText(back, *d))
	}
	if len(from) == 0 {
		from = nil
	}
	return from, back, wake, bucket
}

// freshSplit is where a fresh split (placement with Input.Rebalance)
// would put w's replicas, counted from the decision's assignment: each
// bounded cluster's room (counted beyond what runs now, current) is cut by
// what the decision already adds there, or that room would be used twice
// over. room is what each bounded cluster may still take.
func freshSplit(w *api.Workload, snap []placement.Cluster, current map[string]int32, d *placement.Decision) (target, room map[string]int32) {
	snap = slices.Clone(snap)
	room = map[string]int32{}
	for i := range snap {
		if c := &snap[i]; c.Room >= 0 {
			c.Room = max(c.Room-max(d.Assignment[c.Name]-current[c.Name], 0), 0)
			room[c.Name] = c.Room
		}
	}
	if d.Assignment == nil {
		d.Assignment = map[string]int32{}
	}
	target = placement.Decide(placement.Input{Workload: w.Metadata.Name, Replicas: w.Spec.Replicas, Policy: PlacementPolicy(w),
		Clusters: snap, Current: d.Assignment, Rebalance: true}).Assignment
	return target, room
}

// refill is what the failback rate (replicas a minute; 0: no limit)
// allows to move now, and the bucket to keep (refilled to now; unchanged
// without a rate).
func refill(bucket *Bucket, rate int32, now time.Time) (budget int32, kept *Bucket) {
	if rate <= 0 {
		return 1 << 30, bucket
	}
	b := Bucket{Tokens: 1, At: now}
	if bucket != nil {
		b = *bucket
	}
	b.Tokens = min(b.Tokens+now.Sub(b.At).Minutes()*float64(rate), float64(rate))
	b.At = now
	return int32(b.Tokens), &b
}

// spend takes what moved off the bucket (nil: no rate, nothing to take).
func spend[K comparable](bucket *Bucket, moved map[K]int32) {
	if bucket == nil {
		return
	}
	for _, n := range moved {
		bucket.Tokens -= float64(n)
	}
}

// moveOne moves one replica to cluster c from the cluster furthest above
// its share of target, and names it ("": none is above its share).
func moveOne(d *placement.Decision, target map[string]int32, c string) (donor string) {
	surplus := int32(0)
	for _, x := range slices.Sorted(maps.Keys(d.Assignment)) {
		if s := d.Assignment[x] - target[x]; x != c && s > surplus {
			donor, surplus = x, s
		}
	}
	if donor == "" {
		return ""
	}
	d.Assignment[donor]--
	if d.Assignment[donor] == 0 {
		delete(d.Assignment, donor)
	}
	d.Assignment[c]++
	return donor
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

// keepUntilFailedBack makes failback and rebalance make-before-break for
// a stateless workload: the clusters replicas move from keep theirs until
// the clusters they moved to run them ready. What is still to be ready
// (returned cluster -> replicas moved back) is kept in the placement
// status between passes (prev), with this pass's moves (back) added; it
// returns what is still pending. The wait lasts while the moved replicas
// are not ready (it has no deadline: a rollout that never gets ready keeps
// the others, as a drain does); it ends when the cluster is lost again.
func keepUntilFailedBack(w *api.Workload, d *placement.Decision, current, prev, back map[string]int32, clusters []Cluster) map[string]int32 {
	if PolicyOf(w).Exclusive {
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
		if cr.Generation == w.GivenGeneration(cr.Cluster) {
			ready[cr.Cluster] += cr.Ready
		}
	}
	for _, c := range slices.Sorted(maps.Keys(pending)) {
		if _, found := named(clusters, c); !found || d.Evicted[c] != "" {
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
		if pending[x] > 0 || current[x] <= d.Assignment[x] || d.Evicted[x] != "" || !readyNamed(clusters, x) {
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
		d.Explanation = append(d.Explanation, fmt.Sprintf("make-before-break: keeping the replicas on %s until the ones moved are ready (%s ready)",
			strings.Join(kept, ", "), strings.Join(wait, ", ")))
	}
	return pending
}

// readyNamed says whether the cluster called name is Ready.
func readyNamed(clusters []Cluster, name string) bool {
	c, ok := named(clusters, name)
	return ok && c.Ready()
}
