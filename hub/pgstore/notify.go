package pgstore

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Notifier holds one dedicated connection that LISTENs for change
// wake-ups and fans them out to subscribers by kind. A wake-up carries no
// data: subscribers read the change log. After a reconnect every
// subscriber is woken, since notifications sent while the connection was
// down are lost.
//
// A notification names the change's kind and resourceVersion. A change
// becomes readable only once the watch horizon passes it (see the package
// documentation), which may be after its own notification, when an older
// transaction, of any kind or of none, ends; so the Notifier wakes a
// kind's subscribers when the horizon has passed the version it was told
// of, reading the horizon again (a few milliseconds apart, then less
// often) while a change waits behind it.
type Notifier struct {
	store *Store
	log   *slog.Logger

	mu   sync.Mutex
	subs map[*subscription]struct{}
	// held are the newest versions notified, by kind, that the horizon
	// had not passed when last read; heldSignal tells the pump.
	held       map[string]int64
	heldSignal chan struct{}

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
	return &Notifier{store: s, log: log, subs: map[*subscription]struct{}{}, held: map[string]int64{},
		heldSignal: make(chan struct{}, 1), done: make(chan struct{})}
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
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		n.pump(ctx)
	}()
	go func() {
		defer close(n.done)
		defer func() { <-pumped }()
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
	n.store.tokens.forget() // a revocation may have gone unheard
	n.wake("")              // anything that happened while we were not listening
	for {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		kind, rv, _ := strings.Cut(note.Payload, " ")
		n.hold(kind, rv)
	}
}

// hold notes that kind changed at version rv, for the pump to wake its
// subscribers once the horizon has passed it.
func (n *Notifier) hold(kind, rv string) {
	if kind == "Token" {
		n.store.tokens.forget() // another hub's revocation: at once, not at the horizon
	}
	v, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		n.wake(kind) // not a version: wake now, readers find what there is
		return
	}
	n.mu.Lock()
	n.held[kind] = max(n.held[kind], v)
	n.mu.Unlock()
	select {
	case n.heldSignal <- struct{}{}:
	default:
	}
}

// pump wakes the subscribers of every held kind whose version the horizon
// has passed, reading the horizon again while some wait.
func (n *Notifier) pump(ctx context.Context) {
	const first, most = 2 * time.Millisecond, 200 * time.Millisecond
	wait := first
	for {
		n.mu.Lock()
		pending := len(n.held)
		n.mu.Unlock()
		if pending == 0 {
			wait = first
			select {
			case <-ctx.Done():
				return
			case <-n.heldSignal:
			}
		}
		h, err := n.store.horizon(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h = 1<<63 - 1 // wake them all: readers find what there is
		}
		var ready []string
		n.mu.Lock()
		for kind, rv := range n.held {
			if rv < h {
				ready = append(ready, kind)
				delete(n.held, kind)
			}
		}
		pending = len(n.held)
		n.mu.Unlock()
		for _, kind := range ready {
			n.wake(kind)
		}
		if pending == 0 {
			continue
		}
		if len(ready) > 0 {
			wait = first
		}
		select {
		case <-ctx.Done():
			return
		case <-n.heldSignal:
		case <-time.After(wait):
			wait = min(2*wait, most)
		}
	}
}
