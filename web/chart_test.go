package web

import (
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

func TestRecoveryChart(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ended := at(10)
	st := api.DrillStatus{StartedAt: &t0, EndedAt: &ended,
		Samples: []api.DrillSample{{At: at(0.1), Desired: 4, Ready: 4}, {At: at(1.5), Desired: 4, Ready: 2, Unavailable: 2}, {At: at(3), Desired: 4, Ready: 4}},
		Timeline: []api.DrillEvent{{At: at(-0.2), Type: api.DrillEventCreated}, {At: at(0), Type: api.DrillEventStarted},
			{At: at(1.2), Type: api.DrillEventDetected}, {At: at(3), Type: api.DrillEventFirstReplacement}, {At: at(3), Type: api.DrillEventRecovered},
			{At: at(10), Type: api.DrillEventRestored}, {At: at(11), Type: api.DrillEventFailedBack}}}
	spec := api.DrillSpec{Kind: api.DrillOutage, Duration: "10s"}
	ch := buildChart(wideChart, st, spec, t0, at(12))
	if ch.Empty {
		t.Fatal("want a chart from 3 samples; got an empty one")
	}
	// 12 s over 732 units: x(0.1) = 52 + 0.1/12*732 = 58.1; 4 ready is the top of the plot.
	if !strings.HasPrefix(ch.Ready, "M58.1 46 L") || !strings.HasSuffix(ch.Ready, "L784 46") {
		t.Errorf("want the ready line to start at the first sample, at the top, and hold to the end of the axis; got %s", ch.Ready)
	}
	if n := strings.Count(ch.Ready, "L"); n != 5 {
		t.Errorf("want a step line: 3 samples, 2 steps and the tail make 5 segments; got %d in %s", n, ch.Ready)
	}
	if ch.Fault == nil || ch.Fault.X != 52 || ch.Fault.W != 610 {
		t.Errorf("want the fault shaded from 0 to 10 s of 12 (x 52, width 610); got %+v", ch.Fault)
	}
	if len(ch.XTicks) != 7 || ch.XTicks[1].Label != "2s" || len(ch.YTicks) != 5 || ch.YTicks[4].Label != "4" {
		t.Errorf("want x ticks every 2 s (0–12) and y ticks 0–4; got %+v and %+v", ch.XTicks, ch.YTicks)
	}
	var labels []string
	rows := map[float64]bool{}
	for _, m := range ch.Marks {
		labels = append(labels, m.Label)
		rows[m.LabelY] = true
	}
	if got := strings.Join(labels, " | "); got != "detected | first replacement, recovered (RTO) | fault lifted | failed back" {
		t.Errorf("want the milestones after the start, those at one moment sharing a label; got %s", got)
	}
	if len(rows) < 2 {
		t.Errorf("want labels too close to fit on one row spread over rows; got rows %v", rows)
	}
	for _, want := range []string{"4 of 4 desired replicas ready at +0.1s", "fewest ready 2 of 4 at +1.5s", "all 4 ready again at +3.0s", "fault lasted from 0s to +10.0s"} {
		if !strings.Contains(ch.Summary, want) {
			t.Errorf("want the chart's summary to say %q; got %q", want, ch.Summary)
		}
	}
	if empty := buildChart(wideChart, api.DrillStatus{}, spec, t0, t0); !empty.Empty {
		t.Errorf("want no chart without samples")
	}
}

// TestNarrowRecoveryChart lays the same drill out for a phone: fewer
// time ticks, and milestone labels that stay inside the view box and do
// not run into each other on a row.
func TestNarrowRecoveryChart(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ended := at(10)
	st := api.DrillStatus{StartedAt: &t0, EndedAt: &ended,
		Samples: []api.DrillSample{{At: at(0.1), Desired: 4, Ready: 4}, {At: at(1.5), Desired: 4, Ready: 2, Unavailable: 2}, {At: at(3), Desired: 4, Ready: 4}},
		Timeline: []api.DrillEvent{{At: at(0), Type: api.DrillEventStarted}, {At: at(1.2), Type: api.DrillEventDetected},
			{At: at(2.4), Type: api.DrillEventFirstReplacement}, {At: at(3), Type: api.DrillEventRecovered},
			{At: at(10), Type: api.DrillEventRestored}, {At: at(11), Type: api.DrillEventFailedBack}}}
	ch := buildChart(narrowChart, st, api.DrillSpec{Kind: api.DrillOutage, Duration: "10s"}, t0, at(12))
	if ch.Geom != "narrow" || ch.W != narrowChart.W || ch.PlotRight != narrowChart.W-narrowChart.R {
		t.Fatalf("want the narrow geometry; got %s %vx%v, plot to %v", ch.Geom, ch.W, ch.H, ch.PlotRight)
	}
	if len(ch.XTicks) > narrowChart.XTicks+1 {
		t.Errorf("want at most %d time ticks on a phone; got %+v", narrowChart.XTicks+1, ch.XTicks)
	}
	type span struct{ from, to float64 }
	rows := map[float64][]span{}
	for _, m := range ch.Marks {
		w := narrowChart.CharW * float64(len([]rune(m.Label)))
		from := map[string]float64{"start": m.X, "middle": m.X - w/2, "end": m.X - w}[m.Anchor]
		if from < 0 || from+w > ch.W {
			t.Errorf("want the label %q inside the chart (0–%v); it spans %.0f–%.0f", m.Label, ch.W, from, from+w)
		}
		if m.LabelY >= ch.PlotT-5 {
			t.Errorf("want the label %q above the plot (top %v); its baseline is at %v", m.Label, ch.PlotT, m.LabelY)
		}
		for _, o := range rows[m.LabelY] {
			if from < o.to && o.from < from+w {
				t.Errorf("want the labels on row %v apart; %q (%.0f–%.0f) runs into one at %.0f–%.0f", m.LabelY, m.Label, from, from+w, o.from, o.to)
			}
		}
		rows[m.LabelY] = append(rows[m.LabelY], span{from, from + w})
	}
	if len(ch.Marks) != 5 {
		t.Errorf("want 5 milestones marked; got %+v", ch.Marks)
	}
}

func TestChartText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got, want string
	}{
		{offsetText(1600 * time.Millisecond), "+1.6s"},
		{offsetText(-200 * time.Millisecond), "−0.2s"},
		{offsetText(-20 * time.Millisecond), "0.0s"},
		{offsetText(125 * time.Second), "+2m05s"},
		{axisSeconds(45), "45s"},
		{axisSeconds(120), "2m"},
		{axisSeconds(90), "1m30s"},
	} {
		if tc.got != tc.want {
			t.Errorf("want %q; got %q", tc.want, tc.got)
		}
	}
	for _, tc := range []struct {
		span float64
		n    int
		want float64
	}{{12, 8, 2}, {4, 5, 1}, {95, 8, 20}, {3600, 8, 500}, {0.5, 8, 1}} {
		if got := niceStep(tc.span, tc.n); got != tc.want {
			t.Errorf("niceStep(%v, %d): want %v; got %v", tc.span, tc.n, tc.want, got)
		}
	}
}
