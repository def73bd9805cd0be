package scheduler

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// formatReason renders filter counts for people:
// "0/5 nodes: 3 insufficient memory, 2 tainted (no toleration)", reasons
// sorted by count (most first), then by name.
func formatReason(nodes int, counts map[string]int) string {
	if nodes == 0 {
		return "0/0 nodes: the region has no nodes"
	}
	reasons := make([]string, 0, len(counts))
	for r, n := range counts {
		if n > 0 {
			reasons = append(reasons, r)
		}
	}
	slices.SortFunc(reasons, func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), strings.Compare(a, b))
	})
	var sb strings.Builder
	sb.WriteString("0/")
	sb.WriteString(strconv.Itoa(nodes))
	sb.WriteString(" nodes")
	for k, r := range reasons {
		if k == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Itoa(counts[r]))
		sb.WriteByte(' ')
		sb.WriteString(r)
	}
	return sb.String()
}
