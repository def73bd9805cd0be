package web

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/atollhq/atoll/api"
)

// RTO trends on the drills page: for each kind of drill on each target
// ("outage of region ap-south"), the RTO of its past completed drills,
// oldest first, as a small SVG line drawn on the server (no script; the
// stylesheet colours it) and told in words and figures beside it. Drills
// that did not recover are marked at the top of the line; drills that
// affected nothing, were aborted or broke have no RTO to show.

// Sizes of a trend's sparkline, in SVG user units.
const (
	sparkW, sparkH, sparkPad = 140.0, 30.0, 4.0
	// trendPoints is how many past drills a trend shows.
	trendPoints = 12
	// maxTrends is how many targets the page shows trends for, the most
	// recently drilled first.
	maxTrends = 10
)

// rtoTrend is one kind of drill on one target over its past drills.
type rtoTrend struct {
	Kind, Target       string
	Points             []trendPoint // oldest first
	Line               string       // SVG path through the points that recovered
	W, H               float64
	Latest, Best, Last string // Last: the latest drill's name
	Worst              string
	Count              int
	Text               string // the trend in words, for screen readers and the SVG's title
}

// trendPoint is one drill on a trend.
type trendPoint struct {
	Name   string
	RTO    string
	Passed bool
	Missed bool // did not recover: drawn at the top
	X, Y   float64
}

// rtoTrends builds the trends from the drills, newest first.
func rtoTrends(drills []*drillSummary) []rtoTrend {
	type key struct{ kind, target string }
	groups := map[key][]*drillSummary{}
	var order []key
	for _, d := range drills {
		if d.Phase != api.DrillCompleted || !d.HasReport || d.NoRTO {
			continue
		}
		k := key{d.Kind, d.Target}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		if len(groups[k]) < trendPoints {
			groups[k] = append(groups[k], d)
		}
	}
	out := make([]rtoTrend, 0, min(len(order), maxTrends))
	for _, k := range order[:min(len(order), maxTrends)] {
		ds := slices.Clone(groups[k])
		slices.Reverse(ds) // oldest first
		out = append(out, newTrend(k.kind, k.target, ds))
	}
	return out
}

// newTrend lays out one trend; ds are its drills, oldest first.
func newTrend(kind, target string, ds []*drillSummary) rtoTrend {
	t := rtoTrend{Kind: kind, Target: target, W: sparkW, H: sparkH, Count: len(ds), Best: "—", Worst: "—"}
	top := 0.0
	best, worst := -1.0, -1.0
	for _, d := range ds {
		if d.RTOSeconds >= 0 {
			top = max(top, d.RTOSeconds)
			if best < 0 || d.RTOSeconds < best {
				best = d.RTOSeconds
			}
			worst = max(worst, d.RTOSeconds)
		}
	}
	top = max(top, 0.001)
	step := 0.0
	if len(ds) > 1 {
		step = (sparkW - 2*sparkPad) / float64(len(ds)-1)
	}
	var line strings.Builder
	var words []string
	for i, d := range ds {
		p := trendPoint{Name: d.Name, RTO: d.RTO, Passed: d.Passed, X: sparkPad + float64(i)*step}
		if len(ds) == 1 {
			p.X = sparkW / 2
		}
		if d.RTOSeconds < 0 {
			p.Missed, p.Y, p.RTO = true, sparkPad, "not recovered"
		} else {
			p.Y = sparkH - sparkPad - d.RTOSeconds/top*(sparkH-2*sparkPad)
			if line.Len() == 0 {
				line.WriteString("M")
			} else {
				line.WriteString(" L")
			}
			line.WriteString(coord(p.X) + " " + coord(p.Y))
		}
		p.X, p.Y = math.Round(p.X*10)/10, math.Round(p.Y*10)/10
		words = append(words, p.RTO)
		t.Points = append(t.Points, p)
	}
	t.Line = line.String()
	last := ds[len(ds)-1]
	t.Last, t.Latest = last.Name, cmp.Or(t.Points[len(t.Points)-1].RTO, "—")
	if best >= 0 {
		t.Best, t.Worst = api.SecondsText(&best), api.SecondsText(&worst)
	}
	t.Text = fmt.Sprintf("RTO of the last %s, oldest first: %s", plural(len(ds), kind+" drill"), strings.Join(words, ", "))
	return t
}
