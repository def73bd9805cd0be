package drill

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/placement"
)

// This file decides; the controller does (run.go), and package httpapi
// serves the API that plans and creates drills. A drill's plan is what
// placement would decide for every workload with replicas on the targets
// once the fault is in: the targets Unreachable (outage, partition) or
// tainted NoExecute (evacuate). Decisions are taken one workload after the
// other, each taking the free capacity the ones before it used, so the
// plan answers whether the rest absorbs the whole load, not each workload
// alone.

// resolveTargets turns a drill's target into cluster names: the cluster,
// or every cluster of the region. Clusters being deregistered do not
// count. An empty answer comes with the field error saying why.
func resolveTargets(t api.DrillTarget, clusters []api.Cluster) ([]string, api.FieldErrors) {
	var out []string
	for _, c := range clusters {
		if c.Metadata.DeletionTimestamp != nil {
			continue
		}
		if (t.Cluster != "" && c.Metadata.Name == t.Cluster) || (t.Region != "" && c.Metadata.Labels[api.LabelRegion] == t.Region) {
			out = append(out, c.Metadata.Name)
		}
	}
	sort.Strings(out)
	switch {
	case len(out) > 0:
		return out, nil
	case t.Cluster != "":
		return nil, api.FieldErrors{{Field: "target.cluster", Message: "no such cluster", Value: t.Cluster}}
	default:
		return nil, api.FieldErrors{{Field: "target.region", Message: "no cluster is in this region", Value: t.Region}}
	}
}

// drillTaint is the taint an evacuate drill puts on its targets.
func drillTaint(drill string) api.Taint {
	return api.Taint{Key: api.DrillTaintKey, Value: drill, Effect: "NoExecute"}
}

// tolerates reports whether a workload keeps its replicas on a cluster
// given every one of taints.
func tolerates(w api.Workload, taints []api.Taint) bool {
	if w.Spec.Placement == nil {
		return false
	}
	for _, t := range taints {
		if !slices.ContainsFunc(w.Spec.Placement.Tolerations, func(tol api.Toleration) bool { return tol.Tolerates(t) }) {
			return false
		}
	}
	return true
}

// currentPlacements maps workload -> cluster -> replicas from placement
// rows (tombstones and empty rows left out).
func currentPlacements(rows []pgstore.Placement) map[string]map[string]int32 {
	out := map[string]map[string]int32{}
	for _, r := range rows {
		if r.Deleted || r.Replicas <= 0 {
			continue
		}
		if out[r.Workload] == nil {
			out[r.Workload] = map[string]int32{}
		}
		out[r.Workload][r.Cluster] = r.Replicas
	}
	return out
}

// planDrill is the dry run of a drill named name of kind over targets,
// given the clusters as the hub sees them now, the workloads (with their
// status) and their current placement. It changes nothing. Its warnings
// name the workloads already unavailable, the objectives of slo that
// cannot be met by construction and the policies that cannot hold during
// the fault. An evacuation also judges each workload's disruption budget
// (a field and, when it breaks, a note).
func planDrill(kind, name string, slo *api.DrillSLO, targets []string, view []failover.Cluster, workloads map[string]api.Workload, current map[string]map[string]int32, now time.Time) *api.DrillPlan {
	return planFault(kind, []api.Taint{drillTaint(name)}, slo, targets, view, workloads, current, now)
}

// planFault is planDrill with the taints an evacuation puts on the
// targets given (a drill's own, or the NoExecute taints a cluster write
// adds): a workload that tolerates all of them stays.
func planFault(kind string, taints []api.Taint, slo *api.DrillSLO, targets []string, view []failover.Cluster, workloads map[string]api.Workload, current map[string]map[string]int32, now time.Time) *api.DrillPlan {
	plan := &api.DrillPlan{Targets: targets, Absorbed: true}
	isTarget := map[string]bool{}
	for _, t := range targets {
		isTarget[t] = true
	}
	// What placement will see once the fault is in.
	fault := make([]failover.Cluster, len(view))
	for i, c := range view {
		fault[i] = c
		if !isTarget[c.Metadata.Name] {
			continue
		}
		if kind == api.DrillEvacuate {
			fault[i].Spec.Taints = append(slices.Clone(c.Spec.Taints), taints...)
		} else {
			// Silent long enough that every failover grace (and fence) ran
			// out: the plan shows where replicas end up.
			fault[i].Known = true
			fault[i].Live.Health = api.HealthUnreachable
			long := now.Add(-24 * time.Hour)
			fault[i].Live.Since, fault[i].Live.Seen, fault[i].Live.LeaseFrom = long, long, long
		}
	}
	// Free capacity as the moves use it up, from the last heartbeats.
	ledger := failover.NewLedger(view)
	before, after := map[string]int32{}, map[string]int32{}
	var unplacedWhy []string
	// The least the drill can measure: replicas that cannot be ready at
	// the fault's worst, and the longest failover grace.
	var minPeak int32
	var graceMax time.Duration
	var graceOf string
	for _, wname := range slices.Sorted(maps.Keys(current)) {
		cur := current[wname]
		onTargets := int32(0)
		for c, n := range cur {
			if isTarget[c] {
				onTargets += n
			}
		}
		w, ok := workloads[wname]
		if onTargets == 0 || !ok || w.Metadata.DeletionTimestamp != nil {
			continue
		}
		pw := api.DrillPlanWorkload{Workload: wname, Mode: failoverMode(w), Before: maps.Clone(cur)}
		if kind == api.DrillEvacuate && tolerates(w, taints) {
			pw.Stays, pw.After = true, maps.Clone(cur)
			if b := w.Spec.DisruptionBudget; b != nil {
				holds := true
				pw.Budget, pw.BudgetHolds = b.String(), &holds
				pw.BudgetNote = fmt.Sprintf("%s: budget %s holds: it tolerates the evacuation and keeps its replicas", wname, b)
			}
			plan.Workloads = append(plan.Workloads, pw)
			continue
		}
		plan.AffectedWorkloads++
		plan.AffectedReplicas += onTargets
		desired := w.Spec.Replicas
		if duplicated(w) {
			desired = 0
			for _, n := range cur {
				desired += n
			}
		}
		if r := w.Status.Rollout; w.Spec.Rollout != nil && r != nil && r.Phase != api.RolloutCompleted && r.Phase != api.RolloutRolledBack {
			plan.Warnings = append(plan.Warnings, api.DrillWarning{Type: api.WarnRolloutInProgress, Workload: wname,
				Message: fmt.Sprintf("%s is rolling out revision %d (wave %s, %s): a fault now would blur its gates; force the drill, or wait", wname, r.Revision, r.WaveName, r.Phase)})
		}
		ready := w.Status.ReadyReplicas
		if ready < desired {
			plan.Warnings = append(plan.Warnings, api.DrillWarning{Type: api.WarnAlreadyUnavailable, Workload: wname,
				Message: fmt.Sprintf("%s has %d of %d replicas ready before the fault: its recovery is reported, not counted in the drill's RTO", wname, ready, desired)})
		}
		minPeak += worstUnavailable(kind, desired, ready, cur, isTarget)
		if kind != api.DrillEvacuate {
			if g := failover.PolicyOf(&w).Grace; g > graceMax || graceOf == "" {
				graceMax, graceOf = g, wname
			}
		}
		cpu, mem := failover.Requests(w.Spec.Template)
		// Replicas placement leaves out already are not the drill's doing.
		policy := failover.PlacementPolicy(&w)
		asIs, _ := failover.Snapshot(view, &w, now)
		base := placement.Decide(placement.Input{Workload: wname, Replicas: w.Spec.Replicas, Policy: policy, Clusters: asIs, Current: cur})
		clusters, _ := failover.Snapshot(fault, &w, now)
		ledger.Bound(clusters, cpu, mem)
		d := placement.Decide(placement.Input{Workload: wname, Replicas: w.Spec.Replicas, Policy: policy, Clusters: clusters, Current: cur})
		pw.After = maps.Clone(d.Assignment)
		if pw.After == nil {
			pw.After = map[string]int32{}
		}
		if lost := d.Unplaced - base.Unplaced; lost > 0 {
			pw.Unplaced, pw.Reason = lost, d.UnplacedReason
			plan.UnplacedReplicas += lost
			unplacedWhy = append(unplacedWhy, fmt.Sprintf("%s: %d of %d replicas would have no cluster (%s)", wname, lost, onTargets, d.UnplacedReason))
		}
		if msg := unsatisfiable(d); msg != "" && unsatisfiable(base) == "" {
			plan.Warnings = append(plan.Warnings, api.DrillWarning{Type: api.WarnPolicyUnsatisfiable, Workload: wname,
				Message: fmt.Sprintf("%s: placed, but its policy cannot hold during the fault (%s)", wname, msg)})
		}
		if cold := coldClusters(w, cur, pw.After); len(cold) > 0 {
			plan.Warnings = append(plan.Warnings, api.DrillWarning{Type: api.WarnImageNotPresent, Workload: wname, Clusters: cold,
				Message: fmt.Sprintf("%s: %s would have to pull image %s when its replicas move there (not held ahead of need: no warm standby yet): the pull adds to the RTO",
					wname, strings.Join(cold, ", "), w.Spec.Template.Image)})
		}
		if kind == api.DrillEvacuate {
			judgeBudget(&pw, w, desired)
			if pw.BudgetHolds != nil && !*pw.BudgetHolds {
				plan.Notes = append(plan.Notes, pw.BudgetNote)
			}
		}
		ledger.Take(pw.After, cur, cpu, mem)
		plan.Workloads = append(plan.Workloads, pw)
		for c, n := range cur {
			before[c] += n
		}
		for c, n := range pw.After {
			after[c] += n
		}
	}
	for _, c := range view {
		name := c.Metadata.Name
		if c.Metadata.DeletionTimestamp != nil {
			continue
		}
		pc := api.DrillPlanCluster{Cluster: name, Region: c.Metadata.Labels[api.LabelRegion], Target: isTarget[name],
			Health: c.Status.Health, ReplicasBefore: before[name], ReplicasAfter: after[name]}
		if c.Known {
			pc.Health = c.Live.Health
		}
		if capa, ok := ledger[name]; ok {
			cpu := capa.CPUAllocatable - capa.CPUAllocated
			mem := capa.MemoryAllocatable - capa.MemoryAllocated
			pc.CPUFreeMillis, pc.MemoryFreeBytes = &cpu, &mem
		}
		if pc.Target && pc.Health != api.HealthReady {
			plan.Notes = append(plan.Notes, fmt.Sprintf("target %s is %s now: the drill measures little there", name, orUnknown(pc.Health)))
		}
		plan.Clusters = append(plan.Clusters, pc)
	}
	plan.Warnings = append(plan.Warnings, unreachableSLOs(kind, slo, plan, minPeak, graceMax, graceOf)...)
	switch {
	case plan.UnplacedReplicas > 0:
		plan.Absorbed = false
		plan.Reason = fmt.Sprintf("the remaining clusters cannot absorb the load: %d of %d affected replicas would have no cluster; %s",
			plan.UnplacedReplicas, plan.AffectedReplicas, strings.Join(unplacedWhy, "; "))
	case plan.AffectedWorkloads == 0:
		plan.Notes = append(plan.Notes, "no workload has replicas to move off the targets")
	}
	return plan
}

// judgeBudget says whether the replicas a workload has placed after an
// evacuation meet its disruption budget, out of desired replicas; it
// leaves pw alone for a workload without a budget.
func judgeBudget(pw *api.DrillPlanWorkload, w api.Workload, desired int32) {
	b := w.Spec.DisruptionBudget
	if b == nil {
		return
	}
	var placed int32
	for _, n := range pw.After {
		placed += n
	}
	floor := b.Floor(desired)
	holds := placed >= floor
	pw.Budget, pw.BudgetHolds = b.String(), &holds
	verdict := "holds"
	if !holds {
		verdict = "breaks"
	}
	pw.BudgetNote = fmt.Sprintf("%s: budget %s %s: %d of %d replicas would have a place after the evacuation, %d must", w.Metadata.Name, b, verdict, placed, desired, floor)
}

// worstUnavailable is the fewest of a workload's desired replicas that
// cannot be ready at the fault's worst: those not ready now and, unless
// the drill is an evacuation (which drains gracefully), every replica on
// the targets, which go dark (outage) or cannot be heard (partition).
func worstUnavailable(kind string, desired, ready int32, cur map[string]int32, isTarget map[string]bool) int32 {
	canBeReady := ready
	if kind != api.DrillEvacuate {
		var outside int32
		for c, n := range cur {
			if !isTarget[c] {
				outside += n
			}
		}
		canBeReady = min(ready, outside)
	}
	return max(0, desired-canBeReady)
}

// unreachableSLOs are the objectives a drill cannot meet by construction:
// a maxUnavailableReplicas below what the fault takes down at once, a
// maxRTO within the failover grace (nothing moves before it runs out), any
// RTO when replicas will have no cluster.
func unreachableSLOs(kind string, slo *api.DrillSLO, plan *api.DrillPlan, minPeak int32, grace time.Duration, graceOf string) []api.DrillWarning {
	if slo == nil || plan.AffectedWorkloads == 0 {
		return nil
	}
	var out []api.DrillWarning
	if m := slo.MaxUnavailableReplicas; m != nil && *m < minPeak {
		why := "replicas not ready now"
		if kind != api.DrillEvacuate {
			why = fmt.Sprintf("the targets hold %d affected replicas, which all stop counting at once in an %s", plan.AffectedReplicas, kind)
		}
		out = append(out, api.DrillWarning{Type: api.WarnSLOUnreachable, Field: "slo.maxUnavailableReplicas",
			Message: fmt.Sprintf("maxUnavailableReplicas %d cannot be met: at least %d replicas will be unavailable at once (%s); allow %d or more", *m, minPeak, why, minPeak)})
	}
	if slo.MaxRTO != "" {
		max := slo.MaxRTO.Get(0)
		switch {
		case plan.UnplacedReplicas > 0:
			out = append(out, api.DrillWarning{Type: api.WarnSLOUnreachable, Field: "slo.maxRTO",
				Message: fmt.Sprintf("maxRTO %s cannot be met: %d affected replicas would have no cluster, so recovery never completes", max, plan.UnplacedReplicas)})
		case kind != api.DrillEvacuate && max <= grace:
			out = append(out, api.DrillWarning{Type: api.WarnSLOUnreachable, Field: "slo.maxRTO",
				Message: fmt.Sprintf("maxRTO %s cannot be met: %s waits its failover grace of %s after the hub sees the targets Unreachable before its replicas move", max, graceOf, grace)})
		}
	}
	return out
}

// unsatisfiable is why a decision cannot meet its workload's policy (a
// spread's minGroups, say), or "" when it can.
func unsatisfiable(d placement.Decision) string {
	for _, c := range d.Conditions {
		if c.Type == placement.ConditionUnsatisfiable && c.Status == "True" {
			return c.Message
		}
	}
	return ""
}

func orUnknown(health string) string {
	if health == "" {
		return api.HealthUnknown
	}
	return health
}

// failoverMode is a workload's failover mode, stateless unless set.
func failoverMode(w api.Workload) string {
	if w.Spec.Failover != nil && w.Spec.Failover.Mode != "" {
		return w.Spec.Failover.Mode
	}
	return "stateless"
}

// failsBackByHand reports whether a workload returns to a recovered
// cluster only when an operator moves it.
func failsBackByHand(w api.Workload) bool {
	return w.Spec.Failover != nil && w.Spec.Failover.Failback == "manual"
}

// duplicated reports whether a workload runs its count in every selected
// cluster (nothing moves when one is lost).
func duplicated(w api.Workload) bool {
	return w.Spec.Placement != nil && w.Spec.Placement.ReplicaMode == placement.ModeDuplicated
}

// coldClusters are the clusters an oci workload's replicas would move to
// (in after, running none now) whose nodes do not hold its current
// revision's image ahead of need, as their members last reported
// (Workload.status.images): their replicas would start with a pull.
func coldClusters(w api.Workload, cur, after map[string]int32) []string {
	if w.Spec.Template.Driver != "oci" {
		return nil
	}
	var out []string
	for _, c := range slices.Sorted(maps.Keys(after)) {
		if after[c] <= 0 || cur[c] > 0 {
			continue
		}
		i := slices.IndexFunc(w.Status.Images, func(ci api.ClusterImage) bool { return ci.Cluster == c })
		if i < 0 || !w.Status.Images[i].Warm() || !sameImage(w.Status.Images[i].Image, w.Spec.Template.Image) {
			out = append(out, c)
		}
	}
	return out
}

// sameImage says whether a pinned reference is of the image ref names
// (its tag, or its digest).
func sameImage(pinned, ref string) bool {
	base, _, _ := strings.Cut(pinned, "@")
	return pinned == ref || base == ref
}
