//go:build linux

package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// trafficTimeout bounds waiting for a gateway or the hub to show a change.
const trafficTimeout = 30 * time.Second

// loadClient sends GETs at a steady rate to one URL and counts what came
// back: a failure is anything but a 200 from the service.
type loadClient struct {
	name     string
	url      string
	ok, fail atomic.Int64
	mu       sync.Mutex
	lat      []time.Duration
	failures []string
	firstAt  time.Time // when the first failed request was sent
	stop     chan struct{}
	done     chan struct{}
}

func startLoad(name, url string, every time.Duration) *loadClient {
	c := &loadClient{name: name, url: url, stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	go func() {
		defer close(c.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-c.stop:
				wg.Wait()
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				resp, err := client.Get(c.url)
				d := time.Since(start)
				what := ""
				if err != nil {
					what = err.Error()
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "services-e2e") {
						what = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
					}
				}
				c.mu.Lock()
				c.lat = append(c.lat, d)
				if what != "" {
					c.fail.Add(1)
					if c.firstAt.IsZero() || start.Before(c.firstAt) {
						c.firstAt = start
					}
					if len(c.failures) < 5 {
						c.failures = append(c.failures, start.Format("15:04:05.000")+" "+what)
					}
				} else {
					c.ok.Add(1)
				}
				c.mu.Unlock()
			}()
		}
	}()
	return c
}

func (c *loadClient) finish() (ok, fail int64, p50, p99 time.Duration) {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	slices.Sort(c.lat)
	if n := len(c.lat); n > 0 {
		p50, p99 = c.lat[n/2], c.lat[n*99/100]
	}
	return c.ok.Load(), c.fail.Load(), p50, p99
}

// TestTrafficFollowsFailover: three member processes with their
// gateways and a global entry (`atoll gateway`); a service over a
// workload whose replicas run in regions A (a third) and C, and none in
// B. B's gateway sends to A first (the service's failover order), so
// when A's member and node are SIGKILLed while clients send about 300
// requests/s through B's gateway and through the global entry, the
// clients count the requests that failed: through B, none may (refused
// connections go to the next endpoint, the hub withdraws A's endpoints
// once it declares A Unreachable); through the global entry at most
// 0.1%.
//
// It is not parallel: its load (two clients, six replicas, three members
// and four proxies) would otherwise slow the timing-bound tests it
// overlapped.
func TestTrafficFollowsFailover(t *testing.T) {
	tr := startGatewayTrio(t, "sv")
	d, tag, ms, gw, nodeOf := tr.d, tr.tag, tr.ms, tr.gw, tr.nodeOf
	a, b, c := ms[0], ms[1], ms[2]
	entryAddr := freeAddr(t)
	entryProc := startAtollProc(t, "gateway", "gateway", "--listen", entryAddr, "--check-every", "200ms",
		"--region-gateway", a.region+"=http://"+gw[a.name], "--region-gateway", b.region+"=http://"+gw[b.name], "--region-gateway", c.region+"=http://"+gw[c.name])
	_ = entryProc

	manifest := fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata:
  name: web
spec:
  replicas: 6
  template:
    driver: process
    command: %s
    args: [demo-http]
    env:
    - {name: GREETING, value: services-e2e}
    - {name: %s, value: %q}
    readinessProbe:
      http: {path: /healthz}
      periodSeconds: 1
    resources: {cpu: 100m, memory: 32Mi}
  failover: {gracePeriod: 1s}
  placement:
    clusters: [%s, %s]
    weights:
      type: static
      static:
      - {cluster: %s, weight: 1}
      - {cluster: %s, weight: 2}
---
apiVersion: atoll.dev/v1
kind: Service
metadata:
  name: web
spec:
  workload: web
  ports:
  - {name: http, protocol: http}
  locality:
    failover: [%s, %s]
`, strconv.Quote(atollBin), workloadTagEnv, tag, a.name, c.name, a.name, c.name, a.region, c.region)
	d.mustAtoll(t, manifest, "apply", "-f", "-")
	d.waitWorkload(t, "web", "6 Ready replicas, 2 on A and 4 on C", workloadReadyTimeout, nil, func(w api.Workload) bool {
		return w.Status.ReadyReplicas == 6 && w.Status.Placement != nil && w.Status.Placement.Clusters[a.name] == 2 && w.Status.Placement.Clusters[c.name] == 4
	})
	svc := waitService(t, d, "6 endpoints in A and C", func(s api.Service) bool {
		return s.Status.Endpoints == 6 && slices.Equal(s.Status.Clusters, []string{a.name, c.name})
	})
	t.Logf("service web: %d endpoints in %v", svc.Status.Endpoints, svc.Status.Clusters)
	viaB, viaEntry := "http://"+gw[b.name]+"/svc/web/", "http://"+entryAddr+"/svc/web/"
	for _, u := range []string{viaB, viaEntry} {
		waitHTTP(t, u, 200)
	}

	// Host routing, and a 503 problem for a service without endpoints.
	req, _ := http.NewRequest(http.MethodGet, "http://"+gw[b.name]+"/", nil)
	req.Host = "web.svc.atoll"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("want Host web.svc.atoll routed through B's gateway; got %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	every := 3 * time.Millisecond // about 330 requests/s per client
	lb, le := startLoad("B's gateway", viaB, every), startLoad("global entry", viaEntry, every)
	time.Sleep(time.Second) // traffic before the fault: the measurement's baseline, not a wait for a condition
	var onA []demoProc
	for _, p := range workloadProcs(t, tag) {
		if nodeOf[p.ppid] == a.name {
			onA = append(onA, p)
		}
	}
	if len(onA) != 2 {
		t.Fatalf("want 2 replica processes under A's node; found %d", len(onA))
	}
	killed := time.Now()
	_ = syscall.Kill(a.proc.cmd.Process.Pid, syscall.SIGKILL)
	for _, n := range a.nodes {
		_ = syscall.Kill(n.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, p := range onA {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL) // the region dies whole: its replicas too
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	withdrawn := waitService(t, d, "A's endpoints withdrawn", func(s api.Service) bool { return !slices.Contains(s.Status.Clusters, a.name) })
	gone := time.Since(killed)
	back := waitService(t, d, "6 endpoints again, all in C", func(s api.Service) bool {
		return s.Status.Endpoints == 6 && slices.Equal(s.Status.Clusters, []string{c.name})
	})
	recovered := time.Since(killed)
	time.Sleep(time.Second) // traffic after the recovery: part of the measurement
	// A busy machine sends fewer: the measurement runs on until each
	// entry point has answered enough requests to count.
	waitFor(t, trafficTimeout, "1000 answers through each entry point", func() bool {
		return lb.ok.Load()+lb.fail.Load() >= 1000 && le.ok.Load()+le.fail.Load() >= 1000
	})
	okB, failB, p50B, p99B := lb.finish()
	okE, failE, p50E, p99E := le.finish()
	t.Logf("SIGKILL region A (2 of 6 endpoints): A withdrawn from the table %s later (%d endpoints left), 6 endpoints again in C %s later (%d)",
		gone.Round(time.Millisecond), withdrawn.Status.Endpoints, recovered.Round(time.Millisecond), back.Status.Endpoints)
	t.Logf("through B's gateway: %d ok, %d failed, p50 %s, p99 %s; first failures %v", okB, failB, p50B, p99B, lb.failures)
	t.Logf("through the global entry: %d ok, %d failed, p50 %s, p99 %s; first failures %v", okE, failE, p50E, p99E, le.failures)
	if failB != 0 {
		t.Errorf("want 0 failed requests through a surviving region's gateway; got %d of %d: %v", failB, okB+failB, lb.failures)
	}
	if failE*1000 > okE+failE {
		t.Errorf("want at most 0.1%% failed requests through the global entry; got %d of %d: %v", failE, okE+failE, le.failures)
	}
	if okB < 1000 || okE < 1000 {
		t.Errorf("want at least 1000 requests through each entry point for a meaningful count; got %d and %d", okB, okE)
	}
}

// waitService waits for the service web to satisfy cond.
func waitService(t *testing.T, d *devStack, what string, cond func(api.Service) bool) api.Service {
	t.Helper()
	deadline := time.Now().Add(trafficTimeout)
	for {
		var s api.Service // afresh: a status left out must read as empty
		status, body, err := d.request(http.MethodGet, "/api/v1/services/web", d.token, nil)
		if err == nil && status == http.StatusOK && json.Unmarshal(body, &s) == nil && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("want service web with %s within %s; last seen %d %s (%v)", what, trafficTimeout, status, body, err)
		}
		time.Sleep(workloadSample)
	}
}

// waitHTTP waits for url to answer want.
func waitHTTP(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(trafficTimeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			err = fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %s to answer %d within %s; last: %v", url, want, trafficTimeout, err)
		}
		time.Sleep(workloadSample)
	}
}

// TestGatewayServesThroughPartition: a member in a network namespace of
// its own, cut off from the hub by a real partition, keeps routing its
// gateway's requests to its own replicas from its last table (static
// stability), while the hub, which declared it Unreachable, has
// withdrawn its endpoints for everyone else.
func TestGatewayServesThroughPartition(t *testing.T) {
	needNetns(t)
	t.Parallel()
	ns := newNetns(t)
	tag := fmt.Sprintf("gp-%d-%d", os.Getpid(), nameSeq.Add(1))
	t.Cleanup(func() {
		for _, p := range workloadProcs(t, tag) {
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "demo-applied"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDevT(t, dir, ns.hostIP+":0", "--leaf-listen", ns.hostIP+":0")
	d.checkReady(t)
	join := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName("gp-join"), "--join", "--uses", "1").stdout)
	cut := &e2eMember{name: "gp-cut", region: "gp-r-cut"}
	cutDir := filepath.Join(t.TempDir(), cut.name)
	const gateway = "127.0.0.1:18080" // inside the namespace: nobody else's
	cut.proc = startProcIn(t, t, ns.name, "member "+cut.name, "member", "--name", cut.name, "--region", cut.region,
		"--data-dir", cutDir, "--nats-listen", "127.0.0.1:4223", "--join-token", join, "--label", "e2e="+tag, "--gateway-listen", gateway, "--gateway-local-peers")
	if _, ok := cut.proc.out.waitLine(0, membersUpTimeout, func(l string) bool { return strings.Contains(l, "member running") }); !ok {
		t.Fatalf("want member %s to log \"member running\"; its standard error:\n%s", cut.name, cut.proc.out.tail(30))
	}
	cut.nodes = append(cut.nodes, startProcIn(t, t, ns.name, "node gp-cut-n1", "node", "--member", "nats://127.0.0.1:4223", "--join-token-file", filepath.Join(cutDir, "node-join-token"),
		"--name", "gp-cut-n1", "--zone", cut.region+"-z1", "--data-dir", filepath.Join(t.TempDir(), "gp-cut-n1"), "--cpu", "2", "--memory", "2Gi"))
	waitMemberCluster(t, d, cut, tag)
	d.mustAtoll(t, failoverManifest("web", 2, "stateless", tag, tag)+`---
apiVersion: atoll.dev/v1
kind: Service
metadata: {name: web}
spec:
  workload: web
  ports: [{name: http}]
`, "apply", "-f", "-")
	waitService(t, d, "2 endpoints on "+cut.name, func(s api.Service) bool { return s.Status.Endpoints == 2 })
	inside := func() error {
		out, err := exec.Command("ip", "netns", "exec", ns.name, atollBin, "probe", "--timeout", "5s", "http://"+gateway+"/svc/web/").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	deadline := time.Now().Add(trafficTimeout)
	for err := inside(); err != nil; err = inside() {
		if time.Now().After(deadline) {
			t.Fatalf("want %s's gateway serving web inside its namespace; last: %v", cut.name, err)
		}
		time.Sleep(workloadSample)
	}

	ns.link(t, false)
	cutAt := time.Now()
	waitService(t, d, "no endpoint left at the hub (the partitioned cluster's withdrawn)", func(s api.Service) bool { return s.Status.Endpoints == 0 })
	t.Logf("link cut: the hub withdrew %s's endpoints %s later", cut.name, time.Since(cutAt).Round(time.Millisecond))
	for i := 0; i < 20; i++ {
		if err := inside(); err != nil {
			t.Fatalf("want %s's gateway to keep serving its own replicas from its last table while cut off (request %d, %s after the cut); got %v", cut.name, i, time.Since(cutAt).Round(time.Millisecond), err)
		}
	}
	t.Logf("cut off for %s: the gateway inside the partition served every request", time.Since(cutAt).Round(time.Millisecond))
}

// gatewayTrio is atoll dev without its demo and three members named
// <prefix>-a, -b and -c (regions <prefix>-r-a...), each with one node
// and a gateway on a port of its own.
type gatewayTrio struct {
	d      *devStack
	tag    string            // marks the replicas' processes, killed when the test ends
	ms     []*e2eMember      // a, b, c
	gw     map[string]string // member -> its gateway's address
	nodeOf map[int]string    // node agent pid -> member
}

// startGatewayTrio starts a gatewayTrio and waits until the hub lists
// each member.
func startGatewayTrio(t *testing.T, prefix string) gatewayTrio {
	t.Helper()
	tr := gatewayTrio{tag: fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), nameSeq.Add(1)), gw: map[string]string{}, nodeOf: map[int]string{}}
	t.Cleanup(func() {
		for _, p := range workloadProcs(t, tr.tag) {
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
	tr.d = startDevNoDemo(t)
	for _, s := range []string{"a", "b", "c"} {
		addr := freeAddr(t)
		m := startE2EMember(t, tr.d, prefix+"-"+s, prefix+"-r-"+s, tr.tag, 1, tr.nodeOf, "--gateway-listen", addr, "--gateway-local-peers")
		tr.gw[m.name] = addr
		tr.ms = append(tr.ms, m)
	}
	for _, m := range tr.ms {
		waitMemberCluster(t, tr.d, m, tr.tag)
	}
	return tr
}
