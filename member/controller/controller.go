package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// Config configures a Controller. Zero values mean the defaults.
type Config struct {
	Store *state.Store
	Nodes *Nodes
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Data is what the member holds of configs and secrets, DataID ->
	// version (nil: nothing): their versions are stamped on templates
	// (stampData), so that new values roll the replicas.
	Data func() map[string]int64
	// Every is the resync period (a pass over every workload); default 1s.
	// Wake forces such a pass sooner, WakeFor one over some workloads.
	Every time.Duration
	// Meter; nil means no metrics.
	Meter metric.Meter
}

// Controller keeps the region's replicas as desired.
type Controller struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	wake chan struct{}

	keys *TemplateKeys // the pass's only

	nodesLost, behindTimes metric.Int64Counter

	mu        sync.Mutex
	status    []protocol.WorkloadStatus          // sorted by workload
	statusOf  map[string]protocol.WorkloadStatus // the same, by workload
	statusGen uint64                             // counts the passes that changed status (StatusSince)
	progress  map[string]progress
	// What the next pass woken early covers: every workload (full), or
	// only the ones whose desired state or replicas changed (dirty).
	full  bool
	dirty map[string]bool
	// lost are the nodes the last pass found lost (told once: a Warn
	// line and member.nodes.lost when a node turns lost, an Info line
	// when it is heard again).
	lost map[string]bool
	// behind is since when the registry was last told behind its
	// nodes' heartbeats (zero: it keeps up), keptUp since when it has
	// kept up again (the episode ends a grace later).
	behind, keptUp time.Time

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// progress tracks a rolling update, to tell a stall from slowness.
type progress struct {
	generation int64
	scheduled  int32
	updated    int32
	ready      int32
	since      time.Time
}

// New makes a controller.
func New(cfg Config) *Controller {
	c := &Controller{cfg: cfg, log: cfg.Logger, now: cfg.Now, wake: make(chan struct{}, 1), progress: map[string]progress{}, done: make(chan struct{}),
		keys: NewTemplateKeys(), statusOf: map[string]protocol.WorkloadStatus{}, dirty: map[string]bool{}, lost: map[string]bool{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.cfg.Every <= 0 {
		c.cfg.Every = time.Second
	}
	meter := cfg.Meter
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("")
	}
	c.nodesLost, _ = meter.Int64Counter("member.nodes.lost", metric.WithUnit("{node}"),
		metric.WithDescription("Nodes found silent beyond their grace: their replicas were bound elsewhere."))
	c.behindTimes, _ = meter.Int64Counter("member.nodes.behind", metric.WithUnit("{episode}"),
		metric.WithDescription("Times the member fell behind reading its nodes' heartbeats, and held its judgements of their silence."))
	return c
}

// Wake asks for a pass over every workload as soon as possible (a node
// appeared, changed or was lost: any workload may place differently).
func (c *Controller) Wake() {
	c.mu.Lock()
	c.full = true
	c.mu.Unlock()
	c.poke()
}

// WakeFor asks for a pass over these workloads as soon as possible: their
// desired state or their replicas changed. Such a pass plans only them (a
// failover that delivers a thousand workloads does not plan the whole
// region a thousand times), and when it frees room, the workloads with
// replicas pending are planned next; the periodic pass still covers
// everything.
func (c *Controller) WakeFor(workloads ...string) {
	c.mu.Lock()
	for _, w := range workloads {
		c.dirty[w] = true
	}
	c.mu.Unlock()
	c.poke()
}

func (c *Controller) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Status is the per-workload status of the last pass.
func (c *Controller) Status() []protocol.WorkloadStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]protocol.WorkloadStatus(nil), c.status...)
}

// StatusSince is the status as Status gives it and its generation, which
// changes only when a workload's status changes, comes or goes; when the
// generation is still gen, it is nil and false: a reporter that looks
// four times a second at 10,000 workloads copies and compares them only
// when something changed.
func (c *Controller) StatusSince(gen uint64) ([]protocol.WorkloadStatus, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.statusGen {
		return nil, gen, false
	}
	return append([]protocol.WorkloadStatus(nil), c.status...), c.statusGen, true
}

// newReplicaID names a new replica: 48 random bits, so that the 100,000
// replicas of a workload at the API's maximum count (spread over regions
// that name theirs independently) almost surely never share a name (32
// bits did, about once per such workload).
func newReplicaID(workload string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return workload + "-" + hex.EncodeToString(b[:])
}

// RunOnce reads the state, decides every workload and writes the
// bindings.
func (c *Controller) RunOnce(ctx context.Context) (Changes, error) {
	c.mu.Lock()
	c.full = false
	clear(c.dirty) // all covered
	c.mu.Unlock()
	return c.pass(ctx, nil)
}

// runWoken runs the pass an early wake asked for: every workload, or only
// the dirty ones.
func (c *Controller) runWoken(ctx context.Context) (Changes, error) {
	c.mu.Lock()
	full, only := c.full, c.dirty
	c.full, c.dirty = false, map[string]bool{}
	c.mu.Unlock()
	switch {
	case full:
		return c.pass(ctx, nil)
	case len(only) == 0:
		return Changes{}, nil
	}
	return c.pass(ctx, only)
}

// pass decides the workloads in only (nil: all) and writes the bindings.
func (c *Controller) pass(ctx context.Context, only map[string]bool) (Changes, error) {
	var desired map[string]protocol.DesiredWorkload
	var err error
	if only == nil {
		desired, err = c.cfg.Store.Desired(ctx)
	} else {
		desired, err = c.cfg.Store.DesiredFor(ctx, slices.Collect(maps.Keys(only)))
	}
	if err != nil {
		c.redo(only)
		return Changes{}, err
	}
	bindings, err := c.cfg.Store.Bindings(ctx)
	if err != nil {
		c.redo(only)
		return Changes{}, err
	}
	if c.cfg.Data != nil {
		stampData(desired, c.cfg.Data())
	}
	now := c.now()
	if only == nil {
		c.keys.keep(desired, bindings)
	}
	snap := Snapshot{Desired: desired, Bindings: bindings, Nodes: c.cfg.Nodes.Snapshot(now), Stalled: c.stalled(desired, now), Now: now, Keys: c.keys, Only: only}
	ch := plan(snap, newReplicaID)
	// Removals first (they free room the additions were planned into),
	// each phase one batch of KV writes (state.Store.WriteBindings): a
	// failover that binds thousands of replicas does not wait on them one
	// by one.
	var errs []error
	errs = append(errs, c.cfg.Store.WriteBindings(ctx, ch.Delete, ch.Put))
	c.mu.Lock()
	// before is the status of the workloads planned again (none if
	// deleted or tombstoned): what a change of the status is told from.
	var before map[string]protocol.WorkloadStatus
	if only == nil {
		before, c.statusOf = c.statusOf, make(map[string]protocol.WorkloadStatus, len(c.statusOf))
	} else {
		before = make(map[string]protocol.WorkloadStatus, len(only))
		for w := range only {
			if st, ok := c.statusOf[w]; ok {
				before[w] = st
				delete(c.statusOf, w)
			}
		}
	}
	changed := false
	for _, st := range ch.Status {
		if old, ok := before[st.Workload]; !ok || !old.Equal(st) {
			changed = true
		}
		delete(before, st.Workload)
		c.statusOf[st.Workload] = st
		p := c.progress[st.Workload]
		if p.generation != st.Generation || p.scheduled != st.Scheduled || p.updated != st.Updated || p.ready != st.Ready {
			c.progress[st.Workload] = progress{generation: st.Generation, scheduled: st.Scheduled, updated: st.Updated, ready: st.Ready, since: now}
		}
	}
	for w := range c.progress {
		if _, ok := c.statusOf[w]; !ok {
			delete(c.progress, w) // deleted or tombstoned
		}
	}
	if changed || len(before) > 0 { // a status changed, came or went
		c.statusGen++
	}
	c.status = make([]protocol.WorkloadStatus, 0, len(c.statusOf))
	freed := only != nil && len(ch.Delete) > 0
	for _, w := range slices.Sorted(maps.Keys(c.statusOf)) {
		st := c.statusOf[w]
		c.status = append(c.status, st)
		if freed && st.Pending != "" && !only[w] {
			c.dirty[w] = true // room this pass freed may take its pending replicas
		}
	}
	c.mu.Unlock()
	if freed {
		c.poke()
	}
	c.tellNodes(ctx, snap.Nodes, bindings, now)
	if len(ch.Put)+len(ch.Delete) > 0 {
		c.log.InfoContext(ctx, "replicas rebound", "added", len(ch.Put), "removed", len(ch.Delete))
	}
	return ch, errors.Join(errs...)
}

// tellNodes logs and counts the nodes that turned lost since the last
// pass (with how long they were silent and how many replicas were bound
// to them: a pass over some workloads moves theirs, the next full pass
// the rest) and those heard again.
func (c *Controller) tellNodes(ctx context.Context, nodes map[string]NodeView, bindings []protocol.Binding, now time.Time) {
	since, unread := c.cfg.Nodes.Behind()
	c.mu.Lock()
	lost, back := nodeTransitions(c.lost, nodes)
	// An episode of reading late ends once the registry has kept up for
	// a grace: a backlog that comes and goes between passes is one
	// episode, told once.
	began, ended := false, false
	var behindFor time.Duration
	switch {
	case !since.IsZero():
		c.keptUp = time.Time{}
		if c.behind.IsZero() {
			c.behind, began = since, true
		}
	case !c.behind.IsZero():
		if c.keptUp.IsZero() {
			c.keptUp = now
		}
		if now.Sub(c.keptUp) >= c.cfg.Nodes.grace {
			ended, behindFor = true, c.keptUp.Sub(c.behind)
			c.behind, c.keptUp = time.Time{}, time.Time{}
		}
	}
	c.mu.Unlock()
	switch {
	case began:
		c.log.WarnContext(ctx, "node heartbeats read late: nodes silent past their grace keep their replicas until the member catches up (at most two graces)",
			"unread", unread)
		c.behindTimes.Add(ctx, 1)
	case ended:
		c.log.InfoContext(ctx, "node heartbeats read in time again", "behind_for", behindFor.Round(time.Millisecond))
	}
	if len(lost)+len(back) == 0 {
		return
	}
	moved := map[string]int{}
	for _, b := range bindings {
		if nodes[b.Node].Lost {
			moved[b.Node]++
		}
	}
	for _, n := range lost {
		c.log.WarnContext(ctx, "node lost: silent beyond its grace; its replicas are bound elsewhere", "node", n,
			"silent_for", now.Sub(nodes[n].Seen).Round(time.Millisecond), "replicas", moved[n], "heartbeats_unread", unread)
	}
	c.nodesLost.Add(ctx, int64(len(lost)))
	for _, n := range back {
		c.log.InfoContext(ctx, "node heard again after it was lost", "node", n)
	}
}

// nodeTransitions updates known (the nodes known lost) from nodes and
// returns the nodes that turned lost and those no longer lost, sorted.
func nodeTransitions(known map[string]bool, nodes map[string]NodeView) (lost, back []string) {
	for n, v := range nodes {
		if v.Lost && !known[n] {
			known[n] = true
			lost = append(lost, n)
		}
	}
	for n := range known {
		v, ok := nodes[n]
		if !ok || !v.Lost {
			delete(known, n)
		}
		if ok && !v.Lost {
			back = append(back, n)
		}
	}
	slices.Sort(lost)
	slices.Sort(back)
	return lost, back
}

// redo marks a failed pass's workloads for the next one.
func (c *Controller) redo(only map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if only == nil {
		c.full = true
		return
	}
	for w := range only {
		c.dirty[w] = true
	}
}

// stalled lists workloads whose rolling update has not progressed within
// their deadline (default 10m).
func (c *Controller) stalled(desired map[string]protocol.DesiredWorkload, now time.Time) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for w, d := range desired {
		p, ok := c.progress[w]
		// A rolling update is in progress while old replicas remain
		// (scheduled beyond the updated ones).
		if !ok || p.generation != d.Generation || p.scheduled <= p.updated {
			continue
		}
		deadline := 10 * time.Minute
		if d.Update != nil {
			deadline = d.Update.ProgressDeadline.Get(deadline)
		}
		if now.Sub(p.since) > deadline {
			out[w] = true
		}
	}
	return out
}

// Start runs passes on Wake and WakeFor until Stop, and a pass over every
// workload at least every Every and as soon as a node's grace runs out
// (however many early passes come between), so a lost node's replicas
// move at once and nothing a wake missed waits long.
func (c *Controller) Start(ctx context.Context) {
	ctx, c.cancel = context.WithCancel(ctx)
	go func() {
		defer close(c.done)
		t := time.NewTimer(c.cfg.Every)
		defer t.Stop()
		var lastFull, nextExpiry time.Time
		woken := false
		for {
			now := c.now()
			c.mu.Lock()
			asked := c.full // Wake: a node changed
			c.mu.Unlock()
			full := !woken || asked || now.Sub(lastFull) >= c.cfg.Every || (!nextExpiry.IsZero() && !now.Before(nextExpiry))
			pass := c.runWoken
			if full {
				pass = c.RunOnce
				lastFull = now
				nextExpiry = c.cfg.Nodes.NextExpiry(now)
			}
			if _, err := pass(ctx); err != nil && !errors.Is(err, context.Canceled) {
				c.log.WarnContext(ctx, "replica controller pass failed", "err", err)
			}
			wait := lastFull.Add(c.cfg.Every).Sub(c.now())
			if !nextExpiry.IsZero() {
				wait = min(wait, nextExpiry.Sub(c.now())+time.Millisecond)
			}
			t.Reset(max(wait, 0))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				woken = false
			case <-c.wake:
				woken = true
				if !t.Stop() {
					select {
					case <-t.C:
					default:
					}
				}
			}
		}
	}()
}

// Stop ends the controller; safe to call twice and before Start.
func (c *Controller) Stop() {
	c.once.Do(func() {
		if c.cancel != nil {
			c.cancel()
			<-c.done
		}
	})
}
