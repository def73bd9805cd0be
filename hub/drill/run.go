package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/loop"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
)

// Config tunes the drill controller. Zero values mean the defaults.
type Config struct {
	// SampleEvery is how often a running drill looks at the fleet; default
	// 200ms (cluster and drill changes wake it sooner).
	SampleEvery time.Duration
	// WriteEvery is how often a running drill's samples are written
	// between milestones (which are written at once); default 1s.
	WriteEvery time.Duration
	// CommandTimeout bounds a member's answer to a drill command; default 3s.
	CommandTimeout time.Duration
	// EntryPoints are the entry points drills' probes may send through,
	// by name: a regional gateway's or the global entry's base URL
	// ("http://127.0.0.1:8091"). atoll dev names its gateways by region
	// and its global entry "global".
	EntryPoints map[string]string
}

func (c Config) withDefaults() Config {
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

// Controller runs drills on the leader hub: it puts the fault in
// place (a NoExecute taint, or a drill command each target member must
// acknowledge), samples recovery from the members' fresh status reports
// and the hub's placements, lifts the fault at the end (or at once on
// abort), measures failback, and writes the report. A drill found Running
// that this hub did not start lost its hub (a restart, a leader change):
// its targets are restored and it ends as interrupted.
type Controller struct {
	store   Store
	bus     *natsbus.Bus // nil: evacuate drills only
	monitor Health
	log     *slog.Logger
	now     func() time.Time
	cfg     Config
	hubID   string
	tracer  trace.Tracer
	metrics drillMetrics
	leader  leader.Leadership
	reports Reports // nil: none heard

	wake     chan struct{}
	relist   atomic.Bool
	lastList time.Time
	runs     map[string]*drillRun // pass goroutine only
	// Probes sending their baseline before their drill's fault, by drill
	// name (pass goroutine only).
	baselines map[string]*probe
	loop      loop.Loop
}

// New makes the controller (a nil log discards, a nil now is time.Now, a
// nil lead leads alone); Start runs it. A nil bus runs evacuate drills
// only. reports is what the members last reported (nil: nothing heard).
func New(store Store, bus *natsbus.Bus, monitor Health, reports Reports, lead leader.Leadership, log *slog.Logger, now func() time.Time,
	meter metric.Meter, tracer trace.Tracer, hubID string, cfg Config) *Controller {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Controller{store: store, bus: bus, monitor: monitor, log: log, now: now, cfg: cfg.withDefaults(), hubID: hubID,
		tracer: tracer, metrics: newDrillMetrics(meter), leader: lead, reports: reports,
		wake: make(chan struct{}, 1), runs: map[string]*drillRun{}, baselines: map[string]*probe{}}
}

// Wake asks for a pass soon that re-reads the drills (one was created,
// aborted, or a cluster changed).
func (d *Controller) Wake() {
	d.relist.Store(true)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Start runs passes every SampleEvery and on Wake, until Stop.
func (d *Controller) Start(ctx context.Context) error {
	d.Wake()
	d.loop.Start(ctx, d.log, "drill pass failed", d.cfg.SampleEvery, d.wake, d.RunOnce)
	return nil
}

// Stop ends the controller; safe to call twice and before Start. The
// drills it ran stay Running in the store: the next leader restores them.
func (d *Controller) Stop() {
	d.loop.Stop()
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
	probe     *probe          // nil: the drill sends no requests
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
	// Each affected workload's own RTO, and what blocked it when last
	// seen while the fault was in.
	workloadRTO  map[string]*float64
	blockedBy    map[string][]api.DrillBlocker
	failedOver   map[string]map[string]int32 // as last read, while restoring
	failedOverAt time.Time
	duplicates   map[string]bool
	dirty        bool
	lastWrite    time.Time
}

func newRun(dr api.Drill) *drillRun {
	r := &drillRun{name: dr.Metadata.Name, uid: dr.Metadata.UID, spec: dr.Spec, targets: dr.Status.Targets, status: dr.Status,
		stored: dr.Status.Phase, isTarget: map[string]bool{}, duplicates: map[string]bool{},
		workloadRTO: map[string]*float64{}, blockedBy: map[string][]api.DrillBlocker{}}
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
func (d *Controller) RunOnce(ctx context.Context) error {
	if !d.leader.IsLeader() {
		for name := range d.runs {
			d.forget(ctx, name)
		}
		for name, p := range d.baselines {
			p.stop()
			delete(d.baselines, name)
		}
		return nil
	}
	var errs []error
	// A probe's baseline ends within a pass or two of its time.
	if now := d.now(); d.relist.Swap(false) || len(d.baselines) > 0 || now.Sub(d.lastList) >= 2*time.Second {
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
func (d *Controller) reconcile(ctx context.Context) error {
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
			var p *probe
			if dr.Spec.Probe != nil {
				// The probe's baseline first: the fault goes in after it.
				if p = d.baselines[name]; p == nil || p.uid != dr.Metadata.UID {
					p.stop()
					d.baselines[name] = d.startProbe(ctx, dr)
					continue
				}
				if d.now().Sub(p.started) < dr.Spec.Probe.BaselineOrDefault() && dr.Status.AbortRequestedAt == nil {
					continue
				}
			}
			if err := d.start(ctx, dr, p); err != nil {
				errs = append(errs, fmt.Errorf("start drill %s: %w", name, err))
			}
			if d.runs[name] != nil {
				delete(d.baselines, name) // the run has it now
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
	for name, p := range d.baselines {
		if !live[name] {
			p.stop()
			delete(d.baselines, name)
		}
	}
	return errors.Join(errs...)
}

func (d *Controller) forget(ctx context.Context, name string) {
	if r, ok := d.runs[name]; ok {
		r.probe.stop()
		delete(d.runs, name)
		d.metrics.active.Add(ctx, -1)
	}
}

// save writes the run's status (fenced, with extra writes in the same
// transaction), keeping the abort request, which the API owns.
func (d *Controller) save(ctx context.Context, r *drillRun, extra func(tx *pgstore.Tx) error) error {
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
func readFleet(ctx context.Context, store Store, monitor Health) ([]failover.Cluster, map[string]api.Workload, map[string]map[string]int32, error) {
	cres, err := store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return nil, nil, nil, err
	}
	var view []failover.Cluster
	for _, rec := range cres.Items {
		var c api.Cluster
		if err := rec.Decode(&c); err != nil {
			continue
		}
		lc := failover.Cluster{Cluster: c}
		lc.Live, lc.Known = monitor.Live(c.Metadata.Name)
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

// ready is Reports.ReadyReported, none without reports.
func (d *Controller) ready(workloads map[string]bool, fresh func(string, time.Time) bool) map[string]map[string]int32 {
	if d.reports == nil {
		return map[string]map[string]int32{}
	}
	return d.reports.ReadyReported(workloads, fresh)
}

// fresh says which member reports count at now: recent ones, from Ready
// clusters, not from targets the drill has cut off, and, once they are
// restored, only what they sent since.
func (d *Controller) fresh(r *drillRun, now time.Time) func(string, time.Time) bool {
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
func (d *Controller) observe(ctx context.Context, r *drillRun, now time.Time) (observation, error) {
	rows, err := d.store.Placements(ctx)
	if err != nil {
		return observation{}, err
	}
	names := map[string]bool{}
	for _, a := range r.affected {
		names[a.name] = true
	}
	o := observation{at: now, health: map[string]string{}, noted: map[string]time.Time{}, placements: currentPlacements(rows), ready: d.ready(names, d.fresh(r, now))}
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
func (d *Controller) step(ctx context.Context, r *drillRun) error {
	if r.final != "" {
		return d.finish(ctx, r) // a write that failed before
	}
	now := d.now()
	o, err := d.observe(ctx, r, now)
	if err != nil {
		return err
	}
	milestone := d.record(ctx, r, measure(r.affected, r.targets, o))
	if r.probe != nil {
		r.status.Probe = r.probe.report()
		if s := r.probe.series(); len(s) != len(r.status.ProbeSamples) {
			r.status.ProbeSamples, r.dirty = s, true
		}
	}
	switch r.status.Phase {
	case api.DrillRunning:
		if r.abort || !now.Before(r.endAt) {
			return d.restore(ctx, r)
		}
	case api.DrillRestoring:
		switch {
		case r.abort:
			r.final = api.DrillAborted
		case r.failedBack != nil || len(r.affected) == 0:
			// Nothing affected: nothing to fail back either.
			r.final = api.DrillCompleted
		case !now.Before(r.restoredAt.Add(r.spec.FailbackTimeoutOrDefault())):
			r.final = api.DrillCompleted
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
func (d *Controller) record(ctx context.Context, r *drillRun, m measurement) bool {
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
		for _, a := range r.affected {
			wr, ok := m.workloads[a.name]
			if !ok || r.workloadRTO[a.name] != nil {
				continue
			}
			if wr.recovered {
				r.workloadRTO[a.name], r.blockedBy[a.name] = seconds(since), nil
				if n := len(r.affected); n > 1 && n <= maxWorkloadEvents {
					r.event(at, api.DrillEventWorkloadRecovered, "%s recovered: every replica ready outside the targets", a.name)
					milestone = true
				}
			} else {
				r.blockedBy[a.name] = wr.blockedBy
			}
		}
		// Nothing affected, nothing to recover: no replacement, no RTO.
		if r.replaced == nil && m.replaced && len(r.affected) > 0 {
			r.replaced, milestone = seconds(since), true
			r.event(at, api.DrillEventFirstReplacement, "a replacement replica is ready outside the targets")
		}
		if r.recovered == nil && m.recovered && len(r.affected) > 0 {
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

// Store is what drills read and write (*pgstore.Store has it).
type Store interface {
	Get(ctx context.Context, kind, name string) (*pgstore.Record, error)
	List(ctx context.Context, kind string, opts pgstore.ListOptions) (*pgstore.ListResult, error)
	Placements(ctx context.Context) ([]pgstore.Placement, error)
	InTx(ctx context.Context, actor pgstore.Actor, fn func(tx *pgstore.Tx) error) error
}

// Health is the live cluster health drills plan and measure with
// (*members.Monitor has it).
type Health interface {
	Live(cluster string) (failover.Live, bool)
}

// Plan resolves a drill's target and plans it over the fleet as it is
// now, changing nothing. A target that does not exist comes back as field
// errors (paths relative to the spec) with an empty plan.
func (d *Controller) Plan(ctx context.Context, name string, spec api.DrillSpec) (*api.DrillPlan, api.FieldErrors, error) {
	view, workloads, current, err := readFleet(ctx, d.store, d.monitor)
	if err != nil {
		return nil, nil, err
	}
	clusters := make([]api.Cluster, len(view))
	for i, c := range view {
		clusters[i] = c.Cluster
	}
	targets, fe := resolveTargets(spec.Target, clusters)
	if spec.Probe != nil {
		pfe, err := d.checkProbe(ctx, spec.Probe)
		if err != nil {
			return nil, nil, err
		}
		fe = append(fe, pfe...)
	}
	if fe != nil {
		return &api.DrillPlan{Targets: []string{}, Reason: fe[0].Message}, fe, nil
	}
	return planDrill(spec.Kind, name, spec.SLO, targets, view, workloads, current, d.now()), nil, nil
}

// PlanEvacuation plans what adding taints (NoExecute ones: a drain, an
// operator's taint) to a cluster would move, over the fleet as it is now,
// changing nothing: the plan of an evacuate drill whose taints are these.
func (d *Controller) PlanEvacuation(ctx context.Context, cluster string, taints []api.Taint) (*api.DrillPlan, error) {
	view, workloads, current, err := readFleet(ctx, d.store, d.monitor)
	if err != nil {
		return nil, err
	}
	return planFault(api.DrillEvacuate, taints, nil, []string{cluster}, view, workloads, current, d.now()), nil
}

// ServesKind refuses outage and partition drills on a hub without NATS,
// which cannot reach members (field: where the kind is in the request).
func (d *Controller) ServesKind(kind, field string) error {
	if kind != api.DrillEvacuate && d.bus == nil {
		return api.FieldErrors{{Field: field, Value: kind, Message: "this hub runs without NATS and cannot reach members: only evacuate drills are possible"}}
	}
	return nil
}
