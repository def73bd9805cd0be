package hub_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/hub/tokens"
)

// TestRoles checks 401 and 403 on every route family, by role.
func TestRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	viewer, operator := e.token("viewer", api.RoleViewer), e.token("operator", api.RoleOperator)
	e.create(workload("seen", 1, nil))
	wl := `{"metadata":{"name":"new"},"spec":{"replicas":1,"template":{"driver":"sim"}}}`
	tok := `{"metadata":{"name":"t2"},"spec":{"role":"viewer"}}`
	cases := []struct {
		who, method, path, body string
		want                    int
	}{
		{"", "GET", "/api/v1/workloads", "", 401},
		{"garbage", "GET", "/api/v1/workloads", "", 401},
		{viewer, "GET", "/api/v1/workloads", "", 200},
		{viewer, "GET", "/api/v1/workloads/seen", "", 200},
		{viewer, "POST", "/api/v1/workloads", wl, 403},
		{viewer, "DELETE", "/api/v1/workloads/seen", "", 403},
		{viewer, "GET", "/api/v1/tokens", "", 403},
		{viewer, "GET", "/api/v1/audit", "", 403},
		{operator, "POST", "/api/v1/workloads", wl, 201},
		{operator, "POST", "/api/v1/tokens", tok, 403},
		{operator, "GET", "/api/v1/tokens", "", 403},
		{adminSecret, "POST", "/api/v1/tokens", tok, 201},
		{adminSecret, "GET", "/api/v1/audit", "", 200},
	}
	for _, c := range cases {
		ct := ""
		if c.body != "" {
			ct = "application/json"
		}
		r := e.do(c.method, c.path, c.who, ct, []byte(c.body))
		if r.status != c.want {
			t.Errorf("%s %s as %.14s: want %d, got %d %s", c.method, c.path, c.who, c.want, r.status, r.body)
		}
		if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", c.method, c.path)
		}
	}
	// The refused writes are in the audit log.
	r := e.do("GET", "/api/v1/audit?kind=Workload", adminSecret, "", nil)
	if !strings.Contains(string(r.body), `"actor":"token:viewer","verb":"create","kind":"Workload","name":"","result":"Forbidden"`) {
		t.Errorf("the viewer's refused create is not audited: %s", r.body)
	}
}

// TestTokenLifecycle: the secret is shown once, expiry and revocation
// take effect at once.
func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var created api.Token
	if err := e.admin.Create(ctx, "tokens", api.Token{Metadata: api.ObjectMeta{Name: "ci"}, Spec: api.TokenSpec{Role: api.RoleOperator, TTL: "1h"}}, &created); err != nil {
		t.Fatal(err)
	}
	secret := created.Status.Secret
	if !strings.HasPrefix(secret, "atoll_") || !strings.HasPrefix(secret, created.Status.Prefix) || created.Spec.ExpiresAt == nil {
		t.Fatalf("created token: secret %q prefix %q expires %v", secret, created.Status.Prefix, created.Spec.ExpiresAt)
	}
	var got api.Token
	if err := e.admin.Get(ctx, "tokens", "ci", &got); err != nil || got.Status.Secret != "" || got.Status.Prefix == "" {
		t.Errorf("a read token must show its prefix but never its secret: %+v, %v", got.Status, err)
	}
	raw := e.do("GET", "/api/v1/tokens", adminSecret, "", nil)
	if strings.Contains(string(raw.body), secret) {
		t.Error("the token list shows a secret")
	}
	if r := e.do("GET", "/api/v1/workloads", secret, "", nil); r.status != 200 {
		t.Fatalf("fresh token refused: %d %s", r.status, r.body)
	}
	e.clock.Advance(61 * time.Minute)
	if r := e.do("GET", "/api/v1/workloads", secret, "", nil); r.status != 401 || !strings.Contains(r.problem.Detail, "expired") {
		t.Errorf("expired token: want 401 'expired', got %d %s", r.status, r.body)
	}
	other := e.token("other", api.RoleViewer)
	if r := e.do("GET", "/api/v1/workloads", other, "", nil); r.status != 200 {
		t.Fatalf("token refused: %d", r.status)
	}
	if err := e.admin.Delete(ctx, "tokens", "other", nil); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", "/api/v1/workloads", other, "", nil); r.status != 401 {
		t.Errorf("revoked token: want 401, got %d", r.status)
	}
	// Tokens cannot be edited: no PUT or PATCH routes.
	if r := e.do("PATCH", "/api/v1/tokens/ci", adminSecret, "application/merge-patch+json", []byte(`{"spec":{"role":"admin"}}`)); r.status != 405 {
		t.Errorf("PATCH of a token: want 405, got %d", r.status)
	}
}

// TestBootstrap: the first start writes an admin token file once; an
// ATOLL_ADMIN_TOKEN replaces the bootstrap token.
func TestBootstrap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: pgtest.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dir := t.TempDir()
	path, err := tokens.Bootstrap(ctx, store, dir, "")
	if err != nil || path != filepath.Join(dir, "admin-token") {
		t.Fatalf("bootstrap: %q, %v", path, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v, mode %v", err, st.Mode())
	}
	first, _ := os.ReadFile(path)
	if _, err := tokens.Bootstrap(ctx, store, dir, ""); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(path)
	if string(first) != string(second) {
		t.Error("a second start replaced the admin token")
	}
	rec, err := store.Get(ctx, "Token", "bootstrap-admin")
	if err != nil {
		t.Fatal(err)
	}
	var tok api.Token
	_ = json.Unmarshal(mustJSON(t, rec), &tok)
	if tok.Spec.Role != api.RoleAdmin {
		t.Errorf("bootstrap token role %q", tok.Spec.Role)
	}
	if _, err := store.TokenByHash(ctx, sha(strings.TrimSpace(string(first)))); err != nil {
		t.Errorf("the file's token does not authenticate: %v", err)
	}
	// An explicit secret takes over.
	if _, err := tokens.Bootstrap(ctx, store, dir, "atoll_from_environment_0123456789"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.TokenByHash(ctx, sha("atoll_from_environment_0123456789")); err != nil {
		t.Errorf("ATOLL_ADMIN_TOKEN does not authenticate: %v", err)
	}
	if _, err := store.TokenByHash(ctx, sha(strings.TrimSpace(string(first)))); err == nil {
		t.Error("the replaced bootstrap token still authenticates")
	}
}
