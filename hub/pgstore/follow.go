package pgstore

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/atollhq/atoll/api"
)

// Follow keeps a controller's view of one kind up to date without reading
// every object on every pass: its first Read lists the kind whole, later
// ones read only the changes since (the change log, through the shared
// change feed), and it lists whole again when the log was compacted past
// it, it fell further behind than a list costs (see Read), or every
// relists have passed (a safety net, 0: never). A controller woken by
// every write of a kind then costs per pass what changed, not what
// exists.
type Follow struct {
	src   followSource
	kind  string
	every time.Duration
	now   func() time.Time
	page  int // objects a page of a whole list
	chunk int // the most changes one Read returns

	after  int64     // the last version read
	listed time.Time // zero: list at the next Read
	known  int       // objects the last whole list held
	behind int       // changes read in whole chunks since the follower was last caught up
	hurry  bool      // the next Read lists only if it must (Hurry)
}

// followSource is what Follow reads (*Store has it).
type followSource interface {
	List(ctx context.Context, kind string, opts ListOptions) (*ListResult, error)
	Changes(ctx context.Context, kind string, after int64, limit int) ([]Change, error)
}

// followBehind is the most changes one Read takes from the log, and the
// fewest a follower may read in a row before it lists whole instead.
const followBehind = 5000

// followPage is how many objects a whole list reads at a time: a list of
// 100,000 workloads held whole was ~180 MB of records in flight, in each
// controller that follows them.
const followPage = 1000

// NewFollow follows kind in src (a *Store, or what stands in for one),
// listing whole at least every relist; a nil now is time.Now.
func NewFollow(src followSource, kind string, relist time.Duration, now func() time.Time) *Follow {
	if now == nil {
		now = time.Now
	}
	return &Follow{src: src, kind: kind, every: relist, now: now, page: followPage, chunk: followBehind}
}

// FollowUpdate is what one Read found: with Full, every object of the
// kind, which Each reads a page at a time (the caller forgets any it
// holds that Each does not give); else the changes since the last Read,
// in order (a change the list already showed may come again: applying
// changes in order is idempotent). With More, the log holds more changes
// than one Read returns: the caller reads again soon (its next pass).
//
// The pages of a list are read one after the other, each as it stood
// when read; the Follow goes on from the first page's version, so that
// whatever changed while the others were read comes again as changes.
type FollowUpdate struct {
	Full    bool
	Changes []Change
	More    bool

	page  []*Record // the first page, read by Read
	count *int      // the Follow's known: set to the objects Each handed out
	cont  string    // the next page's continue token ("": none)
	src   followSource
	kind  string
	size  int // of a page
}

// Each hands every object of a Full update to fn, reading the pages after
// the first as it goes. An error (fn's, or a page's read) ends it; the
// caller then holds part of a list: Follow.Relist, or Apply, which does.
func (u FollowUpdate) Each(ctx context.Context, fn func(*Record) error) error {
	page, cont := u.page, u.cont
	if u.count != nil {
		*u.count = 0
	}
	for {
		for _, rec := range page {
			if err := fn(rec); err != nil {
				return err
			}
			if u.count != nil {
				*u.count++
			}
		}
		if cont == "" {
			return nil
		}
		res, err := u.src.List(ctx, u.kind, ListOptions{Limit: u.size, Continue: cont})
		if err != nil {
			return err
		}
		page, cont = res.Items, res.Continue
	}
}

// Read brings the caller up to date (see Follow). On an error the next
// Read starts from the same place.
//
// A follower behind by more changes than one Read returns gets them a
// chunk at a time (More) as long as it has read, in a row, no more
// changes than the kind had objects (or one chunk, if more): reading
// a change costs what reading an object does, and a burst of writes to
// many objects (a lost cluster's workloads' status, rewritten at once) is
// cheaper read than a list of every object, which a controller needs at
// once at such a moment. Further behind, it lists.
func (f *Follow) Read(ctx context.Context) (FollowUpdate, error) {
	hurry := f.hurry
	f.hurry = false
	if !f.listed.IsZero() && (hurry || f.every <= 0 || f.now().Sub(f.listed) < f.every) {
		changes, err := f.src.Changes(ctx, f.kind, f.after, f.chunk)
		switch {
		case err == nil && len(changes) < f.chunk:
			if len(changes) > 0 {
				f.after = changes[len(changes)-1].ResourceVersion
			}
			f.behind = 0
			return FollowUpdate{Changes: changes}, nil
		case err == nil && (hurry || f.behind+len(changes) <= max(f.known, f.chunk)):
			f.after = changes[len(changes)-1].ResourceVersion
			f.behind += len(changes)
			return FollowUpdate{Changes: changes, More: true}, nil
		case err != nil && !errors.Is(err, ErrGone):
			f.hurry = hurry // the next Read starts from the same place
			return FollowUpdate{}, err
		}
		// Compacted past, or too far behind: list again.
	}
	at := f.now()
	res, err := f.src.List(ctx, f.kind, ListOptions{Limit: f.page})
	if err != nil {
		return FollowUpdate{}, err
	}
	rv, err := strconv.ParseInt(res.ResourceVersion, 10, 64)
	if err != nil {
		return FollowUpdate{}, err
	}
	f.after, f.listed, f.behind = rv, at, 0
	return FollowUpdate{Full: true, page: res.Items, cont: res.Continue, src: f.src, kind: f.kind, size: f.page, count: &f.known}, nil
}

// Apply hands what u brings to put (with Full, every object of the kind,
// which the caller then holds alone; else each changed object, as its
// change's Record) and the name of each deleted one to gone. When put
// (or a page's read) fails, the next Read lists whole again.
func (f *Follow) Apply(ctx context.Context, u FollowUpdate, put func(*Record) error, gone func(name string)) error {
	err := u.apply(ctx, put, gone)
	if err != nil {
		f.Relist()
	}
	return err
}

func (u FollowUpdate) apply(ctx context.Context, put func(*Record) error, gone func(name string)) error {
	if u.Full {
		return u.Each(ctx, put)
	}
	for _, ch := range u.Changes {
		if ch.Type == api.Deleted {
			gone(ch.Name)
			continue
		}
		rec, err := ch.Record()
		if err == nil {
			err = put(rec)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Hurry makes the next Read list only if it must (it never listed, was
// told to Relist, or the log was compacted past it): however far behind,
// or however long since its last list, it reads one chunk of changes
// (More if there are others). A controller with something urgent to do
// (a cluster lost) then acts on what it has, in a fraction of a list's
// time, and reads on in its next passes.
func (f *Follow) Hurry() { f.hurry = true }

// SetChunk sets the most changes one Read returns, and the fewest it may
// read in a row before it lists (followBehind; tests set a few). Call it
// before the first Read.
func (f *Follow) SetChunk(n int) { f.chunk = max(n, 1) }

// Version is the last version Read brought: every change of the kind at
// or below it is in what the Reads returned (a caller that knows the
// version of a write can tell whether it has read it).
func (f *Follow) Version() int64 { return f.after }

// Relist makes the next Read list whole (a controller that lost track,
// or that took over and must not trust what it held).
func (f *Follow) Relist() { f.listed = time.Time{} }
