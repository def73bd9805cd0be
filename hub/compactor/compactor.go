// Package compactor keeps the store from growing without bound: it trims
// the change log to its retention (watches resume within it and get 410
// beyond it) and expires old events. Every hub runs one; the deletes are
// idempotent. It owns retention, not what is written.
package compactor

import (
	"context"
	"log/slog"
	"time"

	"github.com/atollhq/atoll/hub/loop"
)

// Compactor trims the change log to its retention, so watches can resume
// within the retention and get 410 beyond it.
type Compactor struct {
	store Store
	log   *slog.Logger
	keep  time.Duration
	every time.Duration
	// eventRetention is how long events live.
	eventRetention time.Duration
	loop           loop.Loop
}

// Store is what the compactor deletes from (*pgstore.Store has it).
type Store interface {
	Compact(ctx context.Context, keep time.Duration) (int64, error)
	Expire(ctx context.Context, kind string, keep time.Duration) (int64, error)
}

// New makes a compactor: keep is the change log's retention, events the
// events', every the period; zero durations mean 1h retention and a pass
// every minute. A nil log discards.
func New(store Store, log *slog.Logger, keep, events, every time.Duration) *Compactor {
	if keep <= 0 {
		keep = time.Hour
	}
	if events <= 0 {
		events = time.Hour
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if every <= 0 {
		every = time.Minute
	}
	return &Compactor{store: store, log: log, keep: keep, eventRetention: events, every: every}
}

// Start runs passes until Stop or ctx ends.
func (c *Compactor) Start(ctx context.Context) {
	c.loop.Start(ctx, c.log, "change log compaction failed", c.every, nil, func(ctx context.Context) error {
		_, err := c.RunOnce(ctx)
		return err
	})
}

// RunOnce compacts the change log and expires old events once, and
// returns how many change-log rows went.
func (c *Compactor) RunOnce(ctx context.Context) (int64, error) {
	n, err := c.store.Compact(ctx, c.keep)
	if err != nil {
		return n, err
	}
	if _, err := c.store.Expire(ctx, "Event", c.eventRetention); err != nil {
		return n, err
	}
	return n, nil
}

// Stop ends the service; safe to call twice and before Start.
func (c *Compactor) Stop() { c.loop.Stop() }
