// Package loop runs a controller's passes: on a ticker and whenever it is
// woken, one pass at a time, until stopped. The hub's controllers (the
// compactor, the status folder, the placer, the drill controller) each
// own one, so that Start, Stop (safe twice and before Start) and RunOnce
// mean the same everywhere. It owns no state of theirs.
package loop

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Loop runs a background pass on a ticker, and whenever wake fires, until
// Stop or its context ends.
type Loop struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Start runs pass every period and on each receive from wake (nil: never).
// A failed pass is logged as failed and the loop goes on; a canceled one
// is not logged.
func (l *Loop) Start(ctx context.Context, log *slog.Logger, failed string, every time.Duration, wake <-chan struct{}, pass func(context.Context) error) {
	ctx, l.cancel = context.WithCancel(ctx)
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-wake:
			}
			if err := pass(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.WarnContext(ctx, failed, "err", err)
			}
		}
	}()
}

// Stop ends the loop and waits for a running pass; safe to call twice and
// before Start.
func (l *Loop) Stop() {
	l.once.Do(func() {
		if l.cancel != nil {
			l.cancel()
			<-l.done
		}
	})
}
