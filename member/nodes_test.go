package member

import (
	"slices"
	"testing"

	"github.com/atollhq/atoll/protocol"
)

func TestReplicasChanged(t *testing.T) {
	t.Parallel()
	before := map[string]protocol.ReplicaState{
		"a-1": {ID: "a-1", Workload: "a", Phase: "Running", Ready: true},
		"b-1": {ID: "b-1", Workload: "b", Phase: "Running"},
		"c-1": {ID: "c-1", Workload: "c", Phase: "Running"},
	}
	now := []protocol.ReplicaState{
		{ID: "a-1", Workload: "a", Phase: "Running", Ready: true}, // same
		{ID: "b-1", Workload: "b", Phase: "Running", Ready: true}, // became ready
		{ID: "d-1", Workload: "d", Phase: "Pending"},              // new
	} // c-1 went
	got := replicasChanged(before, now)
	slices.Sort(got)
	if !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Errorf("want b, c and d changed; got %v", got)
	}
}
