package pgstore

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Notifier holds one dedicated connection that LISTENs for change
// wake-ups and fans them out to subscribers by kind. A wake-up carries no
// data: subscribers read the change log. After a reconnect every
// subscriber is woken, since notifications sent while the connection was
// down are lost.
type Notifier struct {
	store *Store
	log   *slog.Logger

	mu   sync.Mutex
	subs map[*subscription]struct{}

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

type subscription struct {
	kind string
	ch   chan struct{}
}

// NewNotifier makes a Notifier; Start begins listening.
func (s *Store) NewNotifier(log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{store: s, log: log, subs: map[*subscription]struct{}{}, done: make(chan struct{})}
}

// Subscribe returns a channel that receives a value (coalesced) after each
// change to kind, and a function that ends the subscription.
func (n *Notifier) Subscribe(kind string) (<-chan struct{}, func()) {
	sub := &subscription{kind: kind, ch: make(chan struct{}, 1)}
	n.mu.Lock()
	n.subs[sub] = struct{}{}
	n.mu.Unlock()
	return sub.ch, func() {
		n.mu.Lock()
		delete(n.subs, sub)
		n.mu.Unlock()
	}
}

// Subscribers counts current subscriptions.
func (n *Notifier) Subscribers() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subs)
}

func (n *Notifier) wake(kind string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for sub := range n.subs {
		if kind == "" || sub.kind == kind {
			select {
			case sub.ch <- struct{}{}:
			default:
			}
		}
	}
}

// Start listens until Stop or ctx ends, reconnecting with backoff.
func (n *Notifier) Start(ctx context.Context) {
	ctx, n.cancel = context.WithCancel(ctx)
	go func() {
		defer close(n.done)
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			err := n.listen(ctx)
			if ctx.Err() != nil {
				return
			}
			n.log.WarnContext(ctx, "change listener lost its connection; reconnecting", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
		}
	}()
}

// Stop ends listening; safe to call twice.
func (n *Notifier) Stop() {
	n.stopOnce.Do(func() {
		if n.cancel != nil {
			n.cancel()
			<-n.done
		}
	})
}

func (n *Notifier) listen(ctx context.Context) error {
	pc, err := n.store.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := pc.Hijack() // LISTEN needs a connection of its own, outside the pool
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	n.wake("") // anything that happened while we were not listening
	for {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		kind, _, _ := strings.Cut(note.Payload, " ")
		n.wake(kind)
	}
}
