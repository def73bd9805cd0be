package hub_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/pgstore"
)

// TestRebalanceEndToEnd: over two real members, workloads placed while
// r1 was cordoned stay on r2 when it is uncordoned. A dry run plans the
// move and changes nothing; a request moves half of them to r1 (the
// request answered in the status, a Rebalanced event, an audit row);
// asked again, nothing moves. A workload whose policy is auto moves by
// itself. A viewer may not ask; an unknown workload is a 404; an
// exclusive workload's plan says why it stays.
func TestRebalanceEndToEnd(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := context.Background()
	join := e.joinToken("j", api.TokenSpec{})
	drillRegion(t, e, join, "r1")
	drillRegion(t, e, join, "r2")
	cordon := func(on bool) {
		t.Helper()
		body := `{"spec":{"unschedulable":true}}`
		if !on {
			body = `{"spec":{"unschedulable":null}}`
		}
		if err := e.admin.Patch(ctx, "clusters", "r1", []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	get := func(name string) api.Workload {
		t.Helper()
		var w api.Workload
		if err := e.admin.Get(ctx, "workloads", name, &w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	placed := func(name string, want map[string]int32) func() bool {
		return func() bool {
			w := get(name)
			p := w.Status.Placement
			return p != nil && len(p.Clusters) == len(want) && p.Clusters["r1"] == want["r1"] && p.Clusters["r2"] == want["r2"] && w.Status.ReadyReplicas == 4
		}
	}
	workload := func(name string, fp *api.FailoverPolicy) {
		e.create(api.Workload{Metadata: api.ObjectMeta{Name: name}, Spec: api.WorkloadSpec{Replicas: 4,
			Template: api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "100m", Memory: "64Mi"}, Sim: &api.SimSpec{StartLatency: "50ms"}},
			Failover: fp}})
	}

	cordon(true)
	workload("web", nil)
	workload("steady", &api.FailoverPolicy{Rebalance: api.RebalanceAuto, StabilizationWindow: "0s"})
	workload("solo", &api.FailoverPolicy{Mode: "exclusive"})
	waitFor(t, "web and steady Ready, all 4 on r2", 30*time.Second, func() bool {
		return placed("web", map[string]int32{"r2": 4})() && placed("steady", map[string]int32{"r2": 4})()
	})
	cordon(false)
	waitFor(t, "steady (rebalance: auto) moved to 2 and 2 by itself", 30*time.Second, placed("steady", map[string]int32{"r1": 2, "r2": 2}))
	// web (manual) was decided again when r1 changed, and stays.
	if w := get("web"); w.Status.Placement.Clusters["r1"] != 0 {
		t.Fatalf("web moved to r1 without being asked: %+v", w.Status.Placement)
	}

	var plan api.RebalancePlan
	if err := e.admin.Raw(ctx, "POST", "/api/v1/workloads/web/rebalance", map[string][]string{"dryRun": {"All"}}, nil, &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Requested || plan.Blocked != "" || plan.Moved() != 2 || plan.Target["r1"] != 2 || plan.Target["r2"] != 2 || plan.Current["r2"] != 4 {
		t.Fatalf("dry run: want 2 of web's replicas planned from r2 to r1, nothing requested; got %+v", plan)
	}
	if w := get("web"); w.Metadata.Annotations[api.AnnotationRebalanceRequestedAt] != "" {
		t.Fatalf("a dry run asked for a rebalance: %v", w.Metadata.Annotations)
	}

	viewer := e.token("vera", api.RoleViewer)
	if r := e.do("POST", "/api/v1/workloads/web/rebalance", viewer, "", nil); r.status != 403 {
		t.Errorf("a viewer's rebalance: want 403; got %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/workloads/nope/rebalance", adminSecret, "", nil); r.status != 404 {
		t.Errorf("rebalance of a workload that does not exist: want 404; got %d %s", r.status, r.body)
	}
	var solo api.RebalancePlan
	if err := e.admin.Raw(ctx, "POST", "/api/v1/workloads/solo/rebalance", map[string][]string{"dryRun": {"All"}}, nil, &solo); err != nil {
		t.Fatal(err)
	}
	if solo.Moved() != 0 || !strings.Contains(solo.Blocked, "exclusive") {
		t.Errorf("an exclusive workload's plan: want nothing moved and the reason; got %+v", solo)
	}
	if r := e.do("POST", "/api/v1/workloads/solo/rebalance", adminSecret, "", nil); r.status != 422 || !hasLocation(r.problem, "path.name") {
		t.Errorf("asking to rebalance an exclusive workload: want 422 at path.name; got %d %s", r.status, r.body)
	}

	if err := e.admin.Raw(ctx, "POST", "/api/v1/workloads/web/rebalance", nil, nil, &plan); err != nil {
		t.Fatal(err)
	}
	if !plan.Requested || plan.RequestedAt == "" || plan.Moved() != 2 {
		t.Fatalf("request: want it requested with 2 moves planned; got %+v", plan)
	}
	waitFor(t, "web rebalanced to 2 and 2, all Ready, the request answered", 30*time.Second, func() bool {
		return placed("web", map[string]int32{"r1": 2, "r2": 2})() && get("web").Status.Placement.Rebalanced == plan.RequestedAt
	})
	var evs api.EventList
	if err := e.admin.List(ctx, "events", client.ListOptions{LabelSelector: api.LabelEventKind + "=Workload," + api.LabelEventName + "=web"}, &evs); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs.Items {
		found = found || (ev.Reason == "Rebalanced" && strings.Contains(ev.Message, "2 r2→r1"))
	}
	if !found {
		t.Errorf("want a Rebalanced event naming 2 r2→r1; got %s", mustJSONOf(evs.Items))
	}
	audit, err := e.store.AuditQuery(ctx, pgstore.AuditFilter{Kind: "Workload", Name: "web", Verb: "rebalance", Result: "ok"})
	if err != nil || len(audit) != 1 || audit[0].Actor == "" {
		t.Errorf("want one audit row of the rebalance request, naming who; got %+v %v", audit, err)
	}

	// Balanced already: asked again, nothing moves and the request is
	// answered.
	plan = api.RebalancePlan{}
	if err := e.admin.Raw(ctx, "POST", "/api/v1/workloads/web/rebalance", nil, nil, &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Moved() != 0 {
		t.Errorf("second request: want nothing to move; got %+v", plan)
	}
	waitFor(t, "the second request answered", 20*time.Second, func() bool { return get("web").Status.Placement.Rebalanced == plan.RequestedAt })
	if p := get("web").Status.Placement; p.Clusters["r1"] != 2 || p.Clusters["r2"] != 2 {
		t.Errorf("second request moved replicas: %+v", p)
	}
	b, _ := json.Marshal(get("web").Status.Placement.Explanation)
	if !strings.Contains(string(b), "rebalance: nothing to move") {
		t.Errorf("want the explanation to say nothing moved; got %s", b)
	}
}
