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
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
)

// drillRegion runs a member named name in its own region with two node
// agents (simulated replicas; the agents apply the member's leases and
// drills), until the test ends.
func drillRegion(t *testing.T, e *env, join, name string) *member.Member {
	t.Helper()
	nodes := make([]node.Config, 2)
	for i := range nodes {
		nodes[i] = node.Config{Name: fmt.Sprintf("%s-n%d", name, i+1), Zone: fmt.Sprintf("z%d", i+1),
			MilliCPU: 4000, Memory: 8 << 30, Interval: 200 * time.Millisecond}
	}
	return regionWithNodes(t, e, join, name, nodes...)
}

// regionWithNodes runs a member named name in its own region with a node agent
// for each of nodes (the member's URL, join token and a data directory
// filled in), until the test ends; it returns once the hub has heard the
// member Ready with every node's capacity.
func regionWithNodes(t *testing.T, e *env, join, name string, nodes ...node.Config) *member.Member {
	t.Helper()
	m, err := member.New(member.Config{JoinToken: join, Name: name, Region: name, DataDir: t.TempDir(), NATSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { _ = m.Run(ctx) })
	waitFor(t, name+"'s first heartbeat ack", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
	for _, cfg := range nodes {
		cfg.MemberURL, cfg.JoinToken, cfg.DataDir = m.NATSURL(), m.NodeJoinToken(), t.TempDir()
		a, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = a.Run(ctx) })
	}
	n := len(nodes)
	waitFor(t, fmt.Sprintf("%s's %d nodes ready", name, n), 20*time.Second, func() bool { return m.Capacity().NodesReady == n })
	// Ready and its nodes' capacity heard: before that, placement sees no
	// room there and puts everything elsewhere (and keeps it there).
	waitFor(t, "the hub sees "+name+" Ready with its capacity", 20*time.Second, func() bool {
		live, ok := e.server.Monitor().Live(name)
		return ok && live.Health == api.HealthReady && live.Heard && live.Capacity.NodesReady == n
	})
	return m
}

// followDrill collects a drill's timeline stream until its report.
func followDrill(t *testing.T, e *env, name string, limit time.Duration) (entries []api.DrillEvent, samples int, final api.Drill) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	err := e.admin.FollowDrill(ctx, name, "", func(ev client.DrillEvent) error {
		switch {
		case ev.Entry != nil:
			entries = append(entries, *ev.Entry)
		case ev.Sample != nil:
			samples++
		case ev.Drill != nil:
			final = *ev.Drill
		}
		return nil
	})
	if err != nil {
		t.Fatalf("follow drill %s: want its timeline up to the report within %s; got %v after %d entries %+v", name, limit, err, len(entries), entries)
	}
	return entries, samples, final
}

// TestDrillEvacuateEndToEnd: an evacuate drill over two real members with
// simulated nodes: the target is tainted, its replicas move to the other
// region, the report has detection, first replacement and RTO within the
// SLO and no duplicates, and the taint goes at the end. The timeline
// streams it all, ending with the report.
func TestDrillEvacuateEndToEnd(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := context.Background()
	join := e.joinToken("j", api.TokenSpec{})
	drillRegion(t, e, join, "r1")
	m2 := drillRegion(t, e, join, "r2")
	w := api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 4,
		Template: api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "100m", Memory: "64Mi"}, Sim: &api.SimSpec{StartLatency: "50ms"}},
		Failover: &api.FailoverPolicy{Failback: "manual"}}}
	e.create(w)
	waitFor(t, "web's 4 replicas ready, 2 per region", 20*time.Second, func() bool {
		var got api.Workload
		_ = e.admin.Get(ctx, "workloads", "web", &got)
		return got.Status.ReadyReplicas == 4 && len(got.Status.Clusters) == 2
	})

	var plan api.DrillPlan
	if err := e.admin.Raw(ctx, "POST", "/api/v1/drills/plan", nil, []byte(`{"kind":"evacuate","target":{"region":"r1"}}`), &plan); err != nil {
		t.Fatal(err)
	}
	if !plan.Absorbed || plan.AffectedReplicas != 2 || len(plan.Workloads) != 1 || plan.Workloads[0].After["r2"] != 4 {
		t.Fatalf("plan of evacuating r1: want web's 2 replicas absorbed by r2 (4 there); got %+v", plan)
	}
	maxUnavailable := int32(0) // an evacuation drains gracefully: nothing goes down
	// maxRTO is the drill's duration: the SLO says "recovered while the
	// fault lasted" (speed is for benchmarks, not tests).
	d := drill("evac", api.DrillEvacuate, api.DrillTarget{Region: "r1"}, "10s")
	d.Spec.SLO = &api.DrillSLO{MaxRTO: "10s", MaxUnavailableReplicas: &maxUnavailable}
	if err := e.admin.Create(ctx, "drills", d, nil); err != nil {
		t.Fatal(err)
	}
	entries, samples, final := followDrill(t, e, "evac", 40*time.Second)
	rep := final.Status.Report
	t.Logf("report: %s", mustJSONOf(rep))
	if final.Status.Phase != api.DrillCompleted || final.Status.Verdict != api.DrillVerdictPassed || rep == nil || !rep.Passed {
		t.Fatalf("evacuate drill: want Completed and Passed; got %s/%s %+v", final.Status.Phase, final.Status.Verdict, rep)
	}
	if len(rep.Workloads) != 1 || rep.Workloads[0].Workload != "web" || rep.Workloads[0].RTOSeconds == nil || len(rep.Workloads[0].BlockedBy) != 0 {
		t.Errorf("evacuate report: want web's own RTO and nothing blocking it; got %+v", rep.Workloads)
	}
	if rep.AffectedWorkloads != 1 || rep.AffectedReplicas != 2 || rep.DetectionSeconds == nil || rep.FirstReplacementSeconds == nil ||
		rep.RTOSeconds == nil || rep.ExclusiveDuplicates != 0 || rep.Failback != "manual" {
		t.Errorf("evacuate report: want 1 workload/2 replicas affected, detection, first replacement and RTO, no duplicates, failback manual; got %+v", rep)
	}
	if *rep.FirstReplacementSeconds > *rep.RTOSeconds {
		t.Errorf("first replacement (%.3fs) after RTO (%.3fs)", *rep.FirstReplacementSeconds, *rep.RTOSeconds)
	}
	var order []string
	for _, en := range entries {
		order = append(order, en.Type)
	}
	want := []string{api.DrillEventCreated, api.DrillEventStarted, api.DrillEventDetected, api.DrillEventFirstReplacement, api.DrillEventRecovered, api.DrillEventRestored,
		api.DrillEventFailedBack, api.DrillEventFinished}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("timeline: want %v, got %v", want, order)
	}
	if samples == 0 || len(final.Status.Samples) == 0 {
		t.Errorf("want samples streamed (%d) and stored (%d)", samples, len(final.Status.Samples))
	}
	if hasDrillTaint(e.taints("r1"), "evac") {
		t.Errorf("after the drill: want r1's drill taint gone; taints %v", e.taints("r1"))
	}
	if got := workloadStatus(m2, "web"); got.Ready != 4 {
		t.Errorf("after evacuating r1: want web's 4 replicas ready in r2; r2 reports %+v", got)
	}
	// The outcome is counted just after the final status is written: wait
	// for it rather than read once.
	waitFor(t, "/metrics with the drill's RTO histogram and its outcome counted", 10*time.Second, func() bool {
		r := e.do("GET", "/metrics", "", "", nil)
		return strings.Contains(string(r.body), `atoll_drill_rto_seconds_bucket{kind="evacuate"`) &&
			strings.Contains(string(r.body), `atoll_drills_total{outcome="Passed"} 1`)
	})
	// The drill's events are kept as Events too.
	var events api.EventList
	if err := e.admin.List(ctx, "events", client.ListOptions{LabelSelector: api.LabelEventKind + "=Drill," + api.LabelEventName + "=evac"}, &events); err != nil || len(events.Items) != 2 {
		t.Errorf("want DrillStarted and DrillFinished events; got %+v, %v", events.Items, err)
	}
}

func mustJSONOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDrillOutageAndPartitionEndToEnd: an outage drill takes the member running an
// exclusive workload and half of a stateless one dark. The hub detects
// it, re-places both elsewhere (the exclusive one only after the member's
// fence), and after the outage the stateless one fails back. Then a
// partition cuts off the member the exclusive workload moved to: its
// replicas keep running, fenced, and after the heal the exclusive
// workload has never been seen ready in two clusters at once.
func TestDrillOutageAndPartitionEndToEnd(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := context.Background()
	join := e.joinToken("j", api.TokenSpec{})
	drillRegion(t, e, join, "r1")
	drillRegion(t, e, join, "r2")
	tmpl := api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "100m", Memory: "64Mi"}, Sim: &api.SimSpec{StartLatency: "50ms"}}
	fast := func(mode string) *api.FailoverPolicy {
		return &api.FailoverPolicy{Mode: mode, GracePeriod: "1s", StabilizationWindow: "1s"}
	}
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 4, Template: tmpl, Failover: fast("stateless")}})
	// Moving an exclusive workload back is an outage of its own: this one
	// fails back by hand, and failback is measured on web.
	ledgerFailover := fast("exclusive")
	ledgerFailover.Failback = "manual"
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "ledger"}, Spec: api.WorkloadSpec{Replicas: 1, Template: tmpl, Failover: ledgerFailover}})
	var target string
	waitFor(t, "web 4 ready over both regions, ledger 1 ready", 30*time.Second, func() bool {
		var web, ledger api.Workload
		_ = e.admin.Get(ctx, "workloads", "web", &web)
		_ = e.admin.Get(ctx, "workloads", "ledger", &ledger)
		if ledger.Status.ReadyReplicas != 1 || len(ledger.Status.Clusters) != 1 || web.Status.ReadyReplicas != 4 || len(web.Status.Clusters) != 2 {
			return false
		}
		target = ledger.Status.Clusters[0].Cluster
		return true
	})

	maxUnavailable := int32(3)
	d := drill("dark", api.DrillOutage, api.DrillTarget{Cluster: target}, "15s")
	d.Spec.FailbackTimeout = "30s"
	d.Spec.SLO = &api.DrillSLO{MaxRTO: "15s", MaxUnavailableReplicas: &maxUnavailable}
	if err := e.admin.Create(ctx, "drills", d, nil); err != nil {
		t.Fatal(err)
	}
	entries, _, final := followDrill(t, e, "dark", 90*time.Second)
	rep := final.Status.Report
	t.Logf("outage of %s: %s", target, mustJSONOf(rep))
	if final.Status.Phase != api.DrillCompleted || final.Status.Verdict != api.DrillVerdictPassed || rep == nil || !rep.Passed {
		t.Fatalf("outage drill: want Completed and Passed; got %s/%s %+v; timeline %+v", final.Status.Phase, final.Status.Verdict, rep, entries)
	}
	if rep.AffectedWorkloads != 2 || rep.AffectedReplicas != 3 || rep.DetectionSeconds == nil || rep.RTOSeconds == nil ||
		*rep.DetectionSeconds > *rep.RTOSeconds || rep.ExclusiveDuplicates != 0 || rep.Failback != "complete" || rep.FailbackSeconds == nil {
		t.Errorf("outage report: want 2 workloads/3 replicas affected, detection before RTO, no duplicates, failback complete; got %+v", rep)
	}
	if rep.PeakUnavailableReplicas == 0 {
		t.Errorf("outage report: the dark member's replicas count as unavailable until replaced; want a peak above 0, got %+v", rep)
	}

	// The exclusive workload now runs on the other member: cut that one
	// off.
	other := map[string]string{"r1": "r2", "r2": "r1"}[target]
	// Failback is make-before-break: the other member keeps its replicas
	// until the ones moved back are ready, then it is trimmed to 2.
	waitFor(t, "web failed back to 2 per region", 20*time.Second, func() bool {
		var web api.Workload
		_ = e.admin.Get(ctx, "workloads", "web", &web)
		pl := web.Status.Placement
		return web.Status.ReadyReplicas == 4 && pl != nil && pl.Clusters[target] == 2 && pl.Clusters[other] == 2 && len(pl.FailingBack) == 0
	})
	p := drill("cut", api.DrillPartition, api.DrillTarget{Cluster: other}, "15s")
	p.Spec.FailbackTimeout = "30s"
	p.Spec.SLO = &api.DrillSLO{MaxRTO: "15s"}
	if err := e.admin.Create(ctx, "drills", p, nil); err != nil {
		t.Fatal(err)
	}
	_, _, final = followDrill(t, e, "cut", 90*time.Second)
	rep = final.Status.Report
	t.Logf("partition of %s: %s", other, mustJSONOf(rep))
	if final.Status.Phase != api.DrillCompleted || final.Status.Verdict != api.DrillVerdictPassed || rep == nil || !rep.Passed || rep.AffectedReplicas != 3 || rep.RTOSeconds == nil ||
		rep.ExclusiveDuplicates != 0 || rep.Failback != "complete" {
		t.Errorf("partition drill: want Completed and Passed, 3 replicas affected, an RTO, no duplicates after the heal, failback complete; got %s/%s %+v", final.Status.Phase, final.Status.Verdict, rep)
	}
	if rep != nil {
		for _, w := range rep.Workloads {
			if w.RTOSeconds == nil || *w.RTOSeconds > *rep.RTOSeconds || len(w.BlockedBy) != 0 {
				t.Errorf("partition drill: want every workload's own RTO, none after the drill's, nothing blocking; got %+v", rep.Workloads)
			}
		}
	}
}

// TestDrillNamesWhatWasBrokenBefore: a workload that never gets ready
// (its replicas take an hour to start) is named by the plan as already
// unavailable; the outage drill's report gives each workload its own RTO,
// names what blocked the broken one (which cluster, not ready), leaves it
// out of the drill's RTO and failback, and so does not wait out the
// failback timeout for it.
func TestDrillNamesWhatWasBrokenBefore(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := context.Background()
	join := e.joinToken("j", api.TokenSpec{})
	drillRegion(t, e, join, "r1")
	drillRegion(t, e, join, "r2")
	fast := &api.FailoverPolicy{GracePeriod: "1s", StabilizationWindow: "1s"}
	tmpl := func(latency string) api.ReplicaTemplate {
		return api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "100m", Memory: "64Mi"}, Sim: &api.SimSpec{StartLatency: api.Duration(latency)}}
	}
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 4, Template: tmpl("50ms"), Failover: fast}})
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "stuck"}, Spec: api.WorkloadSpec{Replicas: 2, Template: tmpl("1h"), Failover: fast}})
	waitFor(t, "web 4 ready over both regions, stuck placed on both", 30*time.Second, func() bool {
		var web, stuck api.Workload
		_ = e.admin.Get(ctx, "workloads", "web", &web)
		_ = e.admin.Get(ctx, "workloads", "stuck", &stuck)
		return web.Status.ReadyReplicas == 4 && len(web.Status.Clusters) == 2 && stuck.Status.Placement != nil && len(stuck.Status.Placement.Clusters) == 2
	})

	d := drill("broken-before", api.DrillOutage, api.DrillTarget{Cluster: "r1"}, "10s")
	d.Spec.SLO = &api.DrillSLO{MaxRTO: "10s"}
	d.Spec.FailbackTimeout = "5m"
	var created api.Drill
	if err := e.admin.Create(ctx, "drills", d, &created); err != nil {
		t.Fatal(err)
	}
	if p := created.Status.Plan; p == nil || !slices.ContainsFunc(p.Warnings, func(w api.DrillWarning) bool {
		return w.Type == api.WarnAlreadyUnavailable && w.Workload == "stuck" && strings.Contains(w.Message, "0 of 2")
	}) || slices.ContainsFunc(p.Warnings, func(w api.DrillWarning) bool { return w.Workload == "web" }) {
		t.Errorf("want the plan to warn that stuck (and only stuck) is unavailable before the fault; got %+v", created.Status.Plan)
	}
	entries, _, final := followDrill(t, e, "broken-before", 2*time.Minute)
	rep := final.Status.Report
	t.Logf("outage with stuck broken: %s", mustJSONOf(rep))
	if final.Status.Phase != api.DrillCompleted || final.Status.Verdict != api.DrillVerdictPassed || rep == nil || rep.RTOSeconds == nil {
		t.Fatalf("want Completed and Passed on web's recovery; got %s/%s %+v; timeline %+v", final.Status.Phase, final.Status.Verdict, rep, entries)
	}
	byName := map[string]api.DrillWorkloadReport{}
	for _, w := range rep.Workloads {
		byName[w.Workload] = w
	}
	if w := byName["web"]; w.RTOSeconds == nil || w.UnavailableBefore || len(w.BlockedBy) != 0 {
		t.Errorf("web: want its own RTO and nothing blocking it; got %+v", w)
	}
	stuck := byName["stuck"]
	if stuck.RTOSeconds != nil || !stuck.UnavailableBefore || !slices.ContainsFunc(stuck.BlockedBy, func(b api.DrillBlocker) bool {
		return b.Cluster == "r2" && b.Reason == api.BlockedNotReady && strings.Contains(b.Message, "ready")
	}) {
		t.Errorf("stuck: want no RTO, unavailable before, blocked by replicas not ready on r2; got %+v", stuck)
	}
	if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "not counted in the RTO: stuck") }) {
		t.Errorf("want a note that stuck is not counted in the RTO; got %q", rep.Notes)
	}
	if rep.Failback != "complete" || final.Status.FinishedAt.Sub(*final.Status.EndedAt) > time.Minute {
		t.Errorf("want failback complete on web alone, well within the 5m timeout; got %s, ended %v finished %v", rep.Failback, final.Status.EndedAt, final.Status.FinishedAt)
	}
}
