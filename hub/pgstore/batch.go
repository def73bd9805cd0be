package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/api"
)

// LockAll reads the objects of kind named in names under row locks (one
// statement; rows are locked in name order, so two LockAll calls never
// deadlock on each other), by name. A name with no object is absent from
// the result.
func (t *Tx) LockAll(ctx context.Context, kind string, names []string) (map[string]*Record, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+recordColumns+` FROM objects WHERE kind = $1 AND name = ANY($2) ORDER BY name FOR UPDATE`, kind, names)
	if err != nil {
		return nil, err
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Record, error) { return scanRecord(r) })
	if err != nil {
		return nil, err
	}
	out := make(map[string]*Record, len(recs))
	for _, r := range recs {
		out[r.Meta.Name] = r
	}
	return out, nil
}

// Batch is writes of one transaction sent to PostgreSQL together: every
// row with its change-log and audit rows in one round trip
// (Send), where Mutate and Create each take their own. A controller that
// writes a hundred objects in a transaction pays two round trips (LockAll
// and Send) instead of two hundred.
//
// Each write draws its resourceVersion when queued, so the records
// returned are final; nothing is stored until Send, and a failed Send
// fails the transaction.
type Batch struct {
	t       *Tx
	b       pgx.Batch
	creates []batchCreate
	hooks   []batchHook // the writes whose spec hooks run after Send
	names   map[string]bool
	sent    bool
}

// batchHook is a write whose spec hooks run after Send: cur is nil for a
// creation; refresh and cause are Tx.Refresh's, for Batch.Refresh.
type batchHook struct {
	cur, next *Record
	refresh   bool
	cause     string
}

type batchCreate struct {
	rec      *Record
	inserted *bool
}

// Batch starts a batch of writes inside the transaction.
func (t *Tx) Batch() *Batch { return &Batch{t: t, names: map[string]bool{}} }

// Update queues fn's change of cur, an object read by LockAll (or
// Get) in this transaction, like Mutate: only labels, annotations,
// finalizers, spec, status and deletionTimestamp are taken from the copy
// fn changes, the generation moves when the spec changed, and a change of
// nothing queues nothing and returns cur. An object may be written once
// per batch.
func (b *Batch) Update(ctx context.Context, verb string, cur *Record, fn MutateFunc) (*Record, error) {
	if b.sent {
		return nil, api.Errorf(api.CodeInvalid, "batch already sent")
	}
	key := cur.Kind + "/" + cur.Meta.Name
	if b.names[key] {
		return nil, api.Errorf(api.CodeInvalid, "%s %q is written twice in one batch", cur.Kind, cur.Meta.Name)
	}
	next, err := b.t.mutated(ctx, cur, fn)
	if err != nil {
		return nil, err
	}
	out, err := b.t.queueWrite(&b.b, verb, cur, next)
	if err != nil {
		return nil, err
	}
	if out != cur {
		b.names[key] = true
		if out.Meta.DeletionTimestamp == nil && out.Meta.Generation != cur.Meta.Generation {
			b.hooks = append(b.hooks, batchHook{cur: cur, next: out, refresh: b.t.refresh, cause: b.t.cause})
		}
	}
	return out, nil
}

// Create queues a create of rec, like Tx.Create; a name already taken
// fails Send with AlreadyExists.
func (b *Batch) Create(ctx context.Context, rec *Record) (*Record, error) {
	if b.sent {
		return nil, api.Errorf(api.CodeInvalid, "batch already sent")
	}
	out, inserted, err := b.t.queueCreate(ctx, &b.b, rec)
	if err != nil {
		return nil, err
	}
	b.creates = append(b.creates, batchCreate{rec: out, inserted: inserted})
	b.hooks = append(b.hooks, batchHook{next: out})
	return out, nil
}

// Send sends the queued writes in one round trip, then runs the spec
// hooks of the objects created or whose spec changed (OnSpecChange).
func (b *Batch) Send(ctx context.Context) error {
	if b.sent {
		return api.Errorf(api.CodeInvalid, "batch already sent")
	}
	b.sent = true
	if b.b.Len() > 0 {
		if err := b.t.tx.SendBatch(ctx, &b.b).Close(); err != nil {
			return err
		}
	}
	for _, c := range b.creates {
		if !*c.inserted {
			return alreadyExists(c.rec)
		}
		b.t.note(c.rec.Kind, c.rec.RV())
	}
	for _, h := range b.hooks {
		b.t.refresh, b.t.cause = h.refresh, h.cause
		err := b.t.runHooks(ctx, h.cur, h.next)
		b.t.refresh, b.t.cause = false, ""
		if err != nil {
			return err
		}
	}
	return nil
}

// Refresh queues Tx.Refresh of cur, an object read by LockAll in this
// transaction: its kind's prepare hooks run on its unchanged spec, and
// when they change it, the write is a spec change whose hooks (run after
// Send) see Refreshing and cause as ChangeCause. It returns cur itself,
// queueing nothing, when the hooks keep the spec as it is.
func (b *Batch) Refresh(ctx context.Context, verb string, cur *Record, cause string) (*Record, error) {
	b.t.refresh, b.t.cause = true, cause
	defer func() { b.t.refresh, b.t.cause = false, "" }()
	return b.Update(ctx, verb, cur, func(next *Record) error { return b.t.runPrepare(ctx, next) })
}

// Later is the transaction's batch sent just before its COMMIT, for
// writes no statement of the transaction reads back (the Events a write
// records): queued from anywhere in the transaction (spec hooks
// included), they cost one round trip together. A failure of theirs
// (an Event's name taken) fails the transaction.
func (t *Tx) Later() *Batch {
	if t.later == nil {
		t.later = t.Batch()
	}
	return t.later
}
