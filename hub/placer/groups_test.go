package placer

import (
	"fmt"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestFailoverGroups: the urgent workloads (replicas on a lost cluster)
// come first, in chunks, in name order; the rest after, in one group; a
// pass with nothing to decide still has one (empty) group, which
// delivers.
func TestFailoverGroups(t *testing.T) {
	urgent := map[string]bool{"b": true, "d": true, "e": true}
	for _, tc := range []struct {
		names []string
		chunk int
		want  string
	}{
		{[]string{"a", "b", "c", "d", "e"}, 2, "[[b d] [e] [a c]]"},
		{[]string{"a", "b", "c", "d", "e"}, 5, "[[b d e] [a c]]"},
		{[]string{"b", "d"}, 1, "[[b] [d]]"},
		{[]string{"a", "c"}, 2, "[[a c]]"},
		{nil, 2, "[[]]"},
	} {
		if got := fmt.Sprint(failoverGroups(tc.names, urgent, tc.chunk)); got != tc.want {
			t.Errorf("failoverGroups(%v, chunk %d) = %s; want %s", tc.names, tc.chunk, got, tc.want)
		}
	}
	// A chunk is capped: appending to it does not write into the next.
	g := failoverGroups([]string{"b", "d", "e"}, urgent, 1)
	_ = append(g[0], "x")
	if g[1][0] != "d" {
		t.Errorf("appending to the first chunk wrote into the second: %v", g)
	}
}

// TestMayFailBack: a failed-over workload is decided by the clock only
// while a cluster it failed over from is Ready.
func TestMayFailBack(t *testing.T) {
	ready := map[string]bool{"a": true}
	for _, tc := range []struct {
		ps   *api.PlacementStatus
		want bool
	}{
		{nil, false},
		{&api.PlacementStatus{}, false},
		{&api.PlacementStatus{FailedOverFrom: map[string]int32{"b": 2}}, false},
		{&api.PlacementStatus{FailedOverFrom: map[string]int32{"b": 2, "a": 1}}, true},
	} {
		if got := mayFailBack(tc.ps, ready); got != tc.want {
			t.Errorf("mayFailBack(%+v) = %v; want %v", tc.ps, got, tc.want)
		}
	}
}
