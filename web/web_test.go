package web_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/hub/tokens"
	"github.com/atollhq/atoll/telemetry"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const adminSecret = "atoll_webtestadminsecret0123456789abc"

// env is a hub (without NATS) on its own database, served over real
// HTTP, with the console mounted as in production.
type env struct {
	t     *testing.T
	url   string
	store *pgstore.Store
	admin *client.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, pgtest.NewDatabase(t), true)
}

// newEnvOn is a hub on dbURL's database, bootstrapped with the admin
// token when bootstrap is set (the first hub of a database).
func newEnvOn(t *testing.T, dbURL string, bootstrap bool) *env {
	t.Helper()
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "atoll-web-test", "test")
	if err != nil {
		t.Fatal(err)
	}
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: dbURL, MaxConns: 8, Tracer: tel.Tracer, Meter: tel.Meter})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	if bootstrap {
		if _, err := tokens.Bootstrap(ctx, store, t.TempDir(), adminSecret); err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
	}
	s := hub.New(hub.Config{Store: store, Telemetry: tel, WatchKeepalive: time.Second})
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start hub: %v", err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Stop()
		ts.Close()
		store.Close()
	})
	return &env{t: t, url: ts.URL, store: store, admin: client.New(ts.URL, adminSecret, nil)}
}

// cluster registers a cluster the way a member's registration stores it.
func (e *env) cluster(name, region string) {
	e.t.Helper()
	status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthReady, Capacity: &api.ClusterCapacity{NodesReady: 3, NodesTotal: 3,
		CPUAllocatable: 24000, CPUAllocated: 6000, MemoryAllocatable: 48 << 30, MemoryAllocated: 12 << 30, Replicas: 4, ReplicasReady: 4}})
	_, err := e.store.Create(context.Background(), pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster",
		Meta: api.ObjectMeta{Name: name, Labels: map[string]string{api.LabelRegion: region}}, Spec: []byte("{}"), Status: status})
	if err != nil {
		e.t.Fatalf("create cluster %s: %v", name, err)
	}
}

func (e *env) token(name, role string) string {
	e.t.Helper()
	var created api.Token
	if err := e.admin.Create(context.Background(), "tokens", api.Token{Metadata: api.ObjectMeta{Name: name}, Spec: api.TokenSpec{Role: role}}, &created); err != nil {
		e.t.Fatalf("create token %s: %v", name, err)
	}
	return created.Status.Secret
}

func (e *env) getCluster(name string) api.Cluster {
	e.t.Helper()
	var c api.Cluster
	if err := e.admin.Get(context.Background(), "clusters", name, &c); err != nil {
		e.t.Fatalf("get cluster %s: %v", name, err)
	}
	return c
}

// browser is a cookie-keeping client that does not follow redirects and
// sends what a browser sends: Accept text/html and, on posts, its Origin.
type browser struct {
	e      *env
	client *http.Client
	origin string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, origin: e.url, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, header map[string]string) answer {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.url+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.origin)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

func (b *browser) get(path string) answer { return b.do(http.MethodGet, path, nil, nil) }

// getCached gets a page about an object just written to the store: the
// console reads from a cache that follows the change log, so the page
// may answer 404 until the cache has caught up (bounded by 10 s).
func (b *browser) getCached(path string) answer {
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := b.get(path)
		if a.status != http.StatusNotFound || time.Now().After(deadline) {
			return a
		}
		time.Sleep(20 * time.Millisecond) // the cache announces nothing to a client; poll its page
	}
}

// cacheTimeout bounds the wait for the console's cache to show what was
// just written to the store: it follows the change log, woken by the
// notifier (or its 5 s resync), on a machine that may be busy.
const cacheTimeout = 30 * time.Second

// waitPage gets path until ok holds of the answer, for at most
// cacheTimeout, and returns that answer; the test fails with the last
// answer when ok never holds.
func (b *browser) waitPage(path, what string, ok func(answer) bool) answer {
	b.e.t.Helper()
	deadline := time.Now().Add(cacheTimeout)
	for {
		a := b.get(path)
		if ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			b.e.t.Fatalf("want %s within %s at %s; got %d: %.800s", what, cacheTimeout, path, a.status, a.body)
		}
		time.Sleep(20 * time.Millisecond) // the cache announces nothing to a client; poll its page
	}
}

func (b *browser) post(path string, form url.Values) answer {
	if form == nil {
		form = url.Values{}
	}
	return b.do(http.MethodPost, path, form, nil)
}

func (b *browser) signIn(token string) {
	b.e.t.Helper()
	if a := b.post("/signin", url.Values{"token": {token}, "next": {"/"}}); a.status != http.StatusSeeOther || a.header.Get("Location") != "/" {
		b.e.t.Fatalf("want sign-in to answer 303 to /; got %d %q: %s", a.status, a.header.Get("Location"), a.body)
	}
}

func TestSignInAndOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()

	a := b.get("/clusters?sort=region")
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/signin?next=%2Fclusters%3Fsort%3Dregion" {
		t.Fatalf("want a signed-out page view sent to the sign-in page with next=the page; got %d %q", a.status, a.header.Get("Location"))
	}
	if a := b.get("/signin"); a.status != http.StatusOK || !strings.Contains(a.body, `type="password" name="token"`) {
		t.Fatalf("want the sign-in page with a password field for the token; got %d", a.status)
	}

	a = b.post("/signin", url.Values{"token": {"atoll_notarealtoken000000000000000000000"}})
	if a.status != http.StatusUnauthorized || !strings.Contains(a.body, "not accepted") {
		t.Errorf("want a wrong token refused with 401 and a message; got %d: %s", a.status, a.body)
	}
	if a := b.post("/signin", url.Values{"token": {""}}); a.status != http.StatusUnprocessableEntity {
		t.Errorf("want an empty token refused with 422; got %d", a.status)
	}

	// The signed-in page also sends a browser on: both stay on the site
	// (TestSafeNext has every class of bypass).
	for _, next := range []string{"//evil.example/", "/%2F%2Fevil.example", "/\\evil.example", "https://evil.example"} {
		if a := b.get("/signin?next=" + url.QueryEscape(next)); a.status != http.StatusOK || !strings.Contains(a.body, `name="next" value="/"`) {
			t.Errorf("want the sign-in form to carry next=/ for next=%q; got %d", next, a.status)
		}
	}
	a = b.post("/signin", url.Values{"token": {adminSecret}, "next": {"/\t/evil.example/"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/" {
		t.Errorf("want sign-in to redirect only within the site (next=/\\t/evil.example/ goes to /); got %d %q", a.status, a.header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == "atoll_session" {
			cookie = c
		}
	}
	switch {
	case cookie == nil:
		t.Fatalf("want an atoll_session cookie from sign-in; got headers %v", a.header)
	case !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/":
		t.Errorf("want the session cookie HttpOnly, SameSite=Strict, Path=/; got %q", a.header.Get("Set-Cookie"))
	case strings.Contains(cookie.Value, "atoll_") || len(cookie.Value) < 40:
		t.Errorf("want the cookie to hold a random session id, never the token; got %q", cookie.Value)
	}

	a = b.get("/")
	if a.status != http.StatusOK || !strings.Contains(a.body, "<h1>Overview</h1>") || !strings.Contains(a.body, "token:bootstrap-admin") {
		t.Fatalf("want the overview for the signed-in admin; got %d: %.300s", a.status, a.body)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if a.header.Get(h) == "" {
			t.Errorf("want pages sent with %s; got none", h)
		}
	}

	if a := b.post("/signout", nil); a.status != http.StatusSeeOther {
		t.Fatalf("want sign-out to answer 303; got %d", a.status)
	}
	if a := b.get("/"); a.status != http.StatusSeeOther {
		t.Errorf("want the overview to need a new sign-in after signing out; got %d", a.status)
	}
	// The old cookie value is dead on the server, not just in the jar.
	replay := e.browser()
	u, _ := url.Parse(e.url)
	replay.client.Jar.SetCookies(u, []*http.Cookie{{Name: "atoll_session", Value: cookie.Value, Path: "/"}})
	if a := replay.get("/"); a.status != http.StatusSeeOther {
		t.Errorf("want a signed-out session id refused when replayed; got %d", a.status)
	}
}

// TestSessionsAcrossHubs: two hubs on one database, as behind a load
// balancer. A sign-in through one is good on the other; signing out
// through the other ends it on both. The stored row holds the token only
// sealed, and opens with its own session id only.
func TestSessionsAcrossHubs(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	a := newEnvOn(t, dbURL, true)
	b := newEnvOn(t, dbURL, false)
	ba := a.browser()
	ba.signIn(adminSecret)
	u, _ := url.Parse(a.url)
	var id string
	for _, c := range ba.client.Jar.Cookies(u) {
		if c.Name == "atoll_session" {
			id = c.Value
		}
	}
	if id == "" {
		t.Fatal("no session cookie after signing in")
	}
	withCookie := func(e *env, value string) *browser {
		br := e.browser()
		eu, _ := url.Parse(e.url)
		br.client.Jar.SetCookies(eu, []*http.Cookie{{Name: "atoll_session", Value: value, Path: "/"}})
		return br
	}
	bb := withCookie(b, id)
	if got := bb.get("/"); got.status != http.StatusOK || !strings.Contains(got.body, "token:bootstrap-admin") {
		t.Fatalf("want the session signed in through hub a good on hub b; got %d: %.300s", got.status, got.body)
	}

	ctx := t.Context()
	key := sha256.Sum256([]byte(id))
	row, err := a.store.ConsoleSession(ctx, key[:], time.Now())
	if err != nil {
		t.Fatalf("want the session stored under the SHA-256 of its id: %v", err)
	}
	if bytes.Contains(row.Sealed, []byte(adminSecret)) || bytes.Contains(row.Sealed, []byte(id)) {
		t.Error("want the stored session sealed; it holds the token or the id in the clear")
	}
	// The same sealed bytes under another id's key open to nothing.
	forged := strings.Repeat("A", len(id))
	fkey := sha256.Sum256([]byte(forged))
	if err := a.store.PutConsoleSession(ctx, pgstore.ConsoleSession{IDHash: fkey[:], Sealed: row.Sealed, Created: row.Created, Expires: row.Expires}); err != nil {
		t.Fatal(err)
	}
	if got := withCookie(a, forged).get("/"); got.status != http.StatusSeeOther {
		t.Errorf("want a session row that does not open with the cookie's id refused; got %d", got.status)
	}

	if got := bb.post("/signout", nil); got.status != http.StatusSeeOther {
		t.Fatalf("want sign-out through hub b to answer 303; got %d", got.status)
	}
	if got := ba.get("/"); got.status != http.StatusSeeOther {
		t.Errorf("want the session signed out through hub b ended on hub a too; got %d", got.status)
	}
}

// TestSessionExpiryAndSweep: a stored sign-in past its expiry is not
// found (a cookie for it goes to sign-in), and the next sign-in removes
// the row.
func TestSessionExpiryAndSweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	id := strings.Repeat("x", 43)
	key := sha256.Sum256([]byte(id))
	now := time.Now()
	if err := e.store.PutConsoleSession(ctx, pgstore.ConsoleSession{IDHash: key[:], Sealed: []byte("sealed"), Created: now.Add(-13 * time.Hour), Expires: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.ConsoleSession(ctx, key[:], now); api.ErrorCode(err) != api.CodeNotFound {
		t.Errorf("want an expired session not found; got %v", err)
	}
	br := e.browser()
	u, _ := url.Parse(e.url)
	br.client.Jar.SetCookies(u, []*http.Cookie{{Name: "atoll_session", Value: id, Path: "/"}})
	if got := br.get("/"); got.status != http.StatusSeeOther {
		t.Errorf("want an expired session's cookie sent to sign-in; got %d", got.status)
	}
	e.browser().signIn(adminSecret)
	if _, err := e.store.ConsoleSession(ctx, key[:], now.Add(-2*time.Hour)); api.ErrorCode(err) != api.CodeNotFound {
		t.Errorf("want the expired row swept by the next sign-in; still there (%v)", err)
	}
}

func TestRevokedTokenEndsSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := e.token("alice", api.RoleOperator)
	b := e.browser()
	b.signIn(secret)
	if a := b.get("/workloads"); a.status != http.StatusOK {
		t.Fatalf("want the workloads page; got %d", a.status)
	}
	if err := e.admin.Delete(context.Background(), "tokens", "alice", nil); err != nil {
		t.Fatal(err)
	}
	a := b.get("/workloads")
	if a.status != http.StatusSeeOther || !strings.Contains(a.header.Get("Location"), "reason=") {
		t.Errorf("want a revoked token's session sent to sign in again, with a reason; got %d %q", a.status, a.header.Get("Location"))
	}
}

func TestCrossOriginChangesRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cluster("eu-west-1", "eu-west")
	b := e.browser()
	b.signIn(adminSecret)
	for _, tc := range []struct {
		name   string
		header map[string]string
	}{
		{"other origin", map[string]string{"Origin": "https://evil.example"}},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		{"same-site other origin", map[string]string{"Sec-Fetch-Site": "same-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := b.do(http.MethodPost, "/clusters/eu-west-1/cordon", url.Values{}, tc.header)
			if a.status != http.StatusForbidden || !strings.Contains(a.body, "cross-origin") {
				t.Errorf("want a cross-origin cordon refused with 403; got %d: %.200s", a.status, a.body)
			}
		})
	}
	if e.getCluster("eu-west-1").Spec.Unschedulable {
		t.Errorf("want nothing changed by refused cross-origin requests; eu-west-1 is cordoned")
	}
	// Sign-in is guarded too (login CSRF).
	if a := e.browser().do(http.MethodPost, "/signin", url.Values{"token": {adminSecret}}, map[string]string{"Origin": "https://evil.example"}); a.status != http.StatusForbidden {
		t.Errorf("want a cross-origin sign-in refused with 403; got %d", a.status)
	}
}

func TestRolesAndChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cluster("eu-west-1", "eu-west")
	if err := e.admin.Create(context.Background(), "workloads", api.Workload{Metadata: api.ObjectMeta{Name: "web"},
		Spec: api.WorkloadSpec{Replicas: 2, Template: api.ReplicaTemplate{Driver: "sim"}}}, nil); err != nil {
		t.Fatal(err)
	}
	viewer, operator := e.browser(), e.browser()
	viewer.signIn(e.token("vic", api.RoleViewer))
	operator.signIn(e.token("olga", api.RoleOperator))

	buttons := regexp.MustCompile(`data-action="(cordon|drain|scale)"`)
	for _, page := range []string{"/clusters/eu-west-1", "/workloads/web"} {
		if a := viewer.getCached(page); a.status != http.StatusOK || buttons.MatchString(a.body) || strings.Contains(a.body, "Add taint") {
			t.Errorf("want %s without operator buttons for a viewer; got %d with %v", page, a.status, buttons.FindAllString(a.body, -1))
		}
		if a := operator.get(page); a.status != http.StatusOK || !buttons.MatchString(a.body) {
			t.Errorf("want %s with operator buttons for an operator; got %d", page, a.status)
		}
	}

	// The server refuses a viewer whatever the page shows: HTML for a
	// browser, the API's problem+json for others.
	a := viewer.post("/clusters/eu-west-1/cordon", nil)
	if a.status != http.StatusForbidden || !strings.Contains(a.body, "role viewer may not do this") {
		t.Errorf("want a viewer's cordon refused with 403 and the API's reason; got %d: %.300s", a.status, a.body)
	}
	a = viewer.do(http.MethodPost, "/workloads/web/scale", url.Values{"replicas": {"5"}}, map[string]string{"Accept": "application/json"})
	var p api.Problem
	if a.status != http.StatusForbidden || a.header.Get("Content-Type") != "application/problem+json" || json.Unmarshal([]byte(a.body), &p) != nil || p.Code != api.CodeForbidden {
		t.Errorf("want a viewer's scale refused with 403 problem+json (code Forbidden); got %d %q: %s", a.status, a.header.Get("Content-Type"), a.body)
	}
	if c := e.getCluster("eu-west-1"); c.Spec.Unschedulable {
		t.Errorf("want eu-west-1 untouched by a viewer; it is cordoned")
	}

	// An operator's changes go through: cordon, taint, bad input, drain.
	if a := operator.post("/clusters/eu-west-1/cordon", nil); a.status != http.StatusSeeOther {
		t.Fatalf("want an operator's cordon to answer 303; got %d: %.300s", a.status, a.body)
	}
	if !e.getCluster("eu-west-1").Spec.Unschedulable {
		t.Errorf("want eu-west-1 cordoned (spec.unschedulable) after the operator's cordon")
	}
	if a := operator.get("/clusters/eu-west-1"); !strings.Contains(a.body, "Cordoned eu-west-1") || !strings.Contains(a.body, `data-action="uncordon"`) {
		t.Errorf("want the page after a cordon to say so and offer Uncordon; got %.200s", a.body)
	}
	a = operator.post("/clusters/eu-west-1/taints", url.Values{"key": {"bad key!"}, "effect": {"NoSchedule"}})
	if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "body.spec.taints[0].key") {
		t.Errorf("want an invalid taint refused with 422 naming the field; got %d: %.400s", a.status, a.body)
	}
	if a := operator.post("/clusters/eu-west-1/taints", url.Values{"key": {"maintenance"}, "value": {"true"}, "effect": {"NoSchedule"}}); a.status != http.StatusSeeOther {
		t.Errorf("want a valid taint to answer 303; got %d: %.300s", a.status, a.body)
	}
	if a := operator.post("/clusters/eu-west-1/drain", url.Values{"confirm": {"eu-west"}}); a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "form.confirm") {
		t.Errorf("want a drain without the typed name refused with 422 on form.confirm; got %d", a.status)
	}
	// web runs on eu-west-1 alone: the hub refuses the drain, naming it,
	// and changes nothing, until the operator forces it.
	err := e.store.InTx(context.Background(), pgstore.Actor{Name: "test"}, func(tx *pgstore.Tx) error {
		epoch, err := tx.NextPlacementEpoch(context.Background())
		if err != nil {
			return err
		}
		return tx.PutPlacements(context.Background(), []pgstore.Placement{{Workload: "web", Cluster: "eu-west-1", Replicas: 2, Epoch: epoch, Generation: 1}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := operator.post("/clusters/eu-west-1/drain", url.Values{"confirm": {"eu-west-1"}}); a.status != http.StatusUnprocessableEntity ||
		!strings.Contains(a.body, "would leave web with no replica anywhere") {
		t.Errorf("want a drain that strands web refused with 422 naming it; got %d: %.600s", a.status, a.body)
	}
	if c := e.getCluster("eu-west-1"); c.Draining() {
		t.Fatalf("a refused drain drained eu-west-1")
	}
	if a := operator.post("/clusters/eu-west-1/drain", url.Values{"confirm": {"eu-west-1"}, "force": {"on"}}); a.status != http.StatusSeeOther {
		t.Errorf("want a confirmed, forced drain to answer 303; got %d: %.300s", a.status, a.body)
	}
	c := e.getCluster("eu-west-1")
	if !c.Draining() || !c.Spec.Unschedulable || len(c.Spec.Taints) != 2 {
		t.Errorf("want eu-west-1 drained (unschedulable, the drain taint, and the maintenance taint kept); got %+v", c.Spec)
	}
	if a := operator.post("/clusters/eu-west-1/uncordon", nil); a.status != http.StatusSeeOther {
		t.Errorf("want uncordon to answer 303; got %d", a.status)
	}
	if c := e.getCluster("eu-west-1"); c.Spec.Unschedulable || c.Draining() || len(c.Spec.Taints) != 1 {
		t.Errorf("want uncordon to end the drain and keep other taints; got %+v", c.Spec)
	}
	if a := operator.post("/workloads/web/scale", url.Values{"replicas": {"many"}}); a.status != http.StatusUnprocessableEntity {
		t.Errorf("want scale to a non-number refused with 422; got %d", a.status)
	}
	if a := operator.post("/workloads/web/scale", url.Values{"replicas": {"7"}}); a.status != http.StatusSeeOther {
		t.Errorf("want scale to answer 303; got %d: %.300s", a.status, a.body)
	}
	var w api.Workload
	if err := e.admin.Get(context.Background(), "workloads", "web", &w); err != nil || w.Spec.Replicas != 7 {
		t.Errorf("want web scaled to 7; got %d (%v)", w.Spec.Replicas, err)
	}

	// The audit log names the signed-in tokens, for changes and refusals.
	e.wantAudit("token:olga patch Cluster ok", "token:olga patch Workload ok", "token:vic patch Cluster Forbidden", "token:vic patch Workload Forbidden")
}

// wantAudit fails the test unless the audit log holds a row for each of
// want, written "actor verb kind result".
func (e *env) wantAudit(want ...string) {
	e.t.Helper()
	var audit struct {
		Items []pgstore.AuditEntry `json:"items"`
	}
	if err := e.admin.Raw(context.Background(), http.MethodGet, "/api/v1/audit", nil, nil, &audit); err != nil {
		e.t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, it := range audit.Items {
		seen[it.Actor+" "+it.Verb+" "+it.Kind+" "+it.Result] = true
	}
	for _, w := range want {
		if !seen[w] {
			e.t.Errorf("want an audit row %q; have %v", w, seen)
		}
	}
}

func TestListsSearchSortPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 120 {
		name := fmt.Sprintf("svc-%03d", i)
		if i%10 == 0 {
			name = fmt.Sprintf("alpha-%03d", i)
		}
		if err := e.admin.Create(context.Background(), "workloads", api.Workload{Metadata: api.ObjectMeta{Name: name, Labels: map[string]string{"team": fmt.Sprintf("t%d", i%3)}},
			Spec: api.WorkloadSpec{Replicas: int32(i % 7), Template: api.ReplicaTemplate{Driver: "sim"}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	b := e.browser()
	b.signIn(adminSecret)
	rows := regexp.MustCompile(`data-workload="([^"]+)"`)
	names := func(a answer) []string {
		var out []string
		for _, m := range rows.FindAllStringSubmatch(a.body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	// The cache follows the store: wait until it has every workload.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := b.get("/workloads")
		if strings.Contains(a.body, "1–50 of 120") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the first page to show 1–50 of 120 within 10 s; got %.500s", a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := names(b.get("/workloads?page=3")); len(got) != 20 || got[0] != "svc-098" || got[19] != "svc-119" {
		t.Errorf("want page 3 to hold the last 20 by name (12 alpha- first, then svc-), svc-098 to svc-119; got %v", got)
	}
	if got := names(b.get("/workloads?q=ALPHA")); len(got) != 12 || got[0] != "alpha-000" {
		t.Errorf("want a case-insensitive search for alpha to find the 12 alpha workloads; got %v", got)
	}
	if got := names(b.get("/workloads?q=team%3Dt1&sort=name&dir=desc")); len(got) != 40 || got[0] != "svc-118" {
		t.Errorf("want a label search (team=t1) sorted by name descending to start at svc-118 with 40 rows; got %d from %v", len(got), got[:min(3, len(got))])
	}
	if got := names(b.get("/workloads?sort=desired&dir=desc")); len(got) != 50 {
		t.Errorf("want 50 rows sorted by desired replicas; got %d", len(got))
	} else if a := b.get("/workloads?sort=desired&dir=desc"); !strings.Contains(a.body, `aria-sort="descending"`) {
		t.Errorf("want the sorted column marked aria-sort=descending")
	}
	for _, bad := range []string{"/workloads?sort=color", "/workloads?page=0", "/workloads?dir=sideways"} {
		if a := b.get(bad); a.status != http.StatusBadRequest {
			t.Errorf("want %s refused with 400; got %d", bad, a.status)
		}
	}
	if a := b.get("/workloads/nope"); a.status != http.StatusNotFound {
		t.Errorf("want a missing workload's page to answer 404; got %d", a.status)
	}
	if a := b.get("/no/such/page"); a.status != http.StatusNotFound || !strings.Contains(a.body, "There is no page") {
		t.Errorf("want an HTML 404 for a browser; got %d", a.status)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/v1/nothing", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("want unknown API routes to stay problem+json 404s; got %v %v", resp, err)
	}
}

func TestLiveUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cluster("ap-south-1", "ap-south")
	b := e.browser()
	b.signIn(adminSecret)
	if a := b.getCached("/clusters/ap-south-1"); a.status != http.StatusOK || !strings.Contains(a.body, `data-live-url="/live?page=%2Fclusters%2Fap-south-1"`) {
		t.Fatalf("want the cluster page to name its live stream; got %d", a.status)
	}
	events, stop := e.liveStream(t, b, "/clusters/ap-south-1")
	defer stop()
	// Without "have", the stream first sends every region.
	events.wait(t, "the page's head region", func(id, html string) bool { return id == "live-a-head" && strings.Contains(html, "ap-south-1") })
	if err := e.admin.Patch(context.Background(), "clusters", "ap-south-1", []byte(`{"spec":{"unschedulable":true}}`), nil); err != nil {
		t.Fatal(err)
	}
	events.wait(t, "the head redrawn as Cordoned", func(id, html string) bool { return id == "live-a-head" && strings.Contains(html, "Cordoned") })
}

// liveEvents are the events of a page's live stream.
type liveEvents struct {
	ctx context.Context
	ch  <-chan [2]string
}

// liveStream opens a page's live stream as a signed-in browser; stop
// closes it.
func (e *env) liveStream(t *testing.T, b *browser, page string) (*liveEvents, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/live?page="+url.QueryEscape(page), nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := b.client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("want the live stream of %s to open; got %v %v", page, resp, err)
	}
	events := make(chan [2]string)
	go func() {
		defer close(events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 1<<20), 4<<20)
		var name string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				select {
				case events <- [2]string{name, strings.TrimPrefix(line, "data: ")}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return &liveEvents{ctx: ctx, ch: events}, cancel
}

// wait reads patches until one satisfies ok, for at most the stream's
// 30 s.
func (l *liveEvents) wait(t *testing.T, what string, ok func(id, html string) bool) {
	t.Helper()
	for {
		select {
		case ev, open := <-l.ch:
			if !open {
				t.Fatalf("want %s on the live stream; it ended", what)
			}
			var p struct{ ID, HTML string }
			if ev[0] == "patch" && json.Unmarshal([]byte(ev[1]), &p) == nil && ok(p.ID, p.HTML) {
				return
			}
		case <-l.ctx.Done():
			t.Fatalf("want %s on the live stream within 30 s; none came", what)
		}
	}
}
