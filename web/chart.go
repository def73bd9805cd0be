package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/atollhq/atoll/api"
)

// The recovery chart of a drill: the affected workloads' desired and
// ready replicas over time, drawn on the server as SVG from the drill's
// samples (no script, so it redraws with the page's live regions), with
// the fault's span and the drill's milestones marked, and the same story
// told in words for screen readers and in a table of the samples.

// chartGeom is a chart's geometry, in SVG user units (the chart scales
// to its card). The console draws each chart twice, wide and narrow, and
// the stylesheet shows the one that suits the card's width: on a phone
// the wide one would shrink its labels to a few pixels.
type chartGeom struct {
	Name                          string  // "wide" or "narrow": the SVG's class
	W, H                          float64 // the view box
	L, R, T, B                    float64 // the plot's margins
	XTicks                        int     // at most this many steps on the time axis
	MarkRows                      int     // rows of milestone labels above the plot
	MarkRowH, MarkTop1, CharW     float64 // a row's height, the first row's baseline, a label character's width
	XLabelGap, YLabelGap, TickLen float64
}

var (
	// wideChart is the desktop's chart.
	wideChart = chartGeom{Name: "wide", W: 800, H: 260, L: 52, R: 16, T: 46, B: 34, XTicks: 8,
		MarkRows: 3, MarkRowH: 13, MarkTop1: 12, CharW: 7, XLabelGap: 22, YLabelGap: 8, TickLen: 5}
	// narrowChart is a phone's: about one user unit a CSS pixel at 390
	// px wide, so that its labels are drawn at their CSS size.
	narrowChart = chartGeom{Name: "narrow", W: 340, H: 280, L: 30, R: 12, T: 78, B: 30, XTicks: 4,
		MarkRows: 4, MarkRowH: 16, MarkTop1: 13, CharW: 7, XLabelGap: 20, YLabelGap: 6, TickLen: 4}
)

// recoveryChart is a chart ready for its template.
type recoveryChart struct {
	Geom                                              string // wideChart.Name or narrowChart.Name
	Empty                                             bool
	W, H                                              float64
	PlotL, PlotT, PlotW, PlotH, PlotBottom, PlotRight float64
	Desired                                           string // SVG path: desired replicas, a step line
	Ready                                             string // SVG path: ready replicas, a step line
	Gap                                               string // SVG path: between desired and ready (unavailable)
	Fault                                             *chartBand
	XTicks                                            []chartTick
	YTicks                                            []chartTick
	Marks                                             []chartMark
	// Where axis labels, tick ends and milestone lines start.
	YLabelX, XLabelY, XTickEnd, MarkTop float64
	Summary                             string
	Samples                             []sampleRow
}

type chartBand struct{ X, W float64 }

type chartTick struct {
	Pos   float64
	Label string
}

// chartMark is a milestone: a vertical line and a label above the plot.
type chartMark struct {
	X, LabelY float64
	Label     string
	Class     string
	Anchor    string
}

// sampleRow is one sample as the chart's table lists it.
type sampleRow struct {
	Offset      string
	At          time.Time
	Desired     int32
	Ready       int32
	Unavailable int32
}

// chartMilestones are the timeline entries the chart marks, with their
// labels.
var chartMilestones = map[string]string{
	api.DrillEventDetected:         "detected",
	api.DrillEventFirstReplacement: "first replacement",
	api.DrillEventRecovered:        "recovered (RTO)",
	api.DrillEventRestored:         "fault lifted",
	api.DrillEventFailedBack:       "failed back",
}

// buildChart lays out a drill's samples. t0 is when the fault was in
// place (or, before that, when the drill was created); end is where the
// time axis stops: now while the drill runs, its last moment once it
// ended. The planned fault span is shaded.
func buildChart(g chartGeom, st api.DrillStatus, spec api.DrillSpec, t0, end time.Time) recoveryChart {
	plotL, plotT := g.L, g.T
	plotW, plotH := g.W-g.L-g.R, g.H-g.T-g.B
	ch := recoveryChart{Geom: g.Name, W: g.W, H: g.H, PlotL: plotL, PlotT: plotT, PlotW: plotW, PlotH: plotH, PlotBottom: plotT + plotH, PlotRight: plotL + plotW,
		YLabelX: plotL - g.YLabelGap, XLabelY: plotT + plotH + g.XLabelGap, XTickEnd: plotT + plotH + g.TickLen, MarkTop: plotT - 5}
	samples := st.Samples
	if len(samples) == 0 {
		ch.Empty = true
		return ch
	}
	for _, s := range samples {
		if s.At.After(end) {
			end = s.At
		}
	}
	span := end.Sub(t0).Seconds()
	if st.EndedAt == nil && st.StartedAt != nil {
		span = math.Max(span, spec.DurationOrDefault().Seconds()) // keep the scale while the fault lasts
	}
	span = math.Max(span, 1)
	var maxY int32 = 1
	for _, s := range samples {
		maxY = max(maxY, s.Desired, s.Ready)
	}
	yStep := niceStep(float64(maxY), 5)
	top := math.Ceil(float64(maxY)/yStep) * yStep
	x := func(t time.Time) float64 {
		return plotL + math.Max(0, math.Min(1, t.Sub(t0).Seconds()/span))*plotW
	}
	y := func(n int32) float64 { return plotT + plotH - float64(n)/top*plotH }

	// Step lines: a sample holds until the next one, the last one until
	// the end of the axis.
	type pt struct{ x, y float64 }
	steps := func(val func(api.DrillSample) int32) []pt {
		var pts []pt
		for i, s := range samples {
			px, py := x(s.At), y(val(s))
			if i > 0 {
				pts = append(pts, pt{px, pts[len(pts)-1].y})
			}
			pts = append(pts, pt{px, py})
		}
		return append(pts, pt{x(end), pts[len(pts)-1].y})
	}
	path := func(pts []pt) string {
		var b strings.Builder
		for i, p := range pts {
			if i == 0 {
				b.WriteString("M")
			} else {
				b.WriteString(" L")
			}
			b.WriteString(coord(p.x) + " " + coord(p.y))
		}
		return b.String()
	}
	desired := steps(func(s api.DrillSample) int32 { return s.Desired })
	ready := steps(func(s api.DrillSample) int32 { return s.Ready })
	ch.Desired, ch.Ready = path(desired), path(ready)
	rev := make([]pt, len(ready))
	for i, p := range ready {
		rev[len(ready)-1-i] = p
	}
	ch.Gap = path(desired) + " L" + strings.TrimPrefix(path(rev), "M") + " Z"

	if st.StartedAt != nil {
		faultEnd := t0.Add(spec.DurationOrDefault())
		if st.EndedAt != nil {
			faultEnd = *st.EndedAt
		}
		x0, x1 := x(t0), x(faultEnd)
		ch.Fault = &chartBand{X: x0, W: math.Max(1, x1-x0)}
	}
	xStep := niceStep(span, g.XTicks)
	for v := 0.0; v <= span+1e-9; v += xStep {
		ch.XTicks = append(ch.XTicks, chartTick{Pos: plotL + v/span*plotW, Label: axisSeconds(v)})
	}
	for v := 0.0; v <= top+1e-9; v += yStep {
		ch.YTicks = append(ch.YTicks, chartTick{Pos: plotT + plotH - v/top*plotH, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	ch.Marks = layoutMarks(g, st.Timeline, t0, x)
	for _, s := range samples {
		ch.Samples = append(ch.Samples, sampleRow{Offset: offsetText(s.At.Sub(t0)), At: s.At, Desired: s.Desired, Ready: s.Ready, Unavailable: s.Unavailable})
	}
	ch.Summary = chartSummary(samples, t0, st)
	return ch
}

// layoutMarks places the milestones of a timeline: milestones at the same
// moment share one line and one label, and each label takes the first row
// where it does not run into the label before it.
func layoutMarks(g chartGeom, timeline []api.DrillEvent, t0 time.Time, x func(time.Time) float64) []chartMark {
	var marks []chartMark
	for _, e := range timeline {
		label, ok := chartMilestones[e.Type]
		if !ok || e.At.Before(t0) {
			continue
		}
		px := x(e.At)
		if n := len(marks); n > 0 && math.Abs(marks[n-1].X-px) < 2 {
			marks[n-1].Label += ", " + label
			continue
		}
		marks = append(marks, chartMark{X: px, Label: label, Class: timelineClass(e.Type)})
	}
	rowEnd := make([]float64, g.MarkRows)
	for i := range rowEnd {
		rowEnd[i] = math.Inf(-1)
	}
	for i := range marks {
		m := &marks[i]
		w := g.CharW * float64(utf8.RuneCountInString(m.Label)) // at the labels' size
		from := m.X - w/2
		m.Anchor = "middle"
		switch {
		case m.X-w/2 < 4:
			m.Anchor, from = "start", m.X
		case m.X+w/2 > g.W-4:
			m.Anchor, from = "end", m.X-w
		}
		row := 0
		for r := range rowEnd {
			if from > rowEnd[r]+8 {
				row = r
				break
			}
			if rowEnd[r] < rowEnd[row] {
				row = r // none is free: the row that ends first
			}
		}
		rowEnd[row] = from + w
		m.LabelY = g.MarkTop1 + float64(row)*g.MarkRowH
	}
	return marks
}

// chartSummary tells the chart in words: where ready replicas started,
// their lowest point, when they were whole again, and the fault's span.
func chartSummary(samples []api.DrillSample, t0 time.Time, st api.DrillStatus) string {
	first := samples[0]
	low := first
	for _, s := range samples {
		if s.Desired-s.Ready > low.Desired-low.Ready {
			low = s
		}
	}
	parts := []string{fmt.Sprintf("%d of %d desired replicas ready at %s", first.Ready, first.Desired, offsetText(first.At.Sub(t0)))}
	if low.Desired-low.Ready > first.Desired-first.Ready {
		parts = append(parts, fmt.Sprintf("fewest ready %d of %d at %s", low.Ready, low.Desired, offsetText(low.At.Sub(t0))))
	}
	if low.Ready < low.Desired {
		for _, s := range samples {
			if s.At.After(low.At) && s.Ready >= s.Desired {
				parts = append(parts, fmt.Sprintf("all %d ready again at %s", s.Desired, offsetText(s.At.Sub(t0))))
				break
			}
		}
	}
	last := samples[len(samples)-1]
	parts = append(parts, fmt.Sprintf("latest %d of %d at %s", last.Ready, last.Desired, offsetText(last.At.Sub(t0))))
	s := "Ready replicas of the affected workloads: " + strings.Join(parts, "; ") + "."
	if st.StartedAt != nil && st.EndedAt != nil {
		s += fmt.Sprintf(" The fault lasted from 0s to %s.", offsetText(st.EndedAt.Sub(*st.StartedAt)))
	}
	return s
}

// niceStep is a round step (1, 2 or 5 times a power of ten) that cuts
// span into at most n parts.
func niceStep(span float64, n int) float64 {
	raw := span / float64(n)
	if raw <= 1 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func coord(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) }

// axisSeconds labels the time axis: 0s, 15s, 1m30s.
func axisSeconds(s float64) string {
	d := time.Duration(math.Round(s)) * time.Second
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d.Minutes())) + "m"
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int((d%time.Minute)/time.Second))
}

// offsetText is a time from the fault's start: +1.6s, −0.2s, +2m05s.
func offsetText(d time.Duration) string {
	if d.Abs() < 50*time.Millisecond {
		return "0.0s"
	}
	sign := "+"
	if d < 0 {
		sign, d = "−", -d
	}
	if d < time.Minute {
		return sign + strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	m := int(d / time.Minute)
	return fmt.Sprintf("%s%dm%02ds", sign, m, int((d%time.Minute)/time.Second))
}
