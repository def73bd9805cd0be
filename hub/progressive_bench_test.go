package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
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
		benchWait(b, "999 replicas ready, revision 1 everywhere", 3*time.Minute, func() bool {
			got := get()
			return got.Status.ReadyReplicas == 999 && got.Status.Rollout != nil && got.Status.Rollout.Phase == api.RolloutCompleted
		})

		b.StartTimer()
		start := time.Now()
		if err := e.admin.Patch(ctx, "workloads", "wave", []byte(`{"spec":{"template":{"sim":{"startLatency":"60ms"}}}}`), nil); err != nil {
			b.Fatal(err)
		}
		benchWait(b, "revision 2 completed", 3*time.Minute, func() bool {
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
		benchWait(b, "revision 3 rolled back", 3*time.Minute, func() bool {
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
