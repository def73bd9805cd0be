package hub_test

import (
	"context"
	"testing"

	"github.com/atollhq/atoll/hub/pgserver"
)

// TestDatabaseDown: with PostgreSQL gone, reads, writes and readiness
// answer 503 with Retry-After (never 500), and everything recovers when it
// returns, without losing the acknowledged write.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := pgserver.Start(ctx, pgserver.Config{DataDir: t.TempDir() + "/pg"})
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	e := newEnvOn(t, pg.OwnerURL())
	before := e.create(workload("kept", 1, nil))

	if err := pg.Stop(); err != nil {
		t.Fatalf("stop postgres: %v", err)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/workloads", ""},
		{"GET", "/api/v1/workloads/kept", ""},
		{"POST", "/api/v1/workloads", `{"metadata":{"name":"lost"},"spec":{"replicas":1,"template":{"driver":"sim"}}}`},
		{"GET", "/readyz", ""},
	} {
		ct := ""
		if c.body != "" {
			ct = "application/json"
		}
		r := e.do(c.method, c.path, adminSecret, ct, []byte(c.body))
		if r.status != 503 || r.problem.Code != "Unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s with the database down: want 503 Unavailable with Retry-After, got %d %q %s", c.method, c.path, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	if r := e.do("GET", "/healthz", "", "", nil); r.status != 200 {
		t.Errorf("/healthz must not depend on the database: %d", r.status)
	}

	if err := pg.Restart(ctx); err != nil {
		t.Fatalf("restart postgres: %v", err)
	}
	if r := e.do("GET", "/readyz", "", "", nil); r.status != 200 {
		t.Errorf("/readyz after the database returned: %d %s", r.status, r.body)
	}
	var got struct {
		Metadata struct{ UID, ResourceVersion string } `json:"metadata"`
	}
	if err := e.admin.Get(ctx, "workloads", "kept", &got); err != nil || got.Metadata.UID != before.Metadata.UID {
		t.Errorf("the acknowledged write is not there after the outage: %+v, %v", got, err)
	}
	if r := e.do("GET", "/api/v1/workloads/lost", adminSecret, "", nil); r.status != 404 {
		t.Errorf("a write refused during the outage exists: %d", r.status)
	}
}
