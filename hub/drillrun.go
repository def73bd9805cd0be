package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// DrillConfig tunes the drill controller. Zero values mean the defaults.
type DrillConfig struct {
	// SampleEvery is how often a running drill looks at the fleet; default
	// 200ms (cluster and drill changes wake it sooner).
	SampleEvery time.Duration
	// WriteEvery is how often a running drill's samples are written
	// between milestones (which are written at once); default 1s.
	WriteEvery time.Duration
	// CommandTimeout bounds a member's answer to a drill command; default 3s.
	CommandTimeout time.Duration
}

func (c DrillConfig) withDefaults() DrillConfig {
	if c.SampleEvery <= 0 {
		c.SampleEvery = 200 * time.Millisecond
	}
	if c.WriteEvery <= 0 {
		c.WriteEvery = time.Second
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 3 * time.Second
	}
	return c
}

// DrillController runs drills on the leader hub: it puts the fault in
// place (a NoExecute taint, or a drill command each target member must
// acknowledge), samples recovery from the members' fresh status reports
// and the hub's placements, lifts the fault at the end (or at once on
// abort), measures failback, and writes the report. A drill found Running
// that this hub did not start lost its hub (a restart, a leader change):
// its targets are restored and it ends as interrupted.
type DrillController struct {
	store   *pgstore.Store
	bus     *natsbus.Bus // nil: evacuate drills only
	monitor *Monitor
	log     *slog.Logger
	now     func() time.Time
	cfg     DrillConfig
	hubID   string
	tracer  trace.Tracer
	metrics drillMetrics
	leader  Leadership
	reports *reportLog

	wake     chan struct{}
	relist   atomic.Bool
	lastList time.Time
	runs     map[string]*drillRun // pass goroutine only
	loop     loop
}

// NewDrillController makes the controller (a nil log discards, a nil now
// is time.Now); Start runs it.
func NewDrillController(store *pgstore.Store, bus *natsbus.Bus, monitor *Monitor, log *slog.Logger, now func() time.Time,
	meter metric.Meter, tracer trace.Tracer, hubID string, cfg DrillConfig) *DrillController {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &DrillController{store: store, bus: bus, monitor: monitor, log: log, now: now, cfg: cfg.withDefaults(), hubID: hubID,
		tracer: tracer, metrics: newDrillMetrics(meter), leader: soleHub{}, reports: newReportLog(now),
		wake: make(chan struct{}, 1), runs: map[string]*drillRun{}}
}

// Wake asks for a pass soon that re-reads the drills (one was created,
// aborted, or a cluster changed).
func (d *DrillController) Wake() {
	d.relist.Store(true)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Start listens to the members' status reports (with a bus) and runs
// passes every SampleEvery and on Wake, until Stop.
func (d *DrillController) Start(ctx context.Context) error {
	if d.bus != nil {
		if err := d.reports.start(d.bus.Conn()); err != nil {
			return fmt.Errorf("subscribe to status reports for drills: %w", err)
		}
	}
	d.Wake()
	d.loop.start(ctx, d.log, "drill pass failed", d.cfg.SampleEvery, d.wake, d.RunOnce)
	return nil
}

// Stop ends the controller; safe to call twice and before Start. The
// drills it ran stay Running in the store: the next leader restores them.
func (d *DrillController) Stop() {
	d.loop.stop()
	d.reports.stop()
}

var drillActor = pgstore.Actor{Name: "system:drill"}

// errDrillMoved says the stored drill is not the one this hub runs any
// more: ended or aborted elsewhere, deleted, or re-created.
var errDrillMoved = errors.New("the drill changed under this hub")

// drillRun is a drill this hub runs.
type drillRun struct {
	name, uid string
	spec      api.DrillSpec
	targets   []string
	isTarget  map[string]bool
	affected  []*affectedWorkload
	status    api.DrillStatus // as this hub will write it
	stored    string          // the phase last written

	t0, endAt, restoredAt time.Time
	cutOff                bool // outage/partition: the targets cannot be heard
	abort                 bool
	final                 string // the phase to end in, once decided
	failed                bool   // something went wrong: the drill cannot pass
	notes                 []string

	detected, replaced, recovered, failedBack *float64
	peak                                      int32
	failedOver                                map[string]map[string]int32 // as last read, while restoring
	failedOverAt                              time.Time
	duplicates                                map[string]bool
	dirty                                     bool
	lastWrite                                 time.Time
}

func newRun(dr api.Drill) *drillRun {
	r := &drillRun{name: dr.Metadata.Name, uid: dr.Metadata.UID, spec: dr.Spec, targets: dr.Status.Targets, status: dr.Status,
		stored: dr.Status.Phase, isTarget: map[string]bool{}, duplicates: map[string]bool{}}
	for _, t := range r.targets {
		r.isTarget[t] = true
	}
	return r
}

// cuts reports whether the drill's fault silences its targets.
func (r *drillRun) cuts() bool { return r.spec.Kind != api.DrillEvacuate }

func (r *drillRun) event(at time.Time, typ, format string, args ...any) {
	r.status.Timeline = append(r.status.Timeline, api.DrillEvent{At: at.UTC().Truncate(time.Millisecond), Type: typ, Message: fmt.Sprintf(format, args...)})
}

// RunOnce re-reads the drills when asked to (or every 2 s), then samples
// every drill this hub runs and moves it on. Only the leader runs drills;
// a hub that stops leading forgets its drills (the new leader restores
// them).
func (d *DrillController) RunOnce(ctx context.Context) error {
	if !d.leader.IsLeader() {
		for name := range d.runs {
			delete(d.runs, name)
			d.metrics.active.Add(ctx, -1)
		}
		return nil
	}
	var errs []error
	if now := d.now(); d.relist.Swap(false) || now.Sub(d.lastList) >= 2*time.Second {
		d.lastList = now
		if err := d.reconcile(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.runs)) {
		if err := d.step(ctx, d.runs[name]); err != nil {
			errs = append(errs, fmt.Errorf("drill %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// reconcile starts Pending drills, passes abort requests on, ends the
// drills this hub finds Running without running them, and forgets the
// ones that ended or went.
func (d *DrillController) reconcile(ctx context.Context) error {
	res, err := d.store.List(ctx, "Drill", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return err
	}
	var errs []error
	live := map[string]bool{}
	for _, rec := range res.Items {
		var dr api.Drill
		if err := rec.Decode(&dr); err != nil || dr.Status.Final() {
			continue
		}
		name := dr.Metadata.Name
		live[name] = true
		r := d.runs[name]
		switch {
		case r != nil && r.uid == dr.Metadata.UID:
			if dr.Status.AbortRequestedAt != nil {
				r.abort = true
				r.status.AbortRequestedAt, r.status.AbortRequestedBy = dr.Status.AbortRequestedAt, dr.Status.AbortRequestedBy
			}
		case dr.Status.Phase == "" || dr.Status.Phase == api.DrillPending:
			if err := d.start(ctx, dr); err != nil {
				errs = append(errs, fmt.Errorf("start drill %s: %w", name, err))
			}
		default:
			if err := d.interrupted(ctx, dr); err != nil {
				errs = append(errs, fmt.Errorf("end interrupted drill %s: %w", name, err))
			}
		}
	}
	for name := range d.runs {
		if !live[name] {
			d.forget(ctx, name)
		}
	}
	return errors.Join(errs...)
}

func (d *DrillController) forget(ctx context.Context, name string) {
	if _, ok := d.runs[name]; ok {
		delete(d.runs, name)
		d.metrics.active.Add(ctx, -1)
	}
}

// save writes the run's status (fenced, with extra writes in the same
// transaction), keeping the abort request, which the API owns.
func (d *DrillController) save(ctx context.Context, r *drillRun, extra func(tx *pgstore.Tx) error) error {
	err := d.store.InTx(ctx, drillActor, func(tx *pgstore.Tx) error {
		if err := d.leader.Fence(ctx, tx); err != nil {
			return err
		}
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		_, err := tx.Mutate(ctx, "status", "Drill", r.name, func(cur *pgstore.Record) error {
			var st api.DrillStatus
			_ = json.Unmarshal(cur.Status, &st)
			if cur.Meta.UID != r.uid || st.Phase != r.stored {
				return errDrillMoved
			}
			r.status.AbortRequestedAt, r.status.AbortRequestedBy = st.AbortRequestedAt, st.AbortRequestedBy
			b, err := json.Marshal(r.status)
			cur.Status = b
			return err
		})
		return err
	})
	if api.ErrorCode(err) == api.CodeNotFound {
		err = errDrillMoved
	}
	if err == nil {
		r.stored, r.dirty, r.lastWrite = r.status.Phase, false, d.now()
		if r.status.AbortRequestedAt != nil {
			r.abort = true
		}
	}
	return err
}

// readFleet reads clusters (with the monitor's live health), workloads
// and their current placements.
func readFleet(ctx context.Context, store *pgstore.Store, monitor *Monitor) ([]liveCluster, map[string]api.Workload, map[string]map[string]int32, error) {
	cres, err := store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return nil, nil, nil, err
	}
	var view []liveCluster
	for _, rec := range cres.Items {
		var c api.Cluster
		if err := rec.Decode(&c); err != nil {
			continue
		}
		lc := liveCluster{Cluster: c}
		if monitor != nil {
			lc.live, lc.known = monitor.Live(c.Metadata.Name)
		}
		view = append(view, lc)
	}
	wres, err := store.List(ctx, "Workload", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return nil, nil, nil, err
	}
	workloads := make(map[string]api.Workload, len(wres.Items))
	for _, rec := range wres.Items {
		var w api.Workload
		if err := rec.Decode(&w); err == nil {
			workloads[w.Metadata.Name] = w
		}
	}
	rows, err := store.Placements(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return view, workloads, currentPlacements(rows), nil
}

// start puts a Pending drill's fault in place.
func (d *DrillController) start(ctx context.Context, dr api.Drill) error {
	ctx, span := d.tracer.Start(ctx, "drill.start", trace.WithAttributes(attribute.String("drill", dr.Metadata.Name),
		attribute.String("drill.kind", dr.Spec.Kind), attribute.StringSlice("drill.targets", dr.Status.Targets)))
	defer span.End()
	r := newRun(dr)
	view, workloads, current, err := readFleet(ctx, d.store, d.monitor)
	if err != nil {
		return err
	}
	// What moves, as of now (the stored plan is from creation).
	plan := planDrill(r.spec.Kind, r.name, r.targets, view, workloads, current, d.now())
	names := map[string]bool{}
	for _, pw := range plan.Workloads {
		if pw.Stays {
			continue
		}
		w := workloads[pw.Workload]
		a := &affectedWorkload{name: pw.Workload, duplicated: duplicated(w), exclusive: failoverMode(w) == "exclusive", manual: failsBackByHand(w),
			desired: w.Spec.Replicas, before: pw.Before}
		for c, n := range pw.Before {
			if r.isTarget[c] {
				a.onTargets += n
			}
		}
		r.affected = append(r.affected, a)
		names[a.name] = true
	}
	now := d.now()
	ready := d.reports.ready(names, d.fresh(r, now))
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
			return recordEvent(ctx, tx, now, api.ObjectReference{Kind: "Drill", Name: r.name, UID: r.uid}, api.EventNormal, "DrillStarted",
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
			r.final = api.DrillFailed
			return d.finish(ctx, r)
		}
		now = d.now()
		r.cutOff = true
		r.begin(now, fmt.Sprintf("%s: %s acknowledged (%s); %s, %s to move",
			r.spec.Kind, targetsText(r.targets), r.spec.DurationOrDefault(), count(len(r.affected), "workload"), count(int(moving), "replica")))
		if err := d.save(ctx, r, func(tx *pgstore.Tx) error {
			return recordEvent(ctx, tx, now, api.ObjectReference{Kind: "Drill", Name: r.name, UID: r.uid}, api.EventNormal, "DrillStarted",
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
func (d *DrillController) notStarted(span trace.Span, err error) error {
	if errors.Is(err, errDrillMoved) {
		return nil
	}
	span.SetStatus(codes.Error, err.Error())
	return err
}

// begin marks the fault in place at t.
func (r *drillRun) begin(t time.Time, msg string) {
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
func (d *DrillController) setTaint(ctx context.Context, tx *pgstore.Tx, cluster, drill string, on bool) error {
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
func (d *DrillController) command(ctx context.Context, r *drillRun, kind string, clusters []string) ([]string, error) {
	ctx, span := d.tracer.Start(ctx, "drill.command", trace.WithAttributes(attribute.String("drill", r.name), attribute.String("drill.command", kind)))
	defer span.End()
	if d.bus == nil {
		return nil, errors.New("this hub runs without NATS: it cannot reach members")
	}
	cmd := protocol.DrillCommand{Version: protocol.Version, Drill: r.name, Kind: kind}
	if kind != protocol.DrillRestore {
		cmd.DurationMillis = r.spec.DurationOrDefault().Milliseconds()
	}
	data, _ := json.Marshal(cmd)
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

// fresh says which member reports count at now: recent ones, from Ready
// clusters, not from targets the drill has cut off, and, once they are
// restored, only what they sent since.
func (d *DrillController) fresh(r *drillRun, now time.Time) func(string, time.Time) bool {
	return func(c string, at time.Time) bool {
		if now.Sub(at) > reportsStaleAfter {
			return false
		}
		if live, ok := d.monitor.Live(c); !ok || live.Health != api.HealthReady {
			return false
		}
		if r.isTarget[c] && r.cuts() {
			if r.cutOff || (!r.restoredAt.IsZero() && at.Before(r.restoredAt)) {
				return false
			}
		}
		return true
	}
}

// observe looks at the fleet now.
func (d *DrillController) observe(ctx context.Context, r *drillRun, now time.Time) (observation, error) {
	rows, err := d.store.Placements(ctx)
	if err != nil {
		return observation{}, err
	}
	names := map[string]bool{}
	for _, a := range r.affected {
		names[a.name] = true
	}
	o := observation{at: now, health: map[string]string{}, noted: map[string]time.Time{}, placements: currentPlacements(rows), ready: d.reports.ready(names, d.fresh(r, now))}
	if r.status.Phase == api.DrillRestoring {
		// Failback is the placement controller's: what it still owes
		// each cluster is in the workloads' placement status (read at
		// most every WriteEvery).
		if r.failedOver == nil || now.Sub(r.failedOverAt) >= d.cfg.WriteEvery {
			fo := map[string]map[string]int32{}
			for name := range names {
				rec, err := d.store.Get(ctx, "Workload", name)
				if api.ErrorCode(err) == api.CodeNotFound {
					continue
				}
				if err != nil {
					return observation{}, err
				}
				var w api.Workload
				if err := rec.Decode(&w); err == nil && w.Status.Placement != nil {
					fo[name] = w.Status.Placement.FailedOverFrom
				}
			}
			r.failedOver, r.failedOverAt = fo, now
		}
		o.failedOver = r.failedOver
	}
	for _, t := range r.targets {
		if live, ok := d.monitor.Live(t); ok {
			o.health[t], o.noted[t] = live.Health, live.Noted
		}
	}
	return o, nil
}

// step samples a running drill and moves it on: the fault is lifted at
// the end or on abort, and the drill ends once failback is measured.
func (d *DrillController) step(ctx context.Context, r *drillRun) error {
	if r.final != "" {
		return d.finish(ctx, r) // a write that failed before
	}
	now := d.now()
	o, err := d.observe(ctx, r, now)
	if err != nil {
		return err
	}
	milestone := d.record(ctx, r, measure(r.affected, r.targets, o))
	switch r.status.Phase {
	case api.DrillRunning:
		if r.abort || !now.Before(r.endAt) {
			return d.restore(ctx, r)
		}
	case api.DrillRestoring:
		switch {
		case r.abort:
			r.final = api.DrillAborted
		case r.failedBack != nil:
			r.final = api.DrillSucceeded
		case !now.Before(r.restoredAt.Add(r.spec.FailbackTimeoutOrDefault())):
			r.final = api.DrillSucceeded
			r.event(now, api.DrillEventFailbackTimeout, "failback not complete within %s", r.spec.FailbackTimeoutOrDefault())
		}
		if r.final != "" {
			return d.finish(ctx, r)
		}
	}
	if milestone || (r.dirty && now.Sub(r.lastWrite) >= d.cfg.WriteEvery) {
		if err := d.save(ctx, r, nil); errors.Is(err, errDrillMoved) {
			d.forget(ctx, r.name)
			return nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

// record folds a measurement into the run; it reports whether a
// milestone was reached (written at once).
func (d *DrillController) record(ctx context.Context, r *drillRun, m measurement) bool {
	var added bool
	r.status.Samples, added = addSample(r.status.Samples, m.sample, 5*time.Second)
	r.dirty = r.dirty || added
	r.peak = max(r.peak, m.sample.Unavailable)
	milestone := false
	at := m.sample.At
	since := at.Sub(r.t0)
	if r.status.Phase == api.DrillRunning && !r.t0.IsZero() {
		if r.detected == nil && m.detected {
			// When the hub declared it (its ClusterUnreachable event), not
			// when this sample saw it, up to a sampling period later.
			dat := at
			if !m.detectedAt.IsZero() && !m.detectedAt.Before(r.t0) && m.detectedAt.Before(at) {
				dat = m.detectedAt.UTC().Truncate(time.Millisecond)
			}
			r.detected, milestone = seconds(dat.Sub(r.t0)), true
			r.event(dat, api.DrillEventDetected, "the hub sees %s Unreachable", targetsText(r.targets))
			d.metrics.detection.Record(ctx, *r.detected, metric.WithAttributes(attribute.String("kind", r.spec.Kind)))
		}
		if r.replaced == nil && m.replaced {
			r.replaced, milestone = seconds(since), true
			r.event(at, api.DrillEventFirstReplacement, "a replacement replica is ready outside the targets")
		}
		if r.recovered == nil && m.recovered {
			r.recovered, milestone = seconds(since), true
			r.event(at, api.DrillEventRecovered, "every affected replica is ready outside the targets (%d desired, %d ready)", m.sample.Desired, m.sample.Ready)
			d.metrics.rto.Record(ctx, *r.recovered, metric.WithAttributes(attribute.String("kind", r.spec.Kind)))
		}
	}
	if r.status.Phase == api.DrillRestoring && r.failedBack == nil && m.failedBack {
		r.failedBack, milestone = seconds(at.Sub(r.restoredAt)), true
		if r.manualOnly() {
			r.event(at, api.DrillEventFailedBack, "%s Ready again (every affected workload fails back by hand)", targetsText(r.targets))
		} else {
			r.event(at, api.DrillEventFailedBack, "%s Ready again and holding their share", targetsText(r.targets))
		}
	}
	for _, w := range m.duplicates {
		if !r.duplicates[w] {
			r.duplicates[w], milestone = true, true
			r.event(at, api.DrillEventDuplicate, "exclusive workload %s is ready in two clusters at once", w)
		}
	}
	return milestone
}

// restore lifts the fault: the taint goes, or each target is told to
// restore. A target that does not answer ends the drill by itself after
// its duration.
func (d *DrillController) restore(ctx context.Context, r *drillRun) error {
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
		AffectedWorkloads: int32(len(r.affected)), Notes: slices.Clone(r.notes)}
	if r.recovered == nil && len(r.affected) > 0 && !r.failed {
		rep.Notes = append(rep.Notes, "not every affected replica was ready outside the targets before the fault was lifted")
	}
	for _, a := range r.affected {
		rep.AffectedReplicas += a.onTargets
	}
	switch {
	case r.abort || r.failed:
		rep.Failback = "notMeasured"
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

// finish writes the report and ends the drill in r.final (Succeeded
// turns into Failed when an SLO was missed).
func (d *DrillController) finish(ctx context.Context, r *drillRun) error {
	ctx, span := d.tracer.Start(ctx, "drill.finish", trace.WithAttributes(attribute.String("drill", r.name)))
	defer span.End()
	now := d.now()
	rep := r.report()
	evaluate(r.spec, rep)
	phase := r.final
	if phase == api.DrillSucceeded && (!rep.Passed || r.failed) {
		phase = api.DrillFailed
	}
	if phase != api.DrillSucceeded {
		rep.Passed = false
	}
	if phase == api.DrillAborted {
		rep.Notes = append(rep.Notes, "aborted by "+orSomeone(r.status.AbortRequestedBy)+": the fault was lifted early")
	}
	st := r.status
	st.Report, st.Phase, st.FinishedAt = rep, phase, timePtr(now)
	st.Timeline = append(slices.Clone(st.Timeline), api.DrillEvent{At: now.UTC().Truncate(time.Millisecond), Type: api.DrillEventFinished, Message: finishedText(phase, rep)})
	keep := r.status
	r.status = st
	err := d.save(ctx, r, func(tx *pgstore.Tx) error {
		typ := api.EventNormal
		if phase != api.DrillSucceeded {
			typ = api.EventWarning
		}
		return recordEvent(ctx, tx, now, api.ObjectReference{Kind: "Drill", Name: r.name, UID: r.uid}, typ, "DrillFinished", finishedText(phase, rep), "hub/drill")
	})
	if err != nil && !errors.Is(err, errDrillMoved) {
		r.status = keep
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	d.forget(ctx, r.name)
	if err == nil {
		d.metrics.ended(ctx, phase)
		d.log.InfoContext(ctx, "drill ended", "drill", r.name, "phase", phase, "passed", rep.Passed)
	}
	return nil
}

func finishedText(phase string, rep *api.DrillReport) string {
	var failed []string
	for _, s := range rep.SLOs {
		if !s.Passed {
			failed = append(failed, fmt.Sprintf("%s %s (target %s)", s.Name, s.Actual, s.Target))
		}
	}
	switch {
	case rep.Interrupted:
		return phase + ": interrupted (the hub running it stopped)"
	case len(failed) > 0:
		return phase + ": SLO missed: " + targetsText(failed)
	case phase == api.DrillSucceeded:
		return phase + ": every SLO met"
	}
	return phase
}

// interrupted ends a drill this hub found Running or Restoring without
// running it: its hub stopped. The targets are restored (again, for a
// drill that was already restoring: both are idempotent) and the report
// keeps what the stored timeline and samples show.
func (d *DrillController) interrupted(ctx context.Context, dr api.Drill) error {
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
	r.status.Phase, r.status.Report, r.status.FinishedAt = api.DrillFailed, rep, timePtr(now)
	r.event(now, api.DrillEventFinished, "%s", finishedText(api.DrillFailed, rep))
	err := d.save(ctx, r, func(tx *pgstore.Tx) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return recordEvent(ctx, tx, now, api.ObjectReference{Kind: "Drill", Name: r.name, UID: r.uid}, api.EventWarning, "DrillInterrupted",
			"the hub running the drill stopped; the targets were restored", "hub/drill")
	})
	if errors.Is(err, errDrillMoved) {
		return nil
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	d.metrics.ended(ctx, api.DrillFailed)
	d.log.WarnContext(ctx, "interrupted drill restored and ended", "drill", r.name, "targets", r.targets)
	return nil
}

// untaintAll is the write that lifts an evacuate drill's taint off every
// target (inside the drill's own transaction).
func (d *DrillController) untaintAll(ctx context.Context, r *drillRun) func(tx *pgstore.Tx) error {
	return func(tx *pgstore.Tx) error {
		for _, t := range r.targets {
			if err := d.setTaint(ctx, tx, t, r.name, false); err != nil {
				return err
			}
		}
		return nil
	}
}
