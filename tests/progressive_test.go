//go:build linux

package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// progressiveTimeout bounds a progressive rollout's phase change in the
// tests (bakes of 3 s, a few seconds of readiness and traffic per wave;
// generous for a busy machine).
const progressiveTimeout = 90 * time.Second

// progressiveManifest is workload web (demo-http, one replica per
// cluster of a, b, c) rolling out progressively: the canary a, then b,
// then the rest (c), each baking 3 s with traffic gates (20 requests in
// a 10 s window, at most 5 points more errors than the stable revision),
// and service web over it. status makes every answer of the revision
// that status (0: 200); crash makes its replicas exit at start (an
// unknown flag) so they never become ready and restart.
func progressiveManifest(tag, greeting string, status int, crash bool, a, b, c string) string {
	env := fmt.Sprintf("    - {name: GREETING, value: services-e2e-%s}\n    - {name: %s, value: %q}\n", greeting, workloadTagEnv, tag)
	if status != 0 {
		env += fmt.Sprintf("    - {name: DEMO_STATUS, value: %q}\n", strconv.Itoa(status))
	}
	args := "[demo-http]"
	if crash {
		args = "[demo-http, --no-such-flag]"
	}
	return fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata:
  name: web
spec:
  replicas: 3
  template:
    driver: process
    command: %s
    args: %s
    env:
%s    readinessProbe:
      http: {path: /healthz}
      periodSeconds: 1
    resources: {cpu: 50m, memory: 32Mi}
  placement:
    clusters: [%s, %s, %s]
    weights:
      type: static
      static:
      - {cluster: %s, weight: 1}
      - {cluster: %s, weight: 1}
      - {cluster: %s, weight: 1}
  rollout:
    waves:
    - {name: canary, clusters: [%s], bakeTime: 3s}
    - {name: second, clusters: [%s], bakeTime: 3s}
    gates:
      progressDeadline: 60s
      traffic: {minRequests: 20, window: 10s, maxErrorRatio: 0.05}
---
apiVersion: atoll.dev/v1
kind: Service
metadata: {name: web}
spec:
  workload: web
  ports: [{name: http}]
`, strconv.Quote(atollBin), args, env, a, b, c, a, b, c, a, b)
}

// rolloutWatch samples a workload's status.rollout until stopped,
// recording every cluster ever given each revision, when each was first
// given it, the gates said and the phases seen.
type rolloutWatch struct {
	mu     sync.Mutex
	given  map[int64]map[string]time.Time // revision -> cluster -> first seen given it
	gates  []string
	phases []string
	last   api.RolloutStatus
	stop   chan struct{}
	done   chan struct{}
}

func watchRollout(d *devStack, name string) *rolloutWatch {
	rw := &rolloutWatch{given: map[int64]map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(rw.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-rw.stop:
				return
			case <-tick.C:
			}
			w, status, err := d.getWorkload(name)
			if err != nil || status != http.StatusOK || w.Status.Rollout == nil {
				continue
			}
			r := *w.Status.Rollout
			rw.mu.Lock()
			rw.last = r
			if n := len(rw.phases); n == 0 || rw.phases[n-1] != r.Phase {
				rw.phases = append(rw.phases, r.Phase)
			}
			for _, c := range r.Clusters {
				if rw.given[c.Revision] == nil {
					rw.given[c.Revision] = map[string]time.Time{}
				}
				if _, ok := rw.given[c.Revision][c.Cluster]; !ok {
					rw.given[c.Revision][c.Cluster] = time.Now()
				}
				if c.Gate != "" && !slices.Contains(rw.gates, c.Cluster+": "+c.Gate) && len(rw.gates) < 200 {
					rw.gates = append(rw.gates, c.Cluster+": "+c.Gate)
				}
			}
			rw.mu.Unlock()
		}
	}()
	return rw
}

func (rw *rolloutWatch) finish() {
	close(rw.stop)
	<-rw.done
}

// waitPhase waits for the rollout of revision rev to reach phase.
func (rw *rolloutWatch) waitPhase(t *testing.T, rev int64, phase string, timeout time.Duration) api.RolloutStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rw.mu.Lock()
		last := rw.last
		rw.mu.Unlock()
		if last.Revision == rev && last.Phase == phase {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("want revision %d's rollout %s within %s; last %s %q (clusters %+v)", rev, phase, timeout, last.Phase, last.Message, last.Clusters)
		}
		time.Sleep(workloadSample)
	}
}

// TestProgressiveRolloutTrafficGates: three member processes with
// gateways and a workload of real HTTP replicas under spec.rollout with
// traffic gates, while clients send requests through every region's
// gateway. A good revision goes wave by wave (the canary, then b once
// the canary baked with its gates observed, then c); a revision whose
// replicas are ready but answer 500 is rolled back from the canary by
// its error ratio, within 10 s of its first failed request, and never
// reaches the later waves; so is a revision whose replicas crash, by
// their restarts. The service's traffic per region and revision
// is readable through the API and `atoll describe service`.
func TestProgressiveRolloutTrafficGates(t *testing.T) {
	t.Parallel()
	trio := startGatewayTrio(t, "pg")
	d, tag, ms, gw := trio.d, trio.tag, trio.ms, trio.gw
	a, b, c := ms[0].name, ms[1].name, ms[2].name
	d.mustAtoll(t, progressiveManifest(tag, "v1", 0, false, a, b, c), "apply", "-f", "-")
	d.waitWorkload(t, "web", "3 Ready replicas, one per cluster", workloadReadyTimeout, nil, func(w api.Workload) bool {
		return w.Status.ReadyReplicas == 3 && w.Status.Placement != nil && w.Status.Placement.Clusters[a] == 1 && w.Status.Placement.Clusters[b] == 1 && w.Status.Placement.Clusters[c] == 1
	})
	waitService(t, d, "3 endpoints", func(s api.Service) bool { return s.Status.Endpoints == 3 })
	// Each gateway sends its own region's replica first: every cluster's
	// revision gets traffic of its own, 25 requests/s (light: this test
	// runs beside others).
	var loads []*loadClient
	for _, m := range ms {
		u := "http://" + gw[m.name] + "/svc/web/"
		waitHTTP(t, u, 200)
		loads = append(loads, startLoad(m.name+"'s gateway", u, 40*time.Millisecond))
	}
	stopped := false
	stopLoads := func() {
		if !stopped {
			stopped = true
			for _, l := range loads {
				l.finish()
			}
		}
	}
	defer stopLoads()

	// A good revision (2): wave by wave, gates observed.
	rw := watchRollout(d, "web")
	defer rw.finish()
	d.mustAtoll(t, progressiveManifest(tag, "v2", 0, false, a, b, c), "apply", "-f", "-")
	st := rw.waitPhase(t, 2, api.RolloutCompleted, progressiveTimeout)
	rw.mu.Lock()
	given2, gates := rw.given[2], slices.Clone(rw.gates)
	rw.mu.Unlock()
	t.Logf("revision 2: %s; given %v", st.Message, given2)
	if given2[a].IsZero() || given2[b].IsZero() || given2[c].IsZero() {
		t.Fatalf("want every cluster given revision 2; got %v", given2)
	}
	if !given2[a].Before(given2[b]) || given2[b].Sub(given2[a]) < 3*time.Second || !given2[b].Before(given2[c]) || given2[c].Sub(given2[b]) < 3*time.Second {
		t.Errorf("want %s, then %s at least its 3 s bake later, then %s at least 3 s after; got %v", a, b, c, given2)
	}
	measured := false
	for _, g := range gates {
		if strings.HasPrefix(g, a+": ") && strings.Contains(g, "requests over") && strings.Contains(g, "p99") {
			measured = true
		}
	}
	if !measured {
		t.Errorf("want the canary's gate to show its traffic measured (requests, error ratio, p99); gates seen: %q", gates)
	}

	// A bad revision (3): ready replicas answering 500. Rolled back from
	// the canary by its error ratio; b and c never given it.
	d.mustAtoll(t, progressiveManifest(tag, "v3", 500, false, a, b, c), "apply", "-f", "-")
	st = rw.waitPhase(t, 3, api.RolloutRolledBack, progressiveTimeout)
	rolledBackSeen := time.Now()
	if !strings.Contains(st.Message, a+": error ratio") || !strings.Contains(st.Message, "of revision 3") {
		t.Errorf("want the rollback's reason to be the canary's error ratio; got %q", st.Message)
	}
	rw.mu.Lock()
	given3 := rw.given[3]
	rw.mu.Unlock()
	if _, ok := given3[b]; ok {
		t.Errorf("want %s never given the bad revision; it was at %v", b, given3[b])
	}
	if _, ok := given3[c]; ok {
		t.Errorf("want %s never given the bad revision; it was at %v", c, given3[c])
	}
	// The canary's client saw the first 500s; the rollback came within
	// 10 s of the first (as sampled: the status is read every 100 ms).
	canary := loads[0]
	canary.mu.Lock()
	first := canary.firstAt
	canary.mu.Unlock()
	if first.IsZero() {
		t.Errorf("want the canary's gateway to have answered the bad revision's 500s")
	} else {
		took := rolledBackSeen.Sub(first)
		t.Logf("bad revision: first 500 through %s's gateway at %s, RolledBack seen %s later: %s", a, first.Format("15:04:05.000"), took.Round(time.Millisecond), st.Message)
		if took > 10*time.Second {
			t.Errorf("want the bad revision rolled back within 10 s of its first failure; took %s", took)
		}
	}
	for _, l := range loads[1:] {
		if n := l.fail.Load(); n != 0 {
			t.Errorf("want no failed request through %s (its region never got the bad revision); got %d: %v", l.name, n, l.failures)
		}
	}
	var events api.EventList
	if status, body, err := d.request(http.MethodGet, "/api/v1/events?labelSelector="+api.LabelEventKind+"%3DWorkload%2C"+api.LabelEventName+"%3Dweb", d.token, nil); err != nil || status != 200 || json.Unmarshal(body, &events) != nil {
		t.Fatalf("want the workload's events; got %d %s (%v)", status, body, err)
	}
	found := false
	for _, e := range events.Items {
		if e.Reason == "RolloutRolledBack" && strings.Contains(e.Message, "error ratio") {
			found = true
		}
	}
	if !found {
		t.Errorf("want a RolloutRolledBack event naming the error ratio; got %+v", events.Items)
	}
	// The service's traffic: per region, and per revision (2 and 3
	// answered in the last minute).
	var tr api.ServiceTraffic
	if status, body, err := d.request(http.MethodGet, "/api/v1/services/web/traffic?window=2m", d.token, nil); err != nil || status != 200 || json.Unmarshal(body, &tr) != nil {
		t.Fatalf("want the service's traffic; got %d %s (%v)", status, body, err)
	}
	regions := map[string]api.TrafficRow{}
	for _, r := range tr.Regions {
		regions[r.Region] = r
	}
	// (A try of b's or c's may fail while its own replica is replaced by
	// the good revision, retried elsewhere: tries are counted, not what
	// clients saw.)
	if ra, rb := regions[ms[0].region], regions[ms[1].region]; len(regions) != 3 || ra.Errors < 20 || rb.ErrorRatio > 0.02 || rb.Requests < 100 {
		t.Errorf("want traffic in 3 regions, the canary's with the bad revision's errors, b's with next to none; got %+v", tr.Regions)
	}
	bad := false
	for _, r := range tr.Revisions {
		if r.Region == ms[0].region && r.Revision == 3 && r.ErrorRatio > 0.9 {
			bad = true
		}
	}
	if !bad {
		t.Errorf("want revision 3 in the canary's region with its errors among the per-revision rows; got %+v", tr.Revisions)
	}
	if status, body, _ := d.request(http.MethodGet, "/api/v1/services/web/traffic?window=forever", d.token, nil); status != 422 || !strings.Contains(string(body), `"query.window"`) {
		t.Errorf("want a bad window refused with 422 naming it; got %d %s", status, body)
	}
	// A crashing revision (4): its replicas exit at start. Rolled back
	// from the canary by its restarts (gates allow none by default),
	// never given to b or c; the clients of b and c see no failure.
	d.mustAtoll(t, progressiveManifest(tag, "v4", 0, true, a, b, c), "apply", "-f", "-")
	st = rw.waitPhase(t, 4, api.RolloutRolledBack, progressiveTimeout)
	t.Logf("crashing revision: %s", st.Message)
	if !strings.Contains(st.Message, a+": ") || !strings.Contains(st.Message, "restarts of revision 4") {
		t.Errorf("want the crashing revision rolled back by the canary's restarts; got %q", st.Message)
	}
	rw.mu.Lock()
	given4 := rw.given[4]
	rw.mu.Unlock()
	for _, cl := range []string{b, c} {
		if _, ok := given4[cl]; ok {
			t.Errorf("want %s never given the crashing revision; it was at %v", cl, given4[cl])
		}
	}
	for _, l := range loads[1:] {
		if n := l.fail.Load(); n != 0 {
			t.Errorf("want no failed request through %s during the crashing revision; got %d: %v", l.name, n, l.failures)
		}
	}
	stopLoads()
	r := d.mustAtoll(t, "", "describe", "service", "web")
	if !strings.Contains(r.stdout, "Traffic (last 1m0s") || !strings.Contains(r.stdout, ms[0].region) || !strings.Contains(r.stdout, "Traffic per revision") {
		t.Errorf("want describe service to show the traffic per region and revision; got %s", r)
	}
}

// simRolloutManifest is workload web of sim replicas, one per cluster of
// a, b, c, rolling out progressively: the canary a (held for a promote),
// then b, then the rest (c), each baking 2 s on readiness gates.
func simRolloutManifest(version string, a, b, c string) string {
	return fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata:
  name: web
spec:
  replicas: 3
  template:
    driver: sim
    sim: {startLatency: 200ms}
    env: [{name: VERSION, value: %q}]
    resources: {cpu: 10m, memory: 8Mi}
  placement:
    clusters: [%s, %s, %s]
    weights:
      type: static
      static:
      - {cluster: %s, weight: 1}
      - {cluster: %s, weight: 1}
      - {cluster: %s, weight: 1}
  rollout:
    waves:
    - {name: canary, clusters: [%s], bakeTime: 2s, manual: true}
    - {name: second, clusters: [%s], bakeTime: 2s}
    gates: {progressDeadline: 60s}
`, version, a, b, c, a, b, c, a, b)
}

// TestProgressiveRolloutHoldsThroughPartitionAndHubRestart: the cluster
// of the next wave is cut off by a real network partition (its member in
// a network namespace, the link down) before the canary is promoted: the
// rollout holds, saying which cluster it waits for, and gives no later
// cluster the revision. The hub is then SIGKILLed and started again on
// its data: the rollout resumes from its stored state (same revision,
// wave and clusters given). Once the link heals, it completes wave by
// wave.
func TestProgressiveRolloutHoldsThroughPartitionAndHubRestart(t *testing.T) {
	needNetns(t)
	t.Parallel()
	ns := newNetns(t)
	tag := fmt.Sprintf("ph-%d-%d", os.Getpid(), nameSeq.Add(1))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "demo-applied"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	devArgs := []string{"--leaf-listen", ns.hostIP + ":0"}
	d := startDevT(t, dir, ns.hostIP+":0", devArgs...)
	d.checkReady(t)
	nodeOf := map[int]string{}
	a := startE2EMember(t, d, "ph-a", "ph-r-a", tag, 1, nodeOf)
	c := startE2EMember(t, d, "ph-c", "ph-r-c", tag, 1, nodeOf)
	join := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName("ph-join"), "--join", "--uses", "1").stdout)
	b := &e2eMember{name: "ph-b", region: "ph-r-b"}
	bDir := filepath.Join(t.TempDir(), b.name)
	b.proc = startProcIn(t, t, ns.name, "member "+b.name, "member", "--name", b.name, "--region", b.region,
		"--data-dir", bDir, "--nats-listen", "127.0.0.1:4223", "--join-token", join, "--label", "e2e="+tag)
	if _, ok := b.proc.out.waitLine(0, membersUpTimeout, func(l string) bool { return strings.Contains(l, "member running") }); !ok {
		t.Fatalf("want member %s to log \"member running\"; its standard error:\n%s", b.name, b.proc.out.tail(30))
	}
	b.nodes = append(b.nodes, startProcIn(t, t, ns.name, "node ph-b-n1", "node", "--member", "nats://127.0.0.1:4223", "--join-token-file", filepath.Join(bDir, "node-join-token"),
		"--name", "ph-b-n1", "--zone", b.region+"-z1", "--data-dir", filepath.Join(t.TempDir(), "ph-b-n1"), "--cpu", "2", "--memory", "2Gi"))
	for _, m := range []*e2eMember{a, b, c} {
		waitMemberCluster(t, d, m, tag)
	}
	d.mustAtoll(t, simRolloutManifest("1", a.name, b.name, c.name), "apply", "-f", "-")
	d.waitWorkload(t, "web", "3 Ready replicas, one per cluster", workloadReadyTimeout, nil, func(w api.Workload) bool {
		return w.Status.ReadyReplicas == 3 && w.Status.Placement != nil && len(w.Status.Placement.Clusters) == 3
	})

	rw := watchRollout(d, "web")
	d.mustAtoll(t, simRolloutManifest("2", a.name, b.name, c.name), "apply", "-f", "-")
	rw.waitPhase(t, 2, api.RolloutWaiting, progressiveTimeout)
	ns.link(t, false)
	d.waitHealth(t, b.proc, b.name, api.HealthUnreachable, 60*time.Second)
	d.mustAtoll(t, "", "rollout", "promote", "workload", "web")
	held := rw.waitUntil(t, "the second wave held for "+b.name, progressiveTimeout, func(r api.RolloutStatus) bool {
		return r.Revision == 2 && r.WaveName == "second" && r.Phase == api.RolloutWaiting && strings.Contains(r.Message, b.name+" is Unreachable")
	})
	t.Logf("held: %s", held.Message)
	rw.finish()
	rw.mu.Lock()
	given := rw.given[2]
	rw.mu.Unlock()
	if _, ok := given[b.name]; ok {
		t.Errorf("want the partitioned %s never given revision 2 while cut off; it was", b.name)
	}
	if _, ok := given[c.name]; ok {
		t.Errorf("want %s (a later wave) never given revision 2 while the second wave holds; it was", c.name)
	}

	// The hub dies and comes back on its data: the rollout is where it was.
	pg := d.postgresProcs()
	d.kill()
	if err := waitGone(pg, d.pgDataDir(), goneTimeout); err != nil {
		t.Fatalf("want the killed hub's PostgreSQL gone before it starts again; %v", err)
	}
	d = startDevT(t, dir, d.addr, devArgs...)
	d.checkReady(t)
	rw = watchRollout(d, "web")
	defer rw.finish()
	resumed := rw.waitUntil(t, "the rollout read back after the restart", progressiveTimeout, func(r api.RolloutStatus) bool { return r.Revision == 2 })
	if resumed.WaveName != "second" || resumed.StableRevision != 1 || resumed.Phase == api.RolloutCompleted || resumed.Phase == api.RolloutRolledBack {
		t.Errorf("want the restarted hub to resume revision 2 at wave second (stable 1); got %s at %s: %q", resumed.Phase, resumed.WaveName, resumed.Message)
	}
	for _, rc := range resumed.Clusters {
		if want := map[string]int64{a.name: 2, b.name: 1, c.name: 1}[rc.Cluster]; rc.Revision != want {
			t.Errorf("want %s given revision %d after the restart; got %d", rc.Cluster, want, rc.Revision)
		}
	}

	// The link heals: b takes the revision, then c, and it completes.
	ns.link(t, true)
	done := rw.waitPhase(t, 2, api.RolloutCompleted, progressiveTimeout)
	rw.mu.Lock()
	given = rw.given[2]
	rw.mu.Unlock()
	if !given[b.name].Before(given[c.name]) {
		t.Errorf("want %s given revision 2 before %s after the heal; got %v", b.name, c.name, given)
	}
	t.Logf("after the heal: %s", done.Message)
}

// waitUntil waits for the rollout's status to satisfy ok.
func (rw *rolloutWatch) waitUntil(t *testing.T, what string, timeout time.Duration, ok func(api.RolloutStatus) bool) api.RolloutStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rw.mu.Lock()
		last := rw.last
		rw.mu.Unlock()
		if ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %s within %s; last %s at %s %q", what, timeout, last.Phase, last.WaveName, last.Message)
		}
		time.Sleep(workloadSample)
	}
}
