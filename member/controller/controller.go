package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

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
	// Every is the resync period; default 1s. Wake forces a pass sooner.
	Every time.Duration
}

// Controller keeps the region's replicas as desired.
type Controller struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	wake chan struct{}

	keys *TemplateKeys // RunOnce's only

	mu       sync.Mutex
	status   []protocol.WorkloadStatus
	progress map[string]progress

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
		keys: NewTemplateKeys()}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.cfg.Every <= 0 {
		c.cfg.Every = time.Second
	}
	return c
}

// Wake asks for a pass as soon as possible (desired state or a node
// changed).
func (c *Controller) Wake() {
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

func newReplicaID(workload string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return workload + "-" + hex.EncodeToString(b[:])
}

// RunOnce reads the state, decides and writes the bindings.
func (c *Controller) RunOnce(ctx context.Context) (Changes, error) {
	desired, err := c.cfg.Store.Desired(ctx)
	if err != nil {
		return Changes{}, err
	}
	bindings, err := c.cfg.Store.Bindings(ctx)
	if err != nil {
		return Changes{}, err
	}
	now := c.now()
	c.keys.keep(desired, bindings)
	snap := Snapshot{Desired: desired, Bindings: bindings, Nodes: c.cfg.Nodes.Snapshot(now), Stalled: c.stalled(desired, now), Now: now, Keys: c.keys}
	ch := plan(snap, newReplicaID)
	// Removals first (they free room the additions were planned into),
	// each phase a bounded number of KV writes at once: a failover that
	// binds thousands of replicas does not wait on them one by one.
	var errs []error
	errs = append(errs, writeAll(ch.Delete, func(b protocol.Binding) error { return c.cfg.Store.DeleteBinding(ctx, b.Node, b.Replica) }))
	errs = append(errs, writeAll(ch.Put, func(b protocol.Binding) error { return c.cfg.Store.PutBinding(ctx, b) }))
	c.mu.Lock()
	c.status = ch.Status
	seen := map[string]bool{}
	for _, st := range ch.Status {
		seen[st.Workload] = true
		p := c.progress[st.Workload]
		if p.generation != st.Generation || p.scheduled != st.Scheduled || p.updated != st.Updated || p.ready != st.Ready {
			c.progress[st.Workload] = progress{generation: st.Generation, scheduled: st.Scheduled, updated: st.Updated, ready: st.Ready, since: now}
		}
	}
	for w := range c.progress {
		if !seen[w] {
			delete(c.progress, w) // deleted or tombstoned
		}
	}
	c.mu.Unlock()
	if len(ch.Put)+len(ch.Delete) > 0 {
		c.log.InfoContext(ctx, "replicas rebound", "added", len(ch.Put), "removed", len(ch.Delete))
	}
	return ch, errors.Join(errs...)
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

// Start runs passes every Every and on Wake until Stop.
func (c *Controller) Start(ctx context.Context) {
	ctx, c.cancel = context.WithCancel(ctx)
	go func() {
		defer close(c.done)
		t := time.NewTimer(c.cfg.Every)
		defer t.Stop()
		for {
			if _, err := c.RunOnce(ctx); err != nil && !errors.Is(err, context.Canceled) {
				c.log.WarnContext(ctx, "replica controller pass failed", "err", err)
			}
			// Next pass: the resync period, or sooner when a node's grace
			// runs out, so a lost node's replicas move at once.
			wait := c.cfg.Every
			if exp := c.cfg.Nodes.NextExpiry(c.now()); !exp.IsZero() {
				wait = min(wait, exp.Sub(c.now())+time.Millisecond)
			}
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-c.wake:
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

// writeAll applies write to every binding, 16 at a time.
func writeAll(bs []protocol.Binding, write func(protocol.Binding) error) error {
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, b := range bs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := write(b); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
