package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// TestHubRole: migrations run as the owner, the pool as the hub's role,
// which is not a superuser, reads and writes every table, and may neither
// change the schema nor the migration history.
func TestHubRole(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	// Hubs starting at once all grant: none fails on a catalog row another
	// is updating.
	stores := make([]*pgstore.Store, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = pgstore.Open(t.Context(), pgstore.Config{DatabaseURL: r.Hub, MigrateURL: r.Owner, MaxConns: 2})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("store %d: want it open; got %v", i, err)
		}
		t.Cleanup(stores[i].Close)
	}
	s := stores[0]
	ctx := t.Context()
	pool := s.Pool()

	var user string
	var super bool
	if err := pool.QueryRow(ctx, `SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&user, &super); err != nil {
		t.Fatal(err)
	}
	if user != "atoll_hub" || super {
		t.Fatalf("want the pool connected as atoll_hub, not a superuser; got %s (superuser %v)", user, super)
	}

	// Writes that touch the objects, change log and audit tables and the
	// sequences.
	rec := &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "web"}, Spec: json.RawMessage(`{"replicas":1}`)}
	if _, err := s.Create(ctx, pgstore.Actor{Name: "test"}, rec); err != nil {
		t.Fatalf("want the hub's role to write objects; got %v", err)
	}
	if _, err := s.Get(ctx, "Workload", "web"); err != nil {
		t.Errorf("want the hub's role to read objects; got %v", err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Errorf("want the store ready; got %v", err)
	}

	for _, sql := range []string{
		`CREATE TABLE mine (id int)`,
		`ALTER TABLE objects ADD COLUMN extra int`,
		`DROP TABLE nats_keys`,
		`TRUNCATE audit_log`,
		`DELETE FROM goose_db_version`,
		`INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)`,
		`CREATE ROLE intruder`,
		`ALTER SYSTEM SET log_statement = 'none'`,
	} {
		if _, err := pool.Exec(ctx, sql); pgCode(err) != "42501" {
			t.Errorf("want %q refused to the hub's role (42501); got %v", sql, err)
		}
	}

	// A hub given only its own role opens the migrated database (nothing
	// to apply, so nothing it may not do).
	plain, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: r.Hub})
	if err != nil {
		t.Fatalf("want a hub without a migrate URL to open an up-to-date database; got %v", err)
	}
	plain.Close()
}

// TestHubRoleCannotMigrate: on a database not migrated yet, the hub's role
// alone fails, saying what to give it.
func TestHubRoleCannotMigrate(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	s, err := pgstore.Open(t.Context(), pgstore.Config{DatabaseURL: r.Hub})
	if err == nil {
		s.Close()
		t.Fatal("want migrations refused to the hub's role")
	}
	if !strings.Contains(err.Error(), "migrate database URL") || api.ErrorCode(err) == api.CodeUnavailable {
		t.Errorf("want an error (not Unavailable, which the hub retries) pointing at the migrate URL; got %v", err)
	}
}

// TestGrantsCoverLaterTables: a table a later migration creates (here one
// the owner creates by hand) is the hub's to use without a new grant.
func TestGrantsCoverLaterTables(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	s := open(t, r)
	execAdmin(t, r.Owner, `CREATE TABLE later (id bigserial PRIMARY KEY, v text)`)
	if _, err := s.Pool().Exec(t.Context(), `INSERT INTO later (v) VALUES ('x')`); err != nil {
		t.Errorf("want the hub's role to write a table the owner created after the grants; got %v", err)
	}
	var n int
	if err := s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM later`).Scan(&n); err != nil || n != 1 {
		t.Errorf("want the row read back; got %d, %v", n, err)
	}
}
