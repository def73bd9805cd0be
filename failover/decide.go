package failover

import (
	"maps"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/placement"
)

// Input is everything one workload's decision reads.
type Input struct {
	// Workload is the workload as stored, its status (the members'
	// reports, the last placement) included.
	Workload *api.Workload
	// Clusters are every registered cluster with its live health.
	Clusters []Cluster
	// Current is where its replicas are placed now (cluster -> replicas:
	// a row of 0 replicas is listed with 0, tombstones are left out).
	Current map[string]int32
	// Epochs are the epochs of its placement rows by cluster, tombstones
	// included: an exclusive workload's move waits for the reports of the
	// epoch that took replicas away.
	Epochs map[string]int64
	// Bucket is its failback rate limit as the last decision left it (nil:
	// none yet).
	Bucket *Bucket
	// Now is the time the decision is taken at.
	Now time.Time
	// RebalanceAsked says an operator asked for a rebalance that has not
	// been carried out yet (the workload's annotation is newer than its
	// placement status's record).
	RebalanceAsked bool
}

// Result is one workload's decision and what the rules made of it.
type Result struct {
	// Decision is placement's decision as the rules edited it: its
	// Assignment is what to store.
	Decision placement.Decision
	// Lost are the replicas taken off lost or evicted clusters; Back the
	// ones moved back to returned clusters.
	Lost, Back map[string]int32
	// FailedOverFrom and FailingBack are the placement status's record
	// of what is away from each cluster and what moved back but is not
	// ready yet.
	FailedOverFrom, FailingBack map[string]int32
	// Waiting says a rule holds something back until the members report
	// (graceful purge, exclusive sequencing, make-before-break failback):
	// a status change must decide the workload again.
	Waiting bool
	// WakeAt is when the workload must be decided again even if nothing
	// changes (a grace or a stabilisation window runs out); zero: never.
	WakeAt time.Time
	// Bucket is the failback rate limit to keep for the next decision
	// (nil: forget it).
	Bucket *Bucket
	// Rebalance is what the decision made of a rebalance (asked for, or
	// the auto policy's).
	Rebalance Rebalance
}

// Decide places one workload: placement's split over the clusters as the
// failover rules show them, then graceful purge, exclusive sequencing,
// failback, rebalance and make-before-break, in that order (each sees
// what the ones before left). The replicas it adds are taken off ledger, so the next
// workload decided in the same pass sees the capacity this one used.
func Decide(in Input, ledger Ledger) Result {
	w := in.Workload
	snap, wake := Snapshot(in.Clusters, w, in.Now)
	cpu, mem := Requests(w.Spec.Template)
	ledger.Bound(snap, cpu, mem)
	d := placement.Decide(placement.Input{Workload: w.Metadata.Name, Replicas: w.Spec.Replicas, Policy: PlacementPolicy(w),
		Clusters: snap, Current: in.Current})
	kept := PurgeGracefully(w, &d, in.Current, in.Clusters)
	held := SequenceExclusive(w, &d, in.Current, in.Epochs, in.Clusters, in.Now)
	lost := Lost(d, in.Current)
	var prev, prevBack map[string]int32
	if w.Status.Placement != nil {
		prev, prevBack = w.Status.Placement.FailedOverFrom, w.Status.Placement.FailingBack
	}
	from, back, windowEnds, bucket := failback(failbackState{w: w, current: in.Current, prev: prev, lost: lost, snap: snap,
		clusters: in.Clusters, now: in.Now, bucket: in.Bucket}, &d)
	rb, rbWake, bucket := rebalance(rebalanceState{w: w, current: in.Current, snap: snap, clusters: in.Clusters, lost: lost, from: from,
		back: back, pending: prevBack, asked: in.RebalanceAsked, now: in.Now, bucket: bucket}, &d)
	moved := back
	if len(rb.Moves) > 0 {
		// Rebalanced replicas start before the ones they replace stop, as
		// failback's do; an operator's rebalance also answers failback's
		// record for what it brought back.
		moved = maps.Clone(back)
		if moved == nil {
			moved = map[string]int32{}
		}
		for _, m := range rb.Moves {
			moved[m.To] += m.Replicas
			if in.RebalanceAsked && from[m.To] > 0 {
				if from[m.To] -= m.Replicas; from[m.To] <= 0 {
					delete(from, m.To)
				}
			}
		}
		if len(from) == 0 {
			from = nil
		}
	}
	failingBack := keepUntilFailedBack(w, &d, in.Current, prevBack, moved, in.Clusters)
	ledger.Take(d.Assignment, in.Current, cpu, mem) // failback's and rebalance's moves included
	d.Conditions = append(d.Conditions, FailedOverCondition(from, w.Spec.Failover))
	return Result{Decision: d, Lost: lost, Back: back, FailedOverFrom: from, FailingBack: failingBack, Rebalance: rb,
		Waiting: held || len(kept) > 0 || len(failingBack) > 0, WakeAt: earliest(earliest(wake, windowEnds), rbWake), Bucket: bucket}
}
