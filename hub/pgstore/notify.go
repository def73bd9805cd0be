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
// often) while a change waits behind it. A wake-up carries the horizon
// it was sent at (Subscription.Passed), so that subscribers woken
// together need one read of the log between them, not one each
// (Store.ChangesBelow).
type Notifier struct {
	store *Store
	log   *slog.Logger

	mu   sync.Mutex
	subs map[*Subscription]struct{}
	// held are the newest versions notified, by kind, that the horizon
	// had not passed when last read; heldSignal tells the pump.
	held       map[string]int64
	heldSignal chan struct{}

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// Subscription is one subscriber's wake-ups for a kind.
type Subscription struct {
	// C receives a value (coalesced) after each change to the kind.
	C <-chan struct{}

	n    *Notifier
	kind string
	ch   chan struct{}

	mu     sync.Mutex
	passed int64 // the highest horizon a wake-up passed
	blind  bool  // a wake-up since the last Passed carried no horizon
}

// Passed is the watch horizon as the latest wake-up read it: every change
// it woke the subscriber for is below it, so a read of the log that
// reaches it (Store.ChangesBelow) finds them. It is 0 when a wake-up
// since the last call knew no horizon (the listener reconnected, or the
// horizon could not be read): then only a read of the log begun after
// the wake-up (Store.Changes) is sure to find what it announced.
func (sub *Subscription) Passed() int64 {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.blind {
		sub.blind = false
		return 0
	}
	return sub.passed
}

// Close ends the subscription.
func (sub *Subscription) Close() {
	sub.n.mu.Lock()
	delete(sub.n.subs, sub)
	sub.n.mu.Unlock()
}

// woken notes a wake-up at horizon h (0: none known) and signals C.
func (sub *Subscription) woken(h int64) {
	sub.mu.Lock()
	if h > 0 {
		sub.passed = max(sub.passed, h)
	} else {
		sub.blind = true
	}
	sub.mu.Unlock()
	select {
	case sub.ch <- struct{}{}:
	default:
	}
}

// NewNotifier makes a Notifier; Start begins listening.
func (s *Store) NewNotifier(log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{store: s, log: log, subs: map[*Subscription]struct{}{}, held: map[string]int64{},
		heldSignal: make(chan struct{}, 1), done: make(chan struct{})}
}

// Subscribe returns a channel that receives a value (coalesced) after each
// change to kind, and a function that ends the subscription.
func (n *Notifier) Subscribe(kind string) (<-chan struct{}, func()) {
	sub := n.SubscribeChanges(kind)
	return sub.C, sub.Close
}

// SubscribeChanges subscribes to kind's wake-ups with the horizon each
// was sent at; Close ends it.
func (n *Notifier) SubscribeChanges(kind string) *Subscription {
	ch := make(chan struct{}, 1)
	sub := &Subscription{C: ch, n: n, kind: kind, ch: ch}
	n.mu.Lock()
	n.subs[sub] = struct{}{}
	n.mu.Unlock()
	return sub
}

// Subscribers counts current subscriptions.
func (n *Notifier) Subscribers() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subs)
}

// wake wakes kind's subscribers (every one for ""), telling them the
// horizon h has passed what they are woken for (0: no horizon known).
func (n *Notifier) wake(kind string, h int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for sub := range n.subs {
		if kind == "" || sub.kind == kind {
			sub.woken(h)
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
	n.wake("", 0)           // anything that happened while we were not listening
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
		n.wake(kind, 0) // not a version: wake now, readers find what there is
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
		passed := h
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Wake them all, with no horizon: readers find what there is.
			h, passed = 1<<63-1, 0
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
			n.wake(kind, passed)
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
