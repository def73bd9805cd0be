package pgserver_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/atollhq/atoll/hub/pgserver"
)

// wantRefused fails unless sql fails on conn with insufficient_privilege.
func wantRefused(t *testing.T, conn *pgx.Conn, who, sql string) {
	t.Helper()
	_, err := conn.Exec(t.Context(), sql)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("%s: want %q refused with insufficient_privilege (42501); got %v", who, sql, err)
	}
}

func wantDone(t *testing.T, conn *pgx.Conn, who, sql string) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Errorf("%s: want %q to work; got %v", who, sql, err)
	}
}

// TestRoles: the hub's role and the owner's are not superusers and cannot
// create roles, change the server's configuration or run programs; the
// hub's cannot create tables either, but has what it uses at runtime
// (session settings, LISTEN/NOTIFY, advisory locks).
func TestRoles(t *testing.T) {
	t.Parallel()
	s := start(t, pgserver.Config{DataDir: filepath.Join(t.TempDir(), "pg")})
	for _, c := range []struct {
		url, role string
	}{{s.HubURL(), "atoll_hub"}, {s.OwnerURL(), "atoll_owner"}, {s.SuperuserURL("atoll"), "atoll"}} {
		if !strings.HasPrefix(c.url, "postgres://"+c.role+":") || !strings.HasSuffix(c.url, "/atoll?sslmode=disable") {
			t.Errorf("want a URL for role %s on database atoll; got %q", c.role, c.url)
		}
	}

	hub := connect(t, s.HubURL())
	var user string
	var super, createRole, createDB bool
	if err := hub.QueryRow(t.Context(), `SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user`).Scan(&user, &super, &createRole, &createDB); err != nil {
		t.Fatal(err)
	}
	if user != string(pgserver.Hub) || super || createRole || createDB {
		t.Errorf("want the hub connected as atoll_hub, not superuser, no CREATEROLE, no CREATEDB; got %s super=%v createrole=%v createdb=%v", user, super, createRole, createDB)
	}
	for _, sql := range []string{
		`CREATE ROLE intruder LOGIN SUPERUSER`,
		`ALTER SYSTEM SET log_statement = 'none'`,
		`CREATE DATABASE other`,
		`COPY (SELECT 1) TO PROGRAM 'true'`,
		`CREATE TABLE mine (id int)`,
		`ALTER ROLE atoll_hub SUPERUSER`,
	} {
		wantRefused(t, hub, "hub", sql)
	}
	for _, sql := range []string{
		`SET idle_in_transaction_session_timeout = 5000`,
		`SET lock_timeout = 1000`,
		`SET application_name = 'atoll-leader test'`,
		`LISTEN atoll_changes`,
		`NOTIFY atoll_changes, 'x'`,
		`SELECT pg_advisory_lock(1), pg_advisory_unlock(1)`,
		`SELECT pg_try_advisory_xact_lock(2)`,
	} {
		wantDone(t, hub, "hub", sql)
	}

	owner := connect(t, s.OwnerURL())
	if err := owner.QueryRow(t.Context(), `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || super {
		t.Errorf("want the owner not a superuser; got %v, %v", super, err)
	}
	wantDone(t, owner, "owner", `CREATE TABLE owned (id bigserial PRIMARY KEY)`)
	for _, sql := range []string{
		`CREATE ROLE intruder LOGIN`,
		`ALTER SYSTEM SET log_statement = 'none'`,
		`CREATE DATABASE other`,
		`COPY (SELECT 1) TO PROGRAM 'true'`,
	} {
		wantRefused(t, owner, "owner", sql)
	}
	// Without a grant (pgstore makes them after migrating), the hub's role
	// cannot read what the owner made.
	wantRefused(t, hub, "hub", `SELECT * FROM owned`)
}

// TestDataFolderOfAnOlderVersion: a cluster from before the roles (the
// database, its schema and tables owned by the superuser, no atoll_owner
// or atoll_hub) gets them at the next Start, and everything in the
// database is handed to the owner.
func TestDataFolderOfAnOlderVersion(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pg")
	cfg := pgserver.Config{DataDir: dir}
	s := start(t, cfg)
	admin := connect(t, s.SuperuserURL("atoll"))
	for _, sql := range []string{
		`ALTER DATABASE atoll OWNER TO atoll`,
		`ALTER SCHEMA public OWNER TO atoll`,
		`CREATE TABLE objects (id bigserial PRIMARY KEY, body text)`,
		`CREATE SEQUENCE resource_version_seq`,
		`CREATE VIEW recent AS SELECT id FROM objects`,
		`DROP ROLE atoll_hub`,
		`DROP ROLE atoll_owner`,
	} {
		if _, err := admin.Exec(t.Context(), sql); err != nil {
			t.Fatalf("making an older version's cluster: %s: %v", sql, err)
		}
	}
	admin.Close(t.Context())
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	s = start(t, cfg)
	admin = connect(t, s.SuperuserURL("atoll"))
	rows, err := admin.Query(t.Context(), `
		SELECT 'database atoll', pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'atoll'
		UNION ALL SELECT 'schema public', pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'
		UNION ALL SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v')`)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]string{}
	var what, who string
	if _, err := pgx.ForEachRow(rows, []any{&what, &who}, func() error { owners[what] = who; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []string{"database atoll", "schema public", "objects", "objects_id_seq", "resource_version_seq", "recent"} {
		if owners[obj] != string(pgserver.Owner) {
			t.Errorf("want %s owned by atoll_owner after the Start; got %q (all: %v)", obj, owners[obj], owners)
		}
	}
	hub := connect(t, s.HubURL())
	wantRefused(t, hub, "hub", `CREATE TABLE mine (id int)`)
	owner := connect(t, s.OwnerURL())
	wantDone(t, owner, "owner", `INSERT INTO objects (body) VALUES ('kept')`)
}
