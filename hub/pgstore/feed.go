package pgstore

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// changeFeed is one reader of a kind's change log shared by every caller
// of Changes in this process. It holds the newest changes it read, every
// change of the kind in (start, tail] with none missing, and answers a
// caller whose version is in that range from memory, after a read of the
// log that began after the call did: so a caller sees all that a read of
// its own would have shown (it was woken by a change that committed
// before its call; the read after sees it), in the same order, while a
// storm of calls costs one read at a time. A caller behind start reads
// the log itself; one behind the compaction horizon gets ErrGone, as
// from the log.
//
// Why this holds: a read returns only changes below the watch horizon,
// and a change that becomes readable later has a version above every
// change any read has returned (the package documentation), so reading
// on from the tail never skips one.
//
// A caller woken by the Notifier (ChangesBelow) needs less: the changes
// below the horizon its wake-up passed. The feed keeps the horizon up to
// which it holds every change (below: the watch horizon of the read that
// brought it up to date), and answers such a caller from memory once
// below reaches the caller's horizon, reading only when it does not yet
// (the horizon never decreases, so any read that begins after the
// wake-up reaches it). Why it matters: a hundred watchers woken at once
// come back at different times, as fast as each one's stream drains;
// under "a read begun after the call" every one that comes while a read
// is under way needs the next one, so the feed read the log about twice
// per wake-up, back to back, where once serves them all.
type changeFeed struct {
	kind string

	mu        sync.Mutex
	anchored  bool
	start     int64 // the feed holds every change in (start, tail]
	tail      int64
	compacted int64 // the compaction horizon as of the last read
	below     int64 // the feed holds every change in (start, below)
	entries   []Change
	begun     uint64        // reads begun
	finished  uint64        // reads finished
	reading   chan struct{} // closed when the read in flight ends; nil when none
	reads     atomic.Uint64 // reads of the log, for tests
	lastErr   error         // the error of read number errAt
	errAt     uint64
}

const (
	// feedBatch is the rows of one query of a read.
	feedBatch = 1000
	// feedKeep bounds the changes a feed holds (a quarter more between
	// trims); past it the oldest go (their callers, far behind, read the
	// log themselves).
	feedKeep = 20000
)

// feed returns kind's change feed.
func (s *Store) feed(kind string) *changeFeed {
	s.feedsMu.Lock()
	defer s.feedsMu.Unlock()
	if s.feeds == nil {
		s.feeds = map[string]*changeFeed{}
	}
	f, ok := s.feeds[kind]
	if !ok {
		f = &changeFeed{kind: kind}
		s.feeds[kind] = f
	}
	return f
}

// since is Store.Changes (passed 0) and Store.ChangesBelow through the
// feed.
func (f *changeFeed) since(ctx context.Context, s *Store, after int64, limit int, passed int64) ([]Change, error) {
	f.mu.Lock()
	if !f.anchored {
		f.anchored, f.start, f.tail = true, after, after
	}
	// Read until what the caller needs is in: a read that began after
	// this call, or (woken at a horizon) every change below it.
	need := f.begun + 1
	for {
		if passed > 0 && f.below >= passed {
			break
		}
		if passed == 0 && f.finished >= need {
			if f.lastErr != nil && f.errAt >= need {
				err := f.lastErr
				f.mu.Unlock()
				return nil, err
			}
			break
		}
		if f.reading == nil {
			f.refresh(ctx, s)
			if passed > 0 && f.lastErr != nil && f.errAt == f.begun && f.below < passed {
				err := f.lastErr // this caller's own read failed
				f.mu.Unlock()
				return nil, err
			}
			continue
		}
		done := f.reading
		f.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		f.mu.Lock()
	}
	if after < f.compacted {
		f.mu.Unlock()
		return nil, ErrGone
	}
	if after < f.start {
		f.mu.Unlock()
		r, err := s.readChanges(ctx, f.kind, after, limit)
		if err == nil && after < r.compacted {
			return nil, ErrGone
		}
		return r.changes, err
	}
	i := firstAfter(f.entries, after)
	out := slices.Clone(f.entries[i:min(len(f.entries), i+limit)])
	f.mu.Unlock()
	return out, nil
}

// refresh runs one read of the log from the tail (under f.mu, which it
// releases while reading). The read goes on while whole batches come,
// so one read brings the feed up to the horizon.
func (f *changeFeed) refresh(ctx context.Context, s *Store) {
	f.begun++
	n := f.begun
	done := make(chan struct{})
	f.reading = done
	tail := f.tail
	f.mu.Unlock()
	// A caller that stops waiting must not end the read others wait on.
	rctx := context.WithoutCancel(ctx)
	var got []Change
	var compacted, below int64
	var err error
	for {
		var r changeRead
		r, err = s.readChanges(rctx, f.kind, tail, feedBatch)
		if err != nil {
			break
		}
		compacted = r.compacted
		got = append(got, r.changes...)
		if len(r.changes) > 0 {
			tail = r.changes[len(r.changes)-1].ResourceVersion
		}
		if len(r.changes) < feedBatch {
			below = r.below // all there is below it is in
			break
		}
		if len(got) >= feedKeep {
			below = tail + 1 // all up to the tail is in
			break
		}
	}
	f.reads.Add(1)
	f.mu.Lock()
	if err != nil {
		f.lastErr, f.errAt = err, n
	} else {
		f.entries = append(f.entries, got...)
		f.tail = tail
		f.compacted = compacted
		f.below = max(f.below, below)
		if f.start < compacted {
			// The log no longer reaches below compacted: the feed
			// answers from there on.
			f.entries = slices.Delete(f.entries, 0, firstAfter(f.entries, compacted))
			f.start = compacted
		}
		// The oldest go a quarter of the bound at a time: moving the
		// whole feed down on every read (each past the bound by its few
		// new changes) was 8% of a hub's CPU under 3,400 creates a second.
		if over := len(f.entries) - feedKeep; over > feedKeep/4 {
			f.start = f.entries[over-1].ResourceVersion
			f.entries = slices.Delete(f.entries, 0, over)
		}
	}
	f.finished = n
	f.reading = nil
	close(done)
}

// firstAfter is the index of the first of changes (in version order)
// whose version is above rv; len(changes) when none is.
func firstAfter(changes []Change, rv int64) int {
	i, _ := slices.BinarySearchFunc(changes, rv, func(c Change, rv int64) int {
		if c.ResourceVersion <= rv {
			return -1
		}
		return 1
	})
	return i
}
