package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
)

// drillRegion runs a member named name in its own region with two
// simulated nodes, until the test ends.
func drillRegion(t *testing.T, e *env, join, name string) *member.Member {
	t.Helper()
	m, err := member.New(member.Config{JoinToken: join, Name: name, Region: name, DataDir: t.TempDir(), NATSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() { defer close(done); _ = m.Run(ctx) }()
	waitFor(t, name+"'s first heartbeat ack", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
	sims := []node.SimNode{{Name: name + "-n1", Zone: "z1", MilliCPU: 4000, Memory: 8 << 30}, {Name: name + "-n2", Zone: "z2", MilliCPU: 4000, Memory: 8 << 30}}
	fleet, err := node.NewFleet(node.FleetConfig{MemberURL: m.NATSURL(), Nodes: sims, DataDir: t.TempDir(), Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fdone := make(chan struct{})
	go func() { defer close(fdone); _ = fleet.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-fdone })
	waitFor(t, name+"'s 2 nodes ready", 10*time.Second, func() bool { return m.Capacity().NodesReady == 2 })
	waitFor(t, "the hub sees "+name+" Ready", 10*time.Second, func() bool {
		live, ok := e.server.Monitor().Live(name)
		return ok && live.Health == api.HealthReady
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
	e := newMemberEnv(t, hub.HealthConfig{})
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
	maxUnavailable := int32(2)
	d := drill("evac", api.DrillEvacuate, api.DrillTarget{Region: "r1"}, "6s")
	d.Spec.SLO = &api.DrillSLO{MaxRTO: "6s", MaxUnavailableReplicas: &maxUnavailable}
	if err := e.admin.Create(ctx, "drills", d, nil); err != nil {
		t.Fatal(err)
	}
	entries, samples, final := followDrill(t, e, "evac", 40*time.Second)
	rep := final.Status.Report
	t.Logf("report: %s", mustJSONOf(rep))
	if final.Status.Phase != api.DrillSucceeded || rep == nil || !rep.Passed {
		t.Fatalf("evacuate drill: want Succeeded and passed; got %s %+v", final.Status.Phase, rep)
	}
	if rep.AffectedWorkloads != 1 || rep.AffectedReplicas != 2 || rep.DetectionSeconds == nil || rep.FirstReplacementSeconds == nil ||
		rep.RTOSeconds == nil || *rep.RTOSeconds > 6 || rep.ExclusiveDuplicates != 0 || rep.Failback != "manual" {
		t.Errorf("evacuate report: want 1 workload/2 replicas affected, detection, first replacement and RTO within 6s, no duplicates, failback manual; got %+v", rep)
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
