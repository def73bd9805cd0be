package hub_test

import (
	"context"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/internal/ports"
)

// BenchmarkProgressiveRollout: 999 sim replicas over three members of 20
// sim nodes each, rolled out progressively in three waves (r1, then r2,
// then r3) with 10 s bake times. It reports the good revision's time from
// the template change to Completed (target: the 30 s of bake plus 5 s),
// and for a crashing revision the time from its first failure seen in the
// canary's report to RolledBack (target: 10 s), failing if a cluster
// beyond the canary ever gets the bad revision.
//
//	go test ./hub -run '^$' -bench BenchmarkProgressiveRollout -benchtime 1x -timeout 15m
func BenchmarkProgressiveRollout(b *testing.B) {
	var goods, overs, backs, changes []float64
	for range b.N {
		b.StopTimer()
		e := newMemberEnv(b, members.HealthConfig{})
		startSimRegions(b, e, 3, 20, func(string, string, time.Time) {})
		ctx := context.Background()
		maxRestarts := int32(0)
		w := api.Workload{Metadata: api.ObjectMeta{Name: "wave"}, Spec: api.WorkloadSpec{Replicas: 999,
			Template: api.ReplicaTemplate{Driver: "sim", Sim: &api.SimSpec{StartLatency: "50ms"}},
			Rollout: &api.ProgressiveRollout{Waves: []api.RolloutWave{
				{Name: "canary", Clusters: []string{"r1"}, BakeTime: "10s"},
				{Name: "second", Clusters: []string{"r2"}, BakeTime: "10s"},
			}, Gates: &api.RolloutGates{MaxRestarts: &maxRestarts}}}}
		if err := e.admin.Create(ctx, "workloads", w, nil); err != nil {
			b.Fatal(err)
		}
		get := func() api.Workload {
			var got api.Workload
			_ = e.admin.Get(ctx, "workloads", "wave", &got)
			return got
		}
		waitFor(b, "999 replicas ready, revision 1 everywhere", 3*time.Minute, func() bool {
			got := get()
			return got.Status.ReadyReplicas == 999 && got.Status.Rollout != nil && got.Status.Rollout.Phase == api.RolloutCompleted
		})

		b.StartTimer()
		start := time.Now()
		if err := e.admin.Patch(ctx, "workloads", "wave", []byte(`{"spec":{"template":{"sim":{"startLatency":"60ms"}}}}`), nil); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "revision 2 completed", 3*time.Minute, func() bool {
			r := get().Status.Rollout
			return r != nil && r.Revision == 2 && r.Phase == api.RolloutCompleted
		})
		good := time.Since(start)
		b.StopTimer()

		bad := time.Now()
		if err := e.admin.Patch(ctx, "workloads", "wave", []byte(`{"spec":{"template":{"sim":{"failureRate":1}}}}`), nil); err != nil {
			b.Fatal(err)
		}
		var failed time.Time
		beyond := false
		waitFor(b, "revision 3 rolled back", 3*time.Minute, func() bool {
			got := get()
			r := got.Status.Rollout
			if r == nil || r.Revision != 3 {
				return false
			}
			for _, c := range r.Clusters {
				if c.Cluster != "r1" && c.Revision == 3 {
					beyond = true
				}
			}
			for _, cr := range got.Status.Clusters {
				if cr.Cluster == "r1" && cr.Generation == got.Metadata.Generation && cr.UpdatedRestarts > 0 && failed.IsZero() {
					failed = time.Now()
				}
			}
			return r.Phase == api.RolloutRolledBack
		})
		if beyond {
			b.Errorf("the crashing revision reached a cluster beyond the canary")
		}
		sinceChange := time.Since(bad)
		back := time.Since(failed)
		if failed.IsZero() {
			back = 0 // rolled back before a report of the failure was seen here
		}
		goods = append(goods, good.Seconds())
		overs = append(overs, good.Seconds()-30)
		backs = append(backs, back.Seconds())
		changes = append(changes, sinceChange.Seconds())
		b.Logf("good revision: %s from the change to Completed (%.1f s beyond its 30 s of bake); crashing revision rolled back %s after its first failure was seen, %s after the change",
			good.Round(time.Millisecond), good.Seconds()-30, back.Round(time.Millisecond), sinceChange.Round(time.Millisecond))
	}
	b.ReportMetric(mean(goods), "rollout-s")
	b.ReportMetric(mean(overs), "beyond-bake-s")
	b.ReportMetric(mean(backs), "rollback-after-failure-s")
	b.ReportMetric(mean(changes), "rollback-after-change-s")
}

// BenchmarkProgressiveRolloutFailingRequests: three members with their
// gateways and one node agent each running real processes (this test
// binary as an HTTP server), two replicas per member, a service over
// them, and clients sending 100 requests/s through each region's
// gateway. A revision whose replicas are ready but answer 500 rolls out
// in three waves (r1, then r2, then r3) with traffic gates. It reports
// the time from the first request that failed (as a client saw it) to
// RolledBack (target: 10 s) and from the template change, and how many
// clusters beyond the canary were ever given the bad revision (target 0:
// the benchmark fails otherwise).
//
//	go test ./hub -run '^$' -bench BenchmarkProgressiveRolloutFailingRequests -benchtime 1x -count 3 -timeout 15m
func BenchmarkProgressiveRolloutFailingRequests(b *testing.B) {
	var afterFailure, afterChange, beyond []float64
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		b.StopTimer()
		e := newMemberEnv(b, members.HealthConfig{})
		ctx := context.Background()
		join := e.joinToken("j", api.TokenSpec{})
		gws := map[string]string{}
		for _, r := range []string{"r1", "r2", "r3"} {
			a, err := ports.Free("127.0.0.1")
			if err != nil {
				b.Fatal(err)
			}
			gws[r] = a
			probeRegion(b, e, join, r, a)
		}
		template := func(status string) api.ReplicaTemplate {
			env := []api.EnvVar{{Name: probeServerEnv, Value: "1"}}
			if status != "" {
				env = append(env, api.EnvVar{Name: probeStatusEnv, Value: status})
			}
			return api.ReplicaTemplate{Driver: "process", Command: exe, Env: env, Resources: api.Resources{CPU: "50m", Memory: "32Mi"},
				Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz"}, PeriodSeconds: 1}}
		}
		w := api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 6, Template: template(""),
			Placement: &api.PlacementPolicy{Weights: &api.WeightPolicy{Type: "static", Static: []api.StaticWeight{{Cluster: "r1", Weight: 1}, {Cluster: "r2", Weight: 1}, {Cluster: "r3", Weight: 1}}}},
			Rollout: &api.ProgressiveRollout{Waves: []api.RolloutWave{
				{Name: "canary", Clusters: []string{"r1"}, BakeTime: "10s"},
				{Name: "second", Clusters: []string{"r2"}, BakeTime: "10s"},
			}, Gates: &api.RolloutGates{Traffic: &api.TrafficGates{MinRequests: 20, Window: "10s"}}}}}
		e.create(w)
		if r := e.json("POST", "/api/v1/services", api.Service{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Service"},
			Metadata: api.ObjectMeta{Name: "web"}, Spec: api.ServiceSpec{Workload: "web", Ports: []api.ServicePort{{Name: "http"}}}}); r.status != 201 {
			b.Fatalf("create service web: %d %s", r.status, r.body)
		}
		get := func() api.Workload {
			var got api.Workload
			_ = e.admin.Get(ctx, "workloads", "web", &got)
			return got
		}
		waitFor(b, "6 replicas ready, 2 per region", time.Minute, func() bool {
			got := get()
			p := got.Status.Placement
			return got.Status.ReadyReplicas == 6 && p != nil && p.Clusters["r1"] == 2 && p.Clusters["r2"] == 2 && p.Clusters["r3"] == 2
		})
		var mu sync.Mutex
		var firstFail time.Time
		stop := make(chan struct{})
		var wg sync.WaitGroup
		client := &http.Client{Timeout: 5 * time.Second}
		for _, addr := range gws {
			waitServesWeb(b, client, addr)
			wg.Go(func() {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					sent := time.Now()
					resp, err := client.Get("http://" + addr + "/svc/web/")
					if err == nil {
						resp.Body.Close()
					}
					if err != nil || resp.StatusCode != 200 {
						mu.Lock()
						if firstFail.IsZero() || sent.Before(firstFail) {
							firstFail = sent
						}
						mu.Unlock()
					}
				}
			})
		}

		b.StartTimer()
		change := time.Now()
		if err := e.admin.Patch(ctx, "workloads", "web", []byte(`{"spec":{"template":{"env":[{"name":"`+probeServerEnv+`","value":"1"},{"name":"`+probeStatusEnv+`","value":"500"}]}}}`), nil); err != nil {
			b.Fatal(err)
		}
		given := map[string]bool{}
		var rolledBack time.Time
		waitFor(b, "the failing revision rolled back", 2*time.Minute, func() bool {
			r := get().Status.Rollout
			if r == nil || r.Revision != 2 {
				return false
			}
			for _, c := range r.Clusters {
				if c.Revision == 2 {
					given[c.Cluster] = true
				}
			}
			if r.Phase == api.RolloutRolledBack {
				rolledBack = time.Now()
				b.Logf("rolled back: %s", r.Message)
				return true
			}
			return false
		})
		b.StopTimer()
		close(stop)
		wg.Wait()
		mu.Lock()
		first := firstFail
		mu.Unlock()
		n := 0
		for c := range given {
			if c != "r1" {
				n++
			}
		}
		if n > 0 || first.IsZero() {
			b.Errorf("want the canary's clients to see failures and no cluster beyond it given the failing revision; first failure %v, given %v", first, given)
		}
		afterFailure = append(afterFailure, rolledBack.Sub(first).Seconds())
		afterChange = append(afterChange, rolledBack.Sub(change).Seconds())
		beyond = append(beyond, float64(n))
		b.Logf("failing revision: first failed request %s after the change, RolledBack %s after it (%s after the change); clusters beyond the canary given it: %d",
			first.Sub(change).Round(time.Millisecond), rolledBack.Sub(first).Round(time.Millisecond), rolledBack.Sub(change).Round(time.Millisecond), n)
	}
	b.ReportMetric(mean(afterFailure), "rollback-after-first-failure-s")
	b.ReportMetric(mean(afterChange), "rollback-after-change-s")
	b.ReportMetric(mean(beyond), "clusters-beyond-canary")
}
