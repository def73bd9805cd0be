package member

import (
	"crypto/rand"
	"encoding/binary"
	"slices"
	"sync"
	"time"
)

// fence is the member's lease on the hub, and what it allows exclusive
// workloads to do.
//
// The lease runs for `after` from the last heartbeat ack. A member that
// goes longer than that without one (partitioned, paused, its hub gone)
// starts a new term: every exclusive workload is held, and runs again
// only once desired state of the new term confirms it. The hub re-places
// an exclusive workload only after the member's fence plus a margin has
// passed since the last heartbeat it heard, so the old copy has stopped
// before the new one starts; a delivery delayed across the fence carries
// the old term and confirms nothing.
//
// Node agents enforce it (package node): the member hands each one the
// lease left and the held workloads in every heartbeat ack, and a node
// that hears nothing from its member lets its last lease run out.
type fence struct {
	after time.Duration

	mu        sync.Mutex
	lastAck   time.Time
	term      uint64
	exclusive map[string]bool   // exclusive workloads held in the desired store
	confirmed map[string]uint64 // workload -> the term the hub confirmed it in
	epochs    map[string]int64  // workload -> the newest epoch recorded (deliveries are stored concurrently)
	// unknown are workloads held in the desired store from before
	// protocol.ExclusiveSince: whether they are exclusive is not known
	// until the hub sends them again (the member asks for a resync, until
	// askUntil, a minute from the first delivery under a lease term, which
	// shows a hub that leads and sends: a workload the hub no longer has is
	// never sent).
	unknown  map[string]bool
	askUntil time.Time
	askCap   time.Time // askFor ten times from the first ack, delivery or not
}

func newFence(after time.Duration) *fence {
	return &fence{after: after, term: newTerm(), exclusive: map[string]bool{}, confirmed: map[string]uint64{}, epochs: map[string]int64{},
		unknown: map[string]bool{}}
}

func newTerm() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // never 0, which means "no term"
}

// acked records a heartbeat ack received at `at`. After a gap longer
// than the fence (or at the first ack) a new term begins and every
// confirmation is void; it reports whether that happened.
func (f *fence) acked(at time.Time) (newTerm bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.lastAck.IsZero() && at.Sub(f.lastAck) > f.after {
		f.newTermLocked()
		newTerm = true
	}
	f.lastAck = at
	if len(f.unknown) > 0 && f.askCap.IsZero() {
		f.askCap = at.Add(10 * askFor)
	}
	return newTerm
}

func (f *fence) newTermLocked() {
	f.term = newTerm()
	clear(f.confirmed)
}

// lease is how long exclusive replicas may still run from now, and when
// the hub last renewed the lease (zero: never).
func (f *fence) lease(now time.Time) (left time.Duration, renewed time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leaseLocked(now), f.lastAck
}

func (f *fence) leaseLocked(now time.Time) time.Duration {
	if f.lastAck.IsZero() {
		return 0
	}
	return max(0, f.lastAck.Add(f.after).Sub(now))
}

// Term is the current lease term.
func (f *fence) Term() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.term
}

// desired records a desired workload the member accepted at epoch:
// whether it is exclusive, and, when it came under the current term while
// the lease holds, confirms it. An epoch older than one already recorded
// changes nothing (two deliveries stored at once may get here in either
// order).
func (f *fence) desired(workload string, epoch int64, exclusive, deleted bool, term uint64, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if epoch < f.epochs[workload] {
		return
	}
	f.epochs[workload] = epoch
	if term != 0 {
		delete(f.unknown, workload) // sent by a hub that says
		if len(f.unknown) > 0 && f.askUntil.IsZero() {
			f.askUntil = now.Add(askFor)
		}
	}
	if deleted || !exclusive {
		delete(f.exclusive, workload)
		delete(f.confirmed, workload)
		return
	}
	f.exclusive[workload] = true
	if term == f.term && f.leaseLocked(now) > 0 {
		f.confirmed[workload] = term
	}
}

// askFor is how long a member asks for the desired state it holds from
// before protocol.ExclusiveSince, from the first delivery the hub sends
// under a lease term (a resync resends everything within it).
const askFor = time.Minute

// stale records a workload held in the desired store from before
// protocol.ExclusiveSince: the member asks the hub for all of its desired
// state again, to learn which ones to fence, until it has them or for
// askFor from the first delivery under a lease term.
func (f *fence) stale(workload string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unknown[workload] = true
}

// held lists the exclusive workloads that may not run now: all of them
// once the lease ran out, else those not confirmed in this term.
func (f *fence) held(now time.Time) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	expired := f.leaseLocked(now) == 0
	var out []string
	for w := range f.exclusive {
		if expired || f.confirmed[w] != f.term {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}

// needsResync says whether the member holds exclusive workloads the hub
// has not confirmed in this term (while the lease holds: a member cut
// off cannot be confirmed anyway).
func (f *fence) needsResync(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leaseLocked(now) == 0 {
		return false
	}
	if len(f.unknown) > 0 && now.Before(f.askCap) && (f.askUntil.IsZero() || now.Before(f.askUntil)) {
		return true
	}
	for w := range f.exclusive {
		if f.confirmed[w] != f.term {
			return true
		}
	}
	return false
}
