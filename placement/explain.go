package placement

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/atollhq/atoll/api"
)

// note adds a line to the explanation.
func (d *decider) note(format string, args ...any) {
	d.explain = append(d.explain, fmt.Sprintf(format, args...))
}

// list renders "name value" for the members f accepts, in name order.
func (d *decider) list(f func(m *member) (string, bool)) string {
	var sb strings.Builder
	for i := range d.ms {
		v, ok := f(&d.ms[i])
		if !ok {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(d.ms[i].name)
		sb.WriteByte(' ')
		sb.WriteString(v)
	}
	if sb.Len() == 0 {
		return "none"
	}
	return sb.String()
}

// listIdx renders "name +n" for a map of member indexes, in name order.
func (d *decider) listIdx(m map[int]int32, sign string) string {
	parts := make([]string, 0, len(m))
	for i := range d.ms {
		if n, ok := m[i]; ok {
			parts = append(parts, d.ms[i].name+" "+sign+itoa(int(n)))
		}
	}
	return strings.Join(parts, ", ")
}

// explainWeights describes the eligible clusters and their weights.
func (d *decider) explainWeights(static, dynamic bool) {
	n, total := 0, 0
	for i := range d.ms {
		if d.ms[i].c != nil {
			total++
		}
		if d.ms[i].disp == eligible && d.ms[i].reason == "" {
			n++
		}
	}
	mode := ModeDivided
	if !d.divided {
		mode = ModeDuplicated
	}
	d.note("%s, %d replicas: %d/%d clusters eligible", mode, d.r, n, total)
	if !d.divided || n == 0 {
		return
	}
	weights := d.list(func(m *member) (string, bool) { return strconv.FormatInt(m.weight, 10), m.disp == eligible && m.hi > 0 })
	switch {
	case static:
		d.note("weights (static): %s", weights)
	case dynamic:
		d.note("weights (dynamic: what each cluster can hold, current + room; unknown room counts as the largest known): %s", weights)
	default:
		d.note("weights: equal")
	}
}

// decision assembles the answer.
func (d *decider) decision() Decision {
	out := Decision{Assignment: make(map[string]int32), Filtered: make(map[string]string), Evicted: make(map[string]string)}
	counts := make(map[string]int)
	total, filtered := 0, 0
	var placed, short, room int32
	atRoom, atMax, eligibleN := 0, 0, 0
	for i := range d.ms {
		m := &d.ms[i]
		if m.n > 0 {
			out.Assignment[m.name] = m.n
			placed += m.n
		}
		if m.disp == evicted {
			out.Evicted[m.name] = m.evictedBy
		}
		if m.c == nil {
			out.Filtered[m.name] = m.reason
			continue
		}
		total++
		if m.reason != "" {
			out.Filtered[m.name] = m.reason
			counts[m.category]++
			filtered++
		}
		if m.disp == eligible {
			eligibleN++
			room += m.hi - m.n
			if !d.divided {
				short += d.want() - m.n
			}
			if m.n >= m.hi {
				if d.max > 0 && m.hi == d.max {
					atMax++
				} else {
					atRoom++
				}
			}
		}
	}
	switch {
	case d.r == 0:
	case d.divided:
		out.Unplaced = max(d.r-placed, 0)
	case eligibleN == 0 && placed == 0:
		out.Unplaced = d.want()
	default:
		out.Unplaced = short
	}
	if out.Unplaced > 0 {
		var sb strings.Builder
		fmt.Fprintf(&sb, "%d %s unplaced: %d/%d clusters eligible", out.Unplaced, plural(out.Unplaced, "replica", "replicas"), total-filtered, total)
		switch {
		case total-filtered == 0 && filtered > 0:
			sb.WriteString(": " + formatCounts(counts))
		case filtered > 0:
			sb.WriteString(" (" + formatCounts(counts) + ")")
		}
		switch {
		case eligibleN == 0:
		case room == 0 && atMax > 0 && atRoom > 0:
			fmt.Fprintf(&sb, ", all full: %d at their room, %d at maxReplicasPerCluster %d", atRoom, atMax, d.max)
		case room == 0 && atMax > 0:
			fmt.Fprintf(&sb, ", all at maxReplicasPerCluster %d", d.max)
		case room == 0:
			sb.WriteString(", all full")
		default:
			fmt.Fprintf(&sb, ", room for %d more is held back by minReplicasPerCluster %d", room, d.min)
		}
		out.UnplacedReason = sb.String()
		d.note("%s", out.UnplacedReason)
	}
	d.note("result: %s", d.list(func(m *member) (string, bool) { return itoa(int(m.n)), m.n > 0 }))
	out.Explanation = d.explain

	placedCond := api.Condition{Type: ConditionPlaced, Status: "True", Reason: ReasonAllPlaced,
		Message: fmt.Sprintf("%d %s placed", placed, plural(placed, "replica", "replicas"))}
	if out.Unplaced > 0 {
		placedCond.Status, placedCond.Reason, placedCond.Message = "False", ReasonInsufficientCapacity, out.UnplacedReason
		if eligibleN == 0 {
			placedCond.Reason = ReasonNoEligibleClusters
		}
	}
	unsat := api.Condition{Type: ConditionUnsatisfiable, Status: "False", Reason: ReasonSatisfiable}
	switch {
	case d.matched == 0:
		unsat.Status, unsat.Reason = "True", ReasonNoMatchingClusters
		unsat.Message = fmt.Sprintf("the placement policy selects none of the %d clusters", total)
		if filtered > 0 {
			unsat.Message += ": " + formatCounts(counts)
		}
	case len(d.unsat) > 0:
		unsat.Status, unsat.Reason, unsat.Message = "True", ReasonSpreadUnsatisfiable, strings.Join(d.unsat, "; ")
	}
	out.Conditions = []api.Condition{placedCond, unsat}
	return out
}

// formatCounts renders filter counts for people, most first:
// "3 outside clusterSelector, 2 Unreachable".
func formatCounts(counts map[string]int) string {
	reasons := slices.Collect(maps.Keys(counts))
	slices.SortFunc(reasons, func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = itoa(counts[r]) + " " + r
	}
	return strings.Join(parts, ", ")
}

func plural(n int32, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func itoa(n int) string { return strconv.Itoa(n) }

// ftoa renders a quota with at most two decimals: "1.33", "0.67", "2".
func ftoa(f float64) string {
	s := strconv.FormatFloat(f, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
