package controller

import (
	"testing"

	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

func TestListReplicasAndNodes(t *testing.T) {
	bindings := []protocol.Binding{
		{Replica: "web-a", Workload: "web", Node: "n1"},
		{Replica: "web-b", Workload: "web", Node: "n2"},
		{Replica: "api-a", Workload: "api", Node: "n1"},
		{Replica: "api-b", Workload: "api", Node: "gone"},
	}
	nodes := map[string]NodeView{
		"n1": {Record: state.NodeRecord{Name: "n1", Zone: "z1"}, Ready: true, LimitsEnforced: true, Replicas: map[string]protocol.ReplicaState{
			"web-a": {ID: "web-a", Workload: "web", Phase: runtime.PhaseRunning, Ready: true},
			"api-a": {ID: "api-a", Workload: "api", Phase: runtime.PhaseBackoff, Restarts: 3, Reason: runtime.ReasonExited, LastError: "exited with code 1"},
		}},
		"n2": {Record: state.NodeRecord{Name: "n2"}, Lost: true, Replicas: map[string]protocol.ReplicaState{
			"web-b": {ID: "web-b", Workload: "web", Phase: runtime.PhaseRunning, Ready: true},
		}},
	}
	cases := []struct {
		name  string
		q     protocol.ReplicasQuery
		want  []string // replica/state in order
		total int
	}{
		{"all", protocol.ReplicasQuery{}, []string{"api-a/BackOff", "api-b/Unknown", "web-b/Unknown", "web-a/Ready"}, 4},
		{"one workload", protocol.ReplicasQuery{Workload: "web"}, []string{"web-b/Unknown", "web-a/Ready"}, 2},
		{"one node", protocol.ReplicasQuery{Node: "n1"}, []string{"api-a/BackOff", "web-a/Ready"}, 2},
		{"limited", protocol.ReplicasQuery{Limit: 1}, []string{"api-a/BackOff"}, 4},
		{"nothing", protocol.ReplicasQuery{Workload: "none"}, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := ListReplicas(bindings, nodes, c.q)
			var got []string
			for _, r := range l.Replicas {
				got = append(got, r.Replica+"/"+r.State)
			}
			if len(got) != len(c.want) || l.Total != c.total {
				t.Fatalf("got %v (total %d), want %v (total %d)", got, l.Total, c.want, c.total)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
			for _, r := range l.Replicas {
				if r.Workload == "" {
					t.Fatalf("%s has no workload", r.Replica)
				}
			}
		})
	}
	if l := ListReplicas(bindings, nodes, protocol.ReplicasQuery{Node: "n1"}); l.Replicas[0].Message != "exited with code 1" || l.Replicas[0].Restarts != 3 {
		t.Errorf("api-a: %+v, want its last error and restarts", l.Replicas[0])
	}
	ns := ListNodes(bindings, nodes)
	if len(ns) != 2 || ns[0].Name != "n1" || ns[0].Replicas != 2 || ns[0].ReplicasReady != 1 || !ns[0].Ready || ns[0].Zone != "z1" || !ns[0].LimitsEnforced {
		t.Errorf("nodes %+v", ns)
	}
	if ns[1].Name != "n2" || !ns[1].Lost || ns[1].ReplicasReady != 0 || ns[1].Replicas != 1 {
		t.Errorf("lost node %+v", ns[1])
	}
}
