package drill

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
)

// Reports is the members' latest status as this hub heard it (the
// status folder's, which takes whole reports and deltas alike): for the
// given workloads, their ready replicas per cluster, from the clusters
// whose last report fresh accepts by when it came. A drill must tell a
// fresh report from one a member sent before it went dark: a stale
// "4 ready" from a cluster that just came back would read as a duplicate
// of an exclusive workload.
type Reports interface {
	ReadyReported(workloads map[string]bool, fresh func(cluster string, at time.Time) bool) map[string]map[string]int32
}

// reportsStaleAfter is how old a member's last status report may be and
// still count (members report every 2 s).
const reportsStaleAfter = 5 * time.Second

// affectedWorkload is a workload a drill moves, as it was at the start.
type affectedWorkload struct {
	name       string
	duplicated bool
	exclusive  bool
	manual     bool             // fails back by hand
	desired    int32            // Divided: the replicas wanted in total
	before     map[string]int32 // placement at the start
	onTargets  int32            // of which on the targets
	// outsideBefore is how many ran outside the targets at the start:
	// ready there, or placed there (and still starting), whichever is more.
	outsideBefore int32
	// unavailableBefore: fewer ready than desired before the fault (the
	// plan warned); it does not hold up the drill's RTO.
	unavailableBefore bool
	// unplacedReason is why the plan found no cluster for some of its
	// replicas during the fault, if it did not.
	unplacedReason string
}

// observation is what the hub sees at one moment of a drill.
type observation struct {
	at         time.Time
	health     map[string]string           // cluster -> live health
	noted      map[string]time.Time        // cluster -> when the hub recorded that health (its event's time)
	placements map[string]map[string]int32 // workload -> cluster -> replicas now
	ready      map[string]map[string]int32 // workload -> cluster -> ready (fresh reports only)
	// failedOver is, per workload, what failover moved off each cluster
	// and has not moved back (Workload.status.placement.failedOverFrom);
	// nil when not read.
	failedOver map[string]map[string]int32
}

// measurement is one evaluation of an observation against the start.
type measurement struct {
	sample api.DrillSample
	// detected: every target is seen Unreachable; detectedAt is when the
	// last of them was declared so (the ClusterUnreachable event's time),
	// zero when the hub did not say.
	detected   bool
	detectedAt time.Time
	// replaced: some affected workload has more ready replicas outside the
	// targets than ran (or were placed) there at the start.
	replaced bool
	// recovered: every affected workload has, outside the targets, every
	// replica its placement wants there ready, and none placed on them.
	recovered bool
	// failedBack: every target Ready, and every affected workload that
	// fails back by itself has nothing failed over off the targets any
	// more, and its replicas placed there ready.
	failedBack bool
	// duplicates are exclusive workloads ready in two clusters at once.
	duplicates []string
	// workloads is each affected workload's own recovery (deleted ones
	// left out).
	workloads map[string]workloadRecovery
}

// workloadRecovery is one affected workload at one moment.
type workloadRecovery struct {
	recovered bool
	blockedBy []api.DrillBlocker // why not, when not
}

// measure evaluates o: pure, so tests can feed it observations.
func measure(affected []*affectedWorkload, targets []string, o observation) measurement {
	isTarget := map[string]bool{}
	for _, t := range targets {
		isTarget[t] = true
	}
	m := measurement{sample: api.DrillSample{At: o.at.UTC().Truncate(time.Millisecond)}, detected: len(targets) > 0, recovered: true, failedBack: o.failedOver != nil,
		workloads: map[string]workloadRecovery{}}
	counted := 0 // workloads the drill's RTO waits for
	for _, t := range targets {
		if o.health[t] != api.HealthUnreachable {
			m.detected = false
		} else if n := o.noted[t]; n.After(m.detectedAt) {
			m.detectedAt = n
		}
		if o.health[t] != api.HealthReady {
			m.failedBack = false
		}
	}
	for _, a := range affected {
		pl := o.placements[a.name]
		ready := o.ready[a.name]
		if len(pl) == 0 && len(ready) == 0 {
			continue // deleted during the drill
		}
		desired := a.desired
		if a.duplicated {
			desired = 0
			for _, n := range pl {
				desired += n
			}
		}
		var readyAll, readyOut, placedOut, placedTargets, readyTargets int32
		for c, n := range ready {
			readyAll += n
			if isTarget[c] {
				readyTargets += n
			} else {
				readyOut += n
			}
		}
		var wr workloadRecovery
		for _, c := range slices.Sorted(maps.Keys(pl)) {
			n := pl[c]
			if isTarget[c] {
				placedTargets += n
				wr.blockedBy = append(wr.blockedBy, api.DrillBlocker{Cluster: c, Reason: api.BlockedStillOnTarget,
					Message: fmt.Sprintf("%d %s still placed on the target (failover has not moved %s)", n, noun(n, "replica"), them(n))})
				continue
			}
			placedOut += n
			if ready[c] < n {
				why := fmt.Sprintf("%d of %d placed replicas ready", ready[c], n)
				if a.unavailableBefore {
					why += " (the workload was unavailable before the fault)"
				}
				wr.blockedBy = append(wr.blockedBy, api.DrillBlocker{Cluster: c, Reason: api.BlockedNotReady, Message: why})
			}
		}
		if !a.duplicated && placedOut < a.desired && placedTargets == 0 {
			why := fmt.Sprintf("%d of %d replicas have no cluster outside the targets", a.desired-placedOut, a.desired)
			if a.unplacedReason != "" {
				why += ": " + a.unplacedReason
			}
			wr.blockedBy = append(wr.blockedBy, api.DrillBlocker{Reason: api.BlockedUnplaced, Message: why})
		}
		wr.recovered = len(wr.blockedBy) == 0
		m.workloads[a.name] = wr
		if !a.unavailableBefore {
			counted++
			if !wr.recovered {
				m.recovered = false
			}
		}
		if readyOut > a.outsideBefore {
			m.replaced = true
		}
		m.sample.Desired += desired
		m.sample.Ready += min(readyAll, desired)
		m.sample.Unavailable += max(0, desired-readyAll)
		if !a.manual && !a.unavailableBefore { // failback of a broken workload is not the drill's to wait for
			for c, n := range o.failedOver[a.name] {
				if isTarget[c] && n > 0 {
					m.failedBack = false // failback still owes the targets replicas
				}
			}
			if readyTargets < placedTargets {
				m.failedBack = false
			}
		}
		if a.exclusive {
			n := 0
			for _, r := range ready {
				if r > 0 {
					n++
				}
			}
			if n > 1 {
				m.duplicates = append(m.duplicates, a.name)
			}
		}
	}
	if counted == 0 {
		// Every affected workload was unavailable before the fault: the
		// drill recovered when they all did.
		for _, wr := range m.workloads {
			m.recovered = m.recovered && wr.recovered
		}
	}
	return m
}

// noun is "replica" or "replicas" after n.
func noun(n int32, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func them(n int32) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// drillMetrics are the controller's instruments.
type drillMetrics struct {
	rto       metric.Float64Histogram
	detection metric.Float64Histogram
	outcomes  metric.Int64Counter
	active    metric.Int64UpDownCounter
	probe     probeMetrics
}

func newDrillMetrics(meter metric.Meter) drillMetrics {
	var m drillMetrics
	buckets := metric.WithExplicitBucketBoundaries(0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300)
	m.rto, _ = meter.Float64Histogram("drill.rto", metric.WithUnit("s"), buckets,
		metric.WithDescription("Drills' recovery time: from the fault to every affected replica ready elsewhere."))
	m.detection, _ = meter.Float64Histogram("drill.detection", metric.WithUnit("s"), buckets,
		metric.WithDescription("Drills' detection time: from the fault to the hub seeing every target Unreachable."))
	m.outcomes, _ = meter.Int64Counter("drills", metric.WithUnit("{drill}"), metric.WithDescription("Drills ended, by outcome (the phase they ended in)."))
	m.probe = newProbeMetrics(meter)
	m.active, _ = meter.Int64UpDownCounter("drills.active", metric.WithUnit("{drill}"), metric.WithDescription("Drills this hub runs now."))
	return m
}

func (m drillMetrics) ended(ctx context.Context, phase string) {
	m.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", phase)))
}

// maxSamples bounds a drill's stored series; older samples are thinned
// to make room, so a long drill keeps its whole shape at a coarser grain.
const maxSamples = 240

// addSample appends s unless it repeats the last one within keepEvery,
// thinning the older half when the series is full.
func addSample(samples []api.DrillSample, s api.DrillSample, keepEvery time.Duration) ([]api.DrillSample, bool) {
	if n := len(samples); n > 0 {
		last := samples[n-1]
		if last.Desired == s.Desired && last.Ready == s.Ready && last.Unavailable == s.Unavailable && s.At.Sub(last.At) < keepEvery {
			return samples, false
		}
	}
	if len(samples) >= maxSamples {
		half := len(samples) / 2
		thinned := make([]api.DrillSample, 0, maxSamples)
		for i := 0; i < half; i += 2 {
			thinned = append(thinned, samples[i])
		}
		samples = append(thinned, samples[half:]...)
	}
	return append(samples, s), true
}

// seconds is d in seconds, to the millisecond.
func seconds(d time.Duration) *float64 {
	s := float64(d.Milliseconds()) / 1000
	return &s
}

// evaluate checks a report against the drill's SLOs and sets Passed.
func evaluate(spec api.DrillSpec, r *api.DrillReport) {
	r.SLOs = nil
	if slo := spec.SLO; slo != nil && slo.MaxRTO != "" {
		max := slo.MaxRTO.Get(0)
		res := api.SLOResult{Name: "maxRTO", Target: max.String(), Actual: "not recovered"}
		if r.RTONotApplicable {
			res.Actual, res.Passed = "not applicable (nothing affected)", true
		} else if r.RTOSeconds != nil {
			res.Actual = fmt.Sprintf("%.3fs", *r.RTOSeconds)
			res.Passed = *r.RTOSeconds <= max.Seconds()
		}
		r.SLOs = append(r.SLOs, res)
	}
	if slo := spec.SLO; slo != nil && slo.MaxUnavailableReplicas != nil {
		max := *slo.MaxUnavailableReplicas
		r.SLOs = append(r.SLOs, api.SLOResult{Name: "maxUnavailableReplicas", Target: fmt.Sprint(max), Actual: fmt.Sprint(r.PeakUnavailableReplicas),
			Passed: r.PeakUnavailableReplicas <= max})
	}
	if slo := spec.SLO; slo != nil && slo.MaxFailedRequests != nil {
		res := api.SLOResult{Name: "maxFailedRequests", Target: fmt.Sprint(*slo.MaxFailedRequests), Actual: "not measured"}
		if r.Probe != nil {
			res.Actual = fmt.Sprintf("%d of %d", r.Probe.Fault.Failed, r.Probe.Fault.Requests)
			res.Passed = r.Probe.Fault.Failed <= *slo.MaxFailedRequests
		}
		r.SLOs = append(r.SLOs, res)
	}
	if slo := spec.SLO; slo != nil && slo.MinSuccessRatio != nil {
		res := api.SLOResult{Name: "minSuccessRatio", Target: fmt.Sprintf("%.4f", *slo.MinSuccessRatio), Actual: "not measured"}
		if p := r.Probe; p != nil && p.Fault.Requests > 0 {
			res.Actual = fmt.Sprintf("%.4f", p.Fault.SuccessRatio)
			res.Passed = p.Fault.SuccessRatio >= *slo.MinSuccessRatio
		} else if p != nil {
			res.Actual = "no request while the fault was in"
		}
		r.SLOs = append(r.SLOs, res)
	}
	r.SLOs = append(r.SLOs, api.SLOResult{Name: "exclusiveDuplicates", Target: "0", Actual: fmt.Sprint(r.ExclusiveDuplicates), Passed: r.ExclusiveDuplicates == 0})
	r.Passed = !r.Interrupted
	r.Missed = nil
	for _, s := range r.SLOs {
		r.Passed = r.Passed && s.Passed
		if !s.Passed {
			r.Missed = append(r.Missed, s.MissedText())
		}
	}
}

// verdict is the phase a drill ends in and its verdict: only a drill
// that ran to its end (final Completed) is judged, Passed when its report
// met every objective.
func verdict(final string, rep *api.DrillReport) (phase, verdict string) {
	if final != api.DrillCompleted {
		return final, ""
	}
	if rep.Passed {
		return final, api.DrillVerdictPassed
	}
	return final, api.DrillVerdictFailed
}

// reportFromStatus rebuilds what a stored status shows of a drill whose
// hub stopped: milestones from the timeline, the peak from the samples.
func reportFromStatus(st api.DrillStatus) *api.DrillReport {
	r := &api.DrillReport{}
	if st.Plan != nil {
		r.AffectedWorkloads, r.AffectedReplicas = st.Plan.AffectedWorkloads, st.Plan.AffectedReplicas
	}
	if st.Report != nil {
		*r = *st.Report
		r.Notes = slices.Clone(st.Report.Notes)
	}
	if r.Probe == nil {
		r.Probe = st.Probe // as last written: the probe ran on the hub that stopped
	}
	if st.StartedAt != nil {
		since := func(t time.Time) *float64 { return seconds(t.Sub(*st.StartedAt)) }
		for _, e := range st.Timeline {
			switch e.Type {
			case api.DrillEventDetected:
				r.DetectionSeconds = since(e.At)
			case api.DrillEventFirstReplacement:
				r.FirstReplacementSeconds = since(e.At)
			case api.DrillEventRecovered:
				r.RTOSeconds = since(e.At)
			}
		}
	}
	dupes := int32(0) // the timeline names each duplicated workload once
	for _, e := range st.Timeline {
		if e.Type == api.DrillEventDuplicate {
			dupes++
		}
	}
	r.ExclusiveDuplicates = max(r.ExclusiveDuplicates, dupes)
	for _, s := range st.Samples {
		r.PeakUnavailableReplicas = max(r.PeakUnavailableReplicas, s.Unavailable)
	}
	return r
}

// targetsText names a drill's targets for messages.
func targetsText(targets []string) string {
	if len(targets) == 1 {
		return targets[0]
	}
	return strings.Join(targets, ", ")
}

// sortedNames lists a set's members in order.
func sortedNames(set map[string]bool) []string {
	names := slices.Collect(maps.Keys(set))
	sort.Strings(names)
	return names
}
