package hub_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/internal/ports"
)

// TestProgressiveRolloutAcrossLeaderChange: two hubs on one database and
// one NATS, three members with gateways and real processes, clients
// sending requests through every gateway. A revision with traffic gates
// passes its canary, which waits for a promote; the leader steps down,
// the other hub takes over, the promote is written through it, and the
// new leader carries the rollout on from the stored state, wave by wave,
// its traffic gates judged from its own window (every hub hears the
// members' traffic), to Completed.
func TestProgressiveRolloutAcrossLeaderChange(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	bus := newBus(t, dbURL)
	a, ea := electedEnvOn(t, dbURL, bus, "hub-a", nil)
	b, eb := electedEnvOn(t, dbURL, bus, "hub-b", nil)
	if _, err := ea.RunOnce(t.Context()); err != nil || !ea.IsLeader() {
		t.Fatalf("hub-a's first round: leader %v, %v; want leader", ea.IsLeader(), err)
	}
	if _, err := eb.RunOnce(t.Context()); err != nil || eb.IsLeader() {
		t.Fatalf("hub-b's first round: leader %v, %v; want follower", eb.IsLeader(), err)
	}
	// From here both hold or campaign in the background, as hubs do.
	ea.Start(t.Context())
	eb.Start(t.Context())
	ctx := context.Background()
	join := a.joinToken("j", api.TokenSpec{})
	gws := map[string]string{}
	for _, r := range []string{"r1", "r2", "r3"} {
		addr, err := ports.Free("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		gws[r] = addr
		probeRegion(t, a, join, r, addr)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w := api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 3,
		Template: api.ReplicaTemplate{Driver: "process", Command: exe, Env: []api.EnvVar{{Name: probeServerEnv, Value: "1"}},
			Resources: api.Resources{CPU: "50m", Memory: "32Mi"}, Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz"}, PeriodSeconds: 1}},
		Placement: &api.PlacementPolicy{Weights: &api.WeightPolicy{Type: "static", Static: []api.StaticWeight{{Cluster: "r1", Weight: 1}, {Cluster: "r2", Weight: 1}, {Cluster: "r3", Weight: 1}}}},
		Rollout: &api.ProgressiveRollout{Waves: []api.RolloutWave{
			{Name: "canary", Clusters: []string{"r1"}, BakeTime: "2s", Manual: true},
			{Name: "second", Clusters: []string{"r2"}, BakeTime: "2s"},
		}, Gates: &api.RolloutGates{ProgressDeadline: "60s", Traffic: &api.TrafficGates{MinRequests: 20, Window: "10s"}}}}}
	a.create(w)
	if r := a.json("POST", "/api/v1/services", api.Service{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Service"},
		Metadata: api.ObjectMeta{Name: "web"}, Spec: api.ServiceSpec{Workload: "web", Ports: []api.ServicePort{{Name: "http"}}}}); r.status != 201 {
		t.Fatalf("create service web: %d %s", r.status, r.body)
	}
	get := func(e *env) api.Workload {
		var got api.Workload
		_ = e.admin.Get(ctx, "workloads", "web", &got)
		return got
	}
	waitFor(t, "3 replicas ready, one per region", time.Minute, func() bool {
		got := get(a)
		return got.Status.ReadyReplicas == 3 && got.Status.Placement != nil && len(got.Status.Placement.Clusters) == 3
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	client := &http.Client{Timeout: 5 * time.Second}
	for _, addr := range gws {
		waitServesWeb(t, client, addr)
		wg.Go(func() {
			tick := time.NewTicker(25 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if resp, err := client.Get("http://" + addr + "/svc/web/"); err == nil {
					resp.Body.Close()
				}
			}
		})
	}

	if err := a.admin.Patch(ctx, "workloads", "web", []byte(`{"spec":{"template":{"env":[{"name":"`+probeServerEnv+`","value":"2"}]}}}`), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revision 2's canary passed, waiting for a promote", 90*time.Second, func() bool {
		r := get(a).Status.Rollout
		return r != nil && r.Revision == 2 && r.Phase == api.RolloutWaiting && r.WaveName == "canary"
	})

	ea.Stop() // hub-a steps down; hub-b's campaign takes the lock
	waitFor(t, "hub-b leading", 30*time.Second, eb.IsLeader)
	if err := b.admin.Patch(ctx, "workloads", "web", []byte(`{"metadata":{"annotations":{"`+api.AnnotationRolloutPromote+`":"2:canary"}}}`), nil); err != nil {
		t.Fatal(err)
	}
	given := map[string]time.Time{}
	var gates []string
	waitFor(t, "revision 2 completed under hub-b", 90*time.Second, func() bool {
		r := get(b).Status.Rollout
		if r == nil {
			return false
		}
		for _, c := range r.Clusters {
			if _, seen := given[c.Cluster]; !seen && c.Revision == 2 {
				given[c.Cluster] = time.Now()
			}
			if c.Cluster == "r2" && strings.Contains(c.Gate, "requests over") && len(gates) < 5 {
				gates = append(gates, c.Gate)
			}
		}
		return r.Revision == 2 && r.Phase == api.RolloutCompleted
	})
	if given["r2"].IsZero() || given["r3"].IsZero() || !given["r2"].Before(given["r3"]) {
		t.Errorf("want r2 given revision 2 before r3 under the new leader; got %v", given)
	}
	if len(gates) == 0 {
		t.Errorf("want r2's traffic gate judged by hub-b from the traffic it heard")
	}
}

// waitServesWeb waits up to a minute for the gateway at addr to answer
// 200 for service web.
func waitServesWeb(t testing.TB, client *http.Client, addr string) {
	t.Helper()
	waitFor(t, "web through "+addr, time.Minute, func() bool {
		resp, err := client.Get("http://" + addr + "/svc/web/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
