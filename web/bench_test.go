package web

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// benchConsole is a console whose cache holds 100 clusters in 10 regions
// and 10,000 workloads, without a database: what the list pages and live
// redraws compute from.
func benchConsole(b *testing.B) *Console {
	b.Helper()
	now := time.Now()
	f := newFleet(nil, nil, func(*api.Cluster) {}, time.Now, slog.New(slog.DiscardHandler), time.Second)
	for i := range 100 {
		region := fmt.Sprintf("region-%d", i%10)
		name := fmt.Sprintf("cluster-%03d", i)
		age := 0.2
		f.clusters[name] = &api.Cluster{Metadata: api.ObjectMeta{Name: name, Labels: map[string]string{api.LabelRegion: region}},
			Status: api.ClusterStatus{Health: api.HealthReady, HeartbeatAgeSeconds: &age, Capacity: &api.ClusterCapacity{NodesReady: 10, NodesTotal: 10,
				CPUAllocatable: 80000, CPUAllocated: int64(i * 500), MemoryAllocatable: 160 << 30, MemoryAllocated: int64(i) << 30, Replicas: 300, ReplicasReady: 298}}}
	}
	for i := range 10_000 {
		w := &api.Workload{Metadata: api.ObjectMeta{Name: fmt.Sprintf("wl-%05d", i), Labels: map[string]string{"team": fmt.Sprintf("t%d", i%20)}, CreationTimestamp: &now},
			Spec: api.WorkloadSpec{Replicas: 3, Template: api.ReplicaTemplate{Driver: "sim"}}}
		placed := map[string]int32{}
		for j := range 3 {
			c := fmt.Sprintf("cluster-%03d", (i+j*37)%100)
			placed[c] = 1
			ready := int32(1)
			if i%50 == 0 && j == 0 {
				ready = 0
			}
			w.Status.Clusters = append(w.Status.Clusters, api.ClusterReplicas{Cluster: c, Region: fmt.Sprintf("region-%d", ((i+j*37)%100)%10), Desired: 1, Ready: ready})
			w.Status.ReadyReplicas += ready
		}
		w.Status.Placement = &api.PlacementStatus{Epoch: 1, Clusters: placed}
		f.workloads[w.Metadata.Name] = summarize(w)
	}
	f.loaded = true
	c := &Console{cfg: Config{PageSize: 50}, now: time.Now, log: slog.New(slog.DiscardHandler), fleet: f, pages: mustPages()}
	return c
}

// benchRender builds a page's view and renders its live regions, as a
// live stream's redraw does.
func benchRender(b *testing.B, c *Console, page string) {
	u, _ := url.Parse(page)
	rt, params, ok := match(c.pages.nav, u.Path)
	if !ok {
		b.Fatalf("no route for %s", page)
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		v, err := rt.view(c, viewRequest{path: u.Path, query: u.Query(), params: params})
		if err != nil {
			b.Fatal(err)
		}
		pd := &pageData{Now: time.Now(), Path: u.Path, Query: u.Query(), View: v.data}
		buf.Reset()
		for _, id := range c.pages.regions[v.template] {
			html, _, err := renderRegion(c.pages.sets[v.template], id, pd)
			if err != nil {
				b.Fatal(err)
			}
			buf.WriteString(string(html))
		}
	}
}

func BenchmarkConsoleOverview(b *testing.B) { benchRender(b, benchConsole(b), "/") }
func BenchmarkConsoleClusters(b *testing.B) {
	benchRender(b, benchConsole(b), "/clusters?sort=cpu&dir=desc")
}
func BenchmarkConsoleWorkloads(b *testing.B) {
	benchRender(b, benchConsole(b), "/workloads?page=120")
}
func BenchmarkConsoleWorkloadsSearch(b *testing.B) {
	benchRender(b, benchConsole(b), "/workloads?q=team%3Dt7&sort=health&dir=desc")
}

// benchDrill is a drill as a long one ends: 240 samples (the most a drill
// keeps), a timeline, a report and a plan over 50 workloads and the 100
// clusters.
func benchDrill(start time.Time) *api.Drill {
	ended, finished := start.Add(55*time.Second), start.Add(70*time.Second)
	rto, det := 12.5, 2.1
	st := api.DrillStatus{Phase: api.DrillSucceeded, Targets: []string{"cluster-000", "cluster-010"}, StartedAt: &start, EndedAt: &ended, FinishedAt: &finished,
		Report: &api.DrillReport{DetectionSeconds: &det, FirstReplacementSeconds: &det, RTOSeconds: &rto, PeakUnavailableReplicas: 40, AffectedWorkloads: 50,
			AffectedReplicas: 100, Failback: "complete", FailbackSeconds: &det, Passed: true,
			SLOs: []api.SLOResult{{Name: "maxRTO", Target: "30s", Actual: "12.500s", Passed: true}, {Name: "exclusiveDuplicates", Target: "0", Actual: "0", Passed: true}}}}
	for i := range 240 {
		st.Samples = append(st.Samples, api.DrillSample{At: start.Add(time.Duration(i) * 290 * time.Millisecond), Desired: 150, Ready: int32(110 + i%40), Unavailable: int32(40 - i%40)})
	}
	for i, typ := range []string{api.DrillEventCreated, api.DrillEventStarted, api.DrillEventDetected, api.DrillEventFirstReplacement, api.DrillEventRecovered,
		api.DrillEventRestored, api.DrillEventFailedBack, api.DrillEventFinished} {
		st.Timeline = append(st.Timeline, api.DrillEvent{At: start.Add(time.Duration(i) * 8 * time.Second), Type: typ, Message: "what happened, in a sentence"})
	}
	plan := &api.DrillPlan{Targets: st.Targets, Absorbed: true, AffectedWorkloads: 50, AffectedReplicas: 100}
	for i := range 50 {
		plan.Workloads = append(plan.Workloads, api.DrillPlanWorkload{Workload: fmt.Sprintf("wl-%05d", i),
			Before: map[string]int32{"cluster-000": 1, "cluster-010": 1, "cluster-020": 1}, After: map[string]int32{"cluster-020": 2, "cluster-030": 1}})
	}
	for i := range 100 {
		free := int64(40000)
		plan.Clusters = append(plan.Clusters, api.DrillPlanCluster{Cluster: fmt.Sprintf("cluster-%03d", i), Region: fmt.Sprintf("region-%d", i%10),
			Health: api.HealthReady, ReplicasBefore: 3, ReplicasAfter: 4, CPUFreeMillis: &free, MemoryFreeBytes: &free})
	}
	st.Plan = plan
	return &api.Drill{Metadata: api.ObjectMeta{Name: "outage-big", CreationTimestamp: &start},
		Spec: api.DrillSpec{Kind: api.DrillOutage, Target: api.DrillTarget{Region: "region-0"}, Duration: "55s"}, Status: st}
}

// BenchmarkConsoleDrill builds a finished drill's page from the drill (its
// page reads it from the store; that read is left out) and renders its
// live regions.
func BenchmarkConsoleDrill(b *testing.B) {
	c := benchConsole(b)
	dr := benchDrill(time.Now().Add(-2 * time.Minute))
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		pd := &pageData{Now: time.Now(), Path: "/drills/outage-big", View: newDrillData(dr, time.Now())}
		buf.Reset()
		for _, id := range c.pages.regions["drill"] {
			html, _, err := renderRegion(c.pages.sets["drill"], id, pd)
			if err != nil {
				b.Fatal(err)
			}
			buf.WriteString(string(html))
		}
	}
}

// BenchmarkConsoleDrills renders the drills list over 1,000 drills in the
// cache, filtered to those that failed.
func BenchmarkConsoleDrills(b *testing.B) {
	c := benchConsole(b)
	now := time.Now()
	for i := range 1000 {
		dr := benchDrill(now.Add(-time.Duration(i) * time.Hour))
		dr.Metadata.Name = fmt.Sprintf("drill-%04d", i)
		if i%7 == 0 {
			dr.Status.Phase, dr.Status.Verdict, dr.Status.Report.Passed = api.DrillCompleted, api.DrillVerdictFailed, false
		}
		c.fleet.drills[dr.Metadata.Name] = summarizeDrill(dr)
	}
	benchRender(b, c, "/drills?phase=Completed&sort=rto&dir=desc")
}
