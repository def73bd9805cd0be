package pgstore

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// wakeups sends the change wake-ups (NOTIFY) of committed write
// transactions, many transactions' at once. Every NOTIFY is a transaction
// of its own that takes one database-wide lock while it commits
// (PostgreSQL queues notifications in commit order), and takes a
// transaction id: one per write made every write pay for a second commit
// and queue on that lock (the only lock wait BenchmarkCreatesVsPgbench's
// sampling of pg_stat_activity found). Here one sender at a time sends,
// for each kind, the newest version noted since its last send; what is
// noted while it sends goes in its next send. So a wake-up always leaves
// after the commit it announces, one NOTIFY carries however many writes
// committed meanwhile, and at rest there is no goroutine. Sends are at
// least wakeupGap apart: the first write after a quiet spell is announced
// at once, a stream of writes every wakeupGap (each NOTIFY costs a
// transaction here, and on every hub a read of the watch horizon and the
// followers' reads of the change log, whatever number of writes it
// carries). Store.Close
// stops it (close): no sender starts after, the one running sends what
// is pending for up to wakeupCloseGrace, and Close waits for it before
// it closes the pool.
//
// A wake-up lost (the hub dies before sending it, or PostgreSQL refuses
// it) delays watchers until the next one or their keepalive, which the
// package's design allows for; it is logged, never an error of the write.
type wakeups struct {
	s       *Store
	mu      sync.Mutex
	pending map[string]int64 // kind -> newest version noted
	sending bool             // a sender goroutine runs
	closed  bool             // the store is closing: no sender starts
	sender  sync.WaitGroup   // the sender goroutine
	// stop, once closing has waited wakeupCloseGrace, cancels the
	// sender's send (nil until a sender first runs).
	stop context.CancelFunc
	ctx  context.Context
}

// add notes committed versions by kind and makes sure a sender runs.
func (w *wakeups) add(notes map[string]int64) {
	if len(notes) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return // the pool is closing: the wake-up is lost, as when a hub stops
	}
	if w.pending == nil {
		w.pending = map[string]int64{}
	}
	for kind, rv := range notes {
		w.pending[kind] = max(w.pending[kind], rv)
	}
	if w.ctx == nil {
		w.ctx, w.stop = context.WithCancel(context.Background())
	}
	if !w.sending {
		w.sending = true
		w.sender.Add(1)
		go w.send()
	}
}

// send sends what is pending until nothing is, or until close stops it.
func (w *wakeups) send() {
	defer w.sender.Done()
	for {
		w.mu.Lock()
		notes := w.pending
		w.pending = nil
		if len(notes) == 0 || w.ctx.Err() != nil {
			w.sending = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		// One implicit transaction for all kinds (a batch ends in one Sync).
		b := &pgx.Batch{}
		for kind, rv := range notes {
			b.Queue(`SELECT pg_notify($1, $2)`, NotifyChannel, kind+" "+strconv.FormatInt(rv, 10))
		}
		began := time.Now()
		ctx, cancel := context.WithTimeout(w.ctx, wakeupTimeout)
		err := w.s.pool.SendBatch(ctx, b).Close()
		cancel()
		if err != nil {
			w.s.log.Warn("change wake-up not sent; watchers see the change at their next wake-up or keepalive", "err", err)
		}
		// What is noted meanwhile waits for the next send, wakeupGap
		// after this one began; close cancels the wait.
		wait := time.NewTimer(time.Until(began.Add(wakeupGap)))
		select {
		case <-wait.C:
		case <-w.ctx.Done():
			wait.Stop()
		}
	}
}

// close stops the wake-ups for Store.Close: no sender starts from now
// on; the one running may send what is pending for up to grace, then its
// send is cancelled; close returns once it has returned, so nothing uses
// the pool after.
func (w *wakeups) close(grace time.Duration) {
	w.mu.Lock()
	w.closed = true
	stop := w.stop
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.sender.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		stop() // not nil: a sender ran
		<-done
	}
	if stop != nil {
		stop()
	}
}

// wakeupGap is the least time between two sends of wake-ups: what it
// adds to a watcher's latency under a stream of writes, and what it takes
// away in transactions, horizon and change-log reads (at 3,000 writes a
// second, a send every 1-2 ms without it).
const wakeupGap = 5 * time.Millisecond

// wakeupTimeout bounds one send of wake-ups.
const wakeupTimeout = 5 * time.Second

// wakeupCloseGrace is how long Store.Close lets the sender send what is
// pending before it cancels the send.
const wakeupCloseGrace = time.Second
