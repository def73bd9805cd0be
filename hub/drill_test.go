package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// readyCluster stores a Ready cluster in a region (for hubs without
// members: placement and plans read the stored health).
func (e *env) readyCluster(name, region string) {
	e.t.Helper()
	status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthReady, Identity: "U" + name})
	_, err := e.store.Create(context.Background(), pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster",
		Meta: api.ObjectMeta{Name: name, Labels: map[string]string{api.LabelRegion: region}}, Spec: []byte("{}"), Status: status})
	if err != nil {
		e.t.Fatal(err)
	}
}

// place stores placement rows as the placement controller would (hubs
// without members have none).
func (e *env) place(workload string, split map[string]int32) {
	e.t.Helper()
	err := e.store.InTx(context.Background(), pgstore.Actor{Name: "test"}, func(tx *pgstore.Tx) error {
		epoch, err := tx.NextPlacementEpoch(context.Background())
		if err != nil {
			return err
		}
		for c, n := range split {
			if err := tx.PutPlacements(context.Background(), []pgstore.Placement{{Workload: workload, Cluster: c, Replicas: n, Epoch: epoch, Generation: 1}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func drill(name, kind string, target api.DrillTarget, duration string) api.Drill {
	return api.Drill{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Drill"}, Metadata: api.ObjectMeta{Name: name},
		Spec: api.DrillSpec{Kind: kind, Target: target, Duration: api.Duration(duration)}}
}

func (e *env) getDrill(name string) api.Drill {
	e.t.Helper()
	var d api.Drill
	if err := e.admin.Get(context.Background(), "drills", name, &d); err != nil {
		e.t.Fatalf("get drill %s: %v", name, err)
	}
	return d
}

// waitDrill polls a drill until ok, failing with its last state.
func (e *env) waitDrill(name, what string, limit time.Duration, ok func(api.Drill) bool) api.Drill {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		d := e.getDrill(name)
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(d.Status, "", "  ")
			e.t.Fatalf("drill %s: want %s within %s; its status is %s", name, what, limit, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) taints(cluster string) []api.Taint {
	e.t.Helper()
	var c api.Cluster
	if err := e.admin.Get(context.Background(), "clusters", cluster, &c); err != nil {
		e.t.Fatal(err)
	}
	return c.Spec.Taints
}

func hasDrillTaint(ts []api.Taint, drill string) bool {
	return slices.ContainsFunc(ts, func(t api.Taint) bool {
		return t.Key == api.DrillTaintKey && t.Value == drill && t.Effect == "NoExecute"
	})
}

// drillFleet is three Ready clusters (a and b in r1, c in r2), a workload
// "web" split a:2 c:2 and a workload "pinned" that may run only on a.
func drillFleet(e *env) {
	e.t.Helper()
	e.readyCluster("a", "r1")
	e.readyCluster("b", "r1")
	e.readyCluster("c", "r2")
	e.create(workload("web", 4, nil))
	pinned := workload("pinned", 2, nil)
	pinned.Spec.Placement = &api.PlacementPolicy{Clusters: []string{"a"}}
	e.create(pinned)
	e.place("web", map[string]int32{"a": 2, "c": 2})
	e.place("pinned", map[string]int32{"a": 2})
}

// TestDrillRefusals: bad drills get problem+json with field paths; a plan
// changes nothing; a drill whose target does not exist or whose plan
// shows the rest cannot absorb the load is refused with the plan; two
// drills on overlapping targets cannot both run, even when created at
// once; viewers cannot create, plan or abort.
func TestDrillRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // the clock stands still: drills started here never reach their end
	ctx := context.Background()
	drillFleet(e)

	// Validation, on create and on plan.
	cases := []struct {
		name, path, body string
		status           int
		location         string
	}{
		{"unknown kind", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"flood","target":{"cluster":"a"}}}`, 422, "body.spec.kind"},
		{"no target", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{}}}`, 422, "body.spec.target"},
		{"two targets", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"a","region":"r1"}}}`, 422, "body.spec.target"},
		{"duration too long", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"a"},"duration":"2h"}}`, 422, "body.spec.duration"},
		{"duration not a duration", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"a"},"duration":"soon"}}`, 422, "body.spec.duration"},
		{"negative max unavailable", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"a"},"slo":{"maxUnavailableReplicas":-1}}}`, 422, "body.spec.slo.maxUnavailableReplicas"},
		{"negative max RTO", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"a"},"slo":{"maxRTO":"-1s"}}}`, 422, "body.spec.slo.maxRTO"},
		{"unknown field", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"a"},"speed":"fast"}}`, 422, "body.spec.speed"},
		{"outage without NATS", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"outage","target":{"cluster":"a"}}}`, 422, "body.spec.kind"},
		{"missing cluster", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"zz"}}}`, 422, "body.spec.target.cluster"},
		{"empty region", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"region":"nowhere"}}}`, 422, "body.spec.target.region"},
		{"cannot absorb", "/api/v1/drills", `{"metadata":{"name":"x"},"spec":{"kind":"evacuate","target":{"cluster":"a"}}}`, 422, "body.spec.force"},
		{"plan: unknown kind", "/api/v1/drills/plan", `{"kind":"flood","target":{"cluster":"a"}}`, 422, "body.kind"},
		{"plan: bad region", "/api/v1/drills/plan", `{"kind":"evacuate","target":{"region":"R 1"}}`, 422, "body.target.region"},
		{"plan: missing cluster", "/api/v1/drills/plan", `{"kind":"evacuate","target":{"cluster":"zz"}}`, 422, "body.target.cluster"},
		{"plan: malformed", "/api/v1/drills/plan", `{"kind":`, 400, "body"},
	}
	for _, c := range cases {
		r := e.do("POST", c.path, adminSecret, "application/json", []byte(c.body))
		if r.status != c.status || !hasLocation(r.problem, c.location) {
			t.Errorf("%s: want %d with an error at %s; got %d %s", c.name, c.status, c.location, r.status, r.body)
		}
		if strings.Contains(c.name, "missing") || strings.Contains(c.name, "empty region") || c.name == "cannot absorb" {
			var withPlan struct {
				Plan *api.DrillPlan `json:"plan"`
			}
			if json.Unmarshal(r.body, &withPlan) != nil || withPlan.Plan == nil || withPlan.Plan.Absorbed {
				t.Errorf("%s: want the (unabsorbed) plan in the problem; got %s", c.name, r.body)
			}
		}
	}

	before := e.taints("a")
	var plan api.DrillPlan
	spec := api.DrillSpec{Kind: api.DrillEvacuate, Target: api.DrillTarget{Cluster: "a"}}
	body, _ := json.Marshal(spec)
	if err := e.admin.Raw(ctx, "POST", "/api/v1/drills/plan", nil, body, &plan); err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Absorbed || plan.AffectedWorkloads != 2 || plan.AffectedReplicas != 4 || plan.UnplacedReplicas != 2 || !strings.Contains(plan.Reason, "pinned") {
		t.Errorf("plan of evacuating a: want not absorbed, 2 workloads and 4 replicas affected, pinned's 2 unplaced; got %+v", plan)
	}
	for _, w := range plan.Workloads {
		if w.Workload == "web" && (w.After["a"] != 0 || w.After["b"]+w.After["c"] != 4) {
			t.Errorf("plan: want web's replicas off a and 4 on b and c; got %v", w.After)
		}
	}
	// The plan changed nothing: no drill, no taint, no placement.
	var drills api.DrillList
	if err := e.admin.List(ctx, "drills", client.ListOptions{}, &drills); err != nil || len(drills.Items) != 0 {
		t.Errorf("after plans and refusals: want no drill; got %+v, %v", drills.Items, err)
	}
	if after := e.taints("a"); len(after) != len(before) {
		t.Errorf("a plan changed cluster a's taints: %v -> %v", before, after)
	}
	rows, _ := e.store.Placements(ctx)
	if len(rows) != 3 {
		t.Errorf("a plan changed placements: %+v", rows)
	}

	// Roles: a viewer reads drills but cannot create, plan or abort.
	viewer := e.token("drill-viewer", api.RoleViewer)
	if r := e.do("GET", "/api/v1/drills", viewer, "", nil); r.status != 200 {
		t.Errorf("viewer list: want 200, got %d %s", r.status, r.body)
	}
	createBody, _ := json.Marshal(drill("by-viewer", api.DrillEvacuate, api.DrillTarget{Cluster: "c"}, "1h"))
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/drills", string(createBody)},
		{"POST", "/api/v1/drills/plan", string(body)},
		{"POST", "/api/v1/drills/by-viewer/abort", ""},
		{"DELETE", "/api/v1/drills/by-viewer", ""},
	} {
		ct := ""
		if c.body != "" {
			ct = "application/json"
		}
		if r := e.do(c.method, c.path, viewer, ct, []byte(c.body)); r.status != 403 || r.problem.Code != api.CodeForbidden {
			t.Errorf("viewer %s %s: want 403 Forbidden, got %d %s", c.method, c.path, r.status, r.body)
		}
	}

	// Overlap: while "first" runs on c, a drill on region r2 (c) is
	// refused; one on a (forced) is not.
	if err := e.admin.Create(ctx, "drills", drill("first", api.DrillEvacuate, api.DrillTarget{Cluster: "c"}, "1h"), nil); err != nil {
		t.Fatalf("create first: %v", err)
	}
	r := e.json("POST", "/api/v1/drills", drill("second", api.DrillEvacuate, api.DrillTarget{Region: "r2"}, "1h"))
	if r.status != 409 || r.problem.Code != api.CodeConflict || !strings.Contains(r.problem.Detail, "first") || !hasLocation(r.problem, "body.spec.target") {
		t.Errorf("overlapping drill: want 409 naming the running drill; got %d %s", r.status, r.body)
	}
	forced := drill("forced", api.DrillEvacuate, api.DrillTarget{Cluster: "a"}, "1h")
	forced.Spec.Force = true
	if err := e.admin.Create(ctx, "drills", forced, nil); err != nil {
		t.Errorf("forced drill on a: want created, got %v", err)
	}
	first := e.waitDrill("first", "Running with its taint", 10*time.Second, func(d api.Drill) bool { return d.Status.Phase == api.DrillRunning })
	if !hasDrillTaint(e.taints("c"), "first") || first.Status.StartedAt == nil {
		t.Errorf("running evacuate drill: want c tainted and startedAt set; taints %v, status %+v", e.taints("c"), first.Status)
	}
	// A running drill cannot be deleted, only aborted.
	if r := e.do("DELETE", "/api/v1/drills/first", adminSecret, "", nil); r.status != 409 {
		t.Errorf("delete of a running drill: want 409, got %d %s", r.status, r.body)
	}
	for _, name := range []string{"first", "forced"} {
		if r := e.do("POST", "/api/v1/drills/"+name+"/abort", adminSecret, "", nil); r.status != 200 {
			t.Fatalf("abort %s: want 200, got %d %s", name, r.status, r.body)
		}
	}
	e.waitDrill("first", "Aborted", 10*time.Second, func(d api.Drill) bool { return d.Status.Phase == api.DrillAborted })
	e.waitDrill("forced", "Aborted", 10*time.Second, func(d api.Drill) bool { return d.Status.Phase == api.DrillAborted })
	if r := e.do("POST", "/api/v1/drills/first/abort", adminSecret, "", nil); r.status != 409 {
		t.Errorf("abort of an ended drill: want 409, got %d %s", r.status, r.body)
	}

	// Created at once on the same cluster: exactly one wins.
	var wg sync.WaitGroup
	statuses := make([]int, 6)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.json("POST", "/api/v1/drills", drill(fmt.Sprintf("race-%d", i), api.DrillEvacuate, api.DrillTarget{Cluster: "c"}, "1h")).status
		}()
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case 201:
			created++
		case 409:
		default:
			t.Errorf("concurrent drills: want 201 or 409, got %d", s)
		}
	}
	if created != 1 {
		t.Errorf("concurrent drills on one cluster: want exactly one created, got %d (%v)", created, statuses)
	}

	// Refusals are audited.
	entries, err := e.store.AuditLog(ctx, "Drill", "second", 0, 10)
	if err != nil || len(entries) == 0 || entries[0].Result != api.CodeConflict {
		t.Errorf("audit of the refused overlapping drill: want a Conflict entry, got %+v, %v", entries, err)
	}
}

// TestDrillAbortRestoresAtOnce: an evacuate drill taints its target; abort
// lifts the taint at once and ends the drill Aborted with a report; an
// ended drill can be deleted.
func TestDrillAbortRestoresAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, pgtest.NewDatabase(t), nil, members.HealthConfig{}, true)
	ctx := context.Background()
	drillFleet(e)
	if err := e.admin.Create(ctx, "drills", drill("long", api.DrillEvacuate, api.DrillTarget{Cluster: "c"}, "1h"), nil); err != nil {
		t.Fatal(err)
	}
	e.waitDrill("long", "Running", 10*time.Second, func(d api.Drill) bool { return d.Status.Phase == api.DrillRunning })
	if !hasDrillTaint(e.taints("c"), "long") {
		t.Fatalf("want c tainted by the running drill; taints %v", e.taints("c"))
	}
	operator := e.token("drill-operator", api.RoleOperator)
	if r := e.do("POST", "/api/v1/drills/long/abort", operator, "", nil); r.status != 200 {
		t.Fatalf("abort by an operator: want 200, got %d %s", r.status, r.body)
	}
	d := e.waitDrill("long", "Aborted", 5*time.Second, func(d api.Drill) bool { return d.Status.Phase == api.DrillAborted })
	if hasDrillTaint(e.taints("c"), "long") {
		t.Errorf("after abort: want c's drill taint gone; taints %v", e.taints("c"))
	}
	if d.Status.Report == nil || d.Status.Report.Passed || d.Status.Report.Failback != "notMeasured" || d.Status.EndedAt == nil ||
		d.Status.AbortRequestedBy != "token:drill-operator" {
		t.Errorf("aborted drill: want a report (not passed, failback notMeasured), endedAt, abortRequestedBy; got %+v report %+v", d.Status, d.Status.Report)
	}
	types := map[string]bool{}
	for _, ev := range d.Status.Timeline {
		types[ev.Type] = true
	}
	for _, want := range []string{api.DrillEventCreated, api.DrillEventStarted, api.DrillEventAbortRequested, api.DrillEventRestored, api.DrillEventFinished} {
		if !types[want] {
			t.Errorf("aborted drill's timeline lacks %s: %+v", want, d.Status.Timeline)
		}
	}
	// The taint went on and off as system:drill, audited.
	entries, _ := e.store.AuditLog(ctx, "Cluster", "c", 0, 20)
	taintWrites := 0
	for _, en := range entries {
		if en.Actor == "system:drill" && en.Verb == "taint" {
			taintWrites++
		}
	}
	if taintWrites != 2 {
		t.Errorf("want 2 audited taint writes by system:drill on c; got %d in %+v", taintWrites, entries)
	}
	if r := e.do("GET", "/metrics", "", "", nil); !strings.Contains(string(r.body), `atoll_drills_total{outcome="Aborted"} 1`) {
		t.Errorf("/metrics: want atoll_drills_total{outcome=\"Aborted\"} 1")
	}
	if r := e.do("DELETE", "/api/v1/drills/long", operator, "", nil); r.status != 200 {
		t.Errorf("delete of an ended drill: want 200, got %d %s", r.status, r.body)
	}
}

// TestDrillInterruptedByRestart: a hub that stops while its drill runs
// leaves it Running; the next hub restores the targets and ends the drill
// as interrupted, saying so in the report.
func TestDrillInterruptedByRestart(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	e1 := newEnvWith(t, dbURL, nil, members.HealthConfig{}, true)
	drillFleet(e1)
	if err := e1.admin.Create(context.Background(), "drills", drill("cut", api.DrillEvacuate, api.DrillTarget{Region: "r2"}, "1h"), nil); err != nil {
		t.Fatal(err)
	}
	e1.waitDrill("cut", "Running", 10*time.Second, func(d api.Drill) bool { return d.Status.Phase == api.DrillRunning })
	if !hasDrillTaint(e1.taints("c"), "cut") {
		t.Fatalf("want c tainted; taints %v", e1.taints("c"))
	}
	e1.server.Stop()

	e2 := newEnvWith(t, dbURL, nil, members.HealthConfig{}, true)
	d := e2.waitDrill("cut", "ended by the new hub", 10*time.Second, func(d api.Drill) bool { return d.Status.Final() })
	if d.Status.Phase != api.DrillError || d.Status.Verdict != "" || d.Status.Report == nil || !d.Status.Report.Interrupted || d.Status.Report.Passed || len(d.Status.Report.Notes) == 0 {
		t.Errorf("interrupted drill: want Error with no verdict, an interrupted, not passed report and a note; got phase %s/%s report %+v", d.Status.Phase, d.Status.Verdict, d.Status.Report)
	}
	if d.Status.Report != nil && (d.Status.Report.DetectionSeconds == nil || *d.Status.Report.DetectionSeconds != 0) {
		t.Errorf("interrupted drill: want the detection kept from the stored timeline; got %v", d.Status.Report.DetectionSeconds)
	}
	if hasDrillTaint(e2.taints("c"), "cut") {
		t.Errorf("after the restart: want c's drill taint gone; taints %v", e2.taints("c"))
	}
}

// TestDrillTellsTheTruth: the plan the API serves warns of workloads
// already unavailable and of objectives that cannot be met; a drill that
// affects nothing completes and passes with its RTO not applicable (no
// Recovered before Detected), and ends without waiting out the failback
// timeout.
func TestDrillTellsTheTruth(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, pgtest.NewDatabase(t), nil, members.HealthConfig{}, true)
	ctx := context.Background()
	drillFleet(e) // no members: nothing reports web or pinned ready

	zero := int32(0)
	var plan api.DrillPlan
	body, _ := json.Marshal(api.DrillSpec{Kind: api.DrillEvacuate, Target: api.DrillTarget{Cluster: "a"},
		SLO: &api.DrillSLO{MaxRTO: "30s", MaxUnavailableReplicas: &zero}})
	if err := e.admin.Raw(ctx, "POST", "/api/v1/drills/plan", nil, body, &plan); err != nil {
		t.Fatalf("plan: %v", err)
	}
	has := func(typ, workload, field string) bool {
		return slices.ContainsFunc(plan.Warnings, func(w api.DrillWarning) bool {
			return w.Type == typ && w.Workload == workload && w.Field == field && w.Message != ""
		})
	}
	if !has(api.WarnAlreadyUnavailable, "web", "") || !has(api.WarnAlreadyUnavailable, "pinned", "") ||
		!has(api.WarnSLOUnreachable, "", "slo.maxUnavailableReplicas") || !has(api.WarnSLOUnreachable, "", "slo.maxRTO") {
		t.Errorf("plan of evacuating a: want web and pinned named unavailable, maxUnavailableReplicas and maxRTO unreachable; got %+v", plan.Warnings)
	}

	// b holds nothing: the drill affects no replica.
	d := drill("empty", api.DrillEvacuate, api.DrillTarget{Cluster: "b"}, "1s")
	d.Spec.SLO = &api.DrillSLO{MaxRTO: "10s"}
	d.Spec.FailbackTimeout = "1h"
	if err := e.admin.Create(ctx, "drills", d, nil); err != nil {
		t.Fatal(err)
	}
	final := e.waitDrill("empty", "ended", 30*time.Second, func(d api.Drill) bool { return d.Status.Final() })
	rep := final.Status.Report
	if final.Status.Phase != api.DrillCompleted || final.Status.Verdict != api.DrillVerdictPassed || rep == nil || !rep.Passed {
		t.Fatalf("drill affecting nothing: want Completed and Passed; got %s/%s %+v", final.Status.Phase, final.Status.Verdict, rep)
	}
	if !rep.RTONotApplicable || rep.RTOSeconds != nil || rep.FirstReplacementSeconds != nil || rep.Failback != "notApplicable" ||
		rep.AffectedWorkloads != 0 || len(rep.Workloads) != 0 || !strings.Contains(rep.RTOText(), "not applicable") {
		t.Errorf("drill affecting nothing: want no RTO (not applicable), no first replacement, failback notApplicable; got %+v", rep)
	}
	for _, s := range rep.SLOs {
		if s.Name == "maxRTO" && (!s.Passed || !strings.Contains(s.Actual, "not applicable")) {
			t.Errorf("maxRTO of a drill affecting nothing: want met as not applicable; got %+v", s)
		}
	}
	for _, ev := range final.Status.Timeline {
		if ev.Type == api.DrillEventRecovered || ev.Type == api.DrillEventFirstReplacement || ev.Type == api.DrillEventFailbackTimeout {
			t.Errorf("drill affecting nothing: want no %s in the timeline; got %+v", ev.Type, final.Status.Timeline)
		}
	}
	if final.Status.FinishedAt == nil || final.Status.EndedAt == nil || final.Status.FinishedAt.Sub(*final.Status.EndedAt) > 20*time.Second {
		t.Errorf("drill affecting nothing: want it ended soon after the fault was lifted, not after the failback timeout; ended %v, finished %v",
			final.Status.EndedAt, final.Status.FinishedAt)
	}
	if r := e.do("GET", "/metrics", "", "", nil); !strings.Contains(string(r.body), `atoll_drills_total{outcome="Passed"} 1`) {
		t.Errorf("/metrics: want atoll_drills_total{outcome=\"Passed\"} 1")
	}
}

// TestDrillRefusedByBudget: an evacuation whose plan leaves a workload
// fewer placed replicas than its disruption budget allows is refused
// (the plan says so per workload) unless forced, and the forced drill's
// timeline says what it broke; a hostile budget is a 422 with its field.
func TestDrillRefusedByBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.readyCluster("a", "r1")
	e.readyCluster("c", "r2")
	// One replica in each cluster; all of them must stay placed.
	dup := workload("dup", 1, nil)
	dup.Spec.Placement = &api.PlacementPolicy{ReplicaMode: "Duplicated"}
	dup.Spec.DisruptionBudget = &api.DisruptionBudget{MinAvailable: api.IntOrPercentOf("100%")}
	e.create(dup)
	e.place("dup", map[string]int32{"a": 1, "c": 1})

	for _, c := range []struct{ name, body, location string }{
		{"not a count", `"minAvailable":"most"`, "body.spec.disruptionBudget.minAvailable"},
		{"both", `"minAvailable":1,"maxUnavailable":1`, "body.spec.disruptionBudget"},
		{"neither", ``, "body.spec.disruptionBudget"},
		{"huge", `"maxUnavailable":99999999999999999999`, "body.spec.disruptionBudget.maxUnavailable"},
		{"negative", `"minAvailable":-1`, "body.spec.disruptionBudget.minAvailable"},
		{"a boolean", `"minAvailable":true`, "body.spec.disruptionBudget.minAvailable"},
	} {
		body := `{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":"bad"},"spec":{"replicas":1,"template":{"driver":"sim"},"disruptionBudget":{` + c.body + `}}}`
		r := e.do("POST", "/api/v1/workloads", adminSecret, "application/json", []byte(body))
		if r.status != 422 || !hasLocation(r.problem, c.location) {
			t.Errorf("budget %s: want 422 at %s; got %d %s", c.name, c.location, r.status, r.body)
		}
	}

	var plan api.DrillPlan
	spec := api.DrillSpec{Kind: api.DrillEvacuate, Target: api.DrillTarget{Cluster: "a"}}
	body, _ := json.Marshal(spec)
	if err := e.admin.Raw(ctx, "POST", "/api/v1/drills/plan", nil, body, &plan); err != nil {
		t.Fatalf("plan: %v", err)
	}
	broken := plan.BrokenBudgets()
	if !plan.Absorbed || len(broken) != 1 || broken[0].Workload != "dup" || broken[0].Budget != "minAvailable 100%" || !strings.Contains(broken[0].BudgetNote, "1 of 2") {
		t.Fatalf("plan of evacuating a: want absorbed, dup's budget minAvailable 100%% broken (1 of 2 placed); got %+v", plan)
	}

	d := drill("budget", api.DrillEvacuate, api.DrillTarget{Cluster: "a"}, "1h")
	created, _ := json.Marshal(d)
	r := e.do("POST", "/api/v1/drills", adminSecret, "application/json", created)
	if r.status != 422 || !hasLocation(r.problem, "body.spec.force") || !strings.Contains(string(r.body), "disruption budget") || !strings.Contains(string(r.body), "dup") {
		t.Errorf("evacuation breaking dup's budget: want 422 at body.spec.force naming dup's disruption budget; got %d %s", r.status, r.body)
	}
	if ts := e.taints("a"); hasDrillTaint(ts, "budget") {
		t.Errorf("a refused drill tainted a: %v", ts)
	}
	d.Spec.Force = true
	var out api.Drill
	if err := e.admin.Create(ctx, "drills", d, &out); err != nil {
		t.Fatalf("forced drill: %v", err)
	}
	forced := false
	for _, ev := range out.Status.Timeline {
		forced = forced || strings.Contains(ev.Message, "forced although the plan breaks disruption budgets")
	}
	if !forced {
		t.Errorf("forced drill: want its timeline to say it broke a budget; got %+v", out.Status.Timeline)
	}
}

// TestDrainRefusedAtTheHub: the hub itself refuses a cluster write that
// adds NoExecute taints whose evacuation breaks a workload (as the
// console's drain button and any API client send it), with the plan and
// query.force in the problem, audited, changing nothing; a dry run says
// the same; force=true writes it; force on another kind is a 422.
func TestDrainRefusedAtTheHub(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.readyCluster("a", "r1")
	e.readyCluster("c", "r2")
	only := workload("only-a", 2, nil)
	only.Spec.Placement = &api.PlacementPolicy{ClusterSelector: &api.LabelSelector{MatchLabels: map[string]string{"region": "r1"}}}
	e.create(only)
	e.place("only-a", map[string]int32{"a": 2})

	drain := `{"spec":{"unschedulable":true,"taints":[{"key":"` + api.DrainTaintKey + `","effect":"NoExecute"}]}}`
	for _, path := range []string{"/api/v1/clusters/a", "/api/v1/clusters/a?dryRun=All"} {
		r := e.do("PATCH", path, adminSecret, "application/merge-patch+json", []byte(drain))
		if r.status != 422 || !hasLocation(r.problem, "query.force") || !strings.Contains(string(r.body), "would leave only-a with no replica anywhere") ||
			!strings.Contains(string(r.body), `"plan"`) {
			t.Errorf("PATCH %s draining a: want 422 at query.force naming only-a, with the plan; got %d %s", path, r.status, r.body)
		}
	}
	if ts := e.taints("a"); len(ts) != 0 {
		t.Fatalf("a refused drain tainted a: %v", ts)
	}
	// A NoSchedule taint moves nothing and is not judged.
	if r := e.do("PATCH", "/api/v1/clusters/a", adminSecret, "application/merge-patch+json",
		[]byte(`{"spec":{"taints":[{"key":"gpu","effect":"NoSchedule"}]}}`)); r.status != 200 {
		t.Fatalf("a NoSchedule taint: want 200; got %d %s", r.status, r.body)
	}
	audit, err := e.store.AuditQuery(context.Background(), pgstore.AuditFilter{Kind: "Cluster", Name: "a", Result: "refused"})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, row := range audit {
		if row.Verb == pgstore.VerbPatch && strings.Contains(row.Detail, "only-a") {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("want one audited refusal of the drain (the dry run is not audited); got %d in %+v", refused, audit)
	}
	if r := e.do("PATCH", "/api/v1/workloads/only-a?force=true", adminSecret, "application/merge-patch+json", []byte(`{"spec":{"replicas":3}}`)); r.status != 422 || !hasLocation(r.problem, "query.force") {
		t.Errorf("force on a workload patch: want 422 at query.force; got %d %s", r.status, r.body)
	}
	if r := e.do("PATCH", "/api/v1/clusters/a?force=true", adminSecret, "application/merge-patch+json", []byte(drain)); r.status != 200 {
		t.Fatalf("forced drain: want 200; got %d %s", r.status, r.body)
	}
	if ts := e.taints("a"); !slices.ContainsFunc(ts, func(t api.Taint) bool { return t.Key == api.DrainTaintKey }) {
		t.Errorf("the forced drain did not taint a: %v", ts)
	}
}
