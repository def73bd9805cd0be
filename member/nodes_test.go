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

func TestWithFence(t *testing.T) {
	status := []protocol.WorkloadStatus{
		{Workload: "db", Desired: 1},
		{Workload: "web", Desired: 3},
		{Workload: "cache", Desired: 2, Problems: []protocol.ReplicaProblem{{Reason: protocol.ProblemFenced, Replicas: 2, Message: "killed"}}},
	}
	if got := withFence(status, nil); &got[0] != &status[0] {
		t.Error("nothing held: the status should be passed as it is")
	}
	got := withFence(status, []string{"db", "cache"})
	if len(got[0].Problems) != 1 || got[0].Problems[0].Reason != protocol.ProblemFenced || got[0].Problems[0].Replicas != 1 || got[0].Problems[0].Message == "" {
		t.Errorf("db: %+v, want a Fenced problem", got[0].Problems)
	}
	if len(got[1].Problems) != 0 {
		t.Errorf("web is not held: %+v", got[1].Problems)
	}
	if len(got[2].Problems) != 1 || got[2].Problems[0].Message != "killed" {
		t.Errorf("cache already had its Fenced problem: %+v", got[2].Problems)
	}
	if len(status[0].Problems) != 0 {
		t.Error("withFence changed the shared status")
	}
}
