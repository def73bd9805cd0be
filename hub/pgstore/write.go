package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/atollhq/atoll/api"
)

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Audit verbs.
const (
	VerbCreate = "create"
	VerbUpdate = "update"
	VerbPatch  = "patch"
	VerbDelete = "delete"
)

// Tx is a set of writes that commit together, each with its own
// resourceVersion, change-log row and audit row.
type Tx struct {
	s  *Store
	tx txConn
	// pending holds statements back to go with the next one (tx is
	// pending too; see pendingConn).
	pending *pendingConn
	actor   Actor
	xid     int64 // the transaction's id (pg_current_xact_id)
	drawn   int64 // resourceVersions drawn so far
	// refresh and cause are set while Refresh runs.
	refresh bool
	cause   string
	// tokens: a Token was written (the token cache is emptied on commit).
	tokens bool
	// notes are the wake-ups to send after COMMIT (note).
	notes map[string]int64
	// dataVersions: the newest version of configs' and secrets' values
	// read in this transaction, by kind/name (DataVersion); forgotten
	// when the transaction stores a value.
	dataVersions map[string]int64
	// latest: workloads' newest revisions read ahead (LatestRevisions),
	// by workload uid, kept up to date by PutRevision.
	latest map[string]RevisionRow
	// later is the batch sent just before COMMIT (Later).
	later *Batch
	// unversioned are the objects created with their version drawn in
	// SQL (createUnversioned), versioned once COMMIT answered.
	unversioned []unversioned
}

// unversioned is an object createUnversioned wrote: its version is the
// transaction's id shifted, plus k.
type unversioned struct {
	rec *Record
	k   int64
}

// txConn is what a Tx sends its statements through: the connection it
// holds while its transaction is open.
type txConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// InTx runs fn in one transaction: all its writes land, or none do.
//
// No lock is shared by all writers: the transaction locks the rows it
// changes and nothing else (see the package documentation for how
// resourceVersions still reach watches in order). Its first statement
// assigns the transaction's id, which its resourceVersions derive from, and
// bounds its lock waits and statements (Config.LockTimeout,
// Config.StatementTimeout). A transaction PostgreSQL ended as a deadlock
// victim (two transactions locking the same rows in different orders)
// committed nothing and runs again, up to writeAttempts times in all: fn
// must not keep state across runs beyond what it sets. A transaction whose
// session was ended for idling in it (a stopped hub) is not run again: its
// caller has waited that long already and gets Unavailable.
func (s *Store) InTx(ctx context.Context, actor Actor, fn func(tx *Tx) error) error {
	return s.inWriteTx(ctx, actor, false, fn)
}

// inWriteTx is InTx; with lazy, the transaction's BEGIN is held back to
// go with its first statement (Store.Create: with its COMMIT too).
func (s *Store) inWriteTx(ctx context.Context, actor Actor, lazy bool, fn func(tx *Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = classify(s.writeTx(ctx, actor, lazy, fn))
		if attempt >= writeAttempts || !retryable(err) || ctx.Err() != nil {
			break
		}
		s.metrics.retried(ctx, err)
	}
	return err
}

// writeTx runs fn in one write transaction on a connection of its own.
// BEGIN and the statement that assigns the transaction's id go in one
// round trip, at once or, with lazy, held back to go with fn's first
// statement (t.xid is then 0 until something was sent).
func (s *Store) writeTx(ctx context.Context, actor Actor, lazy bool, fn func(tx *Tx) error) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection left inside a transaction (a failed ROLLBACK) is
	// closed by the pool on release, never reused.
	defer conn.Release()
	pc := &pendingConn{conn: conn}
	t := &Tx{s: s, tx: pc, pending: pc, actor: actor}
	done := false
	defer func() {
		if !done && pc.sent { // nothing sent: the server has no transaction
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
	}()
	pc.hold("BEGIN")
	pc.hold(`SELECT pg_current_xact_id()::text::bigint, set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`,
		s.lockTimeout, s.statementTimeout).QueryRow(func(row pgx.Row) error { return row.Scan(&t.xid, nil, nil) })
	if !lazy {
		if err := pc.flush(ctx); err != nil {
			return err
		}
	}
	if err := fn(t); err != nil {
		return t.createError(err)
	}
	if t.later != nil {
		if err := t.later.Send(ctx); err != nil {
			return t.createError(err)
		}
	}
	tag, err := pc.commit(ctx)
	if t.tokens {
		s.tokens.forget() // whatever COMMIT answered: it may have committed
	}
	if err != nil {
		return t.createError(err)
	}
	done = true
	if tag.String() == "ROLLBACK" { // a statement failed and fn went on
		return pgx.ErrTxCommitRollback
	}
	if err := t.versionCreated(); err != nil {
		return err
	}
	s.wakeups.add(t.notes)
	return nil
}

// writeAttempts bounds the runs of one write transaction (see InTx).
const writeAttempts = 3

// retryable reports whether err ended a transaction that surely committed
// nothing and may simply run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "40P01" // deadlock_detected: the victim rolled back
}

// Create stores a new object. The store assigns uid, resourceVersion,
// generation 1 and the creation timestamp; status starts empty unless rec
// carries one. It fails with AlreadyExists when the name is taken.
//
// Unless a spec hook of the kind reads the new version (OnSpecChange,
// not OnSpecChangeUnversioned), the whole transaction is one round trip:
// BEGIN, the row, its change-log and audit rows, what the hooks hold
// back (a workload's first revision) and COMMIT go together (see
// createUnversioned), and the version is known once COMMIT answered.
func (s *Store) Create(ctx context.Context, actor Actor, rec *Record) (*Record, error) {
	var out *Record
	lazy := !s.versionedHooks(rec.Kind)
	err := s.single(ctx, actor, VerbCreate, rec.Kind, rec.Meta.Name, lazy, func(tx *Tx) (err error) {
		if lazy {
			out, err = tx.createUnversioned(ctx, rec)
		} else {
			out, err = tx.Create(ctx, rec)
		}
		return err
	})
	if err != nil {
		return nil, err // nothing was committed
	}
	return out, nil
}

// single runs one write in its own transaction; a failure is audited and
// wrapped with what was attempted. lazy is inWriteTx's.
func (s *Store) single(ctx context.Context, actor Actor, verb, kind, name string, lazy bool, fn func(tx *Tx) error) error {
	if err := s.inWriteTx(ctx, actor, lazy, fn); err != nil {
		s.auditFailure(ctx, actor, verb, kind, name, err)
		return fmt.Errorf("%s %s %s: %w", verb, kind, name, err)
	}
	return nil
}

// Create is Store.Create inside the transaction.
func (t *Tx) Create(ctx context.Context, rec *Record) (*Record, error) {
	return t.create(ctx, rec, nil)
}

// CreateToken stores a token object and the hash of its secret.
func (t *Tx) CreateToken(ctx context.Context, rec *Record, hash []byte) (*Record, error) {
	return t.create(ctx, rec, func(ctx context.Context, tx txConn, r *Record) error {
		_, err := tx.Exec(ctx, `INSERT INTO token_hashes (hash, uid) VALUES ($1, $2)`, hash, r.Meta.UID)
		return err
	})
}

// create runs Create with an optional hook that writes more rows once the
// object row exists.
func (t *Tx) create(ctx context.Context, rec *Record, extra func(ctx context.Context, tx txConn, r *Record) error) (*Record, error) {
	// The row and its change-log and audit rows in one round trip, the
	// last two only when the row went in (a taken name writes nothing);
	// its wake-up goes after COMMIT (note).
	b := &pgx.Batch{}
	out, inserted, err := t.queueCreate(ctx, b, rec)
	if err != nil {
		return nil, err
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	if !*inserted {
		return nil, alreadyExists(out)
	}
	t.note(out.Kind, out.RV())
	if extra != nil {
		if err := extra(ctx, t.tx, out); err != nil {
			return nil, err
		}
	}
	if err := t.runHooks(ctx, nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// newObject is rec as a create writes it: a new uid, generation 1, its
// creation time, empty spec and status as {}, and the prepare hooks run.
func (t *Tx) newObject(ctx context.Context, rec *Record) (Record, [16]byte, time.Time, error) {
	out := *rec
	uid, uidText := newUUID()
	now := t.s.now().UTC().Truncate(time.Microsecond)
	out.Meta.UID = uidText
	out.Meta.Generation = 1
	out.Meta.CreationTimestamp = &now
	out.Meta.DeletionTimestamp = nil
	out.Spec = jsonOrEmpty(rec.Spec)
	out.Status = jsonOrEmpty(rec.Status)
	err := t.runPrepare(ctx, &out)
	return out, uid, now, err
}

// createUnversioned is Store.Create's create, for kinds whose spec hooks
// do not read the new version: it sends nothing, holding back the one
// statement that writes the row, its change-log and audit rows
// (createSQL; pendingConn), so that with the held
// BEGIN, what the hooks hold and COMMIT, the transaction is one round
// trip. The version is drawn in SQL as drawVersion draws it in Go (the
// transaction's id shifted, plus the count drawn before; an id out of
// range gives NULL, which the NOT NULL columns refuse), and set on the
// returned record once COMMIT answered (versionCreated). A name already
// taken fails the insert, and so the transaction, at COMMIT (AlreadyExists,
// writeTx). Its wake-up is noted then too.
func (t *Tx) createUnversioned(ctx context.Context, rec *Record) (*Record, error) {
	out, uid, now, err := t.newObject(ctx, rec)
	if err != nil {
		return nil, err
	}
	uidText := out.Meta.UID
	if t.drawn >= 1<<versionBits {
		return nil, api.Errorf(api.CodeInvalid, "one transaction may write at most %d objects", 1<<versionBits)
	}
	k := t.drawn
	t.drawn++
	// The change-log row holds the object as watchers get it, version
	// included: rendered here around a marker no client can know (the
	// new uid), the version goes between the two halves in SQL.
	marker := "rv-" + uidText
	out.Meta.ResourceVersion = marker
	obj, err := json.Marshal(&out)
	out.Meta.ResourceVersion = ""
	if err != nil {
		return nil, err
	}
	field := `"resourceVersion":"`
	i := bytes.Index(obj, []byte(field+marker+`"`))
	if i < 0 {
		return nil, fmt.Errorf("create %s %s: the rendered object has no resourceVersion", out.Kind, out.Meta.Name)
	}
	head, tail := obj[:i+len(field)], obj[i+len(field)+len(marker):]
	if out.Kind == "Token" {
		t.tokens = true
	}
	p := t.pending
	p.hold(createSQL, out.Kind, out.Meta.Name, uid, k, mapOrEmpty(out.Meta.Labels), mapOrEmpty(out.Meta.Annotations),
		sliceOrEmpty(out.Meta.Finalizers), out.Spec, out.Status, now,
		string(head), string(tail), t.actor.Name, t.actor.On, t.actor.RequestID)
	t.unversioned = append(t.unversioned, unversioned{rec: &out, k: k})
	if err := t.runHooks(ctx, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// sqlVersion is drawVersion in SQL: the transaction's id shifted, plus
// the parameter k; NULL when the id is out of range.
func sqlVersion(k string) string {
	return `(CASE WHEN pg_current_xact_id()::text::bigint < ` + strconv.FormatInt(1<<(63-versionBits), 10) +
		` THEN (pg_current_xact_id()::text::bigint << ` + strconv.Itoa(versionBits) + `) + ` + k + `::bigint END)`
}

// createSQL is createUnversioned's one statement: the row, and from the
// version it was given its change-log and audit rows (data-modifying
// CTEs: all three go in or, when the name is taken or the version is
// NULL, none). One statement instead of three costs PostgreSQL about
// 15 us less per create (BenchmarkCreateSQLVsPgbench, BENCHMARKS.md).
var createSQL = `WITH o AS (
		INSERT INTO objects (` + recordColumns + `)
		VALUES ($1, $2, $3, ` + sqlVersion("$4") + `, 1, $5, $6, $7, $8, $9, $10, NULL)
		RETURNING resource_version
	), c AS (
		INSERT INTO changes (resource_version, kind, name, type, object)
		SELECT o.resource_version, $1, $2, 'ADDED', ($11::text || o.resource_version::text || $12::text)::json FROM o
	)
	INSERT INTO audit_log (actor, verb, kind, name, resource_version, result, detail, request_id)
	SELECT $13, 'create', $1, $2, o.resource_version, 'ok', $14, $15 FROM o`

// versionCreated sets the versions of the objects createUnversioned
// wrote, once COMMIT answered (the transaction's id was read by then),
// and notes their wake-ups.
func (t *Tx) versionCreated() error {
	for _, u := range t.unversioned {
		if t.xid <= 0 || t.xid >= 1<<(63-versionBits) {
			return fmt.Errorf("create %s %s: transaction id %d out of range", u.rec.Kind, u.rec.Meta.Name, t.xid)
		}
		rv := t.xid<<versionBits + u.k
		u.rec.Meta.ResourceVersion = strconv.FormatInt(rv, 10)
		t.note(u.rec.Kind, rv)
	}
	return nil
}

// createError is err, or AlreadyExists when err is the refusal of the
// row createUnversioned held back (its name was taken; the refusal
// surfaces with the statement the row went with). Store.Create writes
// one object per transaction that way.
func (t *Tx) createError(err error) error {
	var pgErr *pgconn.PgError
	if len(t.unversioned) == 1 && errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "objects_pkey" {
		return alreadyExists(t.unversioned[0].rec)
	}
	return err
}

func alreadyExists(rec *Record) error {
	return api.Errorf(api.CodeAlreadyExists, "%s %q already exists", rec.Kind, rec.Meta.Name)
}

// queueCreate queues the statements of a create of rec onto b: the row
// (unless its name is taken) and, only if it went in, its change-log and
// audit rows. inserted is set once b has been sent; the caller notes the
// wake-up once it knows the row went in.
func (t *Tx) queueCreate(ctx context.Context, b *pgx.Batch, rec *Record) (*Record, *bool, error) {
	out, uid, now, err := t.newObject(ctx, rec)
	if err != nil {
		return nil, nil, err
	}
	rv, err := t.drawVersion()
	if err != nil {
		return nil, nil, err
	}
	out.Meta.ResourceVersion = strconv.FormatInt(rv, 10)
	inserted := new(bool)
	b.Queue(`INSERT INTO objects (`+recordColumns+`)
		VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, NULL)
		ON CONFLICT (kind, name) DO NOTHING`,
		out.Kind, out.Meta.Name, uid, rv, mapOrEmpty(out.Meta.Labels), mapOrEmpty(out.Meta.Annotations),
		sliceOrEmpty(out.Meta.Finalizers), out.Spec, out.Status, now).Exec(func(tag pgconn.CommandTag) error {
		*inserted = tag.RowsAffected() == 1
		return nil
	})
	if err := t.queueChange(b, VerbCreate, api.Added, &out, true); err != nil {
		return nil, nil, err
	}
	return &out, inserted, nil
}

// MutateFunc changes a copy of the current object in place. Returning an
// error aborts the mutation and the error is returned to the caller.
type MutateFunc func(cur *Record) error

// Mutate reads an object under a row lock, lets fn change a copy, and writes
// the result with a new resourceVersion. Only labels, annotations,
// finalizers, spec, status and deletionTimestamp are taken from the copy;
// generation is bumped when spec changed. A mutation that changes nothing
// writes nothing and returns the object as it was. When the copy has a
// deletionTimestamp and no finalizers left, the object is deleted.
func (s *Store) Mutate(ctx context.Context, actor Actor, verb, kind, name string, fn MutateFunc) (*Record, error) {
	var out *Record
	err := s.single(ctx, actor, verb, kind, name, false, func(tx *Tx) (err error) {
		out, err = tx.Mutate(ctx, verb, kind, name, fn)
		return err
	})
	if err != nil {
		return nil, err // nothing was committed
	}
	return out, nil
}

// Mutate is Store.Mutate inside the transaction.
func (t *Tx) Mutate(ctx context.Context, verb, kind, name string, fn MutateFunc) (*Record, error) {
	cur, err := lockRecord(ctx, t.tx, kind, name)
	if err != nil {
		return nil, err
	}
	next, err := t.mutated(ctx, cur, fn)
	if err != nil {
		return nil, err
	}
	out, err := t.write(ctx, verb, cur, next)
	if err != nil {
		return nil, err
	}
	if out != cur && out.Meta.DeletionTimestamp == nil && out.Meta.Generation != cur.Meta.Generation {
		// The spec changed (write bumps the generation only then).
		if err := t.runHooks(ctx, cur, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// mutated is fn's change of a copy of cur, with the kind's prepare hooks
// run on it when its spec changed (unless the transaction refreshes).
func (t *Tx) mutated(ctx context.Context, cur *Record, fn MutateFunc) (*Record, error) {
	next := *cur
	next.Meta.Labels = maps.Clone(cur.Meta.Labels)
	next.Meta.Annotations = maps.Clone(cur.Meta.Annotations)
	next.Meta.Finalizers = append([]string(nil), cur.Meta.Finalizers...)
	if err := fn(&next); err != nil {
		return nil, err
	}
	if !t.refresh && next.Meta.DeletionTimestamp == nil && !jsonEqual(cur.Spec, jsonOrEmpty(next.Spec)) {
		if err := t.runPrepare(ctx, &next); err != nil {
			return nil, err
		}
	}
	return &next, nil
}

// Delete removes an object, or marks it for deletion (deletionTimestamp)
// while finalizers remain. A non-empty precondition must equal the current
// resourceVersion. It returns the last state and whether the object is gone.
func (s *Store) Delete(ctx context.Context, actor Actor, kind, name, precondition string) (*Record, bool, error) {
	var out *Record
	var gone bool
	err := s.single(ctx, actor, VerbDelete, kind, name, false, func(tx *Tx) (err error) {
		out, gone, err = tx.Delete(ctx, kind, name, precondition)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return out, gone, nil
}

// Delete is Store.Delete inside the transaction.
func (t *Tx) Delete(ctx context.Context, kind, name, precondition string) (*Record, bool, error) {
	rec, err := t.Mutate(ctx, VerbDelete, kind, name, func(cur *Record) error {
		if err := CheckVersion(cur, precondition); err != nil {
			return err
		}
		if cur.Meta.DeletionTimestamp == nil {
			now := t.s.now().UTC().Truncate(time.Microsecond)
			cur.Meta.DeletionTimestamp = &now
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return rec, len(rec.Meta.Finalizers) == 0, nil
}

// Get reads an object inside the transaction, locking its row until
// commit.
func (t *Tx) Get(ctx context.Context, kind, name string) (*Record, error) {
	return lockRecord(ctx, t.tx, kind, name)
}

// List reads every object of a kind inside the transaction. It first takes
// a transaction-scoped lock of the kind's own, which only other Tx.List
// calls of that kind wait for: two transactions that check a kind's
// objects and then write one (two drills on one cluster) run one after
// the other, and the second sees what the first committed.
func (t *Tx) List(ctx context.Context, kind string) ([]*Record, error) {
	if _, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(kindLockSpace), kind); err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, `SELECT `+recordColumns+` FROM objects WHERE kind = $1 ORDER BY name`, kind)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Record, error) { return scanRecord(r) })
}

func conflict(kind, name, want, have string) error {
	return api.Errorf(api.CodeConflict, "%s %q was modified: you sent resourceVersion %s but it is now %s; read it again and retry", kind, name, want, have)
}

// CheckVersion returns a Conflict error unless precondition is empty or
// equals the record's resourceVersion.
func CheckVersion(cur *Record, precondition string) error {
	if precondition != "" && precondition != cur.Meta.ResourceVersion {
		return conflict(cur.Kind, cur.Meta.Name, precondition, cur.Meta.ResourceVersion)
	}
	return nil
}

func lockRecord(ctx context.Context, tx txConn, kind, name string) (*Record, error) {
	row := tx.QueryRow(ctx, `SELECT `+recordColumns+` FROM objects WHERE kind = $1 AND name = $2 FOR UPDATE`, kind, name)
	cur, err := scanRecord(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(kind, name)
	}
	return cur, err
}

// write stores next over cur inside the transaction: the row and its
// change-log and audit rows in one round trip (its wake-up goes after
// COMMIT).
func (t *Tx) write(ctx context.Context, verb string, cur, next *Record) (*Record, error) {
	b := &pgx.Batch{}
	out, err := t.queueWrite(b, verb, cur, next)
	if err != nil || b.Len() == 0 {
		return out, err
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// queueWrite queues the statements that store next over cur onto b; it
// returns cur itself, queueing nothing, when next changes nothing.
func (t *Tx) queueWrite(b *pgx.Batch, verb string, cur, next *Record) (*Record, error) {
	next.Spec = jsonOrEmpty(next.Spec)
	next.Status = jsonOrEmpty(next.Status)
	// Identity and bookkeeping are the store's, whatever fn did.
	next.Kind, next.Meta.Name, next.Meta.UID = cur.Kind, cur.Meta.Name, cur.Meta.UID
	next.Meta.CreationTimestamp, next.Meta.Generation = cur.Meta.CreationTimestamp, cur.Meta.Generation
	if cur.Meta.DeletionTimestamp != nil {
		next.Meta.DeletionTimestamp = cur.Meta.DeletionTimestamp // once set, it stays
	}
	if len(next.Meta.Finalizers) == 0 {
		next.Meta.Finalizers = nil
	}
	if len(next.Meta.Labels) == 0 {
		next.Meta.Labels = nil
	}
	if len(next.Meta.Annotations) == 0 {
		next.Meta.Annotations = nil
	}
	specChanged := !jsonEqual(cur.Spec, next.Spec)
	gone := next.Meta.DeletionTimestamp != nil && len(next.Meta.Finalizers) == 0
	unchanged := !specChanged && !gone &&
		jsonEqual(cur.Status, next.Status) &&
		maps.Equal(cur.Meta.Labels, next.Meta.Labels) &&
		maps.Equal(cur.Meta.Annotations, next.Meta.Annotations) &&
		slices.Equal(cur.Meta.Finalizers, next.Meta.Finalizers) &&
		(cur.Meta.DeletionTimestamp == nil) == (next.Meta.DeletionTimestamp == nil)
	if unchanged {
		return cur, nil
	}
	if specChanged {
		next.Meta.Generation++
	}
	rv, err := t.drawVersion()
	if err != nil {
		return nil, err
	}
	next.Meta.ResourceVersion = strconv.FormatInt(rv, 10)
	typ := api.Modified
	if gone {
		if cur.Kind == "Config" || cur.Kind == "Secret" {
			t.dataVersions = nil
		}
		typ = api.Deleted
		b.Queue(`DELETE FROM objects WHERE kind = $1 AND name = $2`, cur.Kind, cur.Meta.Name)
	} else {
		b.Queue(`UPDATE objects SET resource_version = $3, generation = $4, labels = $5, annotations = $6,
		finalizers = $7, spec = $8, status = $9, deletion_timestamp = $10 WHERE kind = $1 AND name = $2`,
			cur.Kind, cur.Meta.Name, rv, next.Meta.Generation, mapOrEmpty(next.Meta.Labels), mapOrEmpty(next.Meta.Annotations),
			sliceOrEmpty(next.Meta.Finalizers), next.Spec, next.Status, next.Meta.DeletionTimestamp)
	}
	if err := t.queueChange(b, verb, typ, next, false); err != nil {
		return nil, err
	}
	return next, nil
}

// drawVersion returns the transaction's next resourceVersion: its id
// shifted left by versionBits, plus how many it drew before. See the
// package documentation for why this orders watches without a lock.
func (t *Tx) drawVersion() (int64, error) {
	if t.drawn >= 1<<versionBits {
		return 0, api.Errorf(api.CodeInvalid, "one transaction may write at most %d objects", 1<<versionBits)
	}
	if t.xid <= 0 || t.xid >= 1<<(63-versionBits) {
		return 0, fmt.Errorf("draw resourceVersion: transaction id %d out of range", t.xid)
	}
	rv := t.xid<<versionBits + t.drawn
	t.drawn++
	return rv, nil
}

// versionBits is how many low bits of a resourceVersion count the writes
// of one transaction; the bits above are its transaction id.
const versionBits = 20

// queueChange queues the change-log row and the audit row of a write of
// rec onto b; with ifStored, each only if the object's row holds rec's
// version when it runs (a create whose name was taken writes neither).
// Without ifStored it notes the wake-up (note); a create notes its own
// once it knows its row went in.
func (t *Tx) queueChange(b *pgx.Batch, verb, typ string, rec *Record, ifStored bool) error {
	obj, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if rec.Kind == "Token" {
		t.tokens = true
	}
	rv := rec.RV()
	cond := ""
	if ifStored {
		cond = ` WHERE EXISTS (SELECT 1 FROM objects WHERE kind = $2 AND name = $3 AND resource_version = $1)`
	}
	b.Queue(`INSERT INTO changes (resource_version, kind, name, type, object) SELECT $1::bigint, $2::text, $3::text, $4::text, $5::json`+cond,
		rv, rec.Kind, rec.Meta.Name, typ, obj)
	b.Queue(`INSERT INTO audit_log (actor, verb, kind, name, resource_version, result, detail, request_id)
		SELECT $6::text, $4::text, $2::text, $3::text, $1::bigint, 'ok', $5::text, $7::text`+cond,
		rv, rec.Kind, rec.Meta.Name, verb, t.actor.On, t.actor.Name, t.actor.RequestID)
	if !ifStored {
		t.note(rec.Kind, rv)
	}
	return nil
}

// note remembers that kind changed at version rv in this transaction: its
// wake-up (NOTIFY, the newest version of each kind) is sent once COMMIT
// answered, together with other writes' (wakeups). Not inside the
// transaction: PostgreSQL serialises the commits of all transactions
// that NOTIFY on one lock, which would make every write wait for every
// other's commit. A hub that dies between the two loses only a wake-up,
// which the package's design already allows for (readers read the change
// log on the next wake-up or keepalive).
func (t *Tx) note(kind string, rv int64) {
	if t.notes == nil {
		t.notes = map[string]int64{}
	}
	t.notes[kind] = max(t.notes[kind], rv)
}

// auditFailure records a refused or failed mutation. It runs outside the
// failed transaction and is best effort: when the database itself is down
// there is nowhere to write, and the log line from the API is the record.
func (s *Store) auditFailure(ctx context.Context, actor Actor, verb, kind, name string, cause error) {
	code := api.ErrorCode(cause)
	if code == api.CodeUnavailable || errors.Is(cause, context.Canceled) {
		return
	}
	var fe api.FieldErrors
	switch {
	case errors.As(cause, &fe):
		code = api.CodeInvalid
	case code == "":
		code = "Failed"
	}
	s.AuditRefusal(context.WithoutCancel(ctx), actor, verb, kind, name, code, cause.Error())
}

// AuditRefusal records a mutation that did not happen (denied, invalid,
// conflicting) so that the audit log shows attempts as well as changes.
func (s *Store) AuditRefusal(ctx context.Context, actor Actor, verb, kind, name, result, detail string) {
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_log (actor, verb, kind, name, result, detail, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		storable(actor.Name), verb, kind, storable(name), result, storable(api.Truncate(detail, 1000)), storable(actor.RequestID))
	if err != nil {
		s.log.WarnContext(ctx, "audit write failed", "err", err, "verb", verb, "kind", kind, "name", name)
	}
}

// storable is s as PostgreSQL text can hold it: invalid UTF-8 (a name
// refused for it, a detail cut inside a character) and NUL become U+FFFD,
// so that the refusal is still recorded.
func storable(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// inTx runs fn in a transaction and classifies its error.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, fn)
	return classify(err)
}

// AuditOn sets Actor.On for the audit rows of the transaction's writes
// from here on (the leader fence records the term it checked).
func (t *Tx) AuditOn(on string) { t.actor.On = on }

// QueryRow runs a query inside the transaction (for checks such as the
// leader fence that must see the transaction's own snapshot and locks).
func (t *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.tx.QueryRow(ctx, sql, args...)
}
