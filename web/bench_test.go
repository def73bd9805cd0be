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
