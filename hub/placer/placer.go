package placer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/loop"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/placement"
	"github.com/atollhq/atoll/progressive"
)

// Finalizer holds a workload's deletion until every member has confirmed
// its tombstone. Workloads carry it from creation when a hub places them.
const Finalizer = "atoll.dev/placement"

// Placer is the placement controller: it decides where every workload's
// replicas go (package placement decides; the placer reads the snapshot,
// stores the decision with a new epoch and delivers it), delivers desired
// state to the members until they acknowledge it, repairs what a member's
// digest shows it lacks, and turns deletions into tombstones.
type Placer struct {
	db      Store
	bus     Bus
	monitor Health
	log     *slog.Logger
	now     func() time.Time
	every   time.Duration

	decisions metric.Int64Counter
	delivered metric.Int64Counter
	failovers metric.Int64Counter

	rebalanced metric.Int64Counter

	templates templates              // a workload's template at an older generation (progressive rollouts)
	traffic   Traffic                // the gateways' traffic, for rollouts' traffic gates (nil: none measured)
	revisions map[string]revisionsOf // revisions of workloads that roll out progressively, read again on a new generation (pass goroutine only)

	buckets  map[string]*failover.Bucket // workload -> failback rate limit (pass goroutine only)
	due      map[string]time.Time        // workload -> when a window runs out and it must be decided again (pass goroutine only)
	gatesAt  map[string]time.Time        // workload -> when its rollout's gate words alone were last written (pass goroutine only)
	purging  map[string]bool             // workloads whose graceful purge waits on their status (pass goroutine only)
	timerMu  sync.Mutex
	timer    *time.Timer // wakes a pass when a failover grace runs out
	timerAt  time.Time
	resynced map[string]time.Time // cluster -> last full resend (deliverTo)
	// singlesSince: cluster -> when its member last found no responder
	// for a batch of desired state (send); under mu.
	singlesSince map[string]time.Time
	// inDoubt: rows whose desired state went to their member without an
	// answer in time (send): not sent again until the member's digest
	// says it lacks them, or until the doubt ends; under mu.
	inDoubt map[ackKey]doubt

	// The passes' status writes, which run on while the next pass
	// decides and delivers (writeStatus), oldest first (pass goroutine
	// only); what they owe a later pass and the errors they met (under
	// writeMu).
	writes      []*statusWrite
	writeMu     sync.Mutex
	owedByWrite map[string]bool
	writeErr    error
	// unread: workload -> the version of a status write of the placer's
	// own, ended, that the workloads cache has not read back yet (the
	// watch horizon below it, or a Read that stopped at a chunk, More):
	// the workload is not decided until it has (pass goroutine only).
	unread map[string]int64
	// The passes' acknowledgements being recorded (markDelivered), oldest
	// first, and the epochs they hold (pass goroutine only).
	marks  []*markWrite
	acking map[ackKey]int64

	// The placement rows while it leads (held.go), the authority for
	// its passes; the pass goroutine only.
	held        *held
	heldMetrics heldMetrics
	tracer      trace.Tracer

	leader    leader.Leadership
	wake      chan struct{}
	mu        sync.Mutex
	lastCheck map[string]time.Time // cluster -> last digest

	// chunk is the most urgent workloads a pass settles at a time
	// (failoverChunk); a pass looks for a cluster lost meanwhile every
	// lossCheckEvery workloads it decides.
	chunk, lossCheckEvery int
	// wasLost is the clusters Unreachable as the last pass began; hurry
	// says one was newly lost since the last pass that decided.
	wasLost map[string]bool
	hurry   bool
	// cut says the last pass that decided was cut short by a loss (the
	// next one is not).
	cut bool
	// waitingForWrites, if set (tests), is called as a pass begins to
	// wait for the status writes under way.
	waitingForWrites func()
	// lossWait is the longest a pass that finds a cluster newly lost
	// waits for the status writes under way (newLossWait).
	lossWait time.Duration

	// The workloads, kept by workloads (pass goroutine only).
	cache        map[string]api.Workload
	workloads    *pgstore.Follow
	term         int64           // the leader epoch the cache was decided under
	owed         map[string]bool // status-only changes cut short for a lost cluster: decided again next pass
	clusterKey   string          // what placement reads of the clusters, but capacity
	residencyKey string          // the configs' and secrets' residency selectors
	capKey       string          // the clusters' free capacity
	loop         loop.Loop
	pins         Pins // nil: templates are delivered as written
}

// Pins pins a template's image to its revision's digest
// (*imagepin.Pins has it): ok is false while the tag is not resolved.
type Pins interface {
	Pin(ctx context.Context, w api.Workload, generation int64, t api.ReplicaTemplate) (api.ReplicaTemplate, bool, error)
}

// PinImages makes the placer deliver oci templates with their image
// pinned by pins, and hold a delivery until its image is pinned. Call
// it before Start.
func (p *Placer) PinImages(pins Pins) { p.pins = pins }

// NewPlacer makes a placement controller; every <= 0 means 2s, a nil log
// discards, a nil now is time.Now and a nil lead leads alone.
func NewPlacer(store Store, bus Bus, monitor Health, lead leader.Leadership, log *slog.Logger, now func() time.Time, meter metric.Meter, every time.Duration) *Placer {
	if every <= 0 {
		every = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	if lead == nil {
		lead = leader.Sole{}
	}
	p := &Placer{db: store, bus: bus, monitor: monitor, log: log, now: now, every: every, leader: lead, wake: make(chan struct{}, 1),
		lastCheck: map[string]time.Time{}, resynced: map[string]time.Time{}, singlesSince: map[string]time.Time{}, inDoubt: map[ackKey]doubt{}, owedByWrite: map[string]bool{}, unread: map[string]int64{}, acking: map[ackKey]int64{}, buckets: map[string]*failover.Bucket{}, purging: map[string]bool{}, owed: map[string]bool{}, due: map[string]time.Time{}, gatesAt: map[string]time.Time{}, revisions: map[string]revisionsOf{}, chunk: failoverChunk, lossCheckEvery: 500, lossWait: newLossWait,
		cache: map[string]api.Workload{}}
	p.workloads = pgstore.NewFollow(store, "Workload", placerRelist, now)
	p.decisions, _ = meter.Int64Counter("placement.decisions", metric.WithUnit("{decision}"), metric.WithDescription("Placement decisions that changed where replicas go."))
	p.delivered, _ = meter.Int64Counter("placement.deliveries", metric.WithUnit("{delivery}"), metric.WithDescription("Desired-state deliveries acknowledged by members."))
	p.failovers, _ = meter.Int64Counter("failover.replicas", metric.WithUnit("{replica}"), metric.WithDescription("Replicas re-placed off lost or evacuated clusters, by reason."))
	p.held = newHeld()
	p.heldMetrics = newHeldMetrics(meter, p.held)
	p.tracer = otel.Tracer("github.com/atollhq/atoll/hub/placer")
	p.rebalanced, _ = meter.Int64Counter("placement.rebalanced", metric.WithUnit("{replica}"), metric.WithDescription("Replicas moved toward a fresh split by a rebalance (asked for, or a workload's auto policy)."))
	return p
}

// MeasureTraffic hands the placer the gateways' traffic, which
// progressive rollouts' traffic gates judge; call it before Start.
// Without it a traffic gate waits.
func (p *Placer) MeasureTraffic(t Traffic) { p.traffic = t }

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

// RunOnce decides, stores and delivers once (on the leader only), and
// returns once the pass's status writes are done too. It reads workloads
// incrementally from the change log (a full list every minute, after a
// gap, or at first), and decides again only the workloads that changed,
// or all of them when a cluster changed.
func (p *Placer) RunOnce(ctx context.Context) error {
	err := p.pass(ctx)
	p.waitMarks(0)
	return errors.Join(err, p.waitStatus(0))
}

// pass is RunOnce without waiting for its status writes: the loop's
// next pass decides and delivers the workloads created meanwhile while
// they run (writeStatus).
func (p *Placer) pass(ctx context.Context) error {
	began := time.Now()
	if !p.leader.IsLeader() {
		p.held.drop() // the next term reads them whole
		return nil
	}
	// The clusters Unreachable as the pass begins: one lost after this
	// has status-only writes give way (commitChanges).
	unreachable := map[string]bool{}
	for _, name := range p.monitor.Unreachable() {
		unreachable[name] = true
	}
	// A cluster lost since the last pass: the status writes under way
	// give way to it, and are waited for here (at most lossWait), so
	// that their workloads are decided in this pass with the others
	// rather than put off to the next one (writingStatus), a whole pass's
	// delivery later.
	// It, and the passes after it until one gets to decide (one may fail
	// before), read only a chunk of the change log, however far behind
	// (the status writes a loss sets off) and whatever the time since
	// their last whole list: a list of every workload held a failover
	// seconds. (A cluster's return while another stays lost is no new
	// loss.)
	waited, err := p.newLoss(ctx, unreachable)
	if err != nil {
		return err
	}
	if p.hurry {
		p.workloads.Hurry()
	}
	// What the last pass's status writes owe (they gave way to a lost
	// cluster) is decided again in this one.
	p.writeMu.Lock()
	for name := range p.owedByWrite {
		p.owed[name] = true
	}
	clear(p.owedByWrite)
	p.writeMu.Unlock()
	p.sawWrites()
	term := p.leader.Epoch()
	if term != p.term {
		p.workloads.Relist()
	}
	touched, full, more, err := p.refresh(ctx)
	if err != nil {
		return err
	}
	p.readBack()
	// Status writes of its own not read back while the log holds more (a
	// Read that stopped at a chunk): it reads on, a chunk at a time, until
	// they are, so that their workloads are decided in this pass (after a
	// new loss, with the others) rather than a pass, or a whole list,
	// later.
	for more && len(p.unread) > 0 {
		p.workloads.Hurry()
		var again map[string]bool
		if again, _, more, err = p.refresh(ctx); err != nil {
			for name := range touched {
				p.owed[name] = true // consumed from the log: decided in a later pass
			}
			return err
		}
		maps.Copy(touched, again)
		p.readBack()
	}
	refreshed := time.Since(began)
	if term != p.term {
		// A term of its own: every workload is decided again, from the
		// whole list just read (what happened while another hub led is
		// not in this hub's cache as decisions; the workloads deleted
		// meanwhile went with the list, their per-workload memory too).
		p.term = term
		for name := range p.cache {
			touched[name] = true
		}
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
	drifted, err := p.holdRows(ctx, term)
	if err != nil {
		return err
	}
	for name := range drifted {
		touched[name] = true // its rows were not what the pass held
	}
	var clusters []api.Cluster
	var view []failover.Cluster // read from the monitor once per pass
	var clusterKey, capKey strings.Builder
	for _, rec := range cres.Items {
		var c api.Cluster
		if err := rec.Decode(&c); err == nil {
			clusters = append(clusters, c)
			lc := failover.Cluster{Cluster: c}
			lc.Live, lc.Known = p.monitor.Live(c.Metadata.Name)
			writePlacementKey(&clusterKey, &capKey, lc)
			view = append(view, lc)
		}
	}
	residency, resKey, err := p.residencies(ctx)
	if err != nil {
		return err
	}
	if resKey != p.residencyKey {
		p.residencyKey = resKey // a residency changed: every workload may place differently
		for name := range p.cache {
			touched[name] = true
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
	lostNow, readyNow := map[string]bool{}, map[string]bool{}
	for _, lc := range view {
		if lc.Known && lc.Live.Health == api.HealthUnreachable {
			lostNow[lc.Metadata.Name] = true
		}
		if lc.Ready() {
			readyNow[lc.Metadata.Name] = true
		}
	}
	for name, w := range p.cache {
		switch {
		case w.Metadata.DeletionTimestamp != nil:
			touched[name] = true // its finalizer waits for the members' acks, not for a change
		case mayFailBack(w.Status.Placement, readyNow):
			touched[name] = true // failback runs by the clock too (its rate)
		case !p.due[name].IsZero() && !now.Before(p.due[name]):
			touched[name] = true // a window ran out (an auto rebalance's)
		}
	}
	// Those with replicas on a lost cluster are urgent: decided,
	// stored and delivered first, a chunk at a time.
	urgent := map[string]bool{}
	if len(lostNow) > 0 {
		p.held.each(func(r *pgstore.Placement) {
			if !r.Deleted && r.Replicas > 0 && lostNow[r.Cluster] {
				touched[r.Workload] = true
				urgent[r.Workload] = true
			}
		})
	}
	var errs []error
	ledger := failover.NewLedger(view)
	// Workloads rolling out progressively are decided against their
	// template revisions, and on every report of their members while a
	// rollout runs.
	for name, w := range p.cache {
		if r := w.Status.Rollout; w.Spec.Rollout != nil && r != nil && r.Phase != api.RolloutCompleted && r.Phase != api.RolloutRolledBack {
			touched[name] = true
		}
	}
	// A workload whose status the last pass is still writing is decided
	// once that write is done and read back (a decision against the
	// status before it would write an outdated one): owed, and the write
	// wakes the next pass when it ends.
	for name := range touched {
		if p.writingStatus(name) {
			delete(touched, name)
			p.owed[name] = true
		}
	}
	if err := p.readRevisions(ctx, slices.Sorted(maps.Keys(touched))); err != nil {
		return err
	}
	// The placement rows first, then delivery and, alongside it, the
	// workloads' status and events: members get their work without
	// waiting for bookkeeping. The status writes run on after the pass
	// (writeStatus), so the workloads created meanwhile wait for the next
	// pass's delivery, not for this pass's bookkeeping. (Workloads carry
	// the placement finalizer from creation, so a delete in between still
	// goes through tombstones.) The urgent workloads go first, a chunk at
	// a time: a lost cluster's first replacements reach their members
	// while the rest are decided, and its replacements take the free
	// capacity before anything else.
	for name := range p.owed {
		if !p.writingStatus(name) {
			delete(p.owed, name) // decided again below
		}
	}
	var changes []*change
	var ahead []*delivery
	decided := time.Now()
	var stored time.Time // the last urgent chunk's rows
	// A cluster lost while this pass decides: what it has not decided
	// yet is owed to the next pass, which starts at once as the
	// failover's (the lost cluster's workloads first, its read hurried),
	// rather than once this one decided everything against the health
	// it read (a pass that decides every workload for a Suspect cluster
	// held the failover 0.8-1.35 s in the 10% scale runs).
	// The pass after one cut short is not cut itself: losses one after
	// another (a partition flapping over clusters) would otherwise cut
	// every pass, and as every workload is decided again, in name order,
	// on a health change, those late in that order would never be.
	mayCut, cut := !p.cut, false
	lostMeanwhile := func() bool { return mayCut && p.lostMeanwhile(unreachable) }
	groups := failoverGroups(slices.Sorted(maps.Keys(touched)), urgent, p.chunk)
	for i, names := range groups {
		done, rest, err := p.settle(ctx, names, residency, view, now, ledger, lostMeanwhile)
		changes = append(changes, done...)
		errs = append(errs, err)
		if len(names) > 0 && urgent[names[0]] {
			stored = time.Now()
		}
		if len(rest) > 0 {
			for _, name := range rest {
				p.owed[name] = true
			}
			for _, g := range groups[i+1:] {
				for _, name := range g {
					p.owed[name] = true
				}
			}
			p.Wake()
			cut = true
			break // this group's rows go with the pass's whole delivery
		}
		if i < len(groups)-1 {
			// Delivered while the next groups are decided and stored
			// (a busy member's answers would hold them otherwise).
			ahead = append(ahead, p.startDelivery(ctx, p.cache, clusters, names))
		}
	}
	p.hurry = false // decided
	p.cut = cut
	for _, d := range ahead {
		d.wg.Wait() // all of them before any ends: their requests read acking
	}
	for _, d := range ahead {
		errs = append(errs, p.endDelivery(ctx, d))
	}
	// Then what any member lacks, and the digests due.
	if err := p.deliver(ctx, p.cache, clusters); err != nil {
		errs = append(errs, err)
	}
	moved := 0
	for _, ch := range changes {
		if urgent[ch.name] {
			moved++
		}
	}
	if moved > 0 {
		p.log.InfoContext(ctx, "failover pass", "workloads", moved, "lost", slices.Sorted(maps.Keys(lostNow)),
			"waited", waited.Round(time.Millisecond), "refreshed", refreshed.Round(time.Millisecond), "listed", full,
			"read", decided.Sub(began).Round(time.Millisecond), "stored", stored.Sub(began).Round(time.Millisecond),
			"delivered", time.Since(began).Round(time.Millisecond))
	}
	// The status writes start once every group was delivered (they would
	// take the CPU the later groups' decisions need).
	p.writeStatus(ctx, changes, unreachable)
	// At most one pass's writes wait behind the running ones: a pass
	// that delivers faster than the database takes them waits here.
	p.waitMarks(len(groups))
	if err := p.waitStatus(1); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// mayFailBack says whether a failed-over workload's failback may run by
// the clock (its rate limit refilling): some cluster it failed over from
// is Ready. While none is, nothing moves back, and a cluster's return
// changes the placement key, which decides every workload; deciding every
// failed-over workload on every pass while its cluster stays lost cost
// 0.3-0.5 s a pass at 10,000 of them.
func mayFailBack(ps *api.PlacementStatus, ready map[string]bool) bool {
	if ps == nil {
		return false
	}
	for c := range ps.FailedOverFrom {
		if ready[c] {
			return true
		}
	}
	return false
}

// newLoss notes the clusters Unreachable as a pass begins (unreachable)
// and, when one of them is newly lost, hurries the passes' reads until one
// decides and waits (at most lossWait) for the status writes under way.
// It returns how long it waited.
func (p *Placer) newLoss(ctx context.Context, unreachable map[string]bool) (time.Duration, error) {
	newlyLost := false
	for name := range unreachable {
		newlyLost = newlyLost || !p.wasLost[name]
	}
	p.wasLost = unreachable
	if !newlyLost {
		return 0, nil
	}
	began := time.Now()
	p.hurry = true // until a pass decides (one may fail before it does)
	if len(p.writes) > 0 && p.waitingForWrites != nil {
		p.waitingForWrites()
	}
	// Not longer than lossWait: a write held up (a row lock another hub
	// holds, until its lock timeout) keeps its workloads, put off as any
	// under way, not the whole failover.
	timeout := time.NewTimer(p.lossWait)
	defer timeout.Stop()
	for len(p.writes) > 0 {
		select {
		case <-p.writes[0].done: // its errors stay for the pass's end (waitStatus)
		case <-timeout.C:
			return time.Since(began), nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		p.noteWritten(p.writes[0])
		p.writes = p.writes[1:]
	}
	return time.Since(began), nil
}

// newLossWait is the longest a pass that finds a cluster newly lost
// waits for the status writes under way: those of status alone give way
// to the loss within a batch's write, moves' go on to their end.
const newLossWait = time.Second

// failoverChunk is the most urgent workloads (with replicas on a lost
// cluster) a pass decides, stores and delivers at a time.
const failoverChunk = 2000

// failoverGroups splits a pass's workloads (names, sorted) into what it
// settles in turn: the urgent ones first, in chunks of at most chunk,
// then the rest. With nothing urgent, one group of all (possibly empty:
// the pass still delivers).
func failoverGroups(names []string, urgent map[string]bool, chunk int) [][]string {
	chunk = max(chunk, 1) // 0 would never end
	var first, rest []string
	for _, name := range names {
		if urgent[name] {
			first = append(first, name)
		} else {
			rest = append(rest, name)
		}
	}
	var groups [][]string
	for len(first) > 0 {
		n := min(chunk, len(first))
		groups = append(groups, first[:n:n])
		first = first[n:]
	}
	if len(rest) > 0 || len(groups) == 0 {
		groups = append(groups, rest)
	}
	return groups
}

// settle decides the workloads named and stores their rows. It returns
// the changes stored, whose status is yet to write, and the names it
// left undecided: every lossCheckEvery workloads it asks stop, and
// stops when told to.
func (p *Placer) settle(ctx context.Context, names []string, residency map[string]*api.LabelSelector, view []failover.Cluster, now time.Time, ledger failover.Ledger, stop func() bool) ([]*change, []string, error) {
	var errs []error
	var changes []*change
	var rest []string
	for i, name := range names {
		if i > 0 && i%p.lossCheckEvery == 0 && stop() {
			rest = names[i:]
			break
		}
		w, ok := p.cache[name]
		if !ok {
			continue
		}
		if w.Metadata.DeletionTimestamp != nil {
			if err := p.retire(ctx, w, p.held.of(w.Metadata.Name)); err != nil {
				errs = append(errs, fmt.Errorf("retire %s: %w", w.Metadata.Name, err))
			}
			continue
		}
		if ch := p.decide(resident(w, residency), view, p.held.of(w.Metadata.Name), now, ledger); ch != nil {
			changes = append(changes, ch)
		}
	}
	if len(changes) > 0 {
		if err := p.commitRows(ctx, changes); err != nil {
			errs = append(errs, err)
			for _, ch := range changes {
				p.owed[ch.name] = true // decided again next pass
			}
			changes = nil
		}
	}
	return changes, rest, errors.Join(errs...)
}

// groupByWorkload indexes rows by workload. The store returns them sorted
// by workload, so each workload's rows are a run of rows, taken as it is
// (capped: an append copies) rather than copied: the rows held share one
// backing array after a whole read. A workload whose rows are not one run
// gets them copied together.
func groupByWorkload(rows []pgstore.Placement) map[string][]pgstore.Placement {
	out := map[string][]pgstore.Placement{}
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].Workload == rows[i].Workload {
			j++
		}
		if prev, ok := out[rows[i].Workload]; ok {
			out[rows[i].Workload] = append(slices.Clip(prev), rows[i:j]...)
		} else {
			out[rows[i].Workload] = rows[i:j:j]
		}
		i = j
	}
	return out
}

// statusWrite is one pass's status writes under way.
type statusWrite struct {
	done  chan struct{}
	names map[string]bool
	woken bool // a later pass put off one of names: wake a pass at the end
	// ended: done before the pass under way read the change log (set by
	// sawWrites); what it wrote is then read as any other write, once the
	// cache has read as far as its version (unread).
	ended bool
	// versions: each workload's version as written (set before done);
	// noted: taken into unread.
	versions map[string]int64
	noted    bool
}

// noteWritten takes a status write that ended into unread: its workloads
// wait until the cache has read their versions.
func (p *Placer) noteWritten(w *statusWrite) {
	if w.noted {
		return
	}
	w.noted = true
	for name, rv := range w.versions {
		p.unread[name] = max(p.unread[name], rv)
	}
}

// sawWrites notes which status writes had ended before the pass reads
// the change log: one that ends later is still being written for this
// pass, whose workloads cache has not read it.
func (p *Placer) sawWrites() {
	for _, w := range p.writes {
		select {
		case <-w.done:
			w.ended = true
			p.noteWritten(w)
		default:
		}
	}
}

// writeStatus starts writing changes' status, conditions and events
// (commitChanges) once the previous pass's are written, and returns.
func (p *Placer) writeStatus(ctx context.Context, changes []*change, lost map[string]bool) {
	if len(changes) == 0 {
		return
	}
	w := &statusWrite{done: make(chan struct{}), names: make(map[string]bool, len(changes))}
	for _, ch := range changes {
		w.names[ch.name] = true
	}
	var prev chan struct{}
	if n := len(p.writes); n > 0 {
		prev = p.writes[n-1].done
	}
	p.writes = append(p.writes, w)
	go func() {
		defer close(w.done)
		if prev != nil {
			<-prev
		}
		err := p.commitChanges(ctx, changes, lost)
		w.versions = make(map[string]int64, len(changes))
		for _, ch := range changes {
			if ch.written > 0 {
				w.versions[ch.name] = ch.written
			}
		}
		p.writeMu.Lock()
		p.writeErr = errors.Join(p.writeErr, err)
		p.writeMu.Unlock()
	}()
}

// readBack forgets the status writes of the placer's own that the
// workloads cache has read (unread).
func (p *Placer) readBack() {
	for name, rv := range p.unread {
		if rv <= p.workloads.Version() {
			delete(p.unread, name)
		}
	}
}

// writingStatus says whether a workload's status is being written, or
// was when the pass read the change log, or was written and not read
// back yet (unread); a pass that puts the workload off for a write under
// way has a pass woken once it is written (one not read back: the next
// pass reads on).
func (p *Placer) writingStatus(name string) bool {
	if _, ok := p.unread[name]; ok {
		return true // written, not read back yet: a later pass reads on
	}
	for _, w := range p.writes {
		if w.ended {
			continue // written before this pass read the log
		}
		if w.names[name] {
			if !w.woken {
				w.woken = true
				go func() {
					<-w.done
					p.Wake()
				}()
			}
			return true
		}
	}
	return false
}

// waitStatus waits until at most keep passes' status writes are under
// way and returns the errors of those that ended.
func (p *Placer) waitStatus(keep int) error {
	for len(p.writes) > keep {
		<-p.writes[0].done
		p.noteWritten(p.writes[0])
		p.writes = p.writes[1:]
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	err := p.writeErr
	p.writeErr = nil
	return err
}

// refresh brings the workload cache up to date and returns the names that
// changed since the last pass, whether it listed them all, and whether
// the log holds more than it read (More: a pass is woken to read on).
func (p *Placer) refresh(ctx context.Context) (touched map[string]bool, full, more bool, err error) {
	touched = map[string]bool{}
	upd, err := p.workloads.Read(ctx)
	if err != nil {
		return nil, false, false, err
	}
	if upd.More {
		p.Wake() // the log holds more: the next pass reads on
	}
	// take applies one workload as read (nil: deleted) and says whether
	// it must be decided again: a status write (the members' reports
	// folded, the placer's own) changes nothing placement reads, unless a
	// graceful purge waits for the replacements to be ready.
	take := func(name string, w *api.Workload) {
		old, had := p.cache[name]
		if w == nil {
			delete(p.cache, name)
			delete(p.buckets, name) // the pass's per-workload memory goes with it
			delete(p.purging, name)
			delete(p.due, name)
			delete(p.gatesAt, name)
			delete(p.revisions, name)
			touched[name] = true
			return
		}
		slim(w)
		p.cache[name] = *w
		if !had || placementInputChanged(old, *w) || p.purging[name] {
			touched[name] = true
		}
	}
	if upd.Full {
		// A whole list decides again only what differs from the cache,
		// as the change log would have: at 100,000 workloads, deciding
		// them all on every list would keep a core busy.
		listed := make(map[string]bool, len(p.cache))
		err := upd.Each(ctx, func(rec *pgstore.Record) error {
			var w api.Workload
			if err := rec.DecodeObject(&w); err == nil {
				listed[w.Metadata.Name] = true
				take(w.Metadata.Name, &w)
			}
			return nil
		})
		if err != nil {
			// A page's read failed: what the pages before it changed is
			// in the cache, so it is owed a decision (the next list finds
			// those workloads as cached); the rest comes with that list.
			for name := range touched {
				p.owed[name] = true
			}
			p.workloads.Relist()
			return nil, true, false, err
		}
		for name := range p.cache {
			if !listed[name] {
				take(name, nil)
			}
		}
		return touched, true, false, nil
	}
	for _, c := range upd.Changes {
		var w api.Workload
		if json.Unmarshal(c.Object, &w) != nil {
			continue
		}
		if c.Type == api.Deleted {
			take(c.Name, nil)
		} else {
			take(c.Name, &w)
		}
	}
	return touched, false, upd.More, nil
}

// slim drops from a cached workload's status what no decision reads:
// each cluster's example replicas, problems, states, conditions and
// words (the status folder's, for people), the workload's conditions and
// standby images. Status writes start from the stored record, never from
// the cache; at 100,000 workloads over 10 clusters each, the examples
// alone were most of the cache, and the rows' words and times then a
// third of it.
func slim(w *api.Workload) {
	for i := range w.Status.Clusters {
		c := &w.Status.Clusters[i]
		c.Examples, c.Problems, c.States, c.Conditions = nil, nil, nil, nil
		c.Region, c.Pending, c.Data, c.ReportedAt, c.ClusterHealth = "", "", "", nil, ""
	}
	w.Status.Conditions, w.Status.Images = nil, nil
}

// placerRelist is how often the placer reads every workload whole again
// (else only the change log since its last pass).
const placerRelist = time.Minute

// change is what a pass decided for one workload.
type change struct {
	name     string
	rows     []pgstore.Placement // rows whose count or generation changed
	status   *api.PlacementStatus
	decision placement.Decision
	epoch    int64            // the epoch kept when no row changed
	written  int64            // the workload's version its status write committed (0: none)
	lost     map[string]int32 // replicas taken off lost or evicted clusters
	back     map[string]int32 // replicas moved back to returned clusters
	moves    []api.RebalanceMove
	// rollout is the progressive rollout's status to store (nil: none);
	// rolloutEvents what it tells.
	rollout       *api.RolloutStatus
	rolloutEvents []progressive.Event
}

// decide computes one workload's placement (package failover decides);
// nil means nothing to write.
func (p *Placer) decide(w api.Workload, clusters []failover.Cluster, rows []pgstore.Placement, now time.Time, ledger failover.Ledger) *change {
	name := w.Metadata.Name
	current := map[string]int32{}
	epochs := map[string]int64{}
	have := map[string]pgstore.Placement{}
	for _, r := range rows {
		have[r.Cluster] = r
		epochs[r.Cluster] = r.Epoch
		if !r.Deleted {
			current[r.Cluster] = r.Replicas
		}
	}
	asked := rebalanceAsked(w)
	res := failover.Decide(failover.Input{Workload: &w, Clusters: clusters, Current: current, Epochs: epochs, Bucket: p.buckets[name], Now: now,
		RebalanceAsked: asked != ""}, ledger)
	p.wakeAt(res.WakeAt)
	if res.WakeAt.IsZero() {
		delete(p.due, name)
	} else {
		p.due[name] = res.WakeAt
	}
	if res.Bucket != nil {
		p.buckets[name] = res.Bucket
	} else {
		delete(p.buckets, name)
	}
	// While a rule waits on what the members report, a status change
	// decides the workload again.
	if res.Waiting {
		p.purging[name] = true
	} else {
		delete(p.purging, name)
	}
	d := res.Decision
	// A progressive rollout gives each cluster its revision, delivered at
	// that revision's generation.
	roll, gens, rolling := rolloutStep(&w, p.revisions[name].revs, d.Assignment, clusters, p.traffic, now)
	genOf := func(c string) int64 {
		if g, ok := gens[c]; ok {
			return g
		}
		return w.Metadata.Generation
	}
	if rolling {
		p.wakeAt(roll.Wake)
		if !roll.Wake.IsZero() && (p.due[name].IsZero() || roll.Wake.Before(p.due[name])) {
			p.due[name] = roll.Wake
		}
	}
	ch := &change{name: name, decision: d, lost: res.Lost, back: res.Back, moves: res.Rebalance.Moves,
		status: &api.PlacementStatus{Clusters: d.Assignment, Unplaced: d.Unplaced, Reason: d.UnplacedReason, Filtered: policyReasons(d.Filtered), Explanation: d.Explanation,
			FailedOverFrom: res.FailedOverFrom, FailingBack: res.FailingBack}}
	if w.Status.Placement != nil {
		ch.status.Rebalanced = w.Status.Placement.Rebalanced
	}
	if res.Rebalance.Done {
		ch.status.Rebalanced = asked // answered: the next pass does not move again
	}
	for _, c := range sortedKeys(d.Assignment, current) {
		n := d.Assignment[c]
		r, ok := have[c]
		if ok && !r.Deleted && r.Replicas == n && r.Generation == genOf(c) {
			continue
		}
		if !ok && n == 0 {
			continue
		}
		ch.rows = append(ch.rows, pgstore.Placement{Workload: name, Cluster: c, Replicas: n, Generation: genOf(c)})
	}
	if rolling {
		ch.rollout, ch.rolloutEvents = &roll.Status, roll.Events
		// The words move with every measurement (traffic counts change
		// each second): a status that differs in them alone is written at
		// most every gateWordsEvery; a new phase, wave or revision at once.
		if old := w.Status.Rollout; old != nil && len(roll.Events) == 0 && sameRolloutButWords(old, &roll.Status) && !sameRollout(old, &roll.Status) {
			if now.Sub(p.gatesAt[name]) < gateWordsEvery {
				ch.rollout = old
			} else {
				p.gatesAt[name] = now
			}
		}
	}
	if w.Status.Placement != nil {
		ch.epoch = w.Status.Placement.Epoch
	}
	if len(ch.rows) == 0 && slices.Contains(w.Metadata.Finalizers, Finalizer) && samePlacementStatus(w.Status.Placement, ch.status) &&
		sameRollout(w.Status.Rollout, ch.rollout) && len(ch.rolloutEvents) == 0 {
		return nil
	}
	return ch
}

// rebalanceAsked is a workload's rebalance request not carried out yet
// ("" when none).
func rebalanceAsked(w api.Workload) string {
	req := w.Metadata.Annotations[api.AnnotationRebalanceRequestedAt]
	if req == "" || (w.Status.Placement != nil && w.Status.Placement.Rebalanced == req) {
		return ""
	}
	return req
}

// Start runs a pass now, then every period and soon after Wake, until
// Stop.
func (p *Placer) Start(ctx context.Context) {
	p.Wake()
	p.loop.Start(ctx, p.log, "placement pass failed", p.every, p.wake, p.pass)
}

// Stop ends the controller, its last status writes included; safe to
// call twice and before Start.
func (p *Placer) Stop() {
	p.loop.Stop()
	p.waitMarks(0)
	_ = p.waitStatus(0)
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

func samePlacementStatus(a, b *api.PlacementStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	// The explanation follows free capacity; rewrite only when the
	// outcome changes.
	// An empty map and none are the same outcome (a stored status drops
	// empty maps; a fresh decision has them).
	// A cluster's health is not in a stored status (policyReasons): it
	// is no outcome of its own.
	key := func(s *api.PlacementStatus) string {
		s = &api.PlacementStatus{Clusters: nilIfEmpty(s.Clusters), Unplaced: s.Unplaced, Reason: s.Reason,
			Filtered: nilIfEmpty(s.Filtered), FailedOverFrom: nilIfEmpty(s.FailedOverFrom), FailingBack: nilIfEmpty(s.FailingBack), Rebalanced: s.Rebalanced}
		j, _ := json.Marshal(struct {
			C  map[string]int32
			U  int32
			R  string
			F  map[string]string
			FO map[string]int32
			FB map[string]int32
			RB string
		}{s.Clusters, s.Unplaced, s.Reason, s.Filtered, s.FailedOverFrom, s.FailingBack, s.Rebalanced})
		return string(j)
	}
	return key(a) == key(b)
}

// policyReasons is a decision's filter reasons without those that are a
// cluster's health (Suspect, Unknown, Unreachable, within a grace or
// not): what a workload's status stores. Health flaps by the second and
// every workload that could have gone to the cluster would say so; at
// 100,000 workloads one cluster's missed heartbeats were 100,000 status
// writes, and as many again when it was back. Nor may it be stored and
// left unwritten when it changes: a status written while a cluster was
// Suspect would say so long after it is Ready. The cluster's health is
// the cluster's to say (its condition); the decision keeps the reasons
// for events and failover.
func policyReasons(filtered map[string]string) map[string]string {
	out := maps.Clone(filtered)
	maps.DeleteFunc(out, func(_, reason string) bool { return placement.HealthReason(reason) })
	return out
}

// writePlacementKey appends what placement reads of a cluster to key,
// and its free capacity to capKey: a change in key re-decides every
// workload, one in capKey only those waiting for room.
func writePlacementKey(key, capKey *strings.Builder, c failover.Cluster) {
	j, _ := json.Marshal(struct {
		N  string
		L  map[string]string
		T  []api.Taint
		U  bool
		D  bool
		H  string
		SH string
	}{c.Metadata.Name, c.Metadata.Labels, c.Spec.Taints, c.Spec.Unschedulable, c.Metadata.DeletionTimestamp != nil, c.Live.Health, c.Status.Health})
	key.Write(j)
	if c.Known {
		fmt.Fprintf(capKey, "%s:%v:%+v;", c.Metadata.Name, c.Live.Heard, c.Live.Capacity)
	}
}

// placementInputChanged says whether a workload changed in a way its
// placement reads: its spec (generation), deletion, finalizers or a
// rebalance request.
func placementInputChanged(old, cur api.Workload) bool {
	return old.Metadata.Generation != cur.Metadata.Generation ||
		old.Metadata.Annotations[api.AnnotationRebalanceRequestedAt] != cur.Metadata.Annotations[api.AnnotationRebalanceRequestedAt] ||
		(old.Metadata.DeletionTimestamp == nil) != (cur.Metadata.DeletionTimestamp == nil) ||
		!slices.Equal(old.Metadata.Finalizers, cur.Metadata.Finalizers)
}

func nilIfEmpty[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) == 0 {
		return nil
	}
	return m
}

// Store is what the placement controller reads and writes
// (*pgstore.Store has it).
type Store interface {
	List(ctx context.Context, kind string, opts pgstore.ListOptions) (*pgstore.ListResult, error)
	Changes(ctx context.Context, kind string, after int64, limit int) ([]pgstore.Change, error)
	Placements(ctx context.Context) ([]pgstore.Placement, error)
	PlacementsOf(ctx context.Context, workload string) ([]pgstore.Placement, error)
	Get(ctx context.Context, kind, name string) (*pgstore.Record, error)
	Revisions(ctx context.Context, workload string) ([]pgstore.RevisionRow, error)
	RevisionsOf(ctx context.Context, workloads []string) (map[string][]pgstore.RevisionRow, error)
	InTx(ctx context.Context, actor pgstore.Actor, fn func(tx *pgstore.Tx) error) error
	MarkDeliveredAll(ctx context.Context, cluster string, rows []pgstore.Placement) error
	MarkUndelivered(ctx context.Context, workload, cluster string) error
}

// Bus is the hub's NATS as the controller uses it: a request to one
// member (*natsbus.Bus has it).
type Bus interface {
	Request(ctx context.Context, cluster, subject string, data []byte) ([]byte, error)
}

// Health is the live cluster health the controller decides with
// (*members.Monitor has it).
type Health interface {
	Live(cluster string) (failover.Live, bool)
	Unreachable() []string
}
