package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// start puts a Pending drill's fault in place.
func (d *Controller) start(ctx context.Context, dr api.Drill, p *probe) error {
	ctx, span := d.tracer.Start(ctx, "drill.start", trace.WithAttributes(attribute.String("drill", dr.Metadata.Name),
		attribute.String("drill.kind", dr.Spec.Kind), attribute.StringSlice("drill.targets", dr.Status.Targets)))
	defer span.End()
	r := newRun(dr)
	r.probe = p
	view, workloads, current, err := readFleet(ctx, d.store, d.monitor)
	if err != nil {
		return err
	}
	// What moves, as of now (the stored plan is from creation).
	plan := planDrill(r.spec.Kind, r.name, r.spec.SLO, r.targets, view, workloads, current, d.now())
	names := map[string]bool{}
	unavailable := map[string]bool{}
	for _, w := range plan.Warnings {
		if w.Type == api.WarnAlreadyUnavailable {
			unavailable[w.Workload] = true
		}
	}
	for _, pw := range plan.Workloads {
		if pw.Stays {
			continue
		}
		w := workloads[pw.Workload]
		a := &affectedWorkload{name: pw.Workload, duplicated: duplicated(w), exclusive: failoverMode(w) == "exclusive", manual: failsBackByHand(w),
			desired: w.Spec.Replicas, before: pw.Before, unavailableBefore: unavailable[pw.Workload], unplacedReason: pw.Reason}
		for c, n := range pw.Before {
			if r.isTarget[c] {
				a.onTargets += n
			}
		}
		r.affected = append(r.affected, a)
		names[a.name] = true
	}
	now := d.now()
	ready := d.ready(names, d.fresh(r, now))
	for _, a := range r.affected {
		// A replacement is a ready replica outside the targets beyond what
		// ran (or was placed, and still starting) there before.
		var placed, readyOut int32
		for c, n := range a.before {
			if !r.isTarget[c] {
				placed += n
			}
		}
		for c, n := range ready[a.name] {
			if !r.isTarget[c] {
				readyOut += n
			}
		}
		a.outsideBefore = max(placed, readyOut)
	}
	var moving int32
	for _, a := range r.affected {
		moving += a.onTargets
	}
	r.status.Phase = api.DrillRunning
	if r.spec.Kind == api.DrillEvacuate {
		r.begin(now, fmt.Sprintf("evacuate: %s tainted %s=%s:NoExecute; %s, %s to move",
			targetsText(r.targets), api.DrillTaintKey, r.name, count(len(r.affected), "workload"), count(int(moving), "replica")))
		r.detected = seconds(0)
		r.event(now, api.DrillEventDetected, "the taint is stored: placement drains the targets")
		err := d.save(ctx, r, func(tx *pgstore.Tx) error {
			for _, t := range r.targets {
				if err := d.setTaint(ctx, tx, t, r.name, true); err != nil {
					return err
				}
			}
			return events.Record(ctx, tx, now, api.ObjectReference{Kind: "Drill", Name: r.name, UID: r.uid}, api.EventNormal, "DrillStarted",
				"evacuating "+targetsText(r.targets), "hub/drill")
		})
		if err != nil {
			return d.notStarted(span, err)
		}
	} else {
		// Claim it first: a hub that dies from here on leaves a Running
		// drill, which the next leader restores.
		if err := d.save(ctx, r, nil); err != nil {
			return d.notStarted(span, err)
		}
		acked, err := d.command(ctx, r, r.spec.Kind, r.targets)
		if err != nil {
			r.failed = true
			r.notes = append(r.notes, "the fault could not be put in place: "+err.Error())
			r.event(d.now(), api.DrillEventError, "%v", err)
			d.runs[r.name] = r
			d.metrics.active.Add(ctx, 1)
			span.SetStatus(codes.Error, err.Error())
			if len(acked) > 0 {
				if _, rerr := d.command(ctx, r, protocol.DrillRestore, acked); rerr != nil {
					r.notes = append(r.notes, "restoring "+targetsText(acked)+" failed ("+rerr.Error()+"): each member ends the drill by itself after its duration")
				}
			}
			r.restoredAt = d.now()
			r.status.EndedAt = timePtr(r.restoredAt)
			r.final = api.DrillError
			return d.finish(ctx, r)
		}
		now = d.now()
		r.cutOff = true
		r.begin(now, fmt.Sprintf("%s: %s acknowledged (%s); %s, %s to move",
			r.spec.Kind, targetsText(r.targets), r.spec.DurationOrDefault(), count(len(r.affected), "workload"), count(int(moving), "replica")))
		if err := d.save(ctx, r, func(tx *pgstore.Tx) error {
			return events.Record(ctx, tx, now, api.ObjectReference{Kind: "Drill", Name: r.name, UID: r.uid}, api.EventNormal, "DrillStarted",
				r.spec.Kind+" of "+targetsText(r.targets), "hub/drill")
		}); err != nil && !errors.Is(err, errDrillMoved) {
			// The fault is in place: keep running it, the next write retries.
			d.log.WarnContext(ctx, "writing a started drill failed", "drill", r.name, "err", err)
			r.dirty = true
		}
	}
	d.runs[r.name] = r
	d.metrics.active.Add(ctx, 1)
	d.log.InfoContext(ctx, "drill started", "drill", r.name, "kind", r.spec.Kind, "targets", r.targets, "affected", len(r.affected))
	return nil
}

// notStarted explains a start that did not happen: aborted meanwhile is
// fine, anything else is retried on the next pass.
func (d *Controller) notStarted(span trace.Span, err error) error {
	if errors.Is(err, errDrillMoved) {
		return nil
	}
	span.SetStatus(codes.Error, err.Error())
	return err
}

// begin marks the fault in place at t.
func (r *drillRun) begin(t time.Time, msg string) {
	r.probe.setPhase(context.Background(), api.ProbeFault)
	r.t0 = t
	r.endAt = t.Add(r.spec.DurationOrDefault())
	r.status.StartedAt = timePtr(t)
	r.event(t, api.DrillEventStarted, "%s", msg)
}

func timePtr(t time.Time) *time.Time {
	u := t.UTC().Truncate(time.Millisecond)
	return &u
}

// setTaint adds or removes a drill's taint on a cluster.
func (d *Controller) setTaint(ctx context.Context, tx *pgstore.Tx, cluster, drill string, on bool) error {
	_, err := tx.Mutate(ctx, "taint", "Cluster", cluster, func(cur *pgstore.Record) error {
		var spec api.ClusterSpec
		if err := json.Unmarshal(cur.Spec, &spec); err != nil {
			return err
		}
		spec.Taints = slices.DeleteFunc(spec.Taints, func(t api.Taint) bool { return t.Key == api.DrillTaintKey && t.Value == drill })
		if on {
			t := drillTaint(drill)
			t.TimeAdded = timePtr(d.now())
			spec.Taints = append(spec.Taints, t)
		}
		b, err := json.Marshal(spec)
		cur.Spec = b
		return err
	})
	if !on && api.ErrorCode(err) == api.CodeNotFound {
		return nil // deregistered meanwhile: nothing to lift
	}
	return err
}

// command sends a drill command to each cluster and waits for every
// acknowledgement; it returns the clusters that accepted.
func (d *Controller) command(ctx context.Context, r *drillRun, kind string, clusters []string) ([]string, error) {
	ctx, span := d.tracer.Start(ctx, "drill.command", trace.WithAttributes(attribute.String("drill", r.name), attribute.String("drill.command", kind)))
	defer span.End()
	if d.bus == nil {
		return nil, errors.New("this hub runs without NATS: it cannot reach members")
	}
	cmd := protocol.DrillCommand{Version: protocol.Version, Drill: r.name, Kind: kind}
	if kind != protocol.DrillRestore {
		cmd.DurationMillis = r.spec.DurationOrDefault().Milliseconds()
	}
	var mu sync.Mutex
	var acked []string
	var errs []error
	var wg sync.WaitGroup
	for _, c := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, d.cfg.CommandTimeout)
			defer cancel()
			// In the member's version: a member one version behind refuses
			// newer commands.
			cmd := cmd
			live, _ := d.monitor.Live(c)
			cmd.Version = protocol.SpokenWith(live.Version)
			data, _ := json.Marshal(cmd)
			reply, err := d.bus.Request(rctx, c, protocol.DrillSubject(c), data)
			var ack protocol.DrillAck
			if err == nil {
				if err = json.Unmarshal(reply, &ack); err == nil && !ack.Accepted {
					err = fmt.Errorf("refused: %s", ack.Reason)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("member %s did not acknowledge the %s command: %w", c, kind, err))
				return
			}
			acked = append(acked, c)
		}()
	}
	wg.Wait()
	slices.Sort(acked)
	err := errors.Join(errs...)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return acked, err
}
