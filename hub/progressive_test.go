package hub_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/pgstore"
)

// TestProgressiveRolloutEndToEnd: over three real members, a workload
// with spec.rollout (a canary cluster, then a second, then the rest)
// takes a good template change wave by wave, each cluster on the new
// revision only once the wave before baked, and completes; a crashing
// template is rolled back from the canary alone, with the failing
// measurement as the reason, and the later clusters never receive it.
// An operator's commands need a rollout under way.
func TestProgressiveRolloutEndToEnd(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := context.Background()
	join := e.joinToken("j", api.TokenSpec{})
	for _, r := range []string{"r1", "r2", "r3"} {
		drillRegion(t, e, join, r)
	}
	maxRestarts := int32(0)
	w := api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 2,
		Template:  api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "100m", Memory: "64Mi"}, Sim: &api.SimSpec{StartLatency: "50ms"}},
		Placement: &api.PlacementPolicy{ReplicaMode: "Duplicated"},
		Rollout: &api.ProgressiveRollout{Waves: []api.RolloutWave{
			{Name: "canary", Clusters: []string{"r1"}, BakeTime: "2s"},
			{Name: "second", Clusters: []string{"r2"}, BakeTime: "2s"},
		}, Gates: &api.RolloutGates{MaxRestarts: &maxRestarts, ProgressDeadline: "30s"}}}}
	e.create(w)
	get := func() api.Workload {
		t.Helper()
		var got api.Workload
		if err := e.admin.Get(ctx, "workloads", "web", &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	waitFor(t, "web's first revision everywhere, 2 ready per cluster", 30*time.Second, func() bool {
		got := get()
		return got.Status.ReadyReplicas == 6 && got.Status.Rollout != nil && got.Status.Rollout.Phase == api.RolloutCompleted && got.Status.Rollout.Revision == 1
	})
	if r := e.do("POST", "/api/v1/workloads/web/rollout/pause", adminSecret, "", nil); r.status != 409 {
		t.Errorf("pause with no rollout under way: want 409; got %d %s", r.status, r.body)
	}

	// watch records, every 50 ms, which clusters are given which revision.
	watch := func(rev int64) (stop func() map[string]bool, order *[]string) {
		var mu sync.Mutex
		given := map[string]bool{}
		var seq []string
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
				}
				var got api.Workload
				if e.admin.Get(ctx, "workloads", "web", &got) != nil || got.Status.Rollout == nil {
					continue
				}
				mu.Lock()
				for _, c := range got.Status.Rollout.Clusters {
					if c.Revision == rev && got.Status.Rollout.Revision == rev && !given[c.Cluster] {
						given[c.Cluster] = true
						seq = append(seq, c.Cluster)
					}
				}
				mu.Unlock()
			}
		})
		return func() map[string]bool {
			close(done)
			wg.Wait()
			return given
		}, &seq
	}

	// A good change: wave by wave.
	stop, seq := watch(2)
	if err := e.admin.Patch(ctx, "workloads", "web", []byte(`{"spec":{"template":{"sim":{"startLatency":"60ms"}}}}`), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revision 2 rolled out to every cluster", 60*time.Second, func() bool {
		got := get()
		r := got.Status.Rollout
		return r != nil && r.Revision == 2 && r.Phase == api.RolloutCompleted && got.Status.ReadyReplicas == 6
	})
	stop()
	if !slices.Equal(*seq, []string{"r1", "r2", "r3"}) {
		t.Errorf("good revision: want it given to r1, then r2, then r3; got %v", *seq)
	}
	var evs api.EventList
	if err := e.admin.List(ctx, "events", client.ListOptions{LabelSelector: api.LabelEventKind + "=Workload," + api.LabelEventName + "=web"}, &evs); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, ev := range evs.Items {
		if strings.HasPrefix(ev.Reason, "Rollout") || ev.Reason == "WaveStarted" {
			reasons = append(reasons, ev.Reason)
		}
	}
	slices.Sort(reasons)
	if want := []string{"RolloutCompleted", "RolloutStarted", "WaveStarted", "WaveStarted"}; !slices.Equal(reasons, want) {
		t.Errorf("good revision: want events %v; got %v", want, reasons)
	}

	// A crashing change: rolled back from the canary, never beyond it.
	given, _ := watch(3)
	if err := e.admin.Patch(ctx, "workloads", "web", []byte(`{"spec":{"template":{"sim":{"failureRate":1}}}}`), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revision 3 rolled back", 60*time.Second, func() bool {
		r := get().Status.Rollout
		return r != nil && r.Revision == 3 && r.Phase == api.RolloutRolledBack
	})
	got := get()
	if !strings.Contains(got.Status.Rollout.Message, "restarts of revision 3's replicas") {
		t.Errorf("rollback: want the failing measurement as the reason; got %q", got.Status.Rollout.Message)
	}
	waitFor(t, "every cluster back on revision 2, 6 ready", 60*time.Second, func() bool {
		return get().Status.ReadyReplicas == 6
	})
	if g := given(); len(g) != 1 || !g["r1"] {
		t.Errorf("crashing revision: want only the canary ever given it; got %v", g)
	}
	if r := e.do("POST", "/api/v1/workloads/web/rollout/abort", adminSecret, "", nil); r.status != 409 {
		t.Errorf("abort after the rollback: want 409; got %d %s", r.status, r.body)
	}

	// A good change, paused by an operator: it holds, a drill on its
	// clusters is refused while it runs, and resumed it completes.
	if err := e.admin.Patch(ctx, "workloads", "web", []byte(`{"spec":{"template":{"sim":{"failureRate":0,"startLatency":"70ms"}}}}`), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revision 4 rolling out", 30*time.Second, func() bool {
		r := get().Status.Rollout
		return r != nil && r.Revision == 4
	})
	viewer := e.token("vic", api.RoleViewer)
	if r := e.do("POST", "/api/v1/workloads/web/rollout/pause", viewer, "", nil); r.status != 403 {
		t.Errorf("a viewer's pause: want 403; got %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/workloads/web/rollout/promote?wave=nope", adminSecret, "", nil); r.status != 422 || !hasLocation(r.problem, "query.wave") {
		t.Errorf("promote of a wave that does not exist: want 422 at query.wave; got %d %s", r.status, r.body)
	}
	if rows, err := e.store.AuditQuery(ctx, pgstore.AuditFilter{Kind: "Workload", Name: "web", Verb: "rollout-promote", Result: "refused"}); err != nil || len(rows) != 1 {
		t.Errorf("the refused promote: want one audit row; got %d (%v)", len(rows), err)
	}
	if r := e.do("POST", "/api/v1/workloads/web/rollout/pause", adminSecret, "", nil); r.status != 200 {
		t.Fatalf("pause: want 200; got %d %s", r.status, r.body)
	}
	waitFor(t, "the rollout paused", 30*time.Second, func() bool {
		r := get().Status.Rollout
		return r != nil && r.Revision == 4 && r.Phase == api.RolloutPaused
	})
	body, _ := json.Marshal(drill("during", api.DrillEvacuate, api.DrillTarget{Cluster: "r1"}, "10s"))
	if r := e.do("POST", "/api/v1/drills", adminSecret, "application/json", body); r.status != 422 || !strings.Contains(string(r.body), "progressive rollout") {
		t.Errorf("a drill on a cluster of a rollout under way: want 422 naming the rollout; got %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/workloads/web/rollout/resume", adminSecret, "", nil); r.status != 200 {
		t.Fatalf("resume: want 200; got %d %s", r.status, r.body)
	}
	waitFor(t, "revision 4 rolled out once resumed", 60*time.Second, func() bool {
		got := get()
		r := got.Status.Rollout
		return r != nil && r.Revision == 4 && r.Phase == api.RolloutCompleted && got.Status.ReadyReplicas == 6
	})
}
