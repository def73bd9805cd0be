package hub

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/placement"
	"github.com/atollhq/atoll/protocol"
)

// placementFinalizer holds a workload's deletion until every member has
// confirmed its tombstone.
const placementFinalizer = "atoll.dev/placement"

// Placer is the placement controller: it decides where every workload's
// replicas go (package placement decides; the placer reads the snapshot,
// stores the decision with a new epoch and delivers it), delivers desired
// state to the members until they acknowledge it, repairs what a member's
// digest shows it lacks, and turns deletions into tombstones.
type Placer struct {
	db      *pgstore.Store
	bus     *natsbus.Bus
	monitor *Monitor
	log     *slog.Logger
	now     func() time.Time
	every   time.Duration

	decisions metric.Int64Counter
	delivered metric.Int64Counter
	failovers metric.Int64Counter

	buckets  map[string]*failbackBucket // workload -> failback rate limit (pass goroutine only)
	purging  map[string]bool            // workloads whose graceful purge waits on their status (pass goroutine only)
	timerMu  sync.Mutex
	timer    *time.Timer // wakes a pass when a failover grace runs out
	timerAt  time.Time
	resynced map[string]time.Time // cluster -> last full resend (deliverTo)

	leader    Leadership
	wake      chan struct{}
	mu        sync.Mutex
	lastCheck map[string]time.Time // cluster -> last digest

	// The workloads as of afterRV in the change log (pass goroutine only).
	cache      map[string]api.Workload
	afterRV    int64
	lastFull   time.Time
	owed       map[string]bool // status-only changes cut short for a lost cluster: decided again next pass
	clusterKey string          // what placement reads of the clusters, but capacity
	capKey     string          // the clusters' free capacity
	loop       loop
}

// NewPlacer makes a placement controller; every <= 0 means 2s.
func NewPlacer(store *pgstore.Store, bus *natsbus.Bus, monitor *Monitor, log *slog.Logger, now func() time.Time, meter metric.Meter, every time.Duration) *Placer {
	if every <= 0 {
		every = 2 * time.Second
	}
	p := &Placer{db: store, bus: bus, monitor: monitor, log: log, now: now, every: every, leader: soleHub{}, wake: make(chan struct{}, 1),
		lastCheck: map[string]time.Time{}, resynced: map[string]time.Time{}, buckets: map[string]*failbackBucket{}, purging: map[string]bool{}, owed: map[string]bool{}}
	p.decisions, _ = meter.Int64Counter("placement.decisions", metric.WithUnit("{decision}"), metric.WithDescription("Placement decisions that changed where replicas go."))
	p.delivered, _ = meter.Int64Counter("placement.deliveries", metric.WithUnit("{delivery}"), metric.WithDescription("Desired-state deliveries acknowledged by members."))
	p.failovers, _ = meter.Int64Counter("failover.replicas", metric.WithUnit("{replica}"), metric.WithDescription("Replicas re-placed off lost or evacuated clusters, by reason."))
	return p
}

// wakeAt asks for a pass at `at` (a failover grace runs out); zero is a
// no-op. The earliest pending time wins.
func (p *Placer) wakeAt(at time.Time) {
	if at.IsZero() {
		return
	}
	p.timerMu.Lock()
	defer p.timerMu.Unlock()
	if p.timer != nil && !p.timerAt.IsZero() && !at.Before(p.timerAt) && p.timerAt.After(p.now()) {
		return
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	p.timerAt = at
	p.timer = time.AfterFunc(max(at.Sub(p.now()), 0)+10*time.Millisecond, p.Wake)
}

// Wake asks for a pass soon (a workload or cluster changed).
func (p *Placer) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

var placerActor = pgstore.Actor{Name: "system:placement"}

// RunOnce decides, stores and delivers once (on the leader only). It
// reads workloads incrementally from the change log (a full list every
// 10 s, after a gap, or at first), and decides again only the workloads
// that changed, or all of them when a cluster changed.
func (p *Placer) RunOnce(ctx context.Context) error {
	if !p.leader.IsLeader() {
		return nil
	}
	// The clusters Unreachable as the pass begins: one lost after this
	// has status-only writes give way (commitChanges).
	unreachable := map[string]bool{}
	for _, name := range p.monitor.Unreachable() {
		unreachable[name] = true
	}
	touched, err := p.refresh(ctx)
	if err != nil {
		return err
	}
	// What the change log gave is consumed: owed until decided, so a read
	// error below does not lose it.
	for name := range touched {
		p.owed[name] = true
	}
	for name := range p.owed {
		touched[name] = true
	}
	cres, err := p.db.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return err
	}
	rows, err := p.db.Placements(ctx)
	if err != nil {
		return err
	}
	byWorkload := map[string][]pgstore.Placement{}
	for _, r := range rows {
		byWorkload[r.Workload] = append(byWorkload[r.Workload], r)
	}
	var clusters []api.Cluster
	var view []liveCluster // read from the monitor once per pass
	var clusterKey, capKey strings.Builder
	for _, rec := range cres.Items {
		var c api.Cluster
		if err := rec.Decode(&c); err == nil {
			clusters = append(clusters, c)
			lc := liveCluster{Cluster: c}
			lc.live, lc.known = p.monitor.Live(c.Metadata.Name)
			writePlacementKey(&clusterKey, &capKey, lc)
			view = append(view, lc)
		}
	}
	if k := clusterKey.String(); k != p.clusterKey {
		p.clusterKey = k // a cluster changed: every workload may place differently
		for name := range p.cache {
			touched[name] = true
		}
	}
	if k := capKey.String(); k != p.capKey {
		// Free capacity changed: only workloads with replicas waiting for
		// room can place differently (a placed replica never moves for it).
		p.capKey = k
		for name, w := range p.cache {
			if w.Status.Placement == nil || w.Status.Placement.Unplaced > 0 {
				touched[name] = true
			}
		}
	}
	// A workload on an Unreachable cluster is decided every pass: its
	// failover grace runs out by the clock, not by a change.
	now := p.now()
	lostNow := map[string]bool{}
	for _, lc := range view {
		if lc.known && lc.live.Health == api.HealthUnreachable {
			lostNow[lc.Metadata.Name] = true
		}
	}
	for name, w := range p.cache {
		switch {
		case w.Metadata.DeletionTimestamp != nil:
			touched[name] = true // its finalizer waits for the members' acks, not for a change
		case w.Status.Placement != nil && len(w.Status.Placement.FailedOverFrom) > 0:
			touched[name] = true // failback runs by the clock too
		}
	}
	if len(lostNow) > 0 {
		for _, r := range rows {
			if !r.Deleted && r.Replicas > 0 && lostNow[r.Cluster] {
				touched[r.Workload] = true
			}
		}
	}
	var errs []error
	var changes []*change
	ledger := newCapacityLedger(view)
	for _, name := range slices.Sorted(maps.Keys(touched)) {
		w, ok := p.cache[name]
		if !ok {
			continue
		}
		if w.Metadata.DeletionTimestamp != nil {
			if err := p.retire(ctx, w, byWorkload[w.Metadata.Name]); err != nil {
				errs = append(errs, fmt.Errorf("retire %s: %w", w.Metadata.Name, err))
			}
			continue
		}
		if ch := p.decide(w, view, byWorkload[w.Metadata.Name], now, ledger); ch != nil {
			changes = append(changes, ch)
		}
	}
	clear(p.owed) // decided again above
	workloads := p.cache
	// The placement rows first, then delivery, then the workloads' status
	// and events: members get their work without waiting for bookkeeping.
	// (Workloads carry the placement finalizer from creation, so a delete
	// in between still goes through tombstones.)
	if len(changes) > 0 {
		if err := p.commitRows(ctx, changes); err != nil {
			errs = append(errs, err)
			for _, ch := range changes {
				p.owed[ch.name] = true // decided again next pass
			}
			changes = nil
		}
	}
	if err := p.deliver(ctx, workloads, clusters); err != nil {
		errs = append(errs, err)
	}
	if err := p.commitChanges(ctx, changes, unreachable); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// commitChanges writes the pass's changes: their status, conditions and
// events, in batches short enough not to hold the store's write lock (and
// the API's creates behind it) for long. lost are the clusters the
// monitor had Unreachable as the pass began.
//
// Moves go first (their events and progress matter most), then changes of
// status alone: a Suspect cluster, say, rewrites every workload's reasons.
// Those give way when another cluster is lost meanwhile, so its failover
// does not wait behind them: they are decided again in the pass that
// follows at once.
func (p *Placer) commitChanges(ctx context.Context, changes []*change, lost map[string]bool) error {
	var errs []error
	slices.SortStableFunc(changes, func(a, b *change) int { return cmp.Compare(len(b.rows), len(a.rows)) })
	for len(changes) > 0 {
		if len(changes[0].rows) == 0 && p.lostMeanwhile(lost) {
			for _, ch := range changes {
				p.owed[ch.name] = true
			}
			p.Wake()
			break
		}
		n := min(len(changes), 100)
		if moves := slices.IndexFunc(changes, func(ch *change) bool { return len(ch.rows) == 0 }); moves > 0 {
			n = min(n, moves) // moves and changes of status alone never share a batch
		}
		batch := changes[:n]
		changes = changes[n:]
		if err := p.commitStatus(ctx, batch); err != nil {
			// One bad workload (deleted meanwhile, say) must not hold the
			// others: write them one by one.
			for _, ch := range batch {
				if err := p.commitStatus(ctx, []*change{ch}); err != nil && api.ErrorCode(err) != api.CodeNotFound {
					errs = append(errs, fmt.Errorf("place %s: %w", ch.name, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// lostMeanwhile says whether a cluster turned Unreachable after the pass
// began (lost: the ones the monitor had Unreachable then).
func (p *Placer) lostMeanwhile(lost map[string]bool) bool {
	for _, name := range p.monitor.Unreachable() {
		if !lost[name] {
			return true
		}
	}
	return false
}

// refresh brings the workload cache up to date and returns the names that
// changed since the last pass.
func (p *Placer) refresh(ctx context.Context) (map[string]bool, error) {
	touched := map[string]bool{}
	if p.cache != nil && p.now().Sub(p.lastFull) < 10*time.Second {
		changes, err := p.db.Changes(ctx, "Workload", p.afterRV, 5000)
		if err == nil && len(changes) < 5000 {
			for _, c := range changes {
				var w api.Workload
				if json.Unmarshal(c.Object, &w) != nil {
					continue
				}
				old, had := p.cache[c.Name]
				if c.Type == api.Deleted {
					delete(p.cache, c.Name)
					delete(p.buckets, c.Name) // the pass's per-workload memory goes with it
					delete(p.purging, c.Name)
				} else {
					p.cache[c.Name] = w
				}
				// A status write (the members' reports folded, the placer's
				// own) changes nothing placement reads, unless a graceful
				// purge waits for the replacements to be ready.
				if c.Type == api.Deleted || !had || placementInputChanged(old, w) || p.purging[c.Name] {
					touched[c.Name] = true
				}
				p.afterRV = c.ResourceVersion
			}
			return touched, nil
		}
		// Too far behind, or the log was compacted: list again.
	}
	res, err := p.db.List(ctx, "Workload", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return nil, err
	}
	p.cache = make(map[string]api.Workload, len(res.Items))
	for _, rec := range res.Items {
		var w api.Workload
		if err := rec.Decode(&w); err == nil {
			p.cache[w.Metadata.Name] = w
			touched[w.Metadata.Name] = true
		}
	}
	p.afterRV, _ = strconv.ParseInt(res.ResourceVersion, 10, 64)
	p.lastFull = p.now()
	return touched, nil
}

// liveCluster is a cluster object with its live health as the monitor
// had it when the pass began.
type liveCluster struct {
	api.Cluster
	live  LiveHealth
	known bool
}

// room is how many more replicas of a shape fit in a cluster's free
// capacity (Unbounded when the replica requests nothing).
func room(c protocol.Capacity, cpu, mem int64) int32 {
	if cpu <= 0 && mem <= 0 {
		return placement.Unbounded
	}
	fit := int64(1 << 30)
	if cpu > 0 {
		fit = min(fit, max(0, c.CPUAllocatable-c.CPUAllocated)/cpu)
	}
	if mem > 0 {
		fit = min(fit, max(0, c.MemoryAllocatable-c.MemoryAllocated)/mem)
	}
	return int32(min(fit, 1<<30))
}

// change is what a pass decided for one workload.
type change struct {
	name     string
	rows     []pgstore.Placement // rows whose count or generation changed
	status   *api.PlacementStatus
	decision placement.Decision
	epoch    int64            // the epoch kept when no row changed
	lost     map[string]int32 // replicas taken off lost or evicted clusters
	back     map[string]int32 // replicas moved back to returned clusters
}

// decide computes one workload's placement; nil means nothing to write.
func (p *Placer) decide(w api.Workload, clusters []liveCluster, rows []pgstore.Placement, now time.Time, ledger capacityLedger) *change {
	name := w.Metadata.Name
	current := map[string]int32{}
	have := map[string]pgstore.Placement{}
	for _, r := range rows {
		have[r.Cluster] = r
		if !r.Deleted {
			current[r.Cluster] = r.Replicas
		}
	}
	snap, next := snapshot(clusters, &w, now)
	p.wakeAt(next)
	cpu, mem := requests(w.Spec.Template)
	ledger.bound(snap, cpu, mem)
	d := placement.Decide(placement.Input{Workload: name, Replicas: w.Spec.Replicas, Policy: placementPolicy(&w),
		Clusters: snap, Current: current})
	// Both wait on what the members report: while either holds something
	// back, a status change decides the workload again.
	kept := purgeGracefully(&w, &d, current, clusters)
	held := sequenceExclusive(&w, &d, current, have, clusters, now)
	lost := lostClusters(d, current)
	var prev, prevBack map[string]int32
	if w.Status.Placement != nil {
		prev, prevBack = w.Status.Placement.FailedOverFrom, w.Status.Placement.FailingBack
	}
	from, back := p.failback(&w, &d, current, prev, lost, snap, clusters, now)
	failingBack := keepUntilFailedBack(&w, &d, current, prevBack, back, clusters)
	if held || len(kept) > 0 || len(failingBack) > 0 {
		p.purging[name] = true
	} else {
		delete(p.purging, name)
	}
	ledger.take(d.Assignment, current, cpu, mem) // failback's moves included
	d.Conditions = append(d.Conditions, failedOverCondition(from, w.Spec.Failover))
	ch := &change{name: name, decision: d, lost: lost, back: back,
		status: &api.PlacementStatus{Clusters: d.Assignment, Unplaced: d.Unplaced, Reason: d.UnplacedReason, Filtered: d.Filtered, Explanation: d.Explanation,
			FailedOverFrom: from, FailingBack: failingBack}}
	for _, c := range sortedKeys(d.Assignment, current) {
		n := d.Assignment[c]
		r, ok := have[c]
		if ok && !r.Deleted && r.Replicas == n && r.Generation == w.Metadata.Generation {
			continue
		}
		if !ok && n == 0 {
			continue
		}
		ch.rows = append(ch.rows, pgstore.Placement{Workload: name, Cluster: c, Replicas: n, Generation: w.Metadata.Generation})
	}
	if w.Status.Placement != nil {
		ch.epoch = w.Status.Placement.Epoch
	}
	if len(ch.rows) == 0 && slices.Contains(w.Metadata.Finalizers, placementFinalizer) && samePlacementStatus(w.Status.Placement, ch.status) {
		return nil
	}
	return ch
}

// commitRows writes the placement rows of a batch of changes in one
// transaction with one new epoch (a pass that places a thousand new
// workloads costs one commit, not a thousand).
func (p *Placer) commitRows(ctx context.Context, batch []*change) error {
	return p.db.InTx(ctx, placerActor, func(tx *pgstore.Tx) error {
		if err := p.leader.Fence(ctx, tx); err != nil {
			return err
		}
		var epoch int64
		var rows []pgstore.Placement
		for _, ch := range batch {
			if len(ch.rows) == 0 {
				continue
			}
			if epoch == 0 {
				var err error
				if epoch, err = tx.NextPlacementEpoch(ctx); err != nil {
					return err
				}
			}
			ch.epoch = epoch
			for _, r := range ch.rows {
				r.Epoch = epoch
				rows = append(rows, r)
			}
		}
		return tx.PutPlacements(ctx, rows)
	})
}

// commitStatus writes the changes' placement status, finalizers and
// events in one transaction.
func (p *Placer) commitStatus(ctx context.Context, batch []*change) error {
	return p.db.InTx(ctx, placerActor, func(tx *pgstore.Tx) error {
		if err := p.leader.Fence(ctx, tx); err != nil {
			return err
		}
		for _, ch := range batch {
			if err := p.record(ctx, tx, ch); err != nil {
				return err
			}
		}
		return nil
	})
}

// record writes a change's placement status, conditions, finalizer and
// (when replicas moved) its event.
func (p *Placer) record(ctx context.Context, tx *pgstore.Tx, ch *change) error {
	ch.status.Epoch = ch.epoch
	rec, err := tx.Mutate(ctx, "place", "Workload", ch.name, func(cur *pgstore.Record) error {
		if !slices.Contains(cur.Meta.Finalizers, placementFinalizer) && cur.Meta.DeletionTimestamp == nil {
			cur.Meta.Finalizers = append(cur.Meta.Finalizers, placementFinalizer)
		}
		var s api.WorkloadStatus
		_ = json.Unmarshal(cur.Status, &s)
		s.Placement = ch.status
		now := p.now().UTC().Truncate(time.Millisecond)
		for _, c := range ch.decision.Conditions {
			if c.LastTransitionTime == nil {
				c.LastTransitionTime = &now // kept by setCondition while the status holds
			}
			s.Conditions = setCondition(s.Conditions, c)
		}
		b, err := json.Marshal(s)
		cur.Status = b
		return err
	})
	if err != nil || len(ch.rows) == 0 {
		return err
	}
	p.decisions.Add(ctx, 1)
	d := ch.decision
	ref := api.ObjectReference{Kind: "Workload", Name: ch.name, UID: rec.Meta.UID}
	if len(ch.lost) > 0 {
		msg := failoverText(ch.lost, d)
		if d.Unplaced > 0 {
			msg += "; " + d.UnplacedReason
		}
		for c, n := range ch.lost {
			p.failovers.Add(ctx, int64(n), metric.WithAttributes(attribute.String("reason", failoverReason(d.Evicted[c]))))
		}
		return recordEvent(ctx, tx, p.now(), ref, api.EventWarning, "FailedOver", msg, "hub/placement")
	}
	if len(ch.back) > 0 {
		return recordEvent(ctx, tx, p.now(), ref, api.EventNormal, "FailedBack", failbackText(ch.back, d), "hub/placement")
	}
	msg := "placed: " + splitText(d.Assignment)
	typ := api.EventNormal
	if d.Unplaced > 0 {
		msg += "; " + d.UnplacedReason
		typ = api.EventWarning
	}
	return recordEvent(ctx, tx, p.now(), ref, typ, "Placed", msg, "hub/placement")
}

// retire sends tombstones for a deleted workload and, once every cluster
// confirmed, releases its finalizer.
func (p *Placer) retire(ctx context.Context, w api.Workload, rows []pgstore.Placement) error {
	name := w.Metadata.Name
	pending := false
	var fresh []pgstore.Placement
	for _, r := range rows {
		switch {
		case !r.Deleted:
			fresh = append(fresh, pgstore.Placement{Workload: name, Cluster: r.Cluster, Generation: r.Generation, Deleted: true})
		case r.DeliveredEpoch < r.Epoch:
			pending = true
		}
	}
	if len(fresh) > 0 {
		return p.db.InTx(ctx, placerActor, func(tx *pgstore.Tx) error {
			if err := p.leader.Fence(ctx, tx); err != nil {
				return err
			}
			epoch, err := tx.NextPlacementEpoch(ctx)
			if err != nil {
				return err
			}
			for i := range fresh {
				fresh[i].Epoch = epoch
			}
			return tx.PutPlacements(ctx, fresh)
		})
	}
	if pending || !slices.Contains(w.Metadata.Finalizers, placementFinalizer) {
		return nil
	}
	return p.db.InTx(ctx, placerActor, func(tx *pgstore.Tx) error {
		if err := p.leader.Fence(ctx, tx); err != nil {
			return err
		}
		if err := tx.DeletePlacements(ctx, name); err != nil {
			return err
		}
		_, err := tx.Mutate(ctx, "place", "Workload", name, func(cur *pgstore.Record) error {
			cur.Meta.Finalizers = slices.DeleteFunc(cur.Meta.Finalizers, func(f string) bool { return f == placementFinalizer })
			return nil
		})
		return err
	})
}

// deliver sends every placement a member has not acknowledged, and checks
// each Ready member's digest every few seconds.
func (p *Placer) deliver(ctx context.Context, workloads map[string]api.Workload, clusters []api.Cluster) error {
	rows, err := p.db.Placements(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, c := range clusters {
		known[c.Metadata.Name] = true
	}
	byCluster := map[string][]pgstore.Placement{}
	for _, r := range rows {
		byCluster[r.Cluster] = append(byCluster[r.Cluster], r)
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for cluster, list := range byCluster {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.deliverTo(ctx, cluster, known[cluster], list, workloads); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *Placer) deliverTo(ctx context.Context, cluster string, known bool, rows []pgstore.Placement, workloads map[string]api.Workload) error {
	if live, ok := p.monitor.Live(cluster); !known || !ok || live.Health == api.HealthUnreachable {
		if !known {
			// A deregistered cluster runs nothing of ours any more: its
			// tombstones count as delivered.
			var gone []pgstore.Placement
			for _, r := range rows {
				if r.Deleted && r.DeliveredEpoch < r.Epoch {
					gone = append(gone, r)
				}
			}
			if len(gone) > 0 {
				return p.db.MarkDeliveredAll(ctx, cluster, gone)
			}
		}
		return nil // deliver when it is back
	}
	live, _ := p.monitor.Live(cluster)
	p.mu.Lock()
	// The digest is a check, not a delivery: only of a member heard
	// lately (one gone quiet would hold the pass for the request's timeout).
	due := live.Health == api.HealthReady && p.now().Sub(p.lastCheck[cluster]) > 5*time.Second
	if due {
		p.lastCheck[cluster] = p.now()
	}
	// A member that lost its lease asks for everything again, stamped with
	// its new term, before its exclusive workloads may run.
	resync := live.Resync && p.now().Sub(p.resynced[cluster]) > 2*time.Second
	if resync {
		p.resynced[cluster] = p.now()
	}
	p.mu.Unlock()
	if due {
		p.repair(ctx, cluster, rows)
	}
	// Speak the member's version when it is older (it ignores the newer
	// fields: a member before protocol 3 is never fenced).
	version := protocol.Version
	if live.Version >= protocol.MinVersion && live.Version < version {
		version = live.Version
	}
	// Send everything pending at once, a bounded number in flight, and
	// record the acknowledgements in one write. A delivery waits mostly on
	// the member's store write, not on CPU: a failover sends a thousand at
	// once, and 256 in flight take a third of the time 32 did.
	var mu sync.Mutex
	var acked []pgstore.Placement
	var errs []error
	sem := make(chan struct{}, deliveriesInFlight)
	var wg sync.WaitGroup
	for _, r := range rows {
		if r.DeliveredEpoch >= r.Epoch && !resync {
			continue
		}
		w, ok := workloads[r.Workload]
		if !ok && !r.Deleted {
			continue
		}
		d := protocol.DesiredWorkload{Version: version, Workload: r.Workload, UID: w.Metadata.UID, Epoch: r.Epoch, Generation: r.Generation,
			Replicas: r.Replicas, Template: w.Spec.Template, Update: w.Spec.Update, Deleted: r.Deleted,
			Exclusive: failoverOf(&w).exclusive, Term: live.Term}
		if r.Deleted {
			d.Template, d.Update, d.Replicas = api.ReplicaTemplate{}, nil, 0
		}
		data, _ := json.Marshal(d)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			reply, err := p.bus.Request(rctx, cluster, protocol.DesiredSubject(cluster), data)
			cancel()
			var ack protocol.DesiredAck
			if err == nil {
				err = json.Unmarshal(reply, &ack)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("deliver %s to %s: %w", r.Workload, cluster, err))
			case !ack.Accepted && ack.Current < r.Epoch:
				p.log.WarnContext(ctx, "member refused desired state", "workload", r.Workload, "cluster", cluster, "reason", ack.Reason)
			default:
				// Accepted, or the member already holds a newer epoch.
				acked = append(acked, r)
			}
		}()
	}
	wg.Wait()
	if len(acked) > 0 {
		if err := p.db.MarkDeliveredAll(ctx, cluster, acked); err != nil {
			errs = append(errs, err)
		}
		p.delivered.Add(ctx, int64(len(acked)))
	}
	return errors.Join(errs...)
}

// deliveriesInFlight bounds the desired-state requests outstanding to one
// member; members store as many at once (member.storesInFlight).
const deliveriesInFlight = 256

// repair asks a member which epochs it holds and marks for redelivery
// every placement it lacks: a lost message or a member that was away
// converges without replaying history.
func (p *Placer) repair(ctx context.Context, cluster string, rows []pgstore.Placement) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	reply, err := p.bus.Request(rctx, cluster, protocol.DigestSubject(cluster), []byte(`{}`))
	if err != nil {
		return
	}
	var d protocol.Digest
	if json.Unmarshal(reply, &d) != nil {
		return
	}
	for _, r := range rows {
		if r.DeliveredEpoch >= r.Epoch && d.Workloads[r.Workload] < r.Epoch {
			_ = p.db.MarkUndelivered(ctx, r.Workload, cluster)
		}
	}
}

// Start runs a pass now, then every period and soon after Wake, until
// Stop.
func (p *Placer) Start(ctx context.Context) {
	p.Wake()
	p.loop.start(ctx, p.log, "placement pass failed", p.every, p.wake, p.RunOnce)
}

// Stop ends the controller; safe to call twice and before Start.
func (p *Placer) Stop() {
	p.loop.stop()
	p.timerMu.Lock()
	if p.timer != nil {
		p.timer.Stop()
	}
	p.timerMu.Unlock()
}

func sortedKeys(a, b map[string]int32) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func splitText(a map[string]int32) string {
	keys := slices.Sorted(maps.Keys(a))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if a[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, a[k]))
		}
	}
	if len(parts) == 0 {
		return "nowhere"
	}
	return strings.Join(parts, ", ")
}

func samePlacementStatus(a, b *api.PlacementStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	// The explanation follows free capacity; rewrite only when the
	// outcome changes.
	// An empty map and none are the same outcome (a stored status drops
	// empty maps; a fresh decision has them).
	key := func(s *api.PlacementStatus) string {
		s = &api.PlacementStatus{Clusters: nilIfEmpty(s.Clusters), Unplaced: s.Unplaced, Reason: s.Reason,
			Filtered: nilIfEmpty(s.Filtered), FailedOverFrom: nilIfEmpty(s.FailedOverFrom), FailingBack: nilIfEmpty(s.FailingBack)}
		j, _ := json.Marshal(struct {
			C  map[string]int32
			U  int32
			R  string
			F  map[string]string
			FO map[string]int32
			FB map[string]int32
		}{s.Clusters, s.Unplaced, s.Reason, s.Filtered, s.FailedOverFrom, s.FailingBack})
		return string(j)
	}
	return key(a) == key(b)
}

// createWorkload stores a new workload with the placement finalizer from
// the start (when this hub places workloads), so no delete can ever skip
// its tombstones.
func (s *Server) createWorkload(ctx context.Context, _ *Server, a pgstore.Actor, w *api.Workload) (*api.Workload, error) {
	if s.placer != nil && !slices.Contains(w.Metadata.Finalizers, placementFinalizer) {
		w.Metadata.Finalizers = append(w.Metadata.Finalizers, placementFinalizer)
	}
	return storeCreate[api.Workload, *api.Workload](ctx, s, a, "Workload", w)
}

// writePlacementKey appends what placement reads of a cluster to key,
// and its free capacity to capKey: a change in key re-decides every
// workload, one in capKey only those waiting for room.
func writePlacementKey(key, capKey *strings.Builder, c liveCluster) {
	j, _ := json.Marshal(struct {
		N  string
		L  map[string]string
		T  []api.Taint
		U  bool
		D  bool
		H  string
		SH string
	}{c.Metadata.Name, c.Metadata.Labels, c.Spec.Taints, c.Spec.Unschedulable, c.Metadata.DeletionTimestamp != nil, c.live.Health, c.Status.Health})
	key.Write(j)
	if c.known {
		fmt.Fprintf(capKey, "%s:%v:%+v;", c.Metadata.Name, c.live.Heard, c.live.Capacity)
	}
}

// placementInputChanged says whether a workload changed in a way its
// placement reads: its spec (generation), deletion or finalizers.
func placementInputChanged(old, cur api.Workload) bool {
	return old.Metadata.Generation != cur.Metadata.Generation ||
		(old.Metadata.DeletionTimestamp == nil) != (cur.Metadata.DeletionTimestamp == nil) ||
		!slices.Equal(old.Metadata.Finalizers, cur.Metadata.Finalizers)
}

func nilIfEmpty[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) == 0 {
		return nil
	}
	return m
}
