package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/internal/ports"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
)

// probeServerEnv makes the test binary an HTTP server on $PORT (the
// replicas of the probe tests' process workload run it).
const probeServerEnv = "ATOLL_TEST_PROBE_SERVER"

// probeStatusEnv makes such a replica answer every request but
// /healthz with that status (a ready replica failing its requests).
const probeStatusEnv = "ATOLL_TEST_PROBE_STATUS"

// serveProbeReplica is what a replica of the probe tests runs: it answers
// every request 200 (or $ATOLL_TEST_PROBE_STATUS) until killed.
func serveProbeReplica() {
	status, _ := strconv.Atoi(os.Getenv(probeStatusEnv))
	err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status != 0 && r.URL.Path != "/healthz" {
			w.WriteHeader(status)
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// probeRegion runs a member named name in its own region, with its
// gateway on gateway and one node agent running real processes.
func probeRegion(t testing.TB, e *env, join, name, gateway string) *member.Member {
	t.Helper()
	m, err := member.New(member.Config{JoinToken: join, Name: name, Region: name, DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", GatewayListen: gateway})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { _ = m.Run(ctx) })
	waitFor(t, name+"'s first heartbeat ack", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
	a, err := node.New(node.Config{MemberURL: m.NATSURL(), JoinToken: m.NodeJoinToken(), Name: name + "-n1", DataDir: t.TempDir(),
		MilliCPU: 4000, Memory: 8 << 30, Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = a.Run(ctx) })
	waitFor(t, "the hub sees "+name+" Ready with its node", 20*time.Second, func() bool {
		live, ok := e.server.Monitor().Live(name)
		return ok && live.Health == api.HealthReady && live.Heard && live.Capacity.NodesReady == 1
	})
	return m
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestDrillProbeThroughSurvivingGateway: an outage drill of r1 with a
// probe sending real requests to a service (real processes in r1 and r2)
// through r2's gateway. r2's gateway routes to its own region first, so
// no request may fail while r1 is dark; the report counts the requests
// per phase and judges maxFailedRequests and minSuccessRatio.
func TestDrillProbeThroughSurvivingGateway(t *testing.T) {
	t.Parallel()
	gw1, gw2 := freeAddr(t), freeAddr(t)
	dbURL := newHubDatabase(t)
	e := newEnvWith(t, dbURL, newBus(t, dbURL), members.HealthConfig{}, true, func(c *hub.Config) {
		c.Drills.EntryPoints = map[string]string{"r1": "http://" + gw1, "r2": "http://" + gw2}
	})
	ctx := context.Background()
	join := e.joinToken("j", api.TokenSpec{})
	probeRegion(t, e, join, "r1", gw1)
	probeRegion(t, e, join, "r2", gw2)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 4,
		Template: api.ReplicaTemplate{Driver: "process", Command: exe, Env: []api.EnvVar{{Name: probeServerEnv, Value: "1"}},
			Resources: api.Resources{CPU: "100m", Memory: "32Mi"},
			Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/"}, PeriodSeconds: 1}},
		Failover: &api.FailoverPolicy{GracePeriod: "1s", StabilizationWindow: "1s", Failback: "manual"}}})
	if r := e.json("POST", "/api/v1/services", api.Service{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Service"},
		Metadata: api.ObjectMeta{Name: "web"}, Spec: api.ServiceSpec{Workload: "web", Ports: []api.ServicePort{{Name: "http"}}}}); r.status != 201 {
		t.Fatalf("create service web: %d %s", r.status, r.body)
	}
	waitFor(t, "web's 4 replicas ready over both regions", 30*time.Second, func() bool {
		var got api.Workload
		_ = e.admin.Get(ctx, "workloads", "web", &got)
		return got.Status.ReadyReplicas == 4 && len(got.Status.Clusters) == 2
	})
	waitFor(t, "web answering through r2's gateway", 20*time.Second, func() bool {
		resp, err := http.Get("http://" + gw2 + "/svc/web/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	maxFailed, minRatio := int64(0), 1.0
	d := drill("probe-outage", api.DrillOutage, api.DrillTarget{Region: "r1"}, "4s")
	d.Spec.Probe = &api.DrillProbe{Service: "web", Rate: 100, Through: []string{"r2"}, Baseline: "1s"}
	d.Spec.SLO = &api.DrillSLO{MaxFailedRequests: &maxFailed, MinSuccessRatio: &minRatio}
	if err := e.admin.Create(ctx, "drills", d, nil); err != nil {
		t.Fatal(err)
	}
	_, _, final := followDrill(t, e, "probe-outage", 90*time.Second)
	rep := final.Status.Report
	t.Logf("report: %s", mustJSONOf(rep))
	if rep == nil || rep.Probe == nil || len(rep.Probe.Through) != 1 {
		t.Fatalf("want a report with the probe's counts through r2; got %+v", rep)
	}
	through := rep.Probe.Through[0]
	if through.Name != "r2" || through.Baseline.Requests == 0 || through.Fault.Requests == 0 || through.After.Requests == 0 {
		t.Errorf("want requests counted through r2 in every phase (baseline, fault, after); got %+v", through)
	}
	if through.Fault.Failed != 0 || rep.Probe.Fault.Failed != 0 || rep.Probe.Fault.SuccessRatio != 1 {
		t.Errorf("through a surviving region's gateway: want 0 failed requests during the fault; got %+v", rep.Probe.Fault)
	}
	if through.Fault.P50Millis <= 0 || through.Fault.P99Millis < through.Fault.P50Millis {
		t.Errorf("want latency percentiles (p50 > 0, p99 >= p50); got %+v", through.Fault)
	}
	judged := map[string]api.SLOResult{}
	for _, s := range rep.SLOs {
		judged[s.Name] = s
	}
	if s, ok := judged["minSuccessRatio"]; !ok || !s.Passed || s.Actual != "1.0000" {
		t.Errorf("want minSuccessRatio judged and met (1.0000); got %+v", rep.SLOs)
	}
	if s, ok := judged["maxFailedRequests"]; !ok || !s.Passed {
		t.Errorf("want maxFailedRequests judged and met; got %+v", rep.SLOs)
	}
	if final.Status.Phase != api.DrillCompleted || final.Status.Verdict != api.DrillVerdictPassed {
		t.Errorf("want Completed and Passed; got %s/%s, missed %v", final.Status.Phase, final.Status.Verdict, rep.Missed)
	}
	if len(final.Status.ProbeSamples) == 0 {
		t.Errorf("want the success ratio's series stored for the chart; got none")
	}
}

// TestDrillProbeRefusals: a probe naming a service or an entry point that
// does not exist, or a rate out of range, is a 422 with its field; so
// are the request objectives without a probe.
func TestDrillProbeRefusals(t *testing.T) {
	t.Parallel()
	dbURL := newHubDatabase(t)
	e := newEnvWith(t, dbURL, nil, members.HealthConfig{}, false, func(c *hub.Config) {
		c.Drills.EntryPoints = map[string]string{"r2": "http://127.0.0.1:1"}
	})
	drillFleet(e)
	e.create(workload("api", 1, nil))
	if r := e.json("POST", "/api/v1/services", api.Service{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Service"},
		Metadata: api.ObjectMeta{Name: "web"}, Spec: api.ServiceSpec{Workload: "web", Ports: []api.ServicePort{{Name: "http"}}}}); r.status != 201 {
		t.Fatalf("create service web: %d %s", r.status, r.body)
	}
	spec := func(probe string) string {
		return `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"c"},"force":true,"probe":` + probe + `}}`
	}
	cases := []struct {
		name, path, body, location string
	}{
		{"no such service", "/api/v1/drills", spec(`{"service":"nope","rate":10,"through":["r2"]}`), "body.spec.probe.service"},
		{"rate zero", "/api/v1/drills", spec(`{"service":"web","rate":0,"through":["r2"]}`), "body.spec.probe.rate"},
		{"rate too high", "/api/v1/drills", spec(`{"service":"web","rate":5000,"through":["r2"]}`), "body.spec.probe.rate"},
		{"no such entry point", "/api/v1/drills", spec(`{"service":"web","rate":10,"through":["r2","mars"]}`), "body.spec.probe.through[1]"},
		{"no entry point", "/api/v1/drills", spec(`{"service":"web","rate":10,"through":[]}`), "body.spec.probe.through"},
		{"path without slash", "/api/v1/drills", spec(`{"service":"web","rate":10,"path":"x","through":["r2"]}`), "body.spec.probe.path"},
		{"ratio above 1", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"c"},"probe":{"service":"web","rate":10,"through":["r2"]},"slo":{"minSuccessRatio":1.5}}}`, "body.spec.slo.minSuccessRatio"},
		{"objective without probe", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"c"},"slo":{"maxFailedRequests":0}}}`, "body.spec.slo.maxFailedRequests"},
		{"plan: no such entry point", "/api/v1/drills/plan", `{"kind":"evacuate","target":{"cluster":"c"},"probe":{"service":"web","rate":10,"through":["mars"]}}`, "body.probe.through[0]"},
		{"plan: no such service", "/api/v1/drills/plan", `{"kind":"evacuate","target":{"cluster":"c"},"probe":{"service":"api","rate":10,"through":["r2"]}}`, "body.probe.service"},
	}
	for _, c := range cases {
		r := e.do("POST", c.path, adminSecret, "application/json", []byte(c.body))
		if r.status != 422 || !hasLocation(r.problem, c.location) {
			t.Errorf("%s: want 422 with an error at %s; got %d %s", c.name, c.location, r.status, r.body)
		}
	}
	// A good probe is accepted.
	if r := e.do("POST", "/api/v1/drills/plan", adminSecret, "application/json",
		[]byte(`{"kind":"evacuate","target":{"cluster":"c"},"probe":{"service":"web","rate":10,"through":["r2"]},"slo":{"minSuccessRatio":0.99}}`)); r.status != 200 {
		t.Errorf("plan with a good probe: want 200; got %d %s", r.status, r.body)
	}
}
