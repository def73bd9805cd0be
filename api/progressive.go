package api

import (
	"fmt"
	"time"
)

// ProgressiveRollout is spec.rollout: how a new revision of a workload's
// template reaches its clusters, wave after wave, each held to health
// gates for a bake time before the next starts. Without it, a template
// change reaches every cluster at once (each member still rolls its own
// replicas within spec.update).
type ProgressiveRollout struct {
	// Waves are taken in order; a cluster belongs to the first wave that
	// selects it, and clusters no wave selects go last, as one more wave.
	Waves []RolloutWave `json:"waves" minItems:"1" maxItems:"20" doc:"In order; a cluster belongs to the first wave that selects it; clusters no wave selects form a last wave of their own."`
	// MaxParallelClusters is how many clusters of a wave take the new
	// revision at once (0: the whole wave).
	MaxParallelClusters int32 `json:"maxParallelClusters,omitempty" minimum:"0" doc:"How many clusters of a wave take the new revision at once; the next one starts when those pass their gates. 0: the whole wave at once."`
	// Gates must hold on every cluster of a wave for its bake time.
	Gates *RolloutGates `json:"gates,omitempty"`
	// OnDeferred says what a wave does with a cluster that defers
	// rollouts (its atoll.dev/rollout-freeze label, or a maintenance
	// window): wait for it (the default) or skip it and go on.
	OnDeferred string `json:"onDeferred,omitempty" enum:"wait,skip" doc:"wait: a wave waits for a deferring cluster (default); skip: the wave goes on without it, and it takes the revision after the last wave (when it stops deferring)."`
}

// RolloutWave is one step of a progressive rollout.
type RolloutWave struct {
	Name string `json:"name" minLength:"1" maxLength:"63" doc:"Named in status, events and promote."`
	// Clusters and Selector choose the wave's clusters (either or both:
	// a cluster either names is in).
	Clusters []string       `json:"clusters,omitempty" maxItems:"1000" doc:"Clusters by name."`
	Selector *LabelSelector `json:"selector,omitempty" doc:"Clusters by label, such as region."`
	// Count limits how many of the clusters chosen the wave takes (the
	// first by name); the rest fall to the next wave that selects them,
	// or to the last.
	Count IntOrPercent `json:"count,omitzero" doc:"How many of the chosen clusters this wave takes, a count or a share (rounded up); default all."`
	// BakeTime is how long the gates must hold on every cluster of the
	// wave before the wave is done.
	BakeTime Duration `json:"bakeTime,omitempty" doc:"How long the gates must hold on every cluster of the wave, continuously. Default 30s."`
	// Pause is a wait after the wave is done, before the next starts.
	Pause Duration `json:"pause,omitempty" doc:"A wait after the wave is done, before the next starts."`
	// Manual holds the next wave until atoll rollout promote.
	Manual bool `json:"manual,omitempty" doc:"Hold the next wave until an operator promotes the rollout (atoll rollout promote)."`
}

// RolloutGates are what a wave's clusters must show for its bake time.
type RolloutGates struct {
	// MinReady is the share of a cluster's desired replicas that must be
	// ready on the new revision (default 100%).
	MinReady IntOrPercent `json:"minReady,omitzero" doc:"Replicas of a cluster that must be ready on the new revision: a count or a share of its desired replicas. Default 100%."`
	// MaxRestarts is how many restarts of the new revision's replicas a
	// cluster may have during the bake (default 0).
	MaxRestarts *int32 `json:"maxRestarts,omitempty" minimum:"0" doc:"Restarts of the new revision's replicas a cluster may show during the bake. Default 0."`
	// ProgressDeadline is how long a cluster has to become ready on the
	// new revision before the rollout fails (default 5m).
	ProgressDeadline Duration `json:"progressDeadline,omitempty" doc:"How long a cluster of the wave has to pass the readiness gate before the rollout fails and rolls back. Default 5m."`
	// Traffic gates judge the new revision's requests through the
	// gateways against the stable revision's in the same window.
	Traffic *TrafficGates `json:"traffic,omitempty" doc:"Gates on the requests the gateways send the new revision (the services selecting the workload), compared with the stable revision's in the same window. Without enough requests they wait, never pass."`
}

// TrafficGates are gates on a revision's requests through the gateways:
// each cluster's new revision against the stable revision (everywhere)
// over the same window.
type TrafficGates struct {
	// MaxErrorRatio is how far the new revision's error ratio (connect
	// failures, timeouts, 5xx over requests) may exceed the stable's.
	MaxErrorRatio *float64 `json:"maxErrorRatio,omitempty" minimum:"0" maximum:"1" doc:"How far the new revision's error ratio (connect failures, timeouts and 5xx answers over requests, in a cluster) may exceed the stable revision's in the same window: 0.01 allows one point more. Default 0.01."`
	// MaxLatencyRatio and MaxLatencyIncrease bound the new revision's
	// p99 latency against the stable's: by a factor, by an amount; when
	// both are set, the gate fails only when both are exceeded (so a
	// doubling of 1 ms fails neither with maxLatencyIncrease 50ms).
	MaxLatencyRatio    *float64 `json:"maxLatencyRatio,omitempty" minimum:"1" doc:"The new revision's p99 latency at most this many times the stable revision's (1.5: half again). With maxLatencyIncrease also set, the gate fails only when both are exceeded."`
	MaxLatencyIncrease Duration `json:"maxLatencyIncrease,omitempty" doc:"The new revision's p99 latency at most this much above the stable revision's. With maxLatencyRatio also set, the gate fails only when both are exceeded."`
	// MinRequests is how many requests the new revision must have
	// answered in a cluster within the window before it is judged.
	MinRequests int32 `json:"minRequests,omitempty" minimum:"0" doc:"Requests the new revision must have been sent in a cluster within the window before its traffic is judged; fewer: the gate waits (and says so). Default 20."`
	// Window is how far back the requests are counted (from when the
	// cluster was given the new revision at the earliest).
	Window Duration `json:"window,omitempty" doc:"How far back requests count (never from before the cluster was given the new revision). Default 30s, at most 10m."`
}

// Defaults of spec.rollout.gates.traffic.
const (
	DefaultTrafficMaxErrorRatio = 0.01
	DefaultTrafficMinRequests   = 20
	DefaultTrafficWindow        = 30 * time.Second
	MaxTrafficWindow            = 10 * time.Minute
)

// Rollout phases.
const (
	RolloutProgressing = "Progressing" // a wave is taking the new revision
	RolloutBaking      = "Baking"      // a wave's clusters run it; its gates must hold for the bake time
	RolloutPaused      = "Paused"      // an operator paused it, or a wave's pause runs
	RolloutWaiting     = "Waiting"     // held: for a promote, a deferring or unreachable cluster
	RolloutCompleted   = "Completed"   // every cluster runs the new revision: it is the stable one
	RolloutRolledBack  = "RolledBack"  // a gate failed, or an operator aborted: every cluster runs the stable revision
)

// RolloutStatus is status.rollout: a progressive rollout's progress, as
// the hub decided it (stored, so a new leader resumes where it was).
type RolloutStatus struct {
	// Revision is the revision being rolled out (or the last one);
	// StableRevision the one clusters run until they take it.
	Revision       int64  `json:"revision"`
	StableRevision int64  `json:"stableRevision"`
	Phase          string `json:"phase"`
	// Wave is the index of the current wave in Waves (its name in
	// WaveName); len(Waves) is the last wave of the unselected clusters.
	Wave     int    `json:"wave"`
	WaveName string `json:"waveName,omitempty"`
	// Message says what the rollout waits for, or why it stopped.
	Message string `json:"message,omitempty"`
	// Since is when the phase began; GatesSince when the current wave's
	// gates last began to hold (nil: they do not hold).
	Since      *time.Time `json:"since,omitempty"`
	GatesSince *time.Time `json:"gatesSince,omitempty"`
	// NextWaveAt is when a finished wave's pause ends.
	NextWaveAt *time.Time `json:"nextWaveAt,omitempty"`
	// Clusters are every placed cluster's part: the revision it is given
	// and, for those of waves started, its gate measurements.
	Clusters []RolloutCluster `json:"clusters,omitempty"`
	// Promoted is the wave an operator last promoted (-1: none).
	Promoted int `json:"promoted"`
}

// RolloutCluster is one cluster in a progressive rollout.
type RolloutCluster struct {
	Cluster string `json:"cluster"`
	Wave    string `json:"wave"`
	// Revision is the revision the hub gives the cluster, and Generation
	// the workload generation it is delivered at (members report their
	// replicas against it).
	Revision   int64 `json:"revision"`
	Generation int64 `json:"generation,omitempty"`
	// StartedAt is when it was given the new revision.
	StartedAt *time.Time `json:"startedAt,omitempty"`
	// Gate says how its gates stand, in words ("3/3 ready, 0 restarts").
	Gate string `json:"gate,omitempty"`
	// Deferred says why the cluster defers rollouts.
	Deferred string `json:"deferred,omitempty"`
}

// Annotations the rollout commands write on a workload.
const (
	// AnnotationRolloutPaused, set ("true"), holds a progressive
	// rollout where it is (atoll rollout pause; resume removes it).
	AnnotationRolloutPaused = "atoll.dev/rollout-paused"
	// AnnotationRolloutPromote names the revision and the wave an
	// operator promotes past its manual gate ("7:canary"; atoll rollout
	// promote): a promote is for one rollout only.
	AnnotationRolloutPromote = "atoll.dev/rollout-promote"
	// AnnotationRolloutAbort, set to the revision, rolls it back
	// (atoll rollout abort).
	AnnotationRolloutAbort = "atoll.dev/rollout-abort"
	// LabelRolloutFreeze, on a cluster, defers rollouts to it while set.
	LabelRolloutFreeze = "atoll.dev/rollout-freeze"
)

// validateProgressive checks spec.rollout's shape; that waves select
// clusters that exist is checked against the fleet when it is written.
func validateProgressive(e *errs, path string, r *ProgressiveRollout) {
	if len(r.Waves) == 0 {
		e.add(path+".waves", "needs at least one wave")
	}
	names := map[string]int{}
	for i, w := range r.Waves {
		wp := fmt.Sprintf("%s.waves[%d]", path, i)
		if w.Name == "" {
			e.add(wp+".name", "is required")
		} else if err := checkLabelValue(w.Name); err != nil {
			e.addValue(wp+".name", w.Name, "%v", err)
		} else if j, dup := names[w.Name]; dup {
			e.addValue(wp+".name", w.Name, "repeats the name of waves[%d]", j)
		}
		names[w.Name] = i
		if len(w.Clusters) == 0 && w.Selector == nil {
			e.add(wp, "choose clusters: by name (clusters), by label (selector), or both")
		}
		seen := map[string]bool{}
		for j, c := range w.Clusters {
			if err := checkLabelValue(c); err != nil || c == "" {
				e.addValue(fmt.Sprintf("%s.clusters[%d]", wp, j), c, "must be a cluster name")
			} else if seen[c] {
				e.addValue(fmt.Sprintf("%s.clusters[%d]", wp, j), c, "is named twice")
			}
			seen[c] = true
		}
		if w.Selector != nil {
			validateSelector(e, wp+".selector", w.Selector)
		}
		if err := w.Count.Check(); err != nil {
			e.addValue(wp+".count", w.Count.String(), "%v", err)
		} else if w.Count.Set() && w.Count.IsZeroCount() {
			e.addValue(wp+".count", w.Count.String(), "must take at least one cluster")
		}
		validateDuration(e, wp+".bakeTime", w.BakeTime)
		validateDuration(e, wp+".pause", w.Pause)
	}
	if r.MaxParallelClusters < 0 {
		e.addValue(path+".maxParallelClusters", r.MaxParallelClusters, "must be 0 or more")
	}
	oneOf(e, path+".onDeferred", r.OnDeferred, "wait", "skip")
	if g := r.Gates; g != nil {
		if err := g.MinReady.Check(); err != nil {
			e.addValue(path+".gates.minReady", g.MinReady.String(), "%v", err)
		}
		if g.MaxRestarts != nil && *g.MaxRestarts < 0 {
			e.addValue(path+".gates.maxRestarts", *g.MaxRestarts, "must be 0 or more")
		}
		validateDuration(e, path+".gates.progressDeadline", g.ProgressDeadline)
		if t := g.Traffic; t != nil {
			tp := path + ".gates.traffic"
			if r := t.MaxErrorRatio; r != nil && (*r < 0 || *r > 1 || *r != *r) {
				e.addValue(tp+".maxErrorRatio", *r, "must be between 0 and 1")
			}
			if r := t.MaxLatencyRatio; r != nil && (*r < 1 || *r > 1000 || *r != *r) {
				e.addValue(tp+".maxLatencyRatio", *r, "must be between 1 and 1000")
			}
			validateDuration(e, tp+".maxLatencyIncrease", t.MaxLatencyIncrease)
			if t.MinRequests < 0 {
				e.addValue(tp+".minRequests", t.MinRequests, "must be 0 or more")
			}
			validateDuration(e, tp+".window", t.Window)
			if d, err := ParseDuration(string(t.Window)); err == nil && t.Window != "" && (d < time.Second || d > MaxTrafficWindow) {
				e.addValue(tp+".window", string(t.Window), "must be between 1s and %s", MaxTrafficWindow)
			}
		}
	}
}

// GivenGeneration is the generation of the workload a cluster is given:
// under a progressive rollout (status.rollout) a cluster may still be
// given the stable revision's, older than the workload's; otherwise the
// workload's own. Its members' reports of that generation are the ones
// that count.
func (w *Workload) GivenGeneration(cluster string) int64 {
	if r := w.Status.Rollout; r != nil {
		for _, c := range r.Clusters {
			if c.Cluster == cluster && c.Generation > 0 {
				return c.Generation
			}
		}
	}
	return w.Metadata.Generation
}
