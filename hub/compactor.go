package hub

import (
	"context"
	"log/slog"
	"time"

	"github.com/atollhq/atoll/hub/pgstore"
)

// Compactor trims the change log to its retention, so watches can resume
// within the retention and get 410 beyond it.
type Compactor struct {
	store *pgstore.Store
	log   *slog.Logger
	keep  time.Duration
	every time.Duration
	// eventRetention is how long events live; 0 means 1h.
	eventRetention time.Duration
	loop           loop
}

// NewCompactor makes a compactor; zero durations mean 1h retention and a
// pass every minute.
func NewCompactor(store *pgstore.Store, log *slog.Logger, keep, every time.Duration) *Compactor {
	if keep <= 0 {
		keep = time.Hour
	}
	if every <= 0 {
		every = time.Minute
	}
	return &Compactor{store: store, log: log, keep: keep, every: every}
}

// Start runs passes until Stop or ctx ends.
func (c *Compactor) Start(ctx context.Context) {
	c.loop.start(ctx, c.log, "change log compaction failed", c.every, nil, func(ctx context.Context) error {
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
	keep := c.eventRetention
	if keep <= 0 {
		keep = time.Hour
	}
	if _, err := c.store.Expire(ctx, "Event", keep); err != nil {
		return n, err
	}
	return n, nil
}

// Stop ends the service; safe to call twice and before Start.
func (c *Compactor) Stop() { c.loop.stop() }
