package failover

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/placement"
)

// ConditionFailedOver is True while replicas failover moved off a cluster
// have not moved back.
const ConditionFailedOver = "FailedOver"

// FailedOverCondition reports failover progress in Workload.status.
func FailedOverCondition(from map[string]int32, fp *api.FailoverPolicy) api.Condition {
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

// SplitText lists an assignment as "a 2, b 1" ("nowhere" when empty).
func SplitText(a map[string]int32) string {
	keys := slices.Sorted(maps.Keys(a))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if a[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, a[k]))
		}
	}
	if len(parts) == 0 {
		return "nowhere"
	}
	return strings.Join(parts, ", ")
}

// FailoverText describes a failover move for its event.
func FailoverText(lost map[string]int32, d placement.Decision) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(lost)) {
		parts = append(parts, fmt.Sprintf("%d off %s (%s)", lost[c], c, d.Filtered[c]))
	}
	return "moved " + strings.Join(parts, ", ") + "; now " + SplitText(d.Assignment)
}

// FailbackText describes a failback move.
func FailbackText(back map[string]int32, d placement.Decision) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(back)) {
		parts = append(parts, fmt.Sprintf("%d back to %s", back[c], c))
	}
	return "moved " + strings.Join(parts, ", ") + " (Ready for the stabilisation window); now " + SplitText(d.Assignment)
}

// Reason is a low-cardinality metric label for why replicas moved (Lost
// keeps only these two).
func Reason(evictedBy string) string {
	if evictedBy == api.HealthUnreachable {
		return "unreachable"
	}
	return "noexecute"
}

// Move reasons (event reasons) of replicas moved off clusters.
const (
	MoveFailedOver = "FailedOver" // a cluster was lost, or an operator's NoExecute taint evicted them
	MoveDrained    = "Drained"    // an operator's drain (atoll cluster drain)
	MoveEvacuated  = "Evacuated"  // an evacuate drill
)

// MoveReason names a move off the lost clusters for its event, and the
// event's type: a drain or an evacuate drill that evicted every one of
// them is a planned move (Normal); anything else is a failover (Warning).
func MoveReason(lost map[string]int32, d placement.Decision) (reason, eventType string) {
	planned := ""
	for c := range lost {
		why := ""
		switch filtered := d.Filtered[c]; {
		case d.Evicted[c] == api.HealthUnreachable:
		case strings.HasPrefix(filtered, "tainted: "+api.DrainTaintKey+":"), strings.HasPrefix(filtered, "tainted: "+api.DrainTaintKey+"="):
			why = MoveDrained
		case strings.HasPrefix(filtered, "tainted: "+api.DrillTaintKey+":"), strings.HasPrefix(filtered, "tainted: "+api.DrillTaintKey+"="):
			why = MoveEvacuated
		}
		if why == "" || (planned != "" && planned != why) {
			return MoveFailedOver, api.EventWarning
		}
		planned = why
	}
	if planned == "" {
		return MoveFailedOver, api.EventWarning
	}
	return planned, api.EventNormal
}

// RebalanceText describes a rebalance's moves for its event.
func RebalanceText(moves []api.RebalanceMove) string {
	parts := make([]string, 0, len(moves))
	for _, m := range moves {
		parts = append(parts, fmt.Sprintf("%d %s→%s", m.Replicas, m.From, m.To))
	}
	return "rebalanced toward a fresh split: " + strings.Join(parts, ", ") + "; each kept where it ran until its replacement is ready"
}
