package web

import (
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// TestRequestsChart: a drill with a probe gets a success-ratio line per
// entry point over the recovery chart's time axis (the baseline before
// the fault to its left), the same in words, and tables; the report and
// the progress show the failed requests.
func TestRequestsChart(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ended, finished := at(10), at(12)
	probe := &api.DrillProbeReport{Service: "web", Rate: 50, Through: []api.DrillProbeEntry{{Name: "us-east",
		Fault: api.DrillProbeStats{Requests: 500, Succeeded: 497, Failed: 3, SuccessRatio: 0.994, P50Millis: 1.2, P99Millis: 9.5}}},
		Fault: api.DrillProbeStats{Requests: 500, Succeeded: 497, Failed: 3, SuccessRatio: 0.994, P50Millis: 1.2, P99Millis: 9.5}}
	minRatio := 0.99
	dr := api.Drill{Metadata: api.ObjectMeta{Name: "d1", CreationTimestamp: &t0},
		Spec: api.DrillSpec{Kind: api.DrillOutage, Target: api.DrillTarget{Region: "ap-south"}, Duration: "10s",
			Probe: &api.DrillProbe{Service: "web", Rate: 50, Through: []string{"us-east", "global"}}, SLO: &api.DrillSLO{MinSuccessRatio: &minRatio}},
		Status: api.DrillStatus{Phase: api.DrillCompleted, Verdict: api.DrillVerdictPassed, StartedAt: &t0, EndedAt: &ended, FinishedAt: &finished,
			Samples: []api.DrillSample{{At: at(0.1), Desired: 3, Ready: 3}},
			ProbeSamples: []api.DrillProbeSample{
				{At: at(-1), Through: "us-east", Requests: 50, SuccessRatio: 1}, {At: at(-1), Through: "global", Requests: 50, SuccessRatio: 1},
				{At: at(2), Through: "us-east", Requests: 50, Failed: 3, SuccessRatio: 0.94}, {At: at(2), Through: "global", Requests: 50, SuccessRatio: 1},
				{At: at(11), Through: "us-east", Requests: 50, SuccessRatio: 1}},
			Probe: probe,
			Report: &api.DrillReport{Passed: true, Probe: probe,
				SLOs: []api.SLOResult{{Name: "minSuccessRatio", Target: "0.9900", Actual: "0.9940", Passed: true}}}}}
	ch := buildRatioChart(wideChart, dr.Status, dr.Spec, t0, finished)
	if ch.Empty || len(ch.Series) != 2 || ch.Series[0].Name != "us-east" || ch.Series[1].Name != "global" {
		t.Fatalf("want a line per entry point (us-east, global); got %+v", ch.Series)
	}
	// 13 s (-1 to 12) over 728 units from x 56: the baseline's sample at
	// the left edge, 100% at the top (y 12).
	if !strings.HasPrefix(ch.Series[0].Path, "M56 12 L") || strings.Count(ch.Series[0].Path, "L") != 2 {
		t.Errorf("want us-east's line from the left edge at 100%% through its 3 samples; got %s", ch.Series[0].Path)
	}
	if ch.Fault == nil || ch.Fault.X <= ch.PlotL {
		t.Errorf("want the fault shaded after the baseline; got %+v", ch.Fault)
	}
	if len(ch.YTicks) != 5 || ch.YTicks[4].Label != "100%" || len(ch.Rows) != 5 {
		t.Errorf("want y ticks 0-100%% and a table row per sample; got %+v, %d rows", ch.YTicks, len(ch.Rows))
	}
	for _, want := range []string{"through us-east, 3 of 150 requests failed, lowest success 94.00% at +2.0s", "through global, 0 of 100 requests failed"} {
		if !strings.Contains(ch.Summary, want) {
			t.Errorf("want the summary to say %q; got %q", want, ch.Summary)
		}
	}

	set := mustPages().sets["drill"]
	data := pageData{View: newDrillData(&dr, finished)}
	var html strings.Builder
	for _, id := range []string{"live-b-progress", "live-c-report", "live-d-chart"} {
		h, _, err := renderRegion(set, id, data)
		if err != nil {
			t.Fatalf("render %s: %v", id, err)
		}
		html.WriteString(string(h))
	}
	for _, want := range []string{`data-testid="drill-failed-requests">3<small> / 500`, `data-testid="requests-chart"`, `class="chart-ratio series-0"`,
		"Requests as a table (5)", "Failed requests", "3 of 500 during the fault", `data-slo="minSuccessRatio"`, "Requests that succeeded during the fault",
		`data-through="us-east" data-phase="fault"`, "at least 99.00% of requests succeeded"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("want the drill page to show %q; it does not:\n%s", want, html.String())
		}
	}
}
