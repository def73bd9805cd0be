package web

import (
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// TestRTOTrends: completed drills with an RTO are grouped by kind and
// target, oldest first, the most recently drilled target first; drills
// still running, aborted, broken or affecting nothing are left out; a
// drill that did not recover is marked at the top.
func TestRTOTrends(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var drills []*api.Drill
	add := func(name, kind, region, phase, verdict string, rto *float64, nothing bool) {
		d := &api.Drill{Metadata: api.ObjectMeta{Name: name}, Spec: api.DrillSpec{Kind: kind, Target: api.DrillTarget{Region: region}},
			Status: api.DrillStatus{Phase: phase, Verdict: verdict}}
		created := t0.Add(time.Duration(len(drills)) * time.Hour)
		d.Metadata.CreationTimestamp = &created
		if phase != api.DrillRunning {
			d.Status.Report = &api.DrillReport{RTOSeconds: rto, RTONotApplicable: nothing}
		}
		drills = append([]*api.Drill{d}, drills...) // newest first, as the fleet keeps them
	}
	s := func(f float64) *float64 { return &f }
	add("o1", api.DrillOutage, "ap-south", api.DrillCompleted, api.DrillVerdictPassed, s(8), false)
	add("o2", api.DrillOutage, "ap-south", api.DrillCompleted, api.DrillVerdictFailed, nil, false) // did not recover
	add("e1", api.DrillEvacuate, "ap-south", api.DrillCompleted, api.DrillVerdictPassed, s(3), false)
	add("o3", api.DrillOutage, "ap-south", api.DrillSucceeded, "", s(4), false) // stored by an older hub
	add("a1", api.DrillOutage, "ap-south", api.DrillAborted, "", s(1), false)
	add("x1", api.DrillOutage, "ap-south", api.DrillError, "", nil, false)
	add("n1", api.DrillOutage, "eu-west", api.DrillCompleted, api.DrillVerdictPassed, nil, true) // affected nothing
	add("r1", api.DrillOutage, "us-east", api.DrillRunning, "", nil, false)
	var sums []*drillSummary
	for _, d := range drills {
		sums = append(sums, summarizeDrill(d))
	}
	trends := rtoTrends(sums)
	if len(trends) != 2 {
		t.Fatalf("want 2 trends (outage and evacuate of ap-south); got %+v", trends)
	}
	out := trends[0]
	if out.Kind != api.DrillOutage || out.Target != "region ap-south" || out.Count != 3 || out.Last != "o3" {
		t.Errorf("want the outage trend first (drilled last), 3 drills, latest o3; got %+v", out)
	}
	names := []string{}
	for _, p := range out.Points {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "o1,o2,o3" {
		t.Errorf("want the points oldest first: o1,o2,o3; got %v", names)
	}
	if p := out.Points[1]; !p.Missed || p.Y != sparkPad || p.RTO != "not recovered" {
		t.Errorf("want o2 marked at the top as not recovered; got %+v", p)
	}
	if p := out.Points[0]; p.Missed || !p.Passed || p.Y != sparkPad {
		t.Errorf("want o1 (the longest RTO) at the top of the line's scale; got %+v", p)
	}
	if p := out.Points[2]; p.Y != sparkH-sparkPad-4.0/8*(sparkH-2*sparkPad) {
		t.Errorf("want o3 (4s of 8s) half way up; got %+v", p)
	}
	if out.Best != "4.000s" || out.Worst != "8.000s" || out.Latest != "4.000s" || !strings.Contains(out.Text, "8.000s, not recovered, 4.000s") {
		t.Errorf("want best 4s, worst 8s, latest 4s and the words; got %+v", out)
	}
	if !strings.HasPrefix(out.Line, "M") || strings.Count(out.Line, "L") != 1 {
		t.Errorf("want the line through the two drills that recovered; got %q", out.Line)
	}
	if ev := trends[1]; ev.Kind != api.DrillEvacuate || ev.Count != 1 || ev.Points[0].X != sparkW/2 {
		t.Errorf("want the evacuate trend with its one drill centred; got %+v", ev)
	}
}

// TestDrillsPageShowsTrends renders the drills page's live regions from a
// cache of drills: the trend table, its sparkline and its words.
func TestDrillsPageShowsTrends(t *testing.T) {
	t.Parallel()
	now := time.Now()
	f := newFleet(nil, nil, func(*api.Cluster) {}, time.Now, slog.New(slog.DiscardHandler), time.Second)
	for i, rto := range []float64{6, 4.5, -1} {
		created := now.Add(time.Duration(i-3) * time.Hour)
		d := &api.Drill{Metadata: api.ObjectMeta{Name: "outage-" + itoa(i), CreationTimestamp: &created},
			Spec:   api.DrillSpec{Kind: api.DrillOutage, Target: api.DrillTarget{Region: "ap-south"}},
			Status: api.DrillStatus{Phase: api.DrillCompleted, Verdict: api.DrillVerdictPassed, Report: &api.DrillReport{}}}
		if rto >= 0 {
			d.Status.Report.RTOSeconds = &rto
		} else {
			d.Status.Verdict = api.DrillVerdictFailed
		}
		f.drills[d.Metadata.Name] = summarizeDrill(d)
	}
	f.loaded = true
	c := &Console{cfg: Config{PageSize: 50}, now: time.Now, log: slog.New(slog.DiscardHandler), fleet: f, pages: mustPages()}
	u, _ := url.Parse("/drills")
	rt, params, ok := match(c.pages.nav, u.Path)
	if !ok {
		t.Fatal("no route for /drills")
	}
	v, err := rt.view(c, viewRequest{path: u.Path, query: u.Query(), params: params})
	if err != nil {
		t.Fatal(err)
	}
	pd := &pageData{Now: now, Path: u.Path, Query: u.Query(), View: v.data}
	html, _, err := renderRegion(c.pages.sets[v.template], "live-c-trend", pd)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`data-trend="outage region ap-south"`, `<svg class="spark"`, `class="spark-line"`, `class="spark-missed"`,
		"6.000s, 4.500s, not recovered", `<a href="/drills/outage-2">not recovered</a>`, "4.500s", "6.000s"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("want %q in the trend region; got %s", want, html)
		}
	}
	if strings.Contains(string(html), "style=") {
		t.Errorf("the CSP forbids inline styles; got %s", html)
	}
}
