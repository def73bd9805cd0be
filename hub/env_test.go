package hub_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/keyring"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/hub/tokens"
	"github.com/atollhq/atoll/telemetry"
)

func TestMain(m *testing.M) {
	if os.Getenv(probeServerEnv) != "" {
		serveProbeReplica() // a replica of a probe test, not a test run
	}
	if spec := os.Getenv(scaleFleetEnv); spec != "" {
		runScaleFleet(spec) // a member fleet process of BenchmarkScale
	}
	if spec := os.Getenv(scaleWatchEnv); spec != "" {
		runScaleWatchers(spec) // the watchers' process of BenchmarkScale
	}
	pgtest.Main(m)
}

const adminSecret = "atoll_testadminsecret0123456789abcdef"

// clock is a settable clock for expiry tests. A frozen clock only moves
// when told; a running one follows the wall clock plus what it was told.
type clock struct {
	mu      sync.Mutex
	now     time.Time // frozen
	offset  time.Duration
	running bool
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return time.Now().Add(c.offset)
	}
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.offset += d
	c.mu.Unlock()
}

// env is one hub on its own database, served over real HTTP.
type env struct {
	t      testing.TB
	url    string
	store  *pgstore.Store
	clock  *clock
	server *hub.Server
	admin  *client.Client
	bus    *natsbus.Bus
	tel    *telemetry.Providers
}

func newEnv(t testing.TB) *env {
	return newEnvOn(t, newHubDatabase(t))
}

// newHubDatabase makes a database as pgserver prepares the one of `atoll
// dev`, migrates it as its owner, and returns its URL as the hub's
// unprivileged role: the hub under test runs without privileges it would
// not have in production.
func newHubDatabase(t testing.TB) string {
	t.Helper()
	r := pgtest.NewDatabaseRoles(t)
	store, err := pgstore.Open(context.Background(), pgstore.Config{DatabaseURL: r.Hub, MigrateURL: r.Owner, MaxConns: 1})
	if err != nil {
		t.Fatalf("migrate as the owner: %v", err)
	}
	store.Close()
	return r.Hub
}

// newMemberEnv is an env whose hub runs NATS, for member tests.
func newMemberEnv(t testing.TB, health members.HealthConfig) *env {
	t.Helper()
	dbURL := newHubDatabase(t)
	return newEnvWith(t, dbURL, newBus(t, dbURL), health, true)
}

// testKeys seals the NATS signing keys of the tests' databases.
var testKeys = func() *keyring.Ring {
	k, err := keyring.NewKey()
	if err != nil {
		panic(err)
	}
	r, err := keyring.New(k)
	if err != nil {
		panic(err)
	}
	return r
}()

// newBus starts an in-process NATS server with the keys stored in dbURL's
// database, as a hub does.
func newBus(t testing.TB, dbURL string) *natsbus.Bus {
	t.Helper()
	ctx := context.Background()
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: dbURL, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	seeds, err := store.NATSKeys(ctx, testKeys, func() (pgstore.NATSSeeds, error) {
		s, err := natsbus.NewSeeds()
		return pgstore.NATSSeeds(s), err
	})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	bus, err := natsbus.Start(ctx, natsbus.Config{Seeds: natsbus.Seeds(seeds), DataDir: t.TempDir(), ClientListen: "127.0.0.1:0", LeafListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(bus.Close)
	return bus
}

func newEnvOn(t testing.TB, dbURL string) *env {
	return newEnvWith(t, dbURL, nil, members.HealthConfig{}, false)
}

// newEnvWith makes an env; member envs run their clock (heartbeats and
// health need time to pass), the others freeze it. opts adjust the hub's
// configuration.
func newEnvWith(t testing.TB, dbURL string, bus *natsbus.Bus, health members.HealthConfig, running bool, opts ...func(*hub.Config)) *env {
	t.Helper()
	ctx := context.Background()
	clk := &clock{now: time.Now(), running: running}
	tel, err := telemetry.Setup(ctx, "atoll-hub-test", "test")
	if err != nil {
		t.Fatalf("telemetry: %v", err)
	}
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: dbURL, MaxConns: 8, Now: clk.Now, Tracer: tel.Tracer, Meter: tel.Meter})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	if _, err := tokens.Bootstrap(ctx, store, t.TempDir(), adminSecret); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	cfg := hub.Config{Store: store, Telemetry: tel, Now: clk.Now, WatchKeepalive: time.Second, Bus: bus, Health: health, Keys: testKeys}
	for _, o := range opts {
		o(&cfg)
	}
	s := hub.New(cfg)
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start hub: %v", err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Stop() // ends watches, so Close does not wait on them
		ts.Close()
		store.Close()
	})
	return &env{t: t, url: ts.URL, store: store, clock: clk, server: s, admin: client.New(ts.URL, adminSecret, nil), bus: bus, tel: tel}
}

// response is an HTTP answer, read whole.
type response struct {
	status  int
	header  http.Header
	body    []byte
	problem api.Problem
}

// do sends a request with the given token ("" for none).
func (e *env) do(method, path, token, contentType string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: data}
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			e.t.Errorf("%s %s: error answered with Content-Type %q, want application/problem+json; body %s", method, path, ct, data)
		}
		if err := json.Unmarshal(data, &r.problem); err != nil {
			e.t.Errorf("%s %s: problem body is not JSON: %v: %s", method, path, err, data)
		}
		if r.problem.Status != resp.StatusCode || r.problem.Code == "" {
			e.t.Errorf("%s %s: problem says status %d code %q, HTTP said %d", method, path, r.problem.Status, r.problem.Code, resp.StatusCode)
		}
	}
	return r
}

func (e *env) json(method, path string, body any) response {
	e.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(method, path, adminSecret, "application/json", b)
}

// token creates a token with a role and returns its secret.
func (e *env) token(name, role string) string {
	e.t.Helper()
	var created api.Token
	err := e.admin.Create(context.Background(), "tokens", api.Token{Metadata: api.ObjectMeta{Name: name}, Spec: api.TokenSpec{Role: role}}, &created)
	if err != nil {
		e.t.Fatalf("create token %s: %v", name, err)
	}
	if created.Status.Secret == "" {
		e.t.Fatalf("created token %s came back without its secret", name)
	}
	return created.Status.Secret
}

func workload(name string, replicas int32, labels map[string]string) api.Workload {
	return api.Workload{
		TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Workload"},
		Metadata: api.ObjectMeta{Name: name, Labels: labels},
		Spec:     api.WorkloadSpec{Replicas: replicas, Template: api.ReplicaTemplate{Driver: "sim"}},
	}
}

func (e *env) create(w api.Workload) api.Workload {
	e.t.Helper()
	var out api.Workload
	if err := e.admin.Create(context.Background(), "workloads", w, &out); err != nil {
		e.t.Fatalf("create %s: %v", w.Metadata.Name, err)
	}
	return out
}

func sha(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func mustJSON(t *testing.T, r *pgstore.Record) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// updateWorkload reads workload name, applies change and writes it back,
// again from a fresh read when the write meets a conflict: the placer's
// status writes (which run beside its next pass) change the workload's
// resourceVersion at any moment, as they would under a real client.
func (e *env) updateWorkload(t testing.TB, name string, change func(*api.Workload)) api.Workload {
	t.Helper()
	var w api.Workload
	waitFor(t, "an update of workload "+name+" without a conflict", 60*time.Second, func() bool {
		if err := e.admin.Get(context.Background(), "workloads", name, &w); err != nil {
			t.Fatal(err)
		}
		change(&w)
		err := e.admin.Update(context.Background(), "workloads", name, w, &w)
		if api.ErrorCode(err) == api.CodeConflict {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	})
	return w
}
