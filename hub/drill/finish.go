package drill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// restore lifts the fault: the taint goes, or each target is told to
// restore. A target that does not answer ends the drill by itself after
// its duration.
func (d *Controller) restore(ctx context.Context, r *drillRun) error {
	ctx, span := d.tracer.Start(ctx, "drill.restore", trace.WithAttributes(attribute.String("drill", r.name), attribute.Bool("drill.abort", r.abort)))
	defer span.End()
	now := d.now()
	why := "the drill's duration is over"
	if r.abort {
		why = "abort requested by " + orSomeone(r.status.AbortRequestedBy)
		r.event(now, api.DrillEventAbortRequested, "%s", why)
	}
	var extra func(tx *pgstore.Tx) error
	if r.spec.Kind == api.DrillEvacuate {
		extra = d.untaintAll(ctx, r)
	} else if r.cutOff {
		if _, err := d.command(ctx, r, protocol.DrillRestore, r.targets); err != nil {
			r.notes = append(r.notes, fmt.Sprintf("%v; each member ends the drill by itself at %s", err, r.endAt.UTC().Format(time.RFC3339)))
			r.event(d.now(), api.DrillEventError, "%v", err)
		}
		r.cutOff = false
		now = d.now()
	}
	r.probe.setPhase(ctx, api.ProbeAfter)
	r.restoredAt = now
	r.status.EndedAt = timePtr(now)
	r.status.Phase = api.DrillRestoring
	r.event(now, api.DrillEventRestored, "%s restored (%s)", targetsText(r.targets), why)
	if err := d.save(ctx, r, extra); err != nil {
		if errors.Is(err, errDrillMoved) {
			d.forget(ctx, r.name)
			return nil
		}
		if extra != nil {
			// The taint is still there: try again on the next pass.
			r.status.Phase, r.restoredAt, r.status.EndedAt = api.DrillRunning, time.Time{}, nil
			r.status.Timeline = r.status.Timeline[:len(r.status.Timeline)-1]
			span.SetStatus(codes.Error, err.Error())
			return err
		}
		r.dirty = true // restored for real: the status follows on the next write
	}
	if r.abort {
		r.final = api.DrillAborted
		return d.finish(ctx, r)
	}
	return nil
}

// count is "1 workload", "2 workloads".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func orSomeone(who string) string {
	if who == "" {
		return "an operator"
	}
	return who
}

// manualOnly reports whether every affected workload fails back by hand
// (and there is one).
func (r *drillRun) manualOnly() bool {
	for _, a := range r.affected {
		if !a.manual {
			return false
		}
	}
	return len(r.affected) > 0
}

// owed says what failover still owes the targets, as last read: ": web
// has 2 failed over off r1 not moved back".
func (r *drillRun) owed() string {
	var parts []string
	for _, a := range r.affected {
		if a.manual {
			continue
		}
		for _, c := range slices.Sorted(maps.Keys(r.failedOver[a.name])) {
			if n := r.failedOver[a.name][c]; r.isTarget[c] && n > 0 {
				parts = append(parts, fmt.Sprintf("%s has %d failed over off %s not moved back", a.name, n, c))
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, "; ")
}

// report is what the run measured.
func (r *drillRun) report() *api.DrillReport {
	rep := &api.DrillReport{DetectionSeconds: r.detected, FirstReplacementSeconds: r.replaced, RTOSeconds: r.recovered,
		PeakUnavailableReplicas: r.peak, ExclusiveDuplicates: int32(len(r.duplicates)), FailbackSeconds: r.failedBack,
		AffectedWorkloads: int32(len(r.affected)), Notes: slices.Clone(r.notes), RTONotApplicable: len(r.affected) == 0 && !r.failed}
	if r.probe != nil {
		rep.Probe = r.probe.report()
		r.status.Probe, r.status.ProbeSamples = rep.Probe, r.probe.series()
	}
	var blocked, before []string
	for _, a := range r.affected {
		rep.AffectedReplicas += a.onTargets
		wr := api.DrillWorkloadReport{Workload: a.name, OnTargets: a.onTargets, RTOSeconds: r.workloadRTO[a.name], UnavailableBefore: a.unavailableBefore}
		if wr.RTOSeconds == nil {
			wr.BlockedBy = slices.Clone(r.blockedBy[a.name])
			if len(wr.BlockedBy) > 0 {
				why := make([]string, len(wr.BlockedBy))
				for i, b := range wr.BlockedBy {
					why[i] = b.String()
				}
				blocked = append(blocked, a.name+" ("+strings.Join(why, "; ")+")")
			}
		}
		if a.unavailableBefore {
			before = append(before, a.name)
		}
		rep.Workloads = append(rep.Workloads, wr)
	}
	rep.Workloads = boundWorkloads(rep.Workloads)
	if n := len(r.affected) - len(rep.Workloads); n > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s that recovered fastest not listed (the report lists %d)", count(n, "more workload"), maxReportWorkloads))
	}
	if rep.RTONotApplicable {
		rep.Notes = append(rep.Notes, "the fault affected no replica: there was nothing to recover or fail back, so RTO and failback do not apply")
	}
	if len(before) > 0 {
		rep.Notes = append(rep.Notes, "unavailable before the fault, so not counted in the RTO: "+strings.Join(before, ", "))
	}
	if r.recovered == nil && len(r.affected) > 0 && !r.failed {
		msg := "not every affected replica was ready outside the targets before the fault was lifted"
		if len(blocked) > 0 {
			msg += "; blocked: " + strings.Join(blocked, "; ")
		}
		rep.Notes = append(rep.Notes, msg)
	}
	switch {
	case r.abort || r.failed:
		rep.Failback = "notMeasured"
	case len(r.affected) == 0:
		rep.Failback = "notApplicable"
	case r.manualOnly():
		rep.Failback = "manual"
		rep.Notes = append(rep.Notes, "every affected workload fails back by hand (failover.failback: manual)")
	case r.failedBack != nil:
		rep.Failback = "complete"
	default:
		rep.Failback = "timedOut"
		rep.Notes = append(rep.Notes, fmt.Sprintf("failback was not complete within %s of the end%s", r.spec.FailbackTimeoutOrDefault(), r.owed()))
	}
	if len(r.duplicates) > 0 {
		rep.Notes = append(rep.Notes, "exclusive workloads ran in two clusters at once: "+targetsText(sortedNames(r.duplicates)))
	}
	return rep
}

// maxWorkloadEvents is how many affected workloads a drill may have and
// still put each one's recovery on its timeline.
const maxWorkloadEvents = 10

// maxReportWorkloads bounds the report's workloads: those that did not
// recover come first, then the slowest.
const maxReportWorkloads = 100

// boundWorkloads orders a report's workloads, the ones that did not
// recover first (by name), then by RTO, slowest first, and keeps the
// first maxReportWorkloads.
func boundWorkloads(ws []api.DrillWorkloadReport) []api.DrillWorkloadReport {
	slices.SortStableFunc(ws, func(a, b api.DrillWorkloadReport) int {
		switch {
		case a.RTOSeconds == nil && b.RTOSeconds == nil:
			return strings.Compare(a.Workload, b.Workload)
		case a.RTOSeconds == nil:
			return -1
		case b.RTOSeconds == nil:
			return 1
		}
		return cmp.Or(cmp.Compare(*b.RTOSeconds, *a.RTOSeconds), strings.Compare(a.Workload, b.Workload))
	})
	if len(ws) > maxReportWorkloads {
		ws = ws[:maxReportWorkloads]
	}
	return ws
}

// finish writes the report and ends the drill in r.final (Completed
// turns into Error when something went wrong; a Completed drill gets its
// verdict).
func (d *Controller) finish(ctx context.Context, r *drillRun) error {
	ctx, span := d.tracer.Start(ctx, "drill.finish", trace.WithAttributes(attribute.String("drill", r.name)))
	defer span.End()
	now := d.now()
	rep := r.report()
	evaluate(r.spec, rep)
	final := r.final
	if final == api.DrillCompleted && r.failed {
		final = api.DrillError
	}
	phase, verdict := verdict(final, rep)
	if verdict != api.DrillVerdictPassed {
		rep.Passed = false
	}
	if phase == api.DrillAborted {
		rep.Notes = append(rep.Notes, "aborted by "+orSomeone(r.status.AbortRequestedBy)+": the fault was lifted early")
	}
	st := r.status
	st.Report, st.Phase, st.Verdict, st.FinishedAt = rep, phase, verdict, timePtr(now)
	text := finishedText(phase, verdict, rep)
	st.Timeline = append(slices.Clone(st.Timeline), api.DrillEvent{At: now.UTC().Truncate(time.Millisecond), Type: api.DrillEventFinished, Message: text})
	keep := r.status
	r.status = st
	err := d.save(ctx, r, func(tx *pgstore.Tx) error {
		typ := api.EventNormal
		if verdict != api.DrillVerdictPassed {
			typ = api.EventWarning
		}
		return events.Record(ctx, tx, now, api.ObjectReference{Kind: "Drill", Name: r.name, UID: r.uid}, typ, "DrillFinished", text, "hub/drill")
	})
	if err != nil && !errors.Is(err, errDrillMoved) {
		r.status = keep
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	d.forget(ctx, r.name)
	if err == nil {
		d.metrics.ended(ctx, cmp.Or(verdict, phase))
		d.log.InfoContext(ctx, "drill ended", "drill", r.name, "phase", phase, "verdict", verdict)
	}
	return nil
}

// finishedText is the Finished event's message: "Completed, Passed: every
// objective met", "Completed, Failed: missed maxRTO not recovered (target
// 20s)", "Error: interrupted (...)".
func finishedText(phase, verdict string, rep *api.DrillReport) string {
	switch {
	case rep.Interrupted:
		return phase + ": interrupted (the hub running it stopped)"
	case verdict == api.DrillVerdictPassed:
		return phase + ", " + verdict + ": every objective met"
	case verdict != "":
		return phase + ", " + verdict + ": missed " + strings.Join(rep.Missed, ", ")
	case len(rep.Missed) > 0:
		return phase + " (no verdict); missed so far: " + strings.Join(rep.Missed, ", ")
	}
	return phase + " (no verdict)"
}

// interrupted ends a drill this hub found Running or Restoring without
// running it: its hub stopped. The targets are restored (again, for a
// drill that was already restoring: both are idempotent) and the report
// keeps what the stored timeline and samples show.
func (d *Controller) interrupted(ctx context.Context, dr api.Drill) error {
	ctx, span := d.tracer.Start(ctx, "drill.interrupted", trace.WithAttributes(attribute.String("drill", dr.Metadata.Name)))
	defer span.End()
	r := newRun(dr)
	now := d.now()
	rep := reportFromStatus(dr.Status)
	rep.Interrupted, rep.Failback = true, "notMeasured"
	rep.Notes = append(rep.Notes, fmt.Sprintf("the hub running this drill stopped (a restart or a leader change); hub %s restored the targets and ended it", d.hubID))
	var extra func(tx *pgstore.Tx) error
	if r.spec.Kind == api.DrillEvacuate {
		extra = d.untaintAll(ctx, r)
	} else if _, err := d.command(ctx, r, protocol.DrillRestore, r.targets); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%v; each member ends the drill by itself after its duration", err))
	}
	evaluate(r.spec, rep)
	r.event(now, api.DrillEventInterrupted, "found %s without the hub that ran it; %s restored", dr.Status.Phase, targetsText(r.targets))
	if r.status.EndedAt == nil {
		r.status.EndedAt = timePtr(now)
	}
	rep.Passed = false
	r.status.Phase, r.status.Verdict, r.status.Report, r.status.FinishedAt = api.DrillError, "", rep, timePtr(now)
	r.event(now, api.DrillEventFinished, "%s", finishedText(api.DrillError, "", rep))
	err := d.save(ctx, r, func(tx *pgstore.Tx) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return events.Record(ctx, tx, now, api.ObjectReference{Kind: "Drill", Name: r.name, UID: r.uid}, api.EventWarning, "DrillInterrupted",
			"the hub running the drill stopped; the targets were restored", "hub/drill")
	})
	if errors.Is(err, errDrillMoved) {
		return nil
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	d.metrics.ended(ctx, api.DrillError)
	d.log.WarnContext(ctx, "interrupted drill restored and ended", "drill", r.name, "targets", r.targets)
	return nil
}

// untaintAll is the write that lifts an evacuate drill's taint off every
// target (inside the drill's own transaction).
func (d *Controller) untaintAll(ctx context.Context, r *drillRun) func(tx *pgstore.Tx) error {
	return func(tx *pgstore.Tx) error {
		for _, t := range r.targets {
			if err := d.setTaint(ctx, tx, t, r.name, false); err != nil {
				return err
			}
		}
		return nil
	}
}
