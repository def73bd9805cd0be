package api

import (
	"maps"
	"slices"
)

// AnnotationRebalanceRequestedAt, on a workload, asks the placement
// controller to rebalance it once: its value is when it was asked
// (RFC 3339). The controller records the request it carried out in
// status.placement.rebalanced. `atoll rebalance` and the console set it
// through POST /api/v1/workloads/{name}/rebalance.
const AnnotationRebalanceRequestedAt = "atoll.dev/rebalance-requested-at"

// Rebalance policies (spec.failover.rebalance).
const (
	// RebalanceManual moves replicas toward a fresh split only when an
	// operator asks (the default).
	RebalanceManual = "manual"
	// RebalanceAuto moves them whenever the fresh split over the clusters
	// Ready for the stabilisation window differs from where they run
	// (a cluster came back, or joined), within failbackRate.
	RebalanceAuto = "auto"
)

// RebalancePlan is what rebalancing a workload moves: from where its
// replicas run now toward the split a fresh placement would choose, each
// moved replica started before the one it replaces stops
// (make-before-break).
type RebalancePlan struct {
	Workload string `json:"workload"`
	// Current is where the replicas are placed now.
	Current map[string]int32 `json:"current"`
	// Target is where they are placed once the moves are done.
	Target map[string]int32 `json:"target"`
	// Moves are the replicas that move, from one cluster to another.
	Moves []RebalanceMove `json:"moves,omitempty"`
	// Blocked says why nothing moves now: the request waits (an
	// exclusive workload never moves while it runs).
	Blocked string `json:"blocked,omitempty" doc:"Why nothing moves now, such as a failover under way or an unhealthy cluster; a request waits until it can go."`
	// Explanation is the placement decision's reasoning.
	Explanation []string `json:"explanation,omitempty"`
	// Requested is set when the rebalance was asked for (not a dry run):
	// the placement controller carries it out on its next pass.
	Requested bool `json:"requested,omitempty"`
	// RequestedAt is the request's time, as the annotation holds it.
	RequestedAt string `json:"requestedAt,omitempty"`
}

// RebalanceMove is replicas moving from one cluster to another.
type RebalanceMove struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Replicas int32  `json:"replicas"`
}

// Moved counts the replicas a plan moves.
func (p *RebalancePlan) Moved() int32 {
	var n int32
	for _, m := range p.Moves {
		n += m.Replicas
	}
	return n
}

// Clusters names every cluster the plan speaks of (now or after), in
// name order.
func (p *RebalancePlan) Clusters() []string {
	names := map[string]bool{}
	for c := range p.Current {
		names[c] = true
	}
	for c := range p.Target {
		names[c] = true
	}
	return slices.Sorted(maps.Keys(names))
}
