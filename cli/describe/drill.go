package describe

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// Drill writes a drill in words: its fault and objectives, its phase
// apart from its verdict, the plan's warnings and notes, the report
// (detection, first replacement, RTO overall and per workload with what
// blocked it, failback) and the timeline as offsets from the fault. The
// events are the caller's to add (Events).
func Drill(out io.Writer, dr *api.Drill, now time.Time) error {
	d := newDoc(out)
	metadata(d, "Drill", dr.Metadata, now)
	s, st := &dr.Spec, &dr.Status
	fault := s.Kind + " of " + s.Target.String()
	if len(st.Targets) > 0 {
		fault += " (" + strings.Join(st.Targets, ", ") + ")"
	}
	d.row(0, "Fault", fault+": "+faultMeaning(s.Kind))
	d.row(0, "Duration", Duration(s.DurationOrDefault())+", then "+Duration(s.FailbackTimeoutOrDefault())+" at most to fail back")
	d.row(0, "Objectives", sloText(s.SLO))
	if p := s.Probe; p != nil {
		d.row(0, "Probe", fmt.Sprintf("%d requests/s to service %s%s through %s, from %s before the fault to the drill's end",
			p.Rate, p.Service, p.PathOrDefault(), strings.Join(p.Through, ", "), Duration(p.BaselineOrDefault())))
	}
	if s.Force {
		d.row(0, "Forced", "yes: started even if the plan showed the rest could not absorb the load or a disruption budget would break")
	}
	phase, verdict := st.Outcome()
	d.row(0, "Phase", phase+": "+phaseMeaning(phase, st))
	if st.Final() {
		d.row(0, "Verdict", VerdictText(verdict, st.Report))
	}
	if st.StartedAt != nil {
		d.row(0, "Fault in", when(st.StartedAt, now))
	}
	if st.EndedAt != nil {
		d.row(0, "Fault lifted", when(st.EndedAt, now))
	}
	if st.FinishedAt != nil {
		d.row(0, "Finished", when(st.FinishedAt, now))
	}
	if st.AbortRequestedAt != nil {
		by := ""
		if st.AbortRequestedBy != "" {
			by = " by " + st.AbortRequestedBy
		}
		d.row(0, "Abort", "requested"+by+" at "+when(st.AbortRequestedAt, now))
	}
	if n := len(st.Samples); n > 0 && !st.Final() {
		sm := st.Samples[n-1]
		d.row(0, "Replicas now", fmt.Sprintf("%d/%d ready, %d unavailable (%s ago)", sm.Ready, sm.Desired, sm.Unavailable, ago(&sm.At, now)))
	}
	if p := st.Plan; p != nil {
		drillPlan(d, p)
	}
	if r := st.Report; r != nil {
		drillReport(d, r)
	}
	d.head(0, "Timeline")
	if len(st.Timeline) == 0 {
		d.line(1, "<none>")
	} else {
		// Offsets are from the fault going in (from creation before it did).
		base := st.Timeline[0].At
		for _, e := range st.Timeline {
			if e.Type == api.DrillEventStarted {
				base = e.At
				break
			}
		}
		rows := make([][]string, len(st.Timeline))
		for i, e := range st.Timeline {
			rows[i] = []string{Offset(e.At.Sub(base)), e.Type, e.Message}
		}
		d.table(1, []string{"AT", "EVENT", "MESSAGE"}, rows)
	}
	return d.flush()
}

// Offset is a time from the fault: "+5.2s", "-2.0s", never "-0.0s".
func Offset(d time.Duration) string {
	s := math.Round(d.Seconds()*10) / 10
	if s == 0 {
		s = 0 // not -0
	}
	return fmt.Sprintf("%+.1fs", s)
}

func faultMeaning(kind string) string {
	switch kind {
	case api.DrillEvacuate:
		return "the targets are tainted NoExecute and drained"
	case api.DrillOutage:
		return "the targets go dark, as if their region died"
	case api.DrillPartition:
		return "hub and targets cannot hear each other; the targets keep running"
	}
	return "unknown kind of fault"
}

// sloText is a drill's objectives in words.
func sloText(slo *api.DrillSLO) string {
	var parts []string
	if slo != nil && slo.MaxRTO != "" {
		parts = append(parts, "every affected replica ready elsewhere within "+Duration(slo.MaxRTO.Get(0)))
	}
	if slo != nil && slo.MaxUnavailableReplicas != nil {
		parts = append(parts, "at most "+plural(*slo.MaxUnavailableReplicas, "replica")+" unavailable at any moment")
	}
	if slo != nil && slo.MaxFailedRequests != nil {
		parts = append(parts, fmt.Sprintf("at most %d probe requests failed while the fault was in", *slo.MaxFailedRequests))
	}
	if slo != nil && slo.MinSuccessRatio != nil {
		parts = append(parts, fmt.Sprintf("at least %.2f%% of probe requests succeeded while the fault was in", 100**slo.MinSuccessRatio))
	}
	parts = append(parts, "no exclusive workload ready in two clusters at once")
	return strings.Join(parts, "; ")
}

func phaseMeaning(phase string, st *api.DrillStatus) string {
	switch phase {
	case api.DrillPending:
		return "waiting for the leader hub to start it"
	case api.DrillRunning:
		return "the fault is in; recovery is being measured"
	case api.DrillRestoring:
		return "the fault is lifted; failback is being measured"
	case api.DrillCompleted:
		return "ran to its end"
	case api.DrillAborted:
		return "ended early on request"
	case api.DrillError:
		if r := st.Report; r != nil && r.Interrupted {
			return "interrupted: the hub running it stopped; another restored the targets"
		}
		return "the drill itself broke (see the timeline)"
	}
	return ""
}

// VerdictText is a drill's verdict with what it rests on: "Passed:
// every objective met", "Failed: missed maxRTO ...", "none: ...".
func VerdictText(verdict string, r *api.DrillReport) string {
	switch verdict {
	case api.DrillVerdictPassed:
		return verdict + ": every objective met"
	case api.DrillVerdictFailed:
		if missed := r.MissedText(); len(missed) > 0 {
			return verdict + ": missed " + strings.Join(missed, ", ")
		}
		return verdict
	}
	return "none: only a drill that ran to its end is judged"
}

// drillPlan writes the plan as it stood when the drill was created:
// what it affects, whether the rest absorbs it, its warnings and notes.
func drillPlan(d *doc, p *api.DrillPlan) {
	d.head(0, "Plan")
	d.row(1, "Affected", plural(p.AffectedWorkloads, "workload")+", "+plural(p.AffectedReplicas, "replica")+" on the targets")
	absorbed := "yes: every affected replica has a place on the other clusters"
	if !p.Absorbed {
		absorbed = "no"
		if p.UnplacedReplicas > 0 {
			absorbed += ", " + plural(p.UnplacedReplicas, "replica") + " without a place"
		}
		if p.Reason != "" {
			absorbed += ": " + p.Reason
		}
	}
	d.row(1, "Absorbed", absorbed)
	if harm := p.EvacuationHarm(); harm != "" {
		d.row(1, "Harm", "would "+harm)
	}
	for _, w := range p.Warnings {
		d.row(1, "Warning", w.Type+": "+w.Message) // the message names the workload
	}
	for _, n := range p.Notes {
		d.row(1, "Note", n)
	}
}

// drillReport writes the report: the measures, each workload's RTO or
// what blocked it, the objectives and the notes.
func drillReport(d *doc, r *api.DrillReport) {
	d.head(0, "Report")
	d.row(1, "Affected", plural(r.AffectedWorkloads, "workload")+", "+plural(r.AffectedReplicas, "replica"))
	d.row(1, "Detection", api.SecondsText(r.DetectionSeconds))
	first := api.SecondsText(r.FirstReplacementSeconds)
	if r.RTONotApplicable {
		first = "not applicable"
	}
	d.row(1, "First replacement", first)
	d.row(1, "RTO", r.RTOText())
	d.row(1, "Peak unavailable", plural(r.PeakUnavailableReplicas, "replica"))
	d.row(1, "Exclusive duplicates", fmt.Sprint(r.ExclusiveDuplicates))
	d.row(1, "Failback", failbackText(r))
	if p := r.Probe; p != nil {
		d.row(1, "Failed requests", fmt.Sprintf("%d of %d while the fault was in (%.3f%% succeeded; p50 %.1fms, p99 %.1fms)",
			p.Fault.Failed, p.Fault.Requests, 100*p.Fault.SuccessRatio, p.Fault.P50Millis, p.Fault.P99Millis))
	}
	if r.Interrupted {
		d.row(1, "Interrupted", "yes: the hub running it stopped; the targets were restored")
	}
	if len(r.Workloads) > 0 {
		d.head(1, "Workloads")
		rows := make([][]string, len(r.Workloads))
		for i, w := range r.Workloads {
			rto := api.SecondsText(w.RTOSeconds)
			if w.UnavailableBefore {
				rto += " (unavailable before the fault: not counted)"
			}
			blocked := "-"
			if len(w.BlockedBy) > 0 {
				parts := make([]string, len(w.BlockedBy))
				for j, b := range w.BlockedBy {
					parts[j] = b.Reason + " (" + b.String() + ")"
				}
				blocked = strings.Join(parts, "; ")
			}
			rows[i] = []string{w.Workload, fmt.Sprint(w.OnTargets), rto, blocked}
		}
		d.table(2, []string{"WORKLOAD", "ON TARGETS", "RTO", "BLOCKED BY"}, rows)
	}
	if len(r.SLOs) > 0 {
		d.head(1, "Objectives")
		rows := make([][]string, len(r.SLOs))
		for i, s := range r.SLOs {
			ok := "met"
			if !s.Passed {
				ok = "MISSED"
			}
			rows[i] = []string{s.Name, s.Target, s.Actual, ok}
		}
		d.table(2, []string{"OBJECTIVE", "TARGET", "MEASURED", "RESULT"}, rows)
	}
	if len(r.Notes) > 0 {
		d.head(1, "Notes")
		for _, n := range r.Notes {
			d.line(2, n)
		}
	}
}

func failbackText(r *api.DrillReport) string {
	words := map[string]string{
		"complete":      "complete",
		"manual":        "manual: every affected workload fails back by hand",
		"timedOut":      "timed out: not within the failback timeout",
		"notMeasured":   "not measured: aborted, interrupted or the fault never went in",
		"notApplicable": "not applicable: nothing was affected",
	}
	text, ok := words[r.Failback]
	if !ok {
		text = r.Failback
	}
	if r.FailbackSeconds != nil {
		return fmt.Sprintf("%.3fs (%s)", *r.FailbackSeconds, text)
	}
	return text
}
