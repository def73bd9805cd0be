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
// committed meanwhile, and at rest there is no goroutine.
//
// A wake-up lost (the hub dies before sending it, or PostgreSQL refuses
// it) delays watchers until the next one or their keepalive, which the
// package's design allows for; it is logged, never an error of the write.
type wakeups struct {
	s       *Store
	mu      sync.Mutex
	pending map[string]int64 // kind -> newest version noted
	sending bool             // a sender goroutine runs
}

// add notes committed versions by kind and makes sure a sender runs.
func (w *wakeups) add(notes map[string]int64) {
	if len(notes) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pending == nil {
		w.pending = map[string]int64{}
	}
	for kind, rv := range notes {
		w.pending[kind] = max(w.pending[kind], rv)
	}
	if !w.sending {
		w.sending = true
		go w.send()
	}
}

// send sends what is pending until nothing is.
func (w *wakeups) send() {
	for {
		w.mu.Lock()
		notes := w.pending
		w.pending = nil
		if len(notes) == 0 {
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
		ctx, cancel := context.WithTimeout(context.Background(), wakeupTimeout)
		err := w.s.pool.SendBatch(ctx, b).Close()
		cancel()
		if err != nil {
			w.s.log.Warn("change wake-up not sent; watchers see the change at their next wake-up or keepalive", "err", err)
		}
	}
}

// wakeupTimeout bounds one send of wake-ups.
const wakeupTimeout = 5 * time.Second
