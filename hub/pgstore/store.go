package pgstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
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

// writeLockKey is the advisory lock that orders resourceVersions by commit.
const writeLockKey = 0x61746f6c6c // "atoll"

// idleInTxTimeout is how long a pool session may sit idle inside a
// transaction before PostgreSQL ends it.
const idleInTxTimeout = 5 * time.Second

// NotifyChannel is the LISTEN/NOTIFY channel that wakes watchers.
const NotifyChannel = "atoll_changes"

// Config configures a Store.
type Config struct {
	// DatabaseURL is a PostgreSQL connection string.
	DatabaseURL string
	// MaxConns bounds the pool; 0 means 20.
	MaxConns int32
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
	// Every writer takes the one write lock first (see InTx), so a hub
	// stopped in the middle of a transaction (SIGSTOP, a VM pause) would
	// stall the writes of every hub for as long as its session lives. The
	// hub never waits on anything but PostgreSQL inside a transaction: a
	// session idle in one this long belongs to a process that is not
	// running, and the server ends it.
	if _, ok := pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.Itoa(int(idleInTxTimeout.Milliseconds()))
	}
	if cfg.Tracer != nil && cfg.Meter != nil {
		pc.ConnConfig.Tracer = newQueryTracer(cfg.Tracer, cfg.Meter)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{pool: pool, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
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

func (s *Store) migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(s.pool)
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
	if err != nil {
		return fmt.Errorf("migrate: %w", classify(err))
	}
	for _, r := range results {
		s.log.InfoContext(ctx, "applied migration", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	s.migrated.Store(true)
	return nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

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
			strings.HasPrefix(pgErr.Code, "53"):  // insufficient resources
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
