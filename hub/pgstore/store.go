package pgstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
)

//go:embed migrations/*.sql
var migrations embed.FS

// kindLockSpace is the first key of the transaction-scoped advisory locks
// Tx.List takes, one per kind (the second key is the kind's hash).
const kindLockSpace = 0x61746f6c // "atol"

// Defaults of the bounds on a stalled session (Config).
const (
	defaultIdleInTxTimeout  = time.Second
	defaultLockTimeout      = 3 * time.Second
	defaultStatementTimeout = 10 * time.Second
)

// NotifyChannel is the LISTEN/NOTIFY channel that wakes watchers.
const NotifyChannel = "atoll_changes"

// grantLockKey is the transaction-scoped advisory lock that serialises the
// grants hubs make after migrating: PostgreSQL refuses concurrent changes
// to one catalog row ("tuple concurrently updated").
const grantLockKey = 0x61746f6c6c4752 // "atollGR"

// Config configures a Store.
type Config struct {
	// DatabaseURL is a PostgreSQL connection string: the hub's own role,
	// which needs no more than to read and write the tables (see
	// MigrateURL).
	DatabaseURL string
	// MigrateURL is the connection string migrations run with: a role that
	// owns the schema (pgserver's atoll_owner, say), used only while Open
	// migrates. When its role differs from DatabaseURL's, Open then grants
	// DatabaseURL's role what the hub needs and no more: SELECT, INSERT,
	// UPDATE and DELETE on the tables (SELECT alone on goose_db_version)
	// and USAGE, SELECT and UPDATE on the sequences, now and, through
	// default privileges, on what later migrations create. Empty means
	// DatabaseURL, whose role must then be allowed to create tables when a
	// migration is pending.
	MigrateURL string
	// MaxConns bounds the pool; 0 means 20.
	MaxConns int32
	// IdleInTxTimeout is how long a pool session may sit idle inside a
	// transaction before PostgreSQL ends it (and so releases the row locks
	// of a hub that stopped between two statements: SIGSTOP, a VM pause);
	// 0 means 1 s. The hub waits on nothing but PostgreSQL inside a
	// transaction. A connection string that sets
	// idle_in_transaction_session_timeout wins.
	IdleInTxTimeout time.Duration
	// LockTimeout bounds how long a write waits for a row lock; 0 means
	// 3 s, longer than IdleInTxTimeout so that a write queued behind a
	// stopped hub's row gets it once that session is ended. A write that
	// waits longer fails with Unavailable (503).
	LockTimeout time.Duration
	// StatementTimeout bounds each statement of a write transaction; 0
	// means 10 s.
	StatementTimeout time.Duration
	// TokenCacheTTL bounds how long an API token is served from memory
	// when no notification of its change arrives; 0 means 5 s.
	TokenCacheTTL time.Duration
	// Logger receives migration and connection messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock for timestamps; nil means time.Now.
	Now func() time.Time
	// Tracer and Meter, when set, give every query a span and a duration
	// sample.
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
}

// Store is the hub's PostgreSQL store.
type Store struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	now      func() time.Time
	migrated atomic.Bool
	hooks    hooks
	metrics  storeMetrics
	tokens   tokenCache
	wakeups  wakeups
	feedsMu  sync.Mutex
	feeds    map[string]*changeFeed // by kind (Changes)
	// placementRows is how many rows the last read of every placement
	// gave: the next read's slice is made that size.
	placementRows atomic.Int64
	// Settings of every write transaction, as set_config wants them.
	lockTimeout, statementTimeout string
}

// Open connects to PostgreSQL and applies the embedded migrations. The pool
// is usable even when the database is down at the time (calls then return
// Unavailable), but migrations must succeed for Open to return.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("open store: parse database url: %w", errors.New(redactURLError(err)))
	}
	pc.MaxConns = cmp.Or(cfg.MaxConns, 20)
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	// A hub stopped in the middle of a transaction (SIGSTOP, a VM pause)
	// holds the row locks it took, and its transaction id holds back the
	// watch horizon (see the package documentation), for as long as its
	// session lives. The hub never waits on anything but PostgreSQL inside
	// a transaction: a session idle in one this long belongs to a process
	// that is not running, and the server ends it.
	if _, ok := pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.Itoa(int(cmp.Or(cfg.IdleInTxTimeout, defaultIdleInTxTimeout).Milliseconds()))
	}
	if cfg.Tracer != nil && cfg.Meter != nil {
		pc.ConnConfig.Tracer = newQueryTracer(cfg.Tracer, cfg.Meter)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{pool: pool, log: cfg.Logger, now: cfg.Now,
		lockTimeout:      strconv.FormatInt(cmp.Or(cfg.LockTimeout, defaultLockTimeout).Milliseconds(), 10),
		statementTimeout: strconv.FormatInt(cmp.Or(cfg.StatementTimeout, defaultStatementTimeout).Milliseconds(), 10),
	}
	s.wakeups.s = s
	s.tokens.ttl = cmp.Or(cfg.TokenCacheTTL, defaultTokenCacheTTL)
	if cfg.Meter != nil {
		s.metrics = newStoreMetrics(cfg.Meter)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.migrate(ctx, cfg.MigrateURL); err != nil {
		pool.Close()
		return nil, err
	}
	s.warnSuperuser(ctx)
	return s, nil
}

// warnSuperuser says in the log when the hub's role is a superuser, which
// would let anything that gets the hub to run a statement do anything to
// the server and the machine it runs on.
func (s *Store) warnSuperuser(ctx context.Context) {
	var role string
	var super bool
	err := s.pool.QueryRow(ctx, `SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&role, &super)
	if err == nil && super {
		s.log.WarnContext(ctx, "the hub connects to PostgreSQL as a superuser: give it a role that is not one, and run migrations as the schema's owner (SECURITY.md, \"Database roles\")", "role", role)
	}
}

// redactURLError keeps passwords out of error messages about URLs.
func redactURLError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if j := strings.Index(msg[i:], "@"); j >= 0 {
			msg = msg[:i+3] + "***" + msg[i+j:]
		}
	}
	return msg
}

// migrate applies the embedded migrations, as migrateURL's role when
// given, then grants the pool's role what it needs.
func (s *Store) migrate(ctx context.Context, migrateURL string) error {
	db := stdlib.OpenDBFromPool(s.pool)
	if migrateURL != "" {
		cc, err := pgx.ParseConfig(migrateURL)
		if err != nil {
			return fmt.Errorf("migrate: parse migrate database url: %w", errors.New(redactURLError(err)))
		}
		if cc.ConnectTimeout == 0 {
			cc.ConnectTimeout = 5 * time.Second
		}
		db = stdlib.OpenDB(*cc)
		db.SetMaxOpenConns(2)
	}
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, mustSub(migrations, "migrations"), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
		return fmt.Errorf("migrate: %w: this role may not change the schema; run migrations with the connection string of the schema's owner (the migrate database URL)", err)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", classify(err))
	}
	for _, r := range results {
		s.log.InfoContext(ctx, "applied migration", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	if migrateURL != "" {
		if err := s.grantPool(ctx, db); err != nil {
			return err
		}
	}
	s.migrated.Store(true)
	return nil
}

// grantPool grants the pool's role, from db (the migrating role's
// connection), the rights the hub uses on the schema's tables and
// sequences, and the same on what later migrations create. Nothing is
// granted when both are one role.
func (s *Store) grantPool(ctx context.Context, db *sql.DB) error {
	var runtime string
	if err := s.pool.QueryRow(ctx, `SELECT current_user`).Scan(&runtime); err != nil {
		return fmt.Errorf("grant: %w", classify(err))
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("grant: %w", classify(err))
	}
	defer tx.Rollback()
	var owner string
	var schema sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT current_user, current_schema()`).Scan(&owner, &schema); err != nil {
		return fmt.Errorf("grant: %w", classify(err))
	}
	if owner == runtime {
		return nil
	}
	if !schema.Valid {
		return errors.New("grant: the migrating role has no current schema (search_path)")
	}
	role, sch := pgx.Identifier{runtime}.Sanitize(), pgx.Identifier{schema.String}.Sanitize()
	for _, stmt := range []string{
		`SELECT pg_advisory_xact_lock(` + strconv.FormatInt(grantLockKey, 10) + `)`,
		`GRANT USAGE ON SCHEMA ` + sch + ` TO ` + role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ` + sch + ` TO ` + role,
		`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA ` + sch + ` TO ` + role,
		// The hub reads the migration history (a start with nothing to
		// apply), never writes it.
		`REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON goose_db_version FROM ` + role,
		`ALTER DEFAULT PRIVILEGES IN SCHEMA ` + sch + ` GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ` + role,
		`ALTER DEFAULT PRIVILEGES IN SCHEMA ` + sch + ` GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ` + role,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("grant %s: %w", runtime, classify(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("grant %s: %w", runtime, classify(err))
	}
	s.log.DebugContext(ctx, "granted the hub's role its rights on the schema", "role", runtime, "owner", owner, "schema", schema.String)
	return nil
}

// Close stops the change wake-ups' sender, waiting for it (it sends
// what is pending first, for up to a second), then closes the pool.
func (s *Store) Close() {
	s.wakeups.close(wakeupCloseGrace)
	s.pool.Close()
}

// Pool is the connection pool, for components that need their own queries
// (the notifier's dedicated connection, readiness checks).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ready reports whether migrations are done and PostgreSQL answers.
func (s *Store) Ready(ctx context.Context) error {
	if !s.migrated.Load() {
		return api.Errorf(api.CodeUnavailable, "migrations have not finished")
	}
	// A connection idle in the pool from before a database restart fails
	// its first use (and is dropped): one more try asks a fresh one, so
	// readiness does not lag the database by a stale connection.
	err := s.pool.Ping(ctx)
	if err != nil && ctx.Err() == nil {
		err = s.pool.Ping(ctx)
	}
	return classify(err)
}

// Actor is who performs a mutation, for the audit log.
type Actor struct {
	Name      string // token name, or "system:..." for the hub itself
	RequestID string
	// On is written to the detail of the audit rows of successful writes:
	// for the hub's controllers, the leader term they wrote under.
	On string
}

// Record is an object as the store keeps it: metadata plus spec and status
// documents. Spec and Status are JSON.
type Record struct {
	Kind   string
	Meta   api.ObjectMeta
	Spec   json.RawMessage
	Status json.RawMessage
}

// objectJSON is the wire shape of a Record.
type objectJSON struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   api.ObjectMeta  `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
	Status     json.RawMessage `json:"status,omitempty"`
}

// MarshalJSON renders the record as an API object.
func (r *Record) MarshalJSON() ([]byte, error) {
	status := r.Status
	if len(status) == 0 || bytes.Equal(status, []byte("{}")) || bytes.Equal(status, []byte("null")) {
		status = nil
	}
	spec := r.Spec
	if len(spec) == 0 {
		spec = json.RawMessage("{}")
	}
	if k, ok := api.LookupKind(r.Kind); ok && k.Inline {
		// The spec document's fields stand at the top level.
		meta, err := json.Marshal(r.Meta)
		if err != nil {
			return nil, err
		}
		head := fmt.Sprintf(`{"apiVersion":%q,"kind":%q,"metadata":%s`, api.Group, r.Kind, meta)
		body := bytes.TrimSpace(spec)
		if len(body) > 2 {
			return []byte(head + "," + string(body[1:])), nil
		}
		return []byte(head + "}"), nil
	}
	return json.Marshal(objectJSON{APIVersion: api.Group, Kind: r.Kind, Metadata: r.Meta, Spec: spec, Status: status})
}

// Decode fills a typed API object from the record.
func (r *Record) Decode(obj any) error {
	b, err := r.MarshalJSON()
	if err != nil {
		return err
	}
	return json.Unmarshal(b, obj)
}

// DecodeObject fills obj as Decode does, without rendering the record
// and parsing it again for a kind whose spec is not inline: the spec and
// status documents are parsed into obj and the metadata is copied (its
// maps and timestamps are then shared with the record's).
func (r *Record) DecodeObject(obj api.Object) error {
	if k, ok := api.LookupKind(r.Kind); !ok || k.Inline {
		return r.Decode(obj)
	}
	spec, status := r.Spec, r.Status
	if len(spec) == 0 {
		spec = json.RawMessage("{}")
	}
	if len(status) == 0 {
		status = json.RawMessage("null")
	}
	doc := make([]byte, 0, len(spec)+len(status)+20)
	doc = append(append(append(append(append(doc, `{"spec":`...), spec...), `,"status":`...), status...), '}')
	if err := json.Unmarshal(doc, obj); err != nil {
		return err
	}
	*obj.GetTypeMeta() = api.TypeMeta{APIVersion: api.Group, Kind: r.Kind}
	*obj.GetMetadata() = r.Meta
	return nil
}

// DecodeSpec fills v from the record's spec document alone: for a kind
// whose spec is not inline (every kind but Event), what Decode puts in the
// typed object's Spec, without rendering and parsing the whole record.
func (r *Record) DecodeSpec(v any) error {
	if len(r.Spec) == 0 {
		return json.Unmarshal([]byte("{}"), v)
	}
	return json.Unmarshal(r.Spec, v)
}

// RV is the record's resourceVersion as a number.
func (r *Record) RV() int64 {
	n, _ := strconv.ParseInt(r.Meta.ResourceVersion, 10, 64)
	return n
}

const recordColumns = `kind, name, uid, resource_version, generation, labels, annotations, finalizers, spec, status, created_at, deletion_timestamp`

func scanRecord(row pgx.Row) (*Record, error) {
	var (
		r           Record
		uid         [16]byte
		rv, gen     int64
		labels, ann map[string]string
		created     time.Time
		deleted     *time.Time
		spec, stat  []byte
	)
	err := row.Scan(&r.Kind, &r.Meta.Name, &uid, &rv, &gen, &labels, &ann, &r.Meta.Finalizers, &spec, &stat, &created, &deleted)
	if err != nil {
		return nil, err
	}
	r.Meta.UID = formatUUID(uid)
	r.Meta.ResourceVersion = strconv.FormatInt(rv, 10)
	r.Meta.Generation = gen
	if len(labels) > 0 {
		r.Meta.Labels = labels
	}
	if len(ann) > 0 {
		r.Meta.Annotations = ann
	}
	if len(r.Meta.Finalizers) == 0 {
		r.Meta.Finalizers = nil
	}
	created = created.UTC()
	r.Meta.CreationTimestamp = &created
	if deleted != nil {
		d := deleted.UTC()
		r.Meta.DeletionTimestamp = &d
	}
	r.Spec, r.Status = spec, stat
	return &r, nil
}

func formatUUID(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func newUUID() ([16]byte, string) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b, formatUUID(b)
}

// classify turns driver errors into domain errors: connection trouble
// becomes Unavailable, text PostgreSQL cannot store (NUL, invalid UTF-8)
// Invalid, a cancelled request stays context.Canceled. The API refuses
// such text before it comes here; this keeps a miss from being a 500.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if api.ErrorCode(err) != "" || errors.Is(err, context.Canceled) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "57P"), // admin shutdown, crash shutdown, cannot connect now
			strings.HasPrefix(pgErr.Code, "53"),  // insufficient resources
			pgErr.Code == "55P03",                // lock_not_available: lock_timeout, a row held too long
			pgErr.Code == "57014",                // query_canceled: statement_timeout
			pgErr.Code == "25P03",                // idle_in_transaction_session_timeout
			pgErr.Code == "40P01":                // deadlock_detected, after InTx's retries
			return unavailable(err)
		case pgErr.Code == "22021", // character_not_in_repertoire: NUL or invalid UTF-8 in text
			pgErr.Code == "22P05": // untranslatable_character: \u0000 in jsonb
			return fmt.Errorf("%w (%v)", api.Errorf(api.CodeInvalid, "the request holds text the database cannot store (a NUL byte or invalid UTF-8)"), err)
		}
		return err
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "closed pool") {
		return unavailable(err)
	}
	return err
}

func unavailable(err error) error {
	return fmt.Errorf("%w (%v)", api.Errorf(api.CodeUnavailable, "the database is unavailable"), err)
}

// Get reads one object.
func (s *Store) Get(ctx context.Context, kind, name string) (*Record, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+recordColumns+` FROM objects WHERE kind = $1 AND name = $2`, kind, name)
	r, err := scanRecord(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(kind, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", kind, name, classify(err))
	}
	return r, nil
}

func notFound(kind, name string) error {
	return api.Errorf(api.CodeNotFound, "%s %q not found", kind, name)
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	if va == nil {
		va = map[string]any{}
	}
	if vb == nil {
		vb = map[string]any{}
	}
	return reflect.DeepEqual(va, vb)
}

func mapOrEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func sliceOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func jsonOrEmpty(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return json.RawMessage("{}")
	}
	return b
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
