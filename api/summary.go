package api

import (
	"fmt"
	"sort"
	"strings"
)

// The summaries below are how every client (the CLI's tables, the web
// console's pages) counts and judges objects, so that two views of the
// same object never disagree.

// HealthOrUnknown is the cluster's health, Unknown when it has none yet.
func (c *Cluster) HealthOrUnknown() string {
	if c.Status.Health == "" {
		return HealthUnknown
	}
	return c.Status.Health
}

// Draining reports whether the cluster carries the drain taint.
func (c *Cluster) Draining() bool {
	for _, t := range c.Spec.Taints {
		if t.Key == DrainTaintKey && t.Effect == "NoExecute" {
			return true
		}
	}
	return false
}

// String renders a taint as kubectl does: key=value:Effect.
func (t Taint) String() string {
	s := t.Key
	if t.Value != "" {
		s += "=" + t.Value
	}
	return s + ":" + t.Effect
}

// RegionReplicas is one region's share of a workload.
type RegionReplicas struct {
	Region  string
	Ready   int32
	Desired int32
}

// RegionSplit adds up a workload's per-cluster status by region (a
// cluster without a region counts as a region of its own), sorted by
// region. A cluster with nothing of the workload (none desired,
// scheduled, ready or still present: a cluster it moved off) is left out.
func RegionSplit(cs []ClusterReplicas) []RegionReplicas {
	by := map[string]*RegionReplicas{}
	var out []RegionReplicas
	var order []string
	for _, c := range cs {
		if c.Desired == 0 && c.Scheduled == 0 && c.Ready == 0 && c.Present == 0 {
			continue
		}
		r := c.Region
		if r == "" {
			r = c.Cluster
		}
		if by[r] == nil {
			by[r] = &RegionReplicas{Region: r}
			order = append(order, r)
		}
		by[r].Ready += c.Ready
		by[r].Desired += c.Desired
	}
	sort.Strings(order)
	for _, r := range order {
		out = append(out, *by[r])
	}
	return out
}

// FormatRegionSplit renders a split as "eu-west=3/3,us-east=2/3" (no
// spaces, so column-splitting tools keep it whole), "-" when empty.
func FormatRegionSplit(rs []RegionReplicas) string {
	if len(rs) == 0 {
		return "-"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s=%d/%d", r.Region, r.Ready, r.Desired)
	}
	return strings.Join(parts, ",")
}

// Workload health states, from the best to the worst.
const (
	WorkloadHealthy     = "Healthy"     // every desired replica placed and ready
	WorkloadProgressing = "Progressing" // being placed, started or rolled out
	WorkloadDegraded    = "Degraded"    // fewer ready than desired, some ready
	WorkloadUnavailable = "Unavailable" // none ready of some desired
	WorkloadDeleting    = "Deleting"    // deletion requested, members confirming
)

// WorkloadHealthStates lists the states in the order the console counts
// them.
var WorkloadHealthStates = []string{WorkloadHealthy, WorkloadProgressing, WorkloadDegraded, WorkloadUnavailable, WorkloadDeleting}

// WorkloadHealth is a workload's state with the one-line reason for it.
type WorkloadHealth struct {
	State  string
	Reason string
}

// DesiredReplicas is the total the workload asks for: spec.replicas when
// Divided; per selected cluster when Duplicated, so the total follows the
// placement (placed plus unplaced).
func (w *Workload) DesiredReplicas() int32 {
	p := w.Status.Placement
	if w.Spec.Placement == nil || w.Spec.Placement.ReplicaMode != "Duplicated" || p == nil {
		return w.Spec.Replicas
	}
	total := p.Unplaced
	for _, n := range p.Clusters {
		total += n
	}
	return total
}

// Health judges a workload from its status: what the members report
// against what it asks for, and what the placement could not place.
func (w *Workload) Health() WorkloadHealth {
	desired, ready := w.DesiredReplicas(), w.Status.ReadyReplicas
	st := w.Status
	switch {
	case w.Metadata.DeletionTimestamp != nil:
		return WorkloadHealth{WorkloadDeleting, "waiting for the members to stop its replicas"}
	case st.Placement == nil && desired > 0:
		return WorkloadHealth{WorkloadProgressing, "waiting for placement"}
	case st.Placement != nil && st.Placement.Unplaced > 0:
		reason := st.Placement.Reason
		if reason == "" {
			reason = fmt.Sprintf("%d replicas unplaced", st.Placement.Unplaced)
		}
		if ready == 0 && desired > 0 {
			return WorkloadHealth{WorkloadUnavailable, reason}
		}
		return WorkloadHealth{WorkloadDegraded, reason}
	case ready >= desired:
		if desired == 0 {
			return WorkloadHealth{WorkloadHealthy, "scaled to 0"}
		}
		return WorkloadHealth{WorkloadHealthy, fmt.Sprintf("%d/%d ready", ready, desired)}
	case len(st.Clusters) == 0:
		return WorkloadHealth{WorkloadProgressing, "placed; waiting for the members' first report"}
	case st.ObservedGeneration < w.Metadata.Generation:
		return WorkloadHealth{WorkloadProgressing, fmt.Sprintf("rolling out generation %d: %d/%d ready", w.Metadata.Generation, ready, desired)}
	}
	var short []string
	for _, r := range RegionSplit(st.Clusters) {
		if r.Ready < r.Desired {
			short = append(short, fmt.Sprintf("%s %d/%d", r.Region, r.Ready, r.Desired))
		}
	}
	reason := fmt.Sprintf("%d/%d ready", ready, desired)
	if len(short) > 0 {
		reason += " (" + strings.Join(short, ", ") + ")"
	}
	if ready == 0 {
		return WorkloadHealth{WorkloadUnavailable, reason}
	}
	return WorkloadHealth{WorkloadDegraded, reason}
}
