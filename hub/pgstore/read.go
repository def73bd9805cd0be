package pgstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/api"
)

// ListOptions narrows and pages a list.
type ListOptions struct {
	Selector api.Selector
	Limit    int    // 0 means DefaultLimit, below 0 means everything (internal use)
	Continue string // from the previous page
	// Covered asks for ListResult.Covered (a list a watch continues).
	Covered bool
}

// Page limits.
const (
	DefaultLimit = 500
	MaxLimit     = 5000
)

// ListResult is one page of a list.
type ListResult struct {
	Items           []*Record
	ResourceVersion string // the version the page was read at
	Continue        string // token for the next page, "" on the last
	// Covered, when ListOptions.Covered asked, are the resourceVersions
	// of this kind above ResourceVersion that the page already shows: a
	// watch from ResourceVersion repeats them (see the package
	// documentation), and one that continues this list skips them.
	Covered []int64
}

type continueToken struct {
	After string `json:"a"`
}

// List reads one page of objects of a kind, ordered by name, in one
// consistent snapshot together with the resourceVersion it was read at.
func (s *Store) List(ctx context.Context, kind string, opts ListOptions) (*ListResult, error) {
	limit := opts.Limit
	switch {
	case limit < 0:
		limit = 1<<31 - 2
	case limit == 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	after := ""
	if opts.Continue != "" {
		raw, err := base64.RawURLEncoding.DecodeString(opts.Continue)
		var tok continueToken
		if err != nil || json.Unmarshal(raw, &tok) != nil {
			return nil, api.Errorf(api.CodeBadRequest, "continue token is not one this hub issued")
		}
		after = tok.After
	}
	where, args := selectorSQL(opts.Selector, []any{kind, after})
	args = append(args, limit+1)
	query := `SELECT ` + recordColumns + ` FROM objects WHERE kind = $1 AND name > $2` + where +
		` ORDER BY name LIMIT $` + strconv.Itoa(len(args))
	res := &ListResult{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Record, error) { return scanRecord(r) })
		if err != nil {
			return err
		}
		if len(items) > limit {
			items = items[:limit]
			b, _ := json.Marshal(continueToken{After: items[limit-1].Meta.Name})
			res.Continue = base64.RawURLEncoding.EncodeToString(b)
		}
		res.Items = items
		rv, err := currentVersion(ctx, tx)
		if err != nil {
			return err
		}
		res.ResourceVersion = strconv.FormatInt(rv, 10)
		if opts.Covered {
			rows, err := tx.Query(ctx, `SELECT resource_version FROM changes WHERE kind = $1 AND resource_version > $2 ORDER BY resource_version`, kind, rv)
			if err != nil {
				return err
			}
			res.Covered, err = pgx.CollectRows(rows, pgx.RowTo[int64])
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, classify(err))
	}
	return res, nil
}

// currentVersion is the version a list read in tx's snapshot is at: just
// below the snapshot's watch horizon, so that every version at or below it
// is in the snapshot and final (see the package documentation). Versions
// above it may be in the snapshot too; a watch from it repeats those.
func currentVersion(ctx context.Context, tx pgx.Tx) (int64, error) {
	var rv int64
	err := tx.QueryRow(ctx, `SELECT greatest(`+horizonSQL+` - 1, compacted_rv) FROM watch_horizon`).Scan(&rv)
	return rv, err
}

// horizon reads the watch horizon now.
func (s *Store) horizon(ctx context.Context) (int64, error) {
	var h int64
	err := s.pool.QueryRow(ctx, `SELECT `+horizonSQL).Scan(&h)
	return h, classify(err)
}

// horizonSQL is the watch horizon of the statement's snapshot: the lowest
// resourceVersion a transaction still in progress might hold (the oldest
// running transaction id, shifted as Tx.drawVersion shifts it). Every
// version below it is committed and visible, or will never be.
var horizonSQL = `(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << ` + strconv.Itoa(versionBits) + `)`

// selectorSQL renders a label selector as SQL conditions over the labels
// column, appending its parameters to args.
func selectorSQL(sel api.Selector, args []any) (string, []any) {
	var b strings.Builder
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, r := range sel.Requirements {
		switch r.Operator {
		case "In":
			if len(r.Values) == 1 {
				b.WriteString(" AND labels @> " + param(map[string]string{r.Key: r.Values[0]}))
			} else {
				b.WriteString(" AND labels->>" + param(r.Key) + " = ANY(" + param(r.Values) + ")")
			}
		case "NotIn":
			k := param(r.Key)
			b.WriteString(" AND (labels->>" + k + " IS NULL OR labels->>" + k + " <> ALL(" + param(r.Values) + "))")
		case "Exists":
			b.WriteString(" AND labels ? " + param(r.Key))
		case "DoesNotExist":
			b.WriteString(" AND NOT labels ? " + param(r.Key))
		}
	}
	return b.String(), args
}

// Change is one row of the change log.
type Change struct {
	ResourceVersion int64
	Kind            string
	Name            string
	Type            string
	Object          json.RawMessage // compact JSON
}

// Record is the change's object as a Record: its metadata, and its spec
// and status documents as written (not for a kind whose spec is inline).
func (c Change) Record() (*Record, error) {
	if k, ok := api.LookupKind(c.Kind); !ok || k.Inline {
		return nil, fmt.Errorf("change of %s %s: no record of an unknown or inline kind", c.Kind, c.Name)
	}
	var o objectJSON
	if err := json.Unmarshal(c.Object, &o); err != nil {
		return nil, fmt.Errorf("change of %s %s: %w", c.Kind, c.Name, err)
	}
	return &Record{Kind: c.Kind, Meta: o.Metadata, Spec: o.Spec, Status: o.Status}, nil
}

// ErrGone is returned (wrapped, with code Gone) when the change log no
// longer reaches back to the requested version.
var ErrGone = api.Errorf(api.CodeGone, "the requested resourceVersion is too old: the change log was compacted past it; list again and watch from the list's resourceVersion")

// Changes returns up to limit changes of a kind after version after, in
// order. It fails with ErrGone when after is behind the compaction horizon.
// It returns only changes below the watch horizon (see the package
// documentation), so a change it has not returned yet never sorts before
// one it has.
//
// Calls are served from one reader per kind (changeFeed): a hundred
// watchers woken by one write cost one read of the log, not a hundred.
// Each call is answered after a read of the log that began after it, so
// a caller sees every change that committed before its call; a caller
// woken by the Notifier needs less, and says so with ChangesBelow.
func (s *Store) Changes(ctx context.Context, kind string, after int64, limit int) ([]Change, error) {
	return s.feed(kind).since(ctx, s, after, limit, 0)
}

// ChangesBelow is Changes for a caller that needs only the changes below
// passed, a watch horizon (Subscription.Passed): it is answered from the
// kind's reader as soon as that reader has read the log up to passed,
// with no read of its own when it already has. Subscribers woken by one
// wake-up thus share one read of the log however they arrive, where
// Changes, promising each caller a read begun after its call, reads the
// log again for every caller that comes while a read is under way. The
// answer holds every change below passed after `after` (up to limit),
// and may hold newer ones, in order as ever; passed 0 is Changes.
func (s *Store) ChangesBelow(ctx context.Context, kind string, after int64, limit int, passed int64) ([]Change, error) {
	return s.feed(kind).since(ctx, s, after, limit, passed)
}

// changeRead is what one query of the change log returned.
type changeRead struct {
	changes   []Change
	compacted int64 // the compaction horizon: a caller behind it gets ErrGone
	below     int64 // the watch horizon of the query's snapshot
}

// readChanges reads up to limit changes of a kind after version after
// from the log, in order, only below the watch horizon, with the
// compaction horizon (a caller behind it gets ErrGone; the rows returned
// then are not all there were) and the watch horizon of the read. When it
// returns fewer than limit changes, they are every change of the kind in
// (after, below).
func (s *Store) readChanges(ctx context.Context, kind string, after int64, limit int) (changeRead, error) {
	// Only below the horizon: a version above it may yet be joined by a
	// lower one that commits later, and must wait until it cannot.
	rows, err := s.pool.Query(ctx, `SELECT h.compacted_rv, h.below, c.resource_version, c.name, c.type, c.object
		FROM (SELECT compacted_rv, `+horizonSQL+` AS below FROM watch_horizon) h LEFT JOIN LATERAL (
			SELECT resource_version, name, type, object FROM changes
			WHERE kind = $1 AND resource_version > $2 AND resource_version < h.below
			ORDER BY resource_version LIMIT $3) c ON true`, kind, after, limit)
	if err != nil {
		return changeRead{}, fmt.Errorf("read changes: %w", classify(err))
	}
	defer rows.Close()
	var r changeRead
	for rows.Next() {
		var rv *int64
		var name, typ *string
		var obj []byte
		if err := rows.Scan(&r.compacted, &r.below, &rv, &name, &typ, &obj); err != nil {
			return changeRead{}, fmt.Errorf("read changes: %w", classify(err))
		}
		if rv == nil {
			break
		}
		// Compacted once here, for every reader of the feed: a watch
		// writes it into an event as it is (PostgreSQL's jsonb text has
		// spaces, which every watcher would otherwise strip again).
		compact := bytes.NewBuffer(make([]byte, 0, len(obj)))
		if json.Compact(compact, obj) == nil {
			obj = compact.Bytes()
		}
		r.changes = append(r.changes, Change{ResourceVersion: *rv, Kind: kind, Name: *name, Type: *typ, Object: obj})
	}
	if err := rows.Err(); err != nil {
		return changeRead{}, fmt.Errorf("read changes: %w", classify(err))
	}
	return r, nil
}

// Compact deletes change-log rows older than keep, always leaving the
// newest row, and moves the watch horizon. It returns how many rows went.
func (s *Store) Compact(ctx context.Context, keep time.Duration) (int64, error) {
	cutoff := s.now().Add(-keep)
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var cut *int64
		err := tx.QueryRow(ctx, `SELECT max(resource_version) FROM changes
			WHERE at < $1 AND resource_version < (SELECT max(resource_version) FROM changes)
			AND resource_version < `+horizonSQL, cutoff).Scan(&cut)
		if err != nil || cut == nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE watch_horizon SET compacted_rv = greatest(compacted_rv, $1)`, *cut); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM changes WHERE resource_version <= $1`, *cut)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("compact change log: %w", err)
	}
	return n, nil
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID              int64     `json:"id"`
	At              time.Time `json:"at"`
	Actor           string    `json:"actor"`
	Verb            string    `json:"verb"`
	Kind            string    `json:"kind"`
	Name            string    `json:"name"`
	ResourceVersion string    `json:"resourceVersion,omitempty"`
	Result          string    `json:"result"`
	Detail          string    `json:"detail,omitempty"`
	RequestID       string    `json:"requestId,omitempty"`
}

// AuditLog returns audit entries newest first, optionally for one kind and
// name, with ids below before (0: from the newest).
func (s *Store) AuditLog(ctx context.Context, kind, name string, before int64, limit int) ([]AuditEntry, error) {
	return s.AuditQuery(ctx, AuditFilter{Kind: kind, Name: name, Before: before, Limit: limit})
}

// AuditFilter narrows the audit log; zero fields match everything.
type AuditFilter struct {
	Kind, Name, Actor, Verb string
	// Result is "ok", "refused" (every result but ok) or one result code.
	Result string
	// Since keeps entries at or after it.
	Since time.Time
	// Before keeps entries with an id below it (paging; 0: from the newest).
	Before int64
	Limit  int
}

// AuditQuery returns the audit entries f selects, newest first.
func (s *Store) AuditQuery(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	limit, before := f.Limit, f.Before
	if limit <= 0 || limit > MaxLimit {
		limit = DefaultLimit
	}
	if before <= 0 {
		before = 1<<63 - 1
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, actor, verb, kind, name, resource_version, result, detail, request_id
		FROM audit_log WHERE id < $1 AND ($2 = '' OR kind = $2) AND ($3 = '' OR name = $3)
		AND ($4 = '' OR actor = $4) AND ($5 = '' OR verb = $5)
		AND ($6 = '' OR ($6 = 'refused' AND result <> 'ok') OR result = $6)
		AND ($7::timestamptz IS NULL OR at >= $7)
		ORDER BY id DESC LIMIT $8`, before, f.Kind, f.Name, f.Actor, f.Verb, f.Result, since, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		var rv *int64
		err := r.Scan(&e.ID, &e.At, &e.Actor, &e.Verb, &e.Kind, &e.Name, &rv, &e.Result, &e.Detail, &e.RequestID)
		if rv != nil {
			e.ResourceVersion = strconv.FormatInt(*rv, 10)
		}
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", classify(err))
	}
	return out, nil
}

// CreateToken stores a token object and the hash of its secret in one
// transaction.
func (s *Store) CreateToken(ctx context.Context, actor Actor, rec *Record, hash []byte) (*Record, error) {
	var out *Record
	err := s.single(ctx, actor, VerbCreate, rec.Kind, rec.Meta.Name, false, func(tx *Tx) (err error) {
		out, err = tx.CreateToken(ctx, rec, hash)
		return err
	})
	if err != nil {
		return nil, err // nothing was committed
	}
	return out, nil
}

// TokenByHash finds the token whose secret hashes to hash.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (*Record, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+prefixed("o", recordColumns)+` FROM token_hashes h JOIN objects o ON o.uid = h.uid
		WHERE h.hash = $1 AND o.kind = 'Token'`, hash)
	r, err := scanRecord(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, api.Errorf(api.CodeUnauthorized, "unknown token")
	}
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", classify(err))
	}
	return r, nil
}

func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// Expire deletes objects of a kind created longer than keep ago, without
// change-log rows: they simply age out (events do).
func (s *Store) Expire(ctx context.Context, kind string, keep time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM objects WHERE kind = $1 AND created_at < $2`, kind, s.now().Add(-keep))
	if err != nil {
		return 0, fmt.Errorf("expire %s: %w", kind, classify(err))
	}
	return tag.RowsAffected(), nil
}

// Lister lists a kind's objects a page at a time (*Store is one).
type Lister interface {
	List(ctx context.Context, kind string, opts ListOptions) (*ListResult, error)
}

// Each calls fn with every object of kind, reading pages of 1,000 (a
// controller's pass over all of a kind without holding them all in one
// answer); fn's error ends it.
func Each(ctx context.Context, l Lister, kind string, fn func(*Record) error) error {
	cont := ""
	for {
		res, err := l.List(ctx, kind, ListOptions{Limit: 1000, Continue: cont})
		if err != nil {
			return err
		}
		for _, rec := range res.Items {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if res.Continue == "" {
			return nil
		}
		cont = res.Continue
	}
}
