//go:build linux

package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgserver"
)

// The several-hubs test: two `atoll hub` processes on one private
// PostgreSQL, both using a 3-server NATS cluster (in-process servers in
// the test, configured the way deploy/nats/README.md says, from `atoll
// hub nats-config`), and two `atoll member` processes whose leaf nodes
// know all three servers. It checks the promises of several hubs: a watch
// on one hub sees writes through the other within 1 s; a member keeps its
// link when its NATS server dies; the leader's SIGKILL or SIGSTOP is
// taken over within 5 s, the new leader places what is pending, and a
// stopped-then-resumed leader steps down with none of its writes landing;
// revocations through either hub hold.

const (
	// The promises under test.
	takeoverWithin   = 5 * time.Second // from losing the leader to another hub leading
	crossWatchWithin = time.Second     // from a write's answer on one hub to its event on another's watch
	// warmWithin bounds how long after a member is Ready through the hub
	// it registered with another hub shows a heartbeat it heard itself,
	// over a second later (a reload a second at most, plus heartbeats).
	warmWithin = 3 * time.Second

	hubUpTimeout = 60 * time.Second // from starting `atoll hub` to "hub ready"
	// multiHubTimeout bounds waits for what the product promises no time
	// for (placement and delivery after a takeover, a leaf reconnecting).
	multiHubTimeout = 30 * time.Second
)

// hubProc is an `atoll hub` process and its API (the dev-stack client
// helpers work on any hub: they need its URL, an admin token and a folder
// for the CLI's config).
type hubProc struct {
	name  string
	args  []string
	owner *testing.T // whose cleanup kills it
	*memberProc
	api *devStack
}

// startHub starts `atoll hub` with args and waits for "hub ready";
// owner's cleanup kills it.
func startHub(t, owner *testing.T, name, addr, dataDir string, args ...string) *hubProc {
	t.Helper()
	h := &hubProc{name: name, args: args, owner: owner}
	h.memberProc = startProc(t, owner, name, args...)
	if _, ok := h.out.waitLine(0, hubUpTimeout, func(l string) bool { return strings.Contains(l, `"msg":"hub ready"`) }); !ok {
		t.Fatalf("want %s to log \"hub ready\" within %s; its standard error:\n%s", name, hubUpTimeout, h.out.tail(40))
	}
	h.api = &devStack{dataDir: dataDir, addr: addr, url: "http://" + addr, stderr: &lineLog{max: 1}}
	return h
}

// restart starts the same command again (after a kill).
func (h *hubProc) restart(t *testing.T) {
	t.Helper()
	api := h.api
	*h = *startHub(t, h.owner, h.name, api.addr, api.dataDir, h.args...)
	h.api.token = api.token
}

type readyzView struct {
	Status      string `json:"status"`
	Hub         string `json:"hub"`
	Role        string `json:"role"`
	LeaderEpoch int64  `json:"leaderEpoch"`
}

func (h *hubProc) readyz() (readyzView, error) {
	var v readyzView
	status, body, err := h.api.request(http.MethodGet, "/readyz", h.api.token, nil) // the details need a token
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET /readyz answered %d %s", status, body)
	}
	if err == nil {
		err = json.Unmarshal(body, &v)
	}
	return v, err
}

// waitRole polls the hub's /readyz until it reports role, for at most
// timeout, and returns the answer and when it was seen (leadership lives
// in the hub process; its answer is the signal).
func (h *hubProc) waitRole(t *testing.T, role string, timeout time.Duration) (readyzView, time.Time) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, err := h.readyz()
		if err == nil && v.Role == role {
			return v, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %s's /readyz to say role %q within %s; last: %+v (%v)\nits standard error:\n%s", h.name, role, timeout, v, err, h.out.tail(30))
		}
		time.Sleep(pollEvery)
	}
}

// metric reads one sample of the hub's /metrics.
func (h *hubProc) metric(t *testing.T, name string) string {
	t.Helper()
	status, body, err := h.api.request(http.MethodGet, "/metrics", "", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("want GET %s/metrics to answer 200; got %d (%v)", h.name, status, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

// apply creates a workload of replicas sim replicas, only on cluster
// (none: a cluster that does not exist), through the hub's API.
func (h *hubProc) apply(t *testing.T, name, cluster string, replicas int32) time.Time {
	t.Helper()
	w := api.Workload{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Workload"}, Metadata: api.ObjectMeta{Name: name},
		Spec: api.WorkloadSpec{Replicas: replicas, Template: api.ReplicaTemplate{Driver: "sim"},
			Placement: &api.PlacementPolicy{Clusters: []string{cluster}}}}
	body, _ := json.Marshal(w)
	status, resp, err := h.api.request(http.MethodPost, "/api/v1/workloads", h.api.token, body)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("want POST workload %s through %s to answer 201; got %d %s (%v)", name, h.name, status, resp, err)
	}
	return time.Now()
}

// waitDelivered waits until the workload is placed on cluster with n
// replicas and the member reports holding that placement's epoch: the
// hub's leader decided, stored, delivered, and folded the member's report.
func (h *hubProc) waitDelivered(t *testing.T, name, cluster string, n int32, timeout time.Duration) (api.Workload, time.Time) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := "nothing"
	for {
		w, status, err := h.api.getWorkload(name)
		if err == nil && status == http.StatusOK {
			if p := w.Status.Placement; p != nil && p.Clusters[cluster] == n {
				for _, c := range w.Status.Clusters {
					if c.Cluster == cluster && c.Desired == n && c.Epoch == p.Epoch {
						return w, time.Now()
					}
				}
			}
			last = summary(w)
		} else {
			last = fmt.Sprintf("GET answered %d (%v)", status, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("want workload %s placed on %s with %d replicas and the member holding that epoch, within %s; last seen through %s: %s\nits standard error:\n%s",
				name, cluster, n, timeout, h.name, last, h.out.tail(30))
		}
		time.Sleep(workloadSample)
	}
}

// hubs reads GET /api/v1/hubs.
func (h *hubProc) hubs(t *testing.T) api.HubList {
	t.Helper()
	var list api.HubList
	status, body, err := h.api.request(http.MethodGet, "/api/v1/hubs", h.api.token, nil)
	if err == nil && status == http.StatusOK {
		err = json.Unmarshal(body, &list)
	}
	if err != nil || status != http.StatusOK {
		t.Fatalf("want GET /api/v1/hubs through %s to answer 200; got %d %s (%v)", h.name, status, body, err)
	}
	return list
}

// auditEntry is the part of an audit row the test reads.
type auditEntry struct {
	ID     int64  `json:"id"`
	Actor  string `json:"actor"`
	Verb   string `json:"verb"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Detail string `json:"detail"`
}

// audit reads the audit log newest first (query: kind, name, limit).
func (h *hubProc) audit(t *testing.T, query string) []auditEntry {
	t.Helper()
	status, body, err := h.api.request(http.MethodGet, "/api/v1/audit?"+query, h.api.token, nil)
	var list struct {
		Items []auditEntry `json:"items"`
	}
	if err == nil && status == http.StatusOK {
		err = json.Unmarshal(body, &list)
	}
	if err != nil || status != http.StatusOK {
		t.Fatalf("want GET /api/v1/audit?%s through %s to answer 200; got %d %s (%v)", query, h.name, status, body, err)
	}
	return list.Items
}

// natsCluster is three in-process NATS servers routed into one cluster,
// each configured as deploy/nats/README.md says: the output of `atoll hub
// nats-config` included, the server's own settings after it.
type natsCluster struct {
	servers []*server.Server
	opts    []*server.Options // the servers write the ports they picked here
}

func startNATSCluster(t *testing.T, dir string, dbArgs ...string) *natsCluster {
	t.Helper()
	cmd := exec.Command(atollBin, append([]string{"hub", "nats-config"}, dbArgs...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	shared, err := cmd.Output()
	if err != nil {
		t.Fatalf("want `atoll hub nats-config` to print the shared configuration; got %v\n%s", err, stderr.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "atoll-nats.conf"), shared, 0o600); err != nil {
		t.Fatal(err)
	}
	// The route ports are picked before the servers bind them (each server
	// lists the others), so another process may take one meanwhile: then
	// that server never gets ready, and the cluster starts again on new
	// ports.
	var c *natsCluster
	for attempt := 1; c == nil; attempt++ {
		if c = startNATSServers(t, dir); c == nil && attempt == 3 {
			t.Fatal("NATS cluster not ready in 3 attempts (a route port taken each time?)")
		}
	}
	// The routes: every server sees the two others. They announce nothing
	// the test can wait on, so this polls, for a bounded time.
	deadline := time.Now().Add(multiHubTimeout)
	for _, s := range c.servers {
		for {
			rz, err := s.Routez(&server.RoutezOptions{})
			peers := map[string]bool{}
			if err == nil {
				for _, r := range rz.Routes {
					peers[r.RemoteName] = true
				}
			}
			if len(peers) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("want NATS server %s routed to the two others within %s; it has %v", s.Name(), multiHubTimeout, peers)
			}
			time.Sleep(pollEvery)
		}
	}
	return c
}

// startNATSServers starts the three servers of the cluster on route ports
// picked now; nil (and nothing left running) if one does not get ready.
func startNATSServers(t *testing.T, dir string) *natsCluster {
	t.Helper()
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	var routeURLs []string
	for _, r := range routes {
		routeURLs = append(routeURLs, "nats://"+r)
	}
	c := &natsCluster{}
	for i, route := range routes {
		name := fmt.Sprintf("nats-%d", i+1)
		conf := fmt.Sprintf(`include ./atoll-nats.conf
server_name: %s
listen: 127.0.0.1:-1
cluster {
  name: atoll
  listen: %s
  routes: [%s]
}
leafnodes { listen: 127.0.0.1:-1 }
jetstream { domain: hub, store_dir: %q }
resolver { type: full, dir: %q, allow_delete: false, interval: "2m" }
`, name, route, strings.Join(routeURLs, ", "), filepath.Join(dir, name, "jetstream"), filepath.Join(dir, name, "jwt"))
		file := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(file)
		if err != nil {
			t.Fatalf("want %s's configuration (README's way) to parse; got %v\n%s", name, err, conf)
		}
		opts.NoSigs = true
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("want NATS server %s; got %v", name, err)
		}
		go s.Start()
		c.servers, c.opts = append(c.servers, s), append(c.opts, opts)
		if !s.ReadyForConnections(10 * time.Second) {
			t.Logf("NATS server %s not ready within 10s: starting the cluster again on new ports", name)
			c.shutdown()
			return nil
		}
	}
	t.Cleanup(c.shutdown)
	return c
}

func (c *natsCluster) shutdown() {
	for _, s := range c.servers {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func (c *natsCluster) clientURLs() string {
	var urls []string
	for _, s := range c.servers {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

func (c *natsCluster) leafURLs() string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", o.LeafNode.Port))
	}
	return strings.Join(urls, ",")
}

// leafOf is the index of the running server that holds member's leaf
// connection, or -1.
func (c *natsCluster) leafOf(member string) int {
	for i, s := range c.servers {
		if !s.Running() {
			continue
		}
		lz, err := s.Leafz(&server.LeafzOptions{})
		if err != nil {
			continue
		}
		for _, l := range lz.Leafs {
			if l.Name == "atoll-member-"+member {
				return i
			}
		}
	}
	return -1
}

// waitLeaf polls until member's leaf is on a running server other than
// not (-1: any), and returns that server's index.
func (c *natsCluster) waitLeaf(t *testing.T, member string, not int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if i := c.leafOf(member); i >= 0 && i != not {
			return i
		}
		if time.Now().After(deadline) {
			t.Fatalf("want member %s's leaf node connected to a NATS server (not #%d) within %s; it is on #%d", member, not+1, timeout, c.leafOf(member)+1)
		}
		time.Sleep(pollEvery)
	}
}

// startPostgres starts a private, non-durable PostgreSQL in dir for one
// test and stops it when the test ends.
func startPostgres(t *testing.T, dir string) *pgserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	pg, err := pgserver.Start(ctx, pgserver.Config{DataDir: filepath.Join(dir, "postgres")})
	if err != nil {
		t.Fatalf("want a private PostgreSQL; got %v", err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("want the test's PostgreSQL to stop; got %v", err)
		}
	})
	return pg
}

// hubsDatabase makes a folder (removed when the test ends) with a private
// PostgreSQL in it and the key-encryption key every hub of the test
// shares, for tests that run several `atoll hub` processes on one
// database.
func hubsDatabase(t *testing.T, prefix string) (dir string, pg *pgserver.Server, keyFile string) {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err == nil {
		err = os.Chmod(dir, 0o755) // PostgreSQL may run as another user
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg = startPostgres(t, dir)
	keyFile = filepath.Join(dir, "atoll.key")
	if out, err := exec.Command(atollBin, "hub", "gen-key", "--output", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("want `atoll hub gen-key` to write %s; got %v\n%s", keyFile, err, out)
	}
	return dir, pg, keyFile
}

// TestSeveralHubs: see the top of this file.
func TestSeveralHubs(t *testing.T) {
	// Not parallel: it measures promised bounds (1 s, 5 s), which other
	// tests' processes on two cores would only blur.
	begin := time.Now()
	// As deploy/README.md says: the hubs connect as a role that is not a
	// superuser (a stuck leader's session is ended by a hub of the same
	// role), and migrate as the schema's owner.
	// Every hub (and nats-config) gets the one key-encryption key that
	// seals the NATS signing keys in the database.
	dir, pg, keyFile := hubsDatabase(t, "atoll-e2e-multihub-")
	dbArgs := []string{"--database-url", pg.HubURL(), "--migrate-database-url", pg.OwnerURL(), "--key-file", keyFile}
	nc := startNATSCluster(t, dir, dbArgs...)

	hubArgs := func(name, addr string) []string {
		return append([]string{"hub", "--listen", addr, "--data-dir", filepath.Join(dir, name), "--name", name,
			"--nats-url", nc.clientURLs(), "--leaf-advertise", nc.leafURLs()}, dbArgs...)
	}
	addrA, addrB := freeAddr(t), freeAddr(t)
	hubA := startHub(t, t, "hub-a", addrA, filepath.Join(dir, "hub-a"), hubArgs("hub-a", addrA)...)
	tok, err := os.ReadFile(filepath.Join(dir, "hub-a", "admin-token"))
	if err != nil {
		t.Fatalf("want hub-a, the first hub on the database, to write its admin token; got %v", err)
	}
	hubA.api.token = strings.TrimSpace(string(tok))
	hubB := startHub(t, t, "hub-b", addrB, filepath.Join(dir, "hub-b"), hubArgs("hub-b", addrB)...)
	hubB.api.token = hubA.api.token // one database, one set of tokens
	hubs := []*hubProc{hubA, hubB}

	// Exactly one leads.
	var lead, follow *hubProc
	deadline := time.Now().Add(multiHubTimeout)
	for lead == nil {
		var roles []string
		for i, h := range hubs {
			v, err := h.readyz()
			if err != nil {
				t.Fatalf("want %s's /readyz to answer; got %v", h.name, err)
			}
			roles = append(roles, v.Role)
			if v.Role == "leader" {
				lead, follow = h, hubs[1-i]
			}
		}
		if slices.Equal(roles, []string{"leader", "leader"}) {
			t.Fatalf("want one leader; both hubs say they lead")
		}
		if lead == nil && time.Now().After(deadline) {
			t.Fatalf("want one of the hubs to lead within %s; roles %v", multiHubTimeout, roles)
		}
		if lead == nil {
			time.Sleep(pollEvery)
		}
	}
	t.Logf("PostgreSQL, 3 NATS servers, 2 hubs up in %s; %s leads", time.Since(begin).Round(time.Millisecond), lead.name)
	if list := follow.hubs(t); list.Leader == nil || list.Leader.Hub != lead.name || len(list.Items) != 2 || list.ServedBy != follow.name {
		t.Errorf("want GET /api/v1/hubs through %s to list both hubs, %s leading; got %+v", follow.name, lead.name, list)
	}
	if r := follow.api.mustAtoll(t, "", "hubs"); !strings.Contains(r.stdout, lead.name+"   leader") || !strings.Contains(r.stdout, follow.name+"   follower (answered)") {
		t.Errorf("want `atoll hubs` through %s to show %s leading and itself following; got %s", follow.name, lead.name, r)
	}
	if got := lead.metric(t, "atoll_leader"); got != "1" {
		t.Errorf("want %s's atoll_leader 1; got %q", lead.name, got)
	}
	if got := follow.metric(t, "atoll_leader"); got != "0" {
		t.Errorf("want %s's atoll_leader 0; got %q", follow.name, got)
	}

	// Two members, both joined through hub-a; each hub must hear them.
	join := strings.TrimSpace(hubA.api.mustAtoll(t, "", "token", "create", "mh-join", "--join", "--uses", "2").stdout)
	members := map[string]*memberProc{}
	for _, name := range []string{"mh-1", "mh-2"} {
		members[name] = hubA.api.startMember(t, t, name, filepath.Join(dir, name), join)
	}
	for _, name := range []string{"mh-1", "mh-2"} {
		_, ready := hubA.api.waitHealth(t, members[name], name, "Ready", healthTimeout)
		// hub-b hears the heartbeats of a cluster it has not seen
		// register, and loads it: its health view is warm at once, not at
		// its next periodic reload (10 s). What it has not heard itself it
		// shows as stored: the heartbeat time of the leader's last write.
		hubB.api.waitFor(t, members[name], name, "Ready with a heartbeat hub-b heard itself", healthTimeout, func(c clusterView) bool {
			return c.Status.Health == "Ready" && c.Status.LastHeartbeatTime != nil && c.Status.LastHeartbeatTime.After(ready.Add(time.Second))
		})
		warm := time.Now()
		t.Logf("%s Ready through hub-a, then heard by hub-b itself %s later", name, warm.Sub(ready).Round(time.Millisecond))
		if warm.Sub(ready) > warmWithin {
			t.Errorf("want %s's heartbeats heard by hub-b within %s of it being Ready through hub-a; it took %s", name, warmWithin, warm.Sub(ready))
		}
	}
	t.Logf("both members Ready on both hubs %s after the start", time.Since(begin).Round(time.Millisecond))

	ok := t.Run("watch through one hub sees writes through the other", func(t *testing.T) {
		watchAcross(t, hubA, hubB)
	})
	ok = ok && t.Run("member keeps its link when its NATS server dies", func(t *testing.T) {
		before := nc.waitLeaf(t, "mh-1", -1, multiHubTimeout)
		follow.apply(t, "leaf-before", "mh-1", 2)
		lead.waitDelivered(t, "leaf-before", "mh-1", 2, multiHubTimeout)

		killed := time.Now()
		nc.servers[before].Shutdown()
		nc.servers[before].WaitForShutdown()
		after := nc.waitLeaf(t, "mh-1", before, multiHubTimeout)
		t.Logf("mh-1's leaf moved from nats-%d to nats-%d %s after nats-%d shut down", before+1, after+1, time.Since(killed).Round(time.Millisecond), before+1)
		// Heartbeats still arrive and are answered: Ready on both hubs with
		// a heartbeat sent after the server died.
		for _, h := range hubs {
			c := h.api.waitFor(t, members["mh-1"], "mh-1", "Ready with a heartbeat after its NATS server died", multiHubTimeout, func(c clusterView) bool {
				return c.Status.Health == "Ready" && c.Status.LastHeartbeatTime != nil && c.Status.LastHeartbeatTime.After(killed)
			})
			t.Logf("%s: mh-1 %s, heartbeat %.3fs old", h.name, c.Status.Health, deref(c.Status.HeartbeatAgeSeconds))
		}
		// Desired state still arrives.
		follow.apply(t, "leaf-after", "mh-1", 3)
		_, seen := lead.waitDelivered(t, "leaf-after", "mh-1", 3, multiHubTimeout)
		t.Logf("a workload applied after the failover reached mh-1 %s after nats-%d shut down", seen.Sub(killed).Round(time.Millisecond), before+1)
	})

	ok = ok && t.Run("member identities stay apart on the cluster", func(t *testing.T) {
		isolatedOnCluster(t, nc, filepath.Join(dir, "mh-1", "hub.creds"))
	})

	ok = ok && t.Run("SIGKILL of the leader", func(t *testing.T) {
		v, _ := lead.waitRole(t, "leader", time.Second)
		epoch := v.LeaderEpoch
		killed := time.Now()
		lead.kill()
		// Applied after the kill, through the follower: it is pending
		// until the follower leads.
		follow.apply(t, "after-kill", "mh-1", 2)
		v, seen := follow.waitRole(t, "leader", multiHubTimeout)
		took := seen.Sub(killed)
		t.Logf("%s leads (epoch %d, was %d) %s after %s's SIGKILL", follow.name, v.LeaderEpoch, epoch, took.Round(time.Millisecond), lead.name)
		if took > takeoverWithin {
			t.Errorf("want %s leading within %s of %s's SIGKILL; it took %s", follow.name, takeoverWithin, lead.name, took)
		}
		if v.LeaderEpoch <= epoch {
			t.Errorf("want the new term's epoch above %d; got %d", epoch, v.LeaderEpoch)
		}
		_, placed := follow.waitDelivered(t, "after-kill", "mh-1", 2, multiHubTimeout)
		t.Logf("the workload applied after the kill was placed and delivered %s after the SIGKILL", placed.Sub(killed).Round(time.Millisecond))
		if got := follow.metric(t, "atoll_leader"); got != "1" {
			t.Errorf("want %s's atoll_leader 1; got %q", follow.name, got)
		}
		if list := follow.hubs(t); list.Leader == nil || list.Leader.Hub != follow.name || len(list.Items) != 1 || list.Items[0].Name != follow.name {
			t.Errorf("want GET /api/v1/hubs to show %s alone and leading; got %+v", follow.name, list)
		}

		// The killed hub comes back, as a follower.
		lead.restart(t)
		lead.waitRole(t, "follower", multiHubTimeout)
		lead, follow = follow, lead
	})

	ok = ok && t.Run("SIGSTOP of the leader across a takeover", func(t *testing.T) {
		stoppedLeaderSteppedDown(t, lead, follow, members)
		lead, follow = follow, lead
	})

	if ok {
		t.Run("revocations through both hubs hold", func(t *testing.T) {
			revokeThroughBoth(t, nc, hubs, members, dir)
		})
	}
}

// watchAcross writes through a and measures when each write's event
// arrives on a watch through b.
func watchAcross(t *testing.T, a, b *hubProc) {
	var list api.WorkloadList
	status, body, err := b.api.request(http.MethodGet, "/api/v1/workloads", b.api.token, nil)
	if err == nil && status == http.StatusOK {
		err = json.Unmarshal(body, &list)
	}
	if err != nil || status != http.StatusOK {
		t.Fatalf("want GET workloads through %s to answer 200; got %d (%v)", b.name, status, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.api.url+"/api/v1/watch/workloads?resourceVersion="+list.Metadata.ResourceVersion, nil)
	req.Header.Set("Authorization", "Bearer "+b.api.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("want a watch through %s; got %v (%v)", b.name, resp, err)
	}
	defer resp.Body.Close()
	type arrival struct {
		name string
		at   time.Time
	}
	arrivals := make(chan arrival, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev struct {
				Type   string `json:"type"`
				Object struct {
					Metadata api.ObjectMeta `json:"metadata"`
				} `json:"object"`
			}
			if json.Unmarshal([]byte(data), &ev) == nil && ev.Type == api.Added {
				arrivals <- arrival{ev.Object.Metadata.Name, time.Now()}
			}
		}
		close(arrivals)
	}()
	var worst time.Duration
	var lags []string
	for i := range 5 {
		name := fmt.Sprintf("across-%d", i)
		answered := a.apply(t, name, "nowhere", 1)
		select {
		case got, ok := <-arrivals:
			if !ok {
				t.Fatalf("the watch through %s ended before the ADDED event of %s", b.name, name)
			}
			if got.name != name {
				t.Fatalf("want the ADDED event of %s next on the watch through %s; got %s", name, b.name, got.name)
			}
			lag := max(0, got.at.Sub(answered))
			worst = max(worst, lag)
			lags = append(lags, lag.Round(100*time.Microsecond).String())
		case <-time.After(multiHubTimeout):
			t.Fatalf("want the ADDED event of %s (written through %s) on the watch through %s; nothing within %s", name, a.name, b.name, multiHubTimeout)
		}
	}
	t.Logf("write answered by %s -> event on %s's watch: %s", a.name, b.name, strings.Join(lags, ", "))
	if worst > crossWatchWithin {
		t.Errorf("want every write through %s on the watch through %s within %s; the slowest took %s", a.name, b.name, crossWatchWithin, worst)
	}
}

// stoppedLeaderSteppedDown stops the leader (SIGSTOP) until the follower
// has taken over and placed a workload, resumes it (SIGCONT), and checks
// that it steps down and that no write of its term lands after the
// takeover.
func stoppedLeaderSteppedDown(t *testing.T, lead, follow *hubProc, members map[string]*memberProc) {
	v, _ := lead.waitRole(t, "leader", time.Second)
	oldEpoch := v.LeaderEpoch
	oldTerm := fmt.Sprintf("leader %s epoch %d", lead.name, oldEpoch)
	if err := syscall.Kill(-lead.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("want SIGSTOP delivered to %s; got %v", lead.name, err)
	}
	stopped := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(-lead.cmd.Process.Pid, syscall.SIGCONT)
		}
	}()
	v, seen := follow.waitRole(t, "leader", multiHubTimeout)
	took := seen.Sub(stopped)
	t.Logf("%s leads (epoch %d, was %d) %s after %s's SIGSTOP", follow.name, v.LeaderEpoch, oldEpoch, took.Round(time.Millisecond), lead.name)
	if took > takeoverWithin {
		t.Errorf("want %s leading within %s of %s's SIGSTOP; it took %s", follow.name, takeoverWithin, lead.name, took)
	}
	// Every row of the old term is in the log by now: the takeover waited
	// for (or ended) its fenced transactions.
	mark := follow.audit(t, "limit=1")
	if len(mark) != 1 {
		t.Fatalf("want the audit log to have rows; got %v", mark)
	}
	follow.apply(t, "during-pause", "mh-2", 2)
	follow.waitDelivered(t, "during-pause", "mh-2", 2, multiHubTimeout)

	outMark := lead.out.len()
	if err := syscall.Kill(-lead.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatalf("want SIGCONT delivered to %s; got %v", lead.name, err)
	}
	resumed = true
	resumedAt := time.Now()
	lead.waitRole(t, "follower", multiHubTimeout)
	for _, want := range []string{`"msg":"lost leadership"`, `"msg":"this hub follows: another hub runs the controllers"`} {
		if _, ok := lead.out.waitLine(outMark, multiHubTimeout, func(l string) bool { return strings.Contains(l, want) }); !ok {
			t.Errorf("want %s to log %s after SIGCONT; its standard error since:\n%s", lead.name, want, lead.out.since(outMark, 40))
		}
	}
	t.Logf("%s says follower %s after SIGCONT", lead.name, time.Since(resumedAt).Round(time.Millisecond))
	if got := lead.metric(t, "atoll_leader"); got != "0" {
		t.Errorf("want the resumed %s's atoll_leader 0; got %q", lead.name, got)
	}
	// A write through the resumed hub's API (followers serve it) is
	// placed by the new leader, after the resumed hub's controllers had
	// every chance to write.
	lead.apply(t, "after-resume", "mh-2", 1)
	follow.waitDelivered(t, "after-resume", "mh-2", 1, multiHubTimeout)

	// The old term wrote before the takeover (so the audit names terms),
	// and nothing after it.
	var before, after []string
	for _, e := range follow.audit(t, "limit=5000") {
		if !strings.HasPrefix(e.Detail, oldTerm) {
			continue
		}
		row := fmt.Sprintf("#%d %s %s %s/%s", e.ID, e.Actor, e.Verb, e.Kind, e.Name)
		if e.ID > mark[0].ID {
			after = append(after, row)
		} else {
			before = append(before, row)
		}
	}
	if len(before) == 0 {
		t.Errorf("want audit rows of %s's term (%q) from before the takeover; found none", lead.name, oldTerm)
	}
	if len(after) > 0 {
		t.Errorf("want no write of the old term (%q) after the takeover; found %d: %v", oldTerm, len(after), after)
	}
	// The resumed hub saw its members silent for its whole pause: had it
	// written that, the clusters would have events saying so.
	for _, name := range []string{"mh-1", "mh-2"} {
		c, status, err := follow.api.cluster(name)
		if err != nil || status != http.StatusOK {
			t.Fatalf("want GET cluster %s to answer 200; got %d (%v)", name, status, err)
		}
		for _, e := range follow.api.eventsOf(t, c.Metadata.UID) {
			if at, err := time.Parse(time.RFC3339Nano, e.EventTime); err == nil && at.After(stopped) && e.Reason != "ClusterReady" {
				t.Errorf("want no health change of %s from the pause of %s; got %s at %s: %s", name, lead.name, e.Reason, e.EventTime, e.Message)
			}
		}
		if c.Status.Health != "Ready" {
			t.Errorf("want %s Ready after the pause of %s; got %s\nits member's standard error:\n%s", name, lead.name, c.Status.Health, members[name].out.tail(20))
		}
	}
}

// isolatedOnCluster connects to every running server with mh-1's member
// credentials: publishing as mh-2 and reading mh-2's desired state are
// refused on each.
func isolatedOnCluster(t *testing.T, nc *natsCluster, creds string) {
	for _, s := range nc.servers {
		if !s.Running() {
			continue
		}
		refused := make(chan string, 8)
		conn, err := nats.Connect(s.ClientURL(), nats.UserCredentials(creds), nats.NoReconnect(),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err.Error() }))
		if err != nil {
			t.Fatalf("want mh-1's credentials to connect to %s; got %v", s.Name(), err)
		}
		if err := conn.Publish("atoll.m.mh-1.probe", nil); err != nil {
			t.Fatal(err)
		}
		_ = conn.Publish("atoll.m.mh-2.hb", nil)
		_, _ = conn.SubscribeSync("atoll.h.mh-2.>")
		_ = conn.Flush()
		want := map[string]bool{`for publish to "atoll.m.mh-2.hb"`: false, `for subscription to "atoll.h.mh-2.>"`: false}
		var got []string
		deadline := time.After(multiHubTimeout)
		for missing := len(want); missing > 0; {
			select {
			case msg := <-refused:
				got = append(got, msg)
				for w, seen := range want {
					if low := strings.ToLower(msg); !seen && strings.Contains(low, "permissions violation") && strings.Contains(low, w) {
						want[w], missing = true, missing-1
					}
				}
			case <-deadline:
				t.Fatalf("want %s to refuse mh-1's %v; errors seen: %q", s.Name(), slices.Collect(maps.Keys(want)), got)
			}
		}
		conn.Close()
	}
}

// revokeThroughBoth deregisters mh-2 through one hub and mh-1 through the
// other; neither member's credentials may connect to any server after.
func revokeThroughBoth(t *testing.T, nc *natsCluster, hubs []*hubProc, members map[string]*memberProc, dir string) {
	for i, name := range []string{"mh-2", "mh-1"} {
		h := hubs[i]
		if r := h.api.mustAtoll(t, "", "cluster", "deregister", name, "--yes", "--force"); !hasLine(r.stdout, "cluster/"+name+" deregistered") {
			t.Errorf("want %q through %s; got %s", "cluster/"+name+" deregistered", h.name, r)
		}
	}
	deadline := time.Now().Add(multiHubTimeout)
	for _, name := range []string{"mh-2", "mh-1"} {
		creds := filepath.Join(dir, name, "hub.creds")
		for _, s := range nc.servers {
			if !s.Running() {
				continue
			}
			for {
				conn, err := nats.Connect(s.ClientURL(), nats.UserCredentials(creds), nats.NoReconnect())
				if err != nil && errors.Is(err, nats.ErrAuthorization) {
					break
				}
				if conn != nil {
					conn.Close()
				}
				if time.Now().After(deadline) {
					t.Fatalf("want %s's credentials refused by %s once it was deregistered (revoked by one hub, then another revoked %s); got %v",
						name, s.Name(), map[string]string{"mh-2": "mh-1", "mh-1": "mh-2"}[name], err)
				}
				time.Sleep(pollEvery)
			}
		}
		members[name].kill()
	}
}
