package web

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// The requests chart of a drill with a probe: the success ratio of the
// probe's requests over time, one line per entry point, on the same time
// axis as the recovery chart (the fault's span shaded), told in words
// and in a table as well.

// ratioChart is a requests chart ready for its template.
type ratioChart struct {
	Geom                                              string
	Empty                                             bool
	W, H                                              float64
	PlotL, PlotT, PlotW, PlotH, PlotBottom, PlotRight float64
	YLabelX, XLabelY, XTickEnd                        float64
	Fault                                             *chartBand
	XTicks, YTicks                                    []chartTick
	Series                                            []ratioSeries
	Summary                                           string
	Rows                                              []ratioRow
}

// ratioSeries is one entry point's line.
type ratioSeries struct {
	Name  string
	Class string // series-0 .. series-3
	Path  string
}

// ratioRow is one sample as the table lists it.
type ratioRow struct {
	Offset   string
	At       time.Time
	Through  string
	Requests int64
	Failed   int64
	Ratio    string
}

// ratioGeom is the requests chart's geometry: the recovery chart's with
// room for no milestone labels above the plot.
func ratioGeom(g chartGeom) chartGeom {
	g.T, g.H = 12, g.H-g.T+12
	if g.Name == "narrow" {
		g.L = 42
	} else {
		g.L = 56
	}
	return g
}

// buildRatioChart lays out a drill's probe samples; t0 and end as for
// buildChart (the baseline, before t0, is drawn from the left edge).
func buildRatioChart(g chartGeom, st api.DrillStatus, spec api.DrillSpec, t0, end time.Time) ratioChart {
	g = ratioGeom(g)
	plotL, plotT := g.L, g.T
	plotW, plotH := g.W-g.L-g.R, g.H-g.T-g.B
	ch := ratioChart{Geom: g.Name, W: g.W, H: g.H, PlotL: plotL, PlotT: plotT, PlotW: plotW, PlotH: plotH, PlotBottom: plotT + plotH, PlotRight: plotL + plotW,
		YLabelX: plotL - g.YLabelGap, XLabelY: plotT + plotH + g.XLabelGap, XTickEnd: plotT + plotH + g.TickLen}
	samples := st.ProbeSamples
	if len(samples) == 0 {
		ch.Empty = true
		return ch
	}
	start := t0
	for _, s := range samples {
		if s.At.After(end) {
			end = s.At
		}
		if s.At.Before(start) {
			start = s.At
		}
	}
	span := end.Sub(start).Seconds()
	if st.EndedAt == nil && st.StartedAt != nil {
		span = math.Max(span, t0.Add(spec.DurationOrDefault()).Sub(start).Seconds())
	}
	span = math.Max(span, 1)
	x := func(t time.Time) float64 {
		return plotL + math.Max(0, math.Min(1, t.Sub(start).Seconds()/span))*plotW
	}
	y := func(r float64) float64 { return plotT + plotH - r*plotH }
	var names []string
	for _, s := range samples {
		if !slices.Contains(names, s.Through) {
			names = append(names, s.Through)
		}
	}
	for i, n := range names {
		var b strings.Builder
		for _, s := range samples {
			if s.Through != n {
				continue
			}
			if b.Len() == 0 {
				b.WriteString("M")
			} else {
				b.WriteString(" L")
			}
			b.WriteString(coord(x(s.At)) + " " + coord(y(s.SuccessRatio)))
		}
		ch.Series = append(ch.Series, ratioSeries{Name: n, Class: fmt.Sprintf("series-%d", i%4), Path: b.String()})
	}
	if st.StartedAt != nil {
		faultEnd := t0.Add(spec.DurationOrDefault())
		if st.EndedAt != nil {
			faultEnd = *st.EndedAt
		}
		x0, x1 := x(t0), x(faultEnd)
		ch.Fault = &chartBand{X: x0, W: math.Max(1, x1-x0)}
	}
	// The time axis counts from the fault, as the recovery chart's does.
	xStep := niceStep(span, g.XTicks)
	first := math.Ceil(start.Sub(t0).Seconds()/xStep) * xStep
	for v := first; v <= end.Sub(t0).Seconds()+1e-9 && v-start.Sub(t0).Seconds() <= span+1e-9; v += xStep {
		label := axisSeconds(math.Abs(v))
		if v < 0 {
			label = "−" + label
		}
		ch.XTicks = append(ch.XTicks, chartTick{Pos: x(t0.Add(time.Duration(v * float64(time.Second)))), Label: label})
	}
	for _, v := range []float64{0, 0.25, 0.5, 0.75, 1} {
		ch.YTicks = append(ch.YTicks, chartTick{Pos: y(v), Label: fmt.Sprintf("%d%%", int(v*100))})
	}
	for _, s := range samples {
		ch.Rows = append(ch.Rows, ratioRow{Offset: offsetText(s.At.Sub(t0)), At: s.At, Through: s.Through, Requests: s.Requests, Failed: s.Failed,
			Ratio: fmt.Sprintf("%.2f%%", 100*s.SuccessRatio)})
	}
	ch.Summary = ratioSummary(samples, names, t0)
	return ch
}

// ratioSummary tells the requests chart in words, per entry point: the
// lowest success ratio and when, and the failed requests in all.
func ratioSummary(samples []api.DrillProbeSample, names []string, t0 time.Time) string {
	var parts []string
	for _, n := range names {
		var low *api.DrillProbeSample
		var reqs, failed int64
		for i, s := range samples {
			if s.Through != n {
				continue
			}
			reqs, failed = reqs+s.Requests, failed+s.Failed
			if low == nil || s.SuccessRatio < low.SuccessRatio {
				low = &samples[i]
			}
		}
		p := fmt.Sprintf("through %s, %d of %d requests failed", n, failed, reqs)
		if low != nil && low.SuccessRatio < 1 {
			p += fmt.Sprintf(", lowest success %.2f%% at %s", 100*low.SuccessRatio, offsetText(low.At.Sub(t0)))
		} else {
			p += ", every stretch 100% successful"
		}
		parts = append(parts, p)
	}
	return "Success ratio of the probe's requests: " + strings.Join(parts, "; ") + "."
}
