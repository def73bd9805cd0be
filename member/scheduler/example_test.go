package scheduler_test

import (
	"fmt"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/scheduler"
)

func Example() {
	const gib = 1 << 30
	node := func(name, zone string, memory int64) scheduler.Node {
		return scheduler.Node{Name: name, Zone: zone, Ready: true, Allocatable: scheduler.Resources{MilliCPU: 4000, Memory: memory}}
	}
	snap := scheduler.Snapshot{
		Nodes: []scheduler.Node{node("a1", "a", 8*gib), node("a2", "a", 2*gib), node("b1", "b", 8*gib), node("b2", "b", 2*gib), node("c1", "c", 8*gib)},
		Bindings: []scheduler.Binding{
			{Replica: "db-0", Workload: "db", Node: "a1", Requests: scheduler.Resources{MilliCPU: 1000, Memory: 4 * gib}},
		},
	}
	snap.Nodes[2].Taints = []api.Taint{{Key: "dedicated", Value: "batch", Effect: "NoSchedule"}}
	snap.Nodes[4].Taints = []api.Taint{{Key: "dedicated", Value: "batch", Effect: "NoExecute"}}

	s := scheduler.New(snap)
	plan := s.Schedule(scheduler.Request{
		Workload: "web",
		Policy:   scheduler.Policy{ZoneSpread: true},
		Replicas: []scheduler.Replica{
			{ID: "web-0", Requests: scheduler.Resources{MilliCPU: 500, Memory: 3 * gib}},
			{ID: "web-1", Requests: scheduler.Resources{MilliCPU: 500, Memory: 3 * gib}},
		},
	})
	for _, b := range plan.Bindings {
		fmt.Println(b.Replica, "->", b.Node)
	}
	for _, p := range plan.Pending {
		fmt.Println(p.Replica, "pending:", p.Reason)
	}
	// Output:
	// web-0 -> a1
	// web-1 pending: 0/5 nodes: 3 insufficient memory, 2 tainted (no toleration)
}
