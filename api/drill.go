package api

import (
	"fmt"
	"strings"
	"time"
)

// Drill kinds.
const (
	// DrillEvacuate taints the targets NoExecute, so placement drains them
	// (gracefully where a workload's failover purge is graceful).
	DrillEvacuate = "evacuate"
	// DrillOutage takes the targets dark, as if their region died: they stop
	// heartbeating and acting, and their replicas stop.
	DrillOutage = "outage"
	// DrillPartition cuts hub and targets off from each other while the
	// targets keep running.
	DrillPartition = "partition"
)

// Drill phases say where a drill is; Completed, Aborted and Error are
// final. Whether it met its objectives is its verdict, apart.
const (
	DrillPending   = "Pending"   // created, not started yet
	DrillRunning   = "Running"   // the fault is in place; recovery is measured
	DrillRestoring = "Restoring" // the fault is lifted; failback is measured
	DrillCompleted = "Completed" // ran to its end; the verdict says whether it passed
	DrillAborted   = "Aborted"   // ended early on request
	DrillError     = "Error"     // the drill itself broke: the fault could not be put in place, or the hub running it stopped
)

// Phases of drills stored before phase and verdict were apart. They are
// still read (Outcome maps them) but never written.
const (
	DrillSucceeded = "Succeeded" // ended, every SLO met: Completed and Passed
	DrillFailed    = "Failed"    // ended with an SLO missed (Completed and Failed), an error or interrupted (Error)
)

// Drill verdicts, given to a Completed drill.
const (
	DrillVerdictPassed = "Passed" // every objective met
	DrillVerdictFailed = "Failed" // an objective missed (report.missed says which)
)

// Drill limits and defaults.
const (
	DefaultDrillDuration        = time.Minute
	MaxDrillDuration            = time.Hour
	DefaultDrillFailbackTimeout = 3 * time.Minute
	MaxDrillFailbackTimeout     = time.Hour
)

// Drill is a failover exercise: a fault put on a cluster or a region for
// a while, and a report of how the fleet recovered. Creating one starts
// it; its status streams a timeline and ends in a report, which is kept.
type Drill struct {
	TypeMeta
	Metadata ObjectMeta  `json:"metadata"`
	Spec     DrillSpec   `json:"spec"`
	Status   DrillStatus `json:"status,omitzero" readOnly:"true"`
}

// DrillList is a page of drills.
type DrillList struct {
	TypeMeta
	Metadata ListMeta `json:"metadata"`
	Items    []Drill  `json:"items"`
}

// DrillSpec is what a drill does and what it must prove.
type DrillSpec struct {
	Kind     string      `json:"kind" enum:"evacuate,outage,partition" doc:"evacuate: taint the targets NoExecute and drain them; outage: the targets go dark, as if their region died; partition: hub and targets cannot hear each other, while the targets keep running."`
	Target   DrillTarget `json:"target"`
	Duration Duration    `json:"duration,omitempty" doc:"How long the fault lasts; default 60s, at most 1h."`
	SLO      *DrillSLO   `json:"slo,omitempty"`
	// Force starts the drill even when its plan shows that the remaining
	// clusters cannot absorb the load.
	Force           bool        `json:"force,omitempty" doc:"Start even when the plan shows the remaining clusters cannot absorb the load, or (evacuate) that it breaks a workload's disruption budget."`
	FailbackTimeout Duration    `json:"failbackTimeout,omitempty" doc:"How long after the fault is lifted to wait for failback before reporting it incomplete; default 3m, at most 1h."`
	Probe           *DrillProbe `json:"probe,omitempty" doc:"Real HTTP requests sent to a service through entry points during the drill: before the fault (a short baseline), during it and after it."`
}

// Probe limits and defaults.
const (
	MinProbeRate         = 1
	MaxProbeRate         = 2000
	DefaultProbeBaseline = 2 * time.Second
	MaxProbeBaseline     = time.Minute
	MaxProbeThrough      = 8
)

// Probe phases: a probe's requests are counted apart before the fault,
// while it is in, and after it is lifted.
const (
	ProbeBaseline = "baseline"
	ProbeFault    = "fault"
	ProbeAfter    = "after"
)

// DrillProbe is traffic a drill sends and counts: GET requests to a
// service through named entry points (regional gateways, the global
// entry) that the hub running the drill knows by name (its
// --probe-entry-point flags; atoll dev names its gateways by region and
// its global entry "global").
type DrillProbe struct {
	Service  string   `json:"service" doc:"A Service's name: requests go to <entry point>/svc/<service><path>."`
	Rate     int32    `json:"rate" minimum:"1" maximum:"2000" doc:"Requests per second, through each entry point."`
	Path     string   `json:"path,omitempty" doc:"The request path under the service; default /."`
	Through  []string `json:"through" minItems:"1" maxItems:"8" doc:"The entry points to send through, by name, as the hub knows them (a name it does not know is refused, with the names it knows)."`
	Baseline Duration `json:"baseline,omitempty" doc:"How long requests are sent before the fault goes in; default 2s, at most 1m."`
}

// BaselineOrDefault is how long the probe runs before the fault.
func (p DrillProbe) BaselineOrDefault() time.Duration {
	return p.Baseline.Get(DefaultProbeBaseline)
}

// PathOrDefault is the probe's request path under the service.
func (p DrillProbe) PathOrDefault() string {
	if p.Path == "" {
		return "/"
	}
	return p.Path
}

// DrillTarget names what the fault hits: one cluster, or every cluster of
// a region. Exactly one is set.
type DrillTarget struct {
	Cluster string `json:"cluster,omitempty" doc:"A cluster name."`
	Region  string `json:"region,omitempty" doc:"A region: every cluster labelled region=<this>."`
}

// String is the target as the CLI and the console say it: "region
// eu-west", "cluster eu-west-1".
func (t DrillTarget) String() string {
	if t.Region != "" {
		return "region " + t.Region
	}
	return "cluster " + t.Cluster
}

// SecondsText renders one of a drill report's durations ("not reached"
// when the drill never got there), as the CLI and the console show it.
func SecondsText(s *float64) string {
	if s == nil {
		return "not reached"
	}
	return fmt.Sprintf("%.3fs", *s)
}

// DrillSLO is what the drill must show to pass. Duplicates of exclusive
// workloads are always checked (there must be none).
type DrillSLO struct {
	MaxRTO                 Duration `json:"maxRTO,omitempty" doc:"Every desired replica of the affected workloads ready elsewhere within this long of the fault."`
	MaxUnavailableReplicas *int32   `json:"maxUnavailableReplicas,omitempty" minimum:"0" doc:"At most this many desired replicas of the affected workloads not ready at any moment."`
	MaxFailedRequests      *int64   `json:"maxFailedRequests,omitempty" minimum:"0" doc:"At most this many of the probe's requests failed while the fault was in (every entry point; needs spec.probe)."`
	MinSuccessRatio        *float64 `json:"minSuccessRatio,omitempty" minimum:"0" maximum:"1" doc:"At least this share of the probe's requests succeeded while the fault was in (every entry point, 0 to 1; needs spec.probe)."`
}

// DrillStatus is the drill's progress and, once it ended, its report.
type DrillStatus struct {
	Phase   string   `json:"phase,omitempty" enum:"Pending,Running,Restoring,Completed,Aborted,Error,Succeeded,Failed" doc:"Where the drill is. Completed: it ran to its end; Aborted: ended early on request; Error: the drill itself broke (the fault could not be put in place, or the hub running it stopped). Succeeded and Failed are only found on drills stored by older hubs."`
	Verdict string   `json:"verdict,omitempty" enum:"Passed,Failed" doc:"Set once the drill Completed: Passed when every objective was met, Failed when one was missed (report.missed lists them). An aborted drill or one in Error has no verdict."`
	Targets []string `json:"targets,omitempty" doc:"The clusters the target resolved to when the drill was created."`
	// StartedAt is when the fault was in place (taint stored, or every
	// target acknowledged); the report's times count from there.
	StartedAt *time.Time `json:"startedAt,omitempty"`
	// EndedAt is when the fault was lifted.
	EndedAt *time.Time `json:"endedAt,omitempty"`
	// FinishedAt is when the report was written.
	FinishedAt       *time.Time    `json:"finishedAt,omitempty"`
	AbortRequestedAt *time.Time    `json:"abortRequestedAt,omitempty"`
	AbortRequestedBy string        `json:"abortRequestedBy,omitempty"`
	Plan             *DrillPlan    `json:"plan,omitempty" doc:"The plan as computed when the drill was created."`
	Timeline         []DrillEvent  `json:"timeline,omitempty"`
	Samples          []DrillSample `json:"samples,omitempty" doc:"A bounded series of the affected workloads' replicas, for a recovery chart."`
	Report           *DrillReport  `json:"report,omitempty"`
	// Probe is the probe's counts so far (the report keeps the last).
	Probe        *DrillProbeReport  `json:"probe,omitempty" doc:"The probe's counts so far, per entry point and phase."`
	ProbeSamples []DrillProbeSample `json:"probeSamples,omitempty" doc:"A bounded series of the probe's success ratio per entry point, for a chart."`
}

// DrillProbeSample is what one entry point's requests did over a stretch
// of time ending At.
type DrillProbeSample struct {
	At           time.Time `json:"at"`
	Through      string    `json:"through"`
	Requests     int64     `json:"requests"`
	Failed       int64     `json:"failed"`
	SuccessRatio float64   `json:"successRatio"`
}

// DrillProbeReport is what a drill's probe measured.
type DrillProbeReport struct {
	Service string            `json:"service"`
	Rate    int32             `json:"rate"`
	Through []DrillProbeEntry `json:"through"`
	// Fault sums every entry point's requests while the fault was in.
	Fault DrillProbeStats `json:"fault" doc:"Every entry point's requests while the fault was in, together."`
}

// DrillProbeEntry is one entry point's requests, per phase.
type DrillProbeEntry struct {
	Name     string          `json:"name"`
	Baseline DrillProbeStats `json:"baseline"`
	Fault    DrillProbeStats `json:"fault"`
	After    DrillProbeStats `json:"after"`
}

// DrillProbeStats counts requests and their latency.
type DrillProbeStats struct {
	Requests     int64   `json:"requests"`
	Succeeded    int64   `json:"succeeded"`
	Failed       int64   `json:"failed" doc:"Transport errors, timeouts and answers other than 2xx or 3xx."`
	SuccessRatio float64 `json:"successRatio" doc:"Succeeded over requests; 1 when there were none."`
	P50Millis    float64 `json:"p50Millis"`
	P99Millis    float64 `json:"p99Millis"`
}

// Text is the stats in one phrase: "1200 requests, 0 failed (100.000%
// succeeded), p50 1.2ms, p99 8.0ms".
func (s DrillProbeStats) Text() string {
	return fmt.Sprintf("%d requests, %d failed (%.3f%% succeeded), p50 %.1fms, p99 %.1fms", s.Requests, s.Failed, 100*s.SuccessRatio, s.P50Millis, s.P99Millis)
}

// DrillEvent is one step of a drill's timeline.
type DrillEvent struct {
	At      time.Time `json:"at"`
	Type    string    `json:"type" doc:"Created, Started, Detected, FirstReplacement, WorkloadRecovered, Recovered, ExclusiveDuplicate, AbortRequested, Restored, FailedBack, FailbackTimeout, Interrupted, Error, Finished."`
	Message string    `json:"message"`
}

// Timeline event types.
const (
	DrillEventCreated           = "Created"
	DrillEventStarted           = "Started"
	DrillEventDetected          = "Detected"
	DrillEventFirstReplacement  = "FirstReplacement"
	DrillEventRecovered         = "Recovered"
	DrillEventWorkloadRecovered = "WorkloadRecovered"
	DrillEventDuplicate         = "ExclusiveDuplicate"
	DrillEventAbortRequested    = "AbortRequested"
	DrillEventRestored          = "Restored"
	DrillEventFailedBack        = "FailedBack"
	DrillEventFailbackTimeout   = "FailbackTimeout"
	DrillEventInterrupted       = "Interrupted"
	DrillEventError             = "Error"
	DrillEventFinished          = "Finished"
)

// DrillSample is the affected workloads' replicas at one moment, as the
// hub heard them from fresh member reports.
type DrillSample struct {
	At          time.Time `json:"at"`
	Desired     int32     `json:"desired"`
	Ready       int32     `json:"ready"`
	Unavailable int32     `json:"unavailable"`
}

// DrillReport is what a drill measured. Times are seconds from StartedAt
// (failback: from EndedAt); a missing time was not reached.
type DrillReport struct {
	DetectionSeconds        *float64              `json:"detectionSeconds,omitempty" doc:"Until the hub saw every target Unreachable (outage, partition) or stored the taint (evacuate)."`
	FirstReplacementSeconds *float64              `json:"firstReplacementSeconds,omitempty" doc:"Until an affected workload had more ready replicas outside the targets than ran (or were placed) there at the start."`
	RTOSeconds              *float64              `json:"rtoSeconds,omitempty" doc:"Until every affected workload had, outside the targets, every replica its placement wants there ready, and no placement on the targets."`
	PeakUnavailableReplicas int32                 `json:"peakUnavailableReplicas" doc:"The most desired replicas of the affected workloads not ready at once."`
	ExclusiveDuplicates     int32                 `json:"exclusiveDuplicates" doc:"Exclusive workloads seen ready in two clusters at once (must be 0)."`
	FailbackSeconds         *float64              `json:"failbackSeconds,omitempty" doc:"From the end of the fault until the targets were Ready and held their share again."`
	Failback                string                `json:"failback,omitempty" enum:"complete,manual,timedOut,notMeasured,notApplicable" doc:"complete: measured; manual: every affected workload fails back by hand; timedOut: not within failbackTimeout; notMeasured: aborted, interrupted or the fault never went in; notApplicable: nothing was affected."`
	AffectedWorkloads       int32                 `json:"affectedWorkloads"`
	AffectedReplicas        int32                 `json:"affectedReplicas" doc:"Replicas placed on the targets at the start."`
	RTONotApplicable        bool                  `json:"rtoNotApplicable,omitempty" doc:"The fault affected no replica: there was nothing to recover, so there is no RTO (and no first replacement)."`
	Workloads               []DrillWorkloadReport `json:"workloads,omitempty" doc:"Each affected workload's recovery: its own RTO, or what blocked it. At most 100: those that did not recover first, then the slowest."`
	SLOs                    []SLOResult           `json:"slos,omitempty"`
	Missed                  []string              `json:"missed,omitempty" doc:"The objectives missed, as 'maxRTO not recovered (target 20s)'."`
	Passed                  bool                  `json:"passed" doc:"Every objective met (the verdict Passed) and the drill Completed."`
	Interrupted             bool                  `json:"interrupted,omitempty" doc:"The hub running the drill stopped (restart or leader change); another restored the targets."`
	Notes                   []string              `json:"notes,omitempty"`
	Probe                   *DrillProbeReport     `json:"probe,omitempty" doc:"What the probe's requests did, per entry point and phase (drills with spec.probe)."`
}

// DrillWorkloadReport is one affected workload's recovery.
type DrillWorkloadReport struct {
	Workload string `json:"workload"`
	// OnTargets is what it had placed on the targets at the start.
	OnTargets  int32    `json:"onTargets" doc:"Replicas it had placed on the targets at the start."`
	RTOSeconds *float64 `json:"rtoSeconds,omitempty" doc:"Until it had, outside the targets, every replica its placement wants there ready, and none placed on the targets; missing when it did not recover while the fault was in."`
	// UnavailableBefore: it had fewer ready replicas than desired before
	// the fault; its recovery is reported but does not hold up the
	// drill's RTO.
	UnavailableBefore bool           `json:"unavailableBefore,omitempty" doc:"It had fewer ready replicas than desired before the fault: reported, but not counted in the drill's RTO."`
	BlockedBy         []DrillBlocker `json:"blockedBy,omitempty" doc:"What kept it from recovering, as last seen while the fault was in (empty once it recovered)."`
}

// DrillBlocker is one reason a workload had not recovered.
type DrillBlocker struct {
	Cluster string `json:"cluster,omitempty" doc:"The cluster it concerns, if one."`
	Reason  string `json:"reason" enum:"StillOnTarget,Unplaced,NotReady" doc:"StillOnTarget: placement still keeps replicas on a target; Unplaced: placement found no cluster for some replicas; NotReady: replicas placed outside the targets are not ready."`
	Message string `json:"message"`
}

// Drill blocker reasons.
const (
	BlockedStillOnTarget = "StillOnTarget"
	BlockedUnplaced      = "Unplaced"
	BlockedNotReady      = "NotReady"
)

// String is the blocker as one line: "eu-west: 1 of 3 ready".
func (b DrillBlocker) String() string {
	if b.Cluster == "" {
		return b.Message
	}
	return b.Cluster + ": " + b.Message
}

// RTOText is the report's RTO as the CLI and the console say it.
func (r *DrillReport) RTOText() string {
	if r.RTONotApplicable {
		return "not applicable (nothing affected)"
	}
	return SecondsText(r.RTOSeconds)
}

// SLOResult is one objective of a drill, met or not.
type SLOResult struct {
	Name   string `json:"name" doc:"maxRTO, maxUnavailableReplicas, maxFailedRequests, minSuccessRatio or exclusiveDuplicates."`
	Target string `json:"target"`
	Actual string `json:"actual"`
	Passed bool   `json:"passed"`
}

// DrillPlan is a dry run: where the targets' replicas would go, and
// whether the remaining clusters absorb them.
type DrillPlan struct {
	Targets           []string            `json:"targets"`
	Absorbed          bool                `json:"absorbed" doc:"Every affected replica has a place on the remaining clusters."`
	AffectedWorkloads int32               `json:"affectedWorkloads"`
	AffectedReplicas  int32               `json:"affectedReplicas"`
	UnplacedReplicas  int32               `json:"unplacedReplicas,omitempty"`
	Warnings          []DrillWarning      `json:"warnings,omitempty" doc:"What will make the drill's results hard to read or its objectives impossible: workloads already unavailable, SLOs that cannot be met by construction, policies that cannot hold during the fault."`
	Reason            string              `json:"reason,omitempty" doc:"Why the load is not absorbed, or why there is nothing to drill."`
	Workloads         []DrillPlanWorkload `json:"workloads,omitempty"`
	Clusters          []DrillPlanCluster  `json:"clusters,omitempty"`
	Notes             []string            `json:"notes,omitempty"`
}

// DrillWarning is one thing the plan warns of.
type DrillWarning struct {
	Type     string   `json:"type" enum:"AlreadyUnavailable,SLOUnreachable,PolicyUnsatisfiable,RolloutInProgress,ImageNotPresent" doc:"AlreadyUnavailable: a workload has fewer ready replicas than desired before the fault; SLOUnreachable: an objective cannot be met by construction; PolicyUnsatisfiable: a workload's placement policy cannot hold during the fault; RolloutInProgress: a workload on the targets is in a progressive rollout (the drill is refused unless forced: a fault would blur its gates); ImageNotPresent: clusters the plan moves replicas to do not hold the workload's image yet (their nodes would pull it during the failover, adding the pull to the RTO; Clusters names them)."`
	Workload string   `json:"workload,omitempty"`
	Field    string   `json:"field,omitempty" doc:"The spec field the warning is about (an SLO), as a path relative to the spec."`
	Clusters []string `json:"clusters,omitempty" doc:"The clusters the warning is about (ImageNotPresent: those that would have to pull)."`
	Message  string   `json:"message"`
}

// Drill warning types.
const (
	WarnAlreadyUnavailable  = "AlreadyUnavailable"
	WarnSLOUnreachable      = "SLOUnreachable"
	WarnPolicyUnsatisfiable = "PolicyUnsatisfiable"
	WarnRolloutInProgress   = "RolloutInProgress"
	WarnImageNotPresent     = "ImageNotPresent"
)

// RolloutsInProgress lists the plan's workloads in a progressive rollout.
func (p *DrillPlan) RolloutsInProgress() []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, w := range p.Warnings {
		if w.Type == WarnRolloutInProgress {
			out = append(out, w.Workload)
		}
	}
	return out
}

// DrillPlanWorkload is one workload with replicas on the targets.
type DrillPlanWorkload struct {
	Workload string           `json:"workload"`
	Mode     string           `json:"mode,omitempty" doc:"The failover mode: stateless or exclusive."`
	Before   map[string]int32 `json:"before"`
	After    map[string]int32 `json:"after"`
	Unplaced int32            `json:"unplaced,omitempty"`
	Reason   string           `json:"reason,omitempty"`
	// Stays is set for an evacuate drill when the workload tolerates the
	// drill's taint: it keeps its replicas on the targets.
	Stays bool `json:"stays,omitempty"`
	// Budget and BudgetHolds are set for an evacuate drill (and so a
	// drain's plan) when the workload has a disruption budget.
	Budget      string `json:"budget,omitempty" doc:"The workload's disruption budget in words (evacuate plans only), such as 'minAvailable 2'."`
	BudgetHolds *bool  `json:"budgetHolds,omitempty" doc:"Whether the replicas placed after the evacuation meet the disruption budget; unset when the workload has none or the drill is not an evacuation."`
	// BudgetNote says why the budget holds or breaks.
	BudgetNote string `json:"budgetNote,omitempty" doc:"The budget's arithmetic: replicas placed after the evacuation against the fewest the budget allows."`
}

// BrokenBudgets lists the workloads whose disruption budget the plan
// breaks.
func (p *DrillPlan) BrokenBudgets() []DrillPlanWorkload {
	if p == nil {
		return nil
	}
	var out []DrillPlanWorkload
	for _, w := range p.Workloads {
		if w.BudgetHolds != nil && !*w.BudgetHolds {
			out = append(out, w)
		}
	}
	return out
}

// Stranded lists the workloads the plan leaves with no replica on any
// cluster (a workload that tolerates the fault stays, and is not).
func (p *DrillPlan) Stranded() []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, w := range p.Workloads {
		if w.Stays {
			continue
		}
		var before, after int32
		for _, n := range w.Before {
			before += n
		}
		for _, n := range w.After {
			after += n
		}
		if before > 0 && after == 0 {
			out = append(out, w.Workload)
		}
	}
	return out
}

// EvacuationHarm says what an evacuation by this plan would break: the
// workloads it leaves with no replica anywhere and the disruption budgets
// it breaks, in one phrase ("" when nothing), for a drain's refusal.
func (p *DrillPlan) EvacuationHarm() string {
	var why []string
	if stranded := p.Stranded(); len(stranded) > 0 {
		why = append(why, "leave "+strings.Join(stranded, ", ")+" with no replica anywhere")
	}
	if broken := p.BrokenBudgets(); len(broken) > 0 {
		var notes []string
		for _, w := range broken {
			notes = append(notes, w.BudgetNote)
		}
		why = append(why, "break disruption budgets ("+strings.Join(notes, "; ")+")")
	}
	return strings.Join(why, " and ")
}

// DrillPlanCluster is one cluster before and after the fault.
type DrillPlanCluster struct {
	Cluster         string `json:"cluster"`
	Region          string `json:"region,omitempty"`
	Target          bool   `json:"target,omitempty"`
	Health          string `json:"health,omitempty"`
	ReplicasBefore  int32  `json:"replicasBefore" doc:"Replicas of the affected workloads here now."`
	ReplicasAfter   int32  `json:"replicasAfter" doc:"And after the fault, as placement would decide."`
	CPUFreeMillis   *int64 `json:"cpuFreeMillisAfter,omitempty" doc:"Free CPU after the moves, from the last heartbeat."`
	MemoryFreeBytes *int64 `json:"memoryFreeBytesAfter,omitempty" doc:"Free memory after the moves, from the last heartbeat."`
}

// Final reports whether a phase is one a drill ends in.
func (s DrillStatus) Final() bool {
	switch s.Phase {
	case DrillCompleted, DrillAborted, DrillError, DrillSucceeded, DrillFailed:
		return true
	}
	return false
}

// Outcome is the drill's phase and verdict, with drills stored by older
// hubs (Succeeded, Failed) read in today's words: Succeeded is Completed
// and Passed; Failed is Completed and Failed when an objective was
// missed, else Error (interrupted, or the fault never went in).
func (s DrillStatus) Outcome() (phase, verdict string) {
	switch s.Phase {
	case "":
		return DrillPending, ""
	case DrillSucceeded:
		return DrillCompleted, DrillVerdictPassed
	case DrillFailed:
		if r := s.Report; r != nil && !r.Interrupted {
			for _, o := range r.SLOs {
				if !o.Passed {
					return DrillCompleted, DrillVerdictFailed
				}
			}
		}
		return DrillError, ""
	case DrillCompleted:
		return s.Phase, s.Verdict
	}
	return s.Phase, ""
}

// OutcomeText is phase and verdict in one: "Completed, Passed",
// "Completed, Failed", "Aborted", "Error".
func (s DrillStatus) OutcomeText() string {
	phase, verdict := s.Outcome()
	if verdict == "" {
		return phase
	}
	return phase + ", " + verdict
}

// MissedText lists a report's missed objectives as they are stored, or
// computed from its SLOs for reports stored by older hubs.
func (r *DrillReport) MissedText() []string {
	if r == nil {
		return nil
	}
	if len(r.Missed) > 0 {
		return r.Missed
	}
	var out []string
	for _, s := range r.SLOs {
		if !s.Passed {
			out = append(out, s.MissedText())
		}
	}
	return out
}

// MissedText is a missed objective in words: "maxRTO 12.000s (target 10s)".
func (s SLOResult) MissedText() string {
	return fmt.Sprintf("%s %s (target %s)", s.Name, s.Actual, s.Target)
}

// DurationOrDefault is the drill's duration (validated specs only).
func (s DrillSpec) DurationOrDefault() time.Duration {
	return s.Duration.Get(DefaultDrillDuration)
}

// DefaultDrillName names a drill that was given no name, the same way in
// the CLI and the console: kind-target-yyyymmdd-hhmmss (UTC), cut to a
// DNS label.
func DefaultDrillName(kind, target string, now time.Time) string {
	stamp := now.UTC().Format("20060102-150405")
	base := strings.Trim(kind+"-"+target, "-")
	if max := 63 - len(stamp) - 1; len(base) > max {
		base = strings.TrimRight(base[:max], "-")
	}
	return base + "-" + stamp
}

// FailbackTimeoutOrDefault is how long failback is waited for.
func (s DrillSpec) FailbackTimeoutOrDefault() time.Duration {
	return s.FailbackTimeout.Get(DefaultDrillFailbackTimeout)
}

// GetTypeMeta implements Object.
func (d *Drill) GetTypeMeta() *TypeMeta { return &d.TypeMeta }

// GetMetadata implements Object.
func (d *Drill) GetMetadata() *ObjectMeta { return &d.Metadata }

// Validate implements Object.
func (d *Drill) Validate() FieldErrors {
	var e errs
	validateTypeMeta(&e, d.TypeMeta, "Drill")
	validateMeta(&e, &d.Metadata)
	d.Spec.validate(&e, "spec.")
	return e.result()
}

// Validate checks a drill spec on its own (a plan request), with paths
// relative to the spec.
func (s *DrillSpec) Validate() FieldErrors {
	var e errs
	s.validate(&e, "")
	return e.result()
}

func (s *DrillSpec) validate(e *errs, p string) {
	switch s.Kind {
	case DrillEvacuate, DrillOutage, DrillPartition:
	case "":
		e.add(p+"kind", "is required: evacuate, outage or partition")
	default:
		e.addValue(p+"kind", s.Kind, "must be evacuate, outage or partition")
	}
	t := s.Target
	switch {
	case t.Cluster == "" && t.Region == "":
		e.add(p+"target", "name a cluster or a region")
	case t.Cluster != "" && t.Region != "":
		e.add(p+"target", "name a cluster or a region, not both")
	case t.Cluster != "" && !isDNSLabel(t.Cluster):
		e.addValue(p+"target.cluster", t.Cluster, "must be a cluster name (DNS-1123 label)")
	case t.Region != "" && !isDNSLabel(t.Region):
		e.addValue(p+"target.region", t.Region, "must be a region name (DNS-1123 label)")
	}
	validatePositive(e, p+"duration", s.Duration, MaxDrillDuration)
	validatePositive(e, p+"failbackTimeout", s.FailbackTimeout, MaxDrillFailbackTimeout)
	if slo := s.SLO; slo != nil {
		validatePositive(e, p+"slo.maxRTO", slo.MaxRTO, 0)
		if m := slo.MaxUnavailableReplicas; m != nil && *m < 0 {
			e.addValue(p+"slo.maxUnavailableReplicas", *m, "must be 0 or more")
		}
		if m := slo.MaxFailedRequests; m != nil && *m < 0 {
			e.addValue(p+"slo.maxFailedRequests", *m, "must be 0 or more")
		}
		if m := slo.MinSuccessRatio; m != nil && (*m < 0 || *m > 1) {
			e.addValue(p+"slo.minSuccessRatio", *m, "must be between 0 and 1")
		}
		if s.Probe == nil {
			if slo.MaxFailedRequests != nil {
				e.add(p+"slo.maxFailedRequests", "needs a probe (spec.probe) to count requests")
			}
			if slo.MinSuccessRatio != nil {
				e.add(p+"slo.minSuccessRatio", "needs a probe (spec.probe) to count requests")
			}
		}
	}
	if pr := s.Probe; pr != nil {
		pp := p + "probe."
		switch {
		case pr.Service == "":
			e.add(pp+"service", "is required: a service's name")
		case !isDNSLabel(pr.Service):
			e.addValue(pp+"service", pr.Service, "must be a service name (DNS-1123 label)")
		}
		if pr.Rate < MinProbeRate || pr.Rate > MaxProbeRate {
			e.addValue(pp+"rate", pr.Rate, "must be %d to %d requests per second", MinProbeRate, MaxProbeRate)
		}
		if pr.Path != "" && (!strings.HasPrefix(pr.Path, "/") || strings.ContainsAny(pr.Path, " \t\r\n?#")) {
			e.addValue(pp+"path", pr.Path, "must be a path starting with / (no query)")
		}
		switch {
		case len(pr.Through) == 0:
			e.add(pp+"through", "name at least one entry point")
		case len(pr.Through) > MaxProbeThrough:
			e.addValue(pp+"through", len(pr.Through), "at most %d entry points", MaxProbeThrough)
		}
		seen := map[string]bool{}
		for i, n := range pr.Through {
			switch {
			case !isDNSLabel(n):
				e.addValue(fmt.Sprintf("%sthrough[%d]", pp, i), n, "must be an entry point's name (DNS-1123 label)")
			case seen[n]:
				e.addValue(fmt.Sprintf("%sthrough[%d]", pp, i), n, "is named twice")
			}
			seen[n] = true
		}
		validatePositive(e, pp+"baseline", pr.Baseline, MaxProbeBaseline)
	}
}

// validatePositive checks an optional duration that must be above zero
// and, when max > 0, at most max.
func validatePositive(e *errs, path string, d Duration, max time.Duration) {
	if d == "" {
		return
	}
	v, err := ParseDuration(string(d))
	switch {
	case err != nil:
		e.addValue(path, string(d), durationHint)
	case v <= 0:
		e.addValue(path, string(d), "must be positive")
	case max > 0 && v > max:
		e.addValue(path, string(d), "must be at most %s", fmt.Sprint(max))
	}
}
