package web_test

import (
	"context"
	"encoding/json"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// TestWorkloadRolloutAndRevisions: a workload with spec.rollout shows its
// progressive rollout (phase, wave, each cluster's revision and gate) on
// its page, and every workload shows its revisions newest first with what
// changed from the one before.
func TestWorkloadRolloutAndRevisions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.cluster("eu-west-1", "eu-west")
	w := api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 2,
		Template: api.ReplicaTemplate{Driver: "sim", Sim: &api.SimSpec{StartLatency: "50ms"}},
		Rollout:  &api.ProgressiveRollout{Waves: []api.RolloutWave{{Name: "canary", Clusters: []string{"eu-west-1"}}}}}}
	if err := e.admin.Create(ctx, "workloads", w, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Patch(ctx, "workloads", "web", []byte(`{"spec":{"template":{"sim":{"startLatency":"70ms"}}}}`), nil); err != nil {
		t.Fatal(err)
	}
	// The rollout's status as the placer would write it.
	since := time.Now().Add(-5 * time.Second)
	_, err := e.store.Mutate(ctx, pgstore.Actor{Name: "test"}, "place", "Workload", "web", func(cur *pgstore.Record) error {
		var st api.WorkloadStatus
		_ = json.Unmarshal(cur.Status, &st)
		st.Rollout = &api.RolloutStatus{Revision: 2, StableRevision: 1, Phase: api.RolloutBaking, WaveName: "canary", Since: &since,
			Message: "wave canary bakes", Clusters: []api.RolloutCluster{{Cluster: "eu-west-1", Wave: "canary", Revision: 2, Gate: "2/2 ready, 0 restarts"}}}
		b, err := json.Marshal(st)
		cur.Status = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	operator := e.browser()
	operator.signIn(e.token("olga", api.RoleOperator))
	a := operator.waitPage("/workloads/web", "the rollout card", func(a answer) bool { return strings.Contains(a.body, "wave canary bakes") })
	for _, want := range []string{`data-rollout-cluster="eu-west-1" data-revision="2"`, "2/2 ready, 0 restarts", "Revision <strong>2</strong> from 1",
		`data-revision="2"><strong>Revision 2</strong> <span class="chip">current</span>`, "-  startLatency: 50ms", "+  startLatency: 70ms"} {
		if !strings.Contains(html.UnescapeString(a.body), want) {
			t.Errorf("workload page: want %q; got:\n%.3000s", want, a.body[max(strings.Index(a.body, "Progressive rollout"), 0):])
		}
	}
}

// TestWorkloadWarmStandby: an oci workload's page shows, per cluster it
// may fail over to, whether the cluster's nodes hold its image (warm or
// cold, with the registry's answer when a pull failed).
func TestWorkloadWarmStandby(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	w := api.Workload{Metadata: api.ObjectMeta{Name: "box"}, Spec: api.WorkloadSpec{Replicas: 1,
		Template: api.ReplicaTemplate{Driver: "oci", Image: "r.example/app:1"}}}
	if err := e.admin.Create(ctx, "workloads", w, nil); err != nil {
		t.Fatal(err)
	}
	_, err := e.store.Mutate(ctx, pgstore.Actor{Name: "test"}, "status", "Workload", "box", func(cur *pgstore.Record) error {
		var st api.WorkloadStatus
		_ = json.Unmarshal(cur.Status, &st)
		st.Images = []api.ClusterImage{{Cluster: "eu", Image: "r.example/app:1@sha256:ab", Wanted: 2, Present: 2},
			{Cluster: "us", Image: "r.example/app:1@sha256:ab", Wanted: 2, Failed: 2, Message: "n1: MANIFEST_UNKNOWN"}}
		b, err := json.Marshal(st)
		cur.Status = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	viewer := e.browser()
	viewer.signIn(e.token("vera", api.RoleViewer))
	a := viewer.waitPage("/workloads/box", "the warm standby card", func(a answer) bool { return strings.Contains(a.body, `data-standby-cluster="us"`) })
	body := html.UnescapeString(a.body)
	for _, want := range []string{"Warm standby", `data-standby-cluster="eu"`, "2/2", "<span>Warm</span>", "<span>Cold</span>", "2 failed: n1: MANIFEST_UNKNOWN"} {
		if !strings.Contains(body, want) {
			t.Errorf("workload page: want %q; got:\n%.2500s", want, body[strings.Index(body, "Warm standby"):])
		}
	}
}
