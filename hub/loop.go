package hub

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// loop runs a background pass on a ticker, and whenever wake fires, until
// stop or its context ends. The compactor, the status folder and the
// placer each own one.
type loop struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// start runs pass every period and on each receive from wake (nil: never).
// A failed pass is logged as failed and the loop goes on.
func (l *loop) start(ctx context.Context, log *slog.Logger, failed string, every time.Duration, wake <-chan struct{}, pass func(context.Context) error) {
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

// stop ends the loop and waits for a running pass; safe to call twice and
// before start.
func (l *loop) stop() {
	l.once.Do(func() {
		if l.cancel != nil {
			l.cancel()
			<-l.done
		}
	})
}
