package pgtest_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"

	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

var namePattern = regexp.MustCompile(`^t_[0-9]+_[a-z2-7]{6}$`)

func TestDatabasesAreIsolated(t *testing.T) {
	a := connect(t, pgtest.NewDatabase(t))
	b := connect(t, pgtest.NewDatabase(t))

	var nameA, nameB string
	if err := a.QueryRow(t.Context(), "SELECT current_database()").Scan(&nameA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(t.Context(), "SELECT current_database()").Scan(&nameB); err != nil {
		t.Fatal(err)
	}
	if nameA == nameB {
		t.Fatalf("both databases are %s", nameA)
	}
	for _, n := range []string{nameA, nameB} {
		if !namePattern.MatchString(n) {
			t.Errorf("database name %q does not match %s", n, namePattern)
		}
	}

	if _, err := a.Exec(t.Context(), "CREATE TABLE items (id int); INSERT INTO items VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	_, err := b.Exec(t.Context(), "SELECT * FROM items")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" { // undefined_table
		t.Fatalf("table of database a seen from b: err = %v", err)
	}
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	var (
		name   string
		leaked *pgx.Conn // still open when the subtest's cleanup drops its database
	)
	t.Run("uses a database", func(t *testing.T) {
		conn, err := pgx.Connect(t.Context(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		leaked = conn
		if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	if leaked != nil {
		leaked.Close(context.Background())
	}
	if name == "" {
		t.Fatal("the subtest did not get a database")
	}
	conn := connect(t, pgtest.Server().SuperuserURL("postgres"))
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestParallelTests(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			conn := connect(t, pgtest.NewDatabase(t))
			if _, err := conn.Exec(t.Context(), "CREATE TABLE items (id int)"); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(t.Context(), "INSERT INTO items VALUES ($1)", i); err != nil {
				t.Fatal(err)
			}
			var got []int32
			rows, _ := conn.Query(t.Context(), "SELECT id FROM items")
			got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != int32(i) {
				t.Errorf("items = %v, want [%d]", got, i)
			}
		})
	}
}

func TestServerDownAndBack(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	if _, err := conn.Exec(t.Context(), "CREATE TABLE items (id int); INSERT INTO items VALUES (7)"); err != nil {
		t.Fatal(err)
	}

	if err := pgtest.Server().Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(t.Context(), url); err == nil {
		t.Fatal("connected while the server is down")
	}
	if err := pgtest.Server().Restart(t.Context()); err != nil {
		t.Fatal(err)
	}

	conn = connect(t, url)
	var id int
	if err := conn.QueryRow(t.Context(), "SELECT id FROM items").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if id != 7 {
		t.Errorf("id = %d, want 7", id)
	}
}

func TestDatabaseRoles(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	type who struct {
		user, db, dbOwner string
		super             bool
	}
	ask := func(url string) who {
		var w who
		err := connect(t, url).QueryRow(t.Context(), `SELECT current_user, current_database(), pg_get_userbyid(d.datdba), r.rolsuper
			FROM pg_database d, pg_roles r WHERE d.datname = current_database() AND r.rolname = current_user`).Scan(&w.user, &w.db, &w.dbOwner, &w.super)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	hub, owner, admin := ask(r.Hub), ask(r.Owner), ask(r.Admin)
	if hub.user != "atoll_hub" || hub.super || owner.user != "atoll_owner" || owner.super || admin.user != "atoll" || !admin.super {
		t.Errorf("want atoll_hub and atoll_owner (not superusers) and the superuser atoll; got %+v, %+v, %+v", hub, owner, admin)
	}
	if hub.db != owner.db || hub.db != admin.db || !namePattern.MatchString(hub.db) || hub.dbOwner != "atoll_owner" {
		t.Errorf("want one fresh database owned by atoll_owner behind the three URLs; got %+v, %+v, %+v", hub, owner, admin)
	}
	if _, err := connect(t, r.Owner).Exec(t.Context(), "CREATE TABLE items (id int)"); err != nil {
		t.Errorf("want the owner to create tables; got %v", err)
	}
	_, err := connect(t, r.Hub).Exec(t.Context(), "CREATE TABLE mine (id int)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("want the hub's role refused CREATE TABLE (42501); got %v", err)
	}
}
