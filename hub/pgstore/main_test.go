package pgstore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open opens a store on r as the hub does: the pool as the hub's role,
// migrations as the owner.
func open(t testing.TB, r pgtest.Roles) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(t.Context(), pgstore.Config{DatabaseURL: r.Hub, MigrateURL: r.Owner, MaxConns: 4})
	if err != nil {
		t.Fatalf("want the store open; got %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func execAdmin(t *testing.T, adminURL, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
