package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atollhq/atoll/hub/pgserver"
	"github.com/jackc/pgx/v5"
)

const (
	startTimeout = 2 * time.Minute
	adminTimeout = 30 * time.Second // for CREATE and DROP DATABASE
)

var (
	server    atomic.Pointer[pgserver.Server]
	databases atomic.Int64
)

// Main starts one non-durable private PostgreSQL for the whole test binary
// (in a temporary folder it removes afterwards), runs the tests, stops the
// server and exits with m.Run's code. Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	log := newLogger()
	dir, err := os.MkdirTemp("", "atoll-pgtest-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: temporary folder: %v\n", err)
		return 1
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: remove %s: %v\n", dir, err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	s, err := pgserver.Start(ctx, pgserver.Config{DataDir: filepath.Join(dir, "data"), Logger: log})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: these tests need PostgreSQL, which failed to start: %v\n", err)
		return 1
	}
	server.Store(s)

	code := m.Run()

	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// newLogger writes warnings to stderr, or everything with
// ATOLL_PGTEST_LOG=debug.
func newLogger() *slog.Logger {
	level := slog.LevelWarn
	if strings.EqualFold(os.Getenv("ATOLL_PGTEST_LOG"), "debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// Server returns the running server, for tests that stop and restart it.
// It is nil when Main has not been called.
func Server() *pgserver.Server {
	return server.Load()
}

// NewDatabase creates a fresh empty database for this test and returns its
// URL, as the superuser; the database is dropped (WITH (FORCE)) in
// t.Cleanup. It is safe to call from parallel tests.
func NewDatabase(t testing.TB) string {
	t.Helper()
	s := mustServer(t)
	name := createDatabase(t, s, "")
	return s.SuperuserURL(name)
}

// Roles are the URLs of one test database as each of the roles the hub's
// deployments use (package pgserver's Hub, Owner and Superuser).
type Roles struct {
	// Hub is the hub's unprivileged login: give it to pgstore.Config's
	// DatabaseURL and to the leader elector.
	Hub string
	// Owner owns the database and its schema: give it to
	// pgstore.Config's MigrateURL.
	Owner string
	// Admin is the superuser, for what a test does behind the hub's back.
	Admin string
}

// NewDatabaseRoles creates a fresh empty database for this test owned by
// the Owner role, as pgserver prepares the database "atoll", and returns
// its URLs as each role; it is dropped in t.Cleanup. It is safe to call
// from parallel tests.
func NewDatabaseRoles(t testing.TB) Roles {
	t.Helper()
	s := mustServer(t)
	name := createDatabase(t, s, string(pgserver.Owner))
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := s.PrepareDatabase(ctx, name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return Roles{Hub: s.URLAs(pgserver.Hub, name), Owner: s.URLAs(pgserver.Owner, name), Admin: s.SuperuserURL(name)}
}

func mustServer(t testing.TB) *pgserver.Server {
	t.Helper()
	s := server.Load()
	if s == nil {
		t.Fatal("pgtest: no server: call pgtest.Main from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }")
	}
	return s
}

// createDatabase creates a database with a fresh name, owned by owner
// (the superuser when empty), and drops it in t.Cleanup.
func createDatabase(t testing.TB, s *pgserver.Server, owner string) string {
	t.Helper()
	name := fmt.Sprintf("t_%d_%s", databases.Add(1), strings.ToLower(rand.Text()[:6]))
	ident := pgx.Identifier{name}.Sanitize()
	err := admin(s, func(ctx context.Context, conn *pgx.Conn) error {
		// Copying the template's files is several times faster than the
		// default WAL_LOG strategy of PostgreSQL 15+ when fsync is off.
		var version int
		if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
			return err
		}
		sql := "CREATE DATABASE " + ident
		if owner != "" {
			sql += " OWNER " + pgx.Identifier{owner}.Sanitize()
		}
		if version >= 150000 {
			sql += " STRATEGY FILE_COPY"
		}
		_, err := conn.Exec(ctx, sql)
		return err
	})
	if err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		err := admin(s, func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
			return err
		})
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v (a test that stops the server must restart it)", name, err)
		}
	})
	return name
}

// admin runs f on a connection to the maintenance database "postgres".
func admin(s *pgserver.Server, f func(context.Context, *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.SuperuserURL("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	return f(ctx, conn)
}
