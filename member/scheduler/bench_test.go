package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/atollhq/atoll/api"
)

// benchRegion is a region of 5,000 nodes of three sizes over three zones
// (some not ready, cordoned or tainted, half with SSDs), already holding
// 5,000 replicas of other workloads, and 20 workloads of 500 replicas
// with mixed requests, some with a node selector, a toleration or a
// preferred affinity.
func benchRegion(pol Policy) (Snapshot, []Request) {
	rng := rand.New(rand.NewPCG(1, 2))
	const gi = 1 << 30
	sizes := []Resources{{4000, 16 * gi}, {8000, 32 * gi}, {16000, 64 * gi}}
	var snap Snapshot
	for i := range 5000 {
		n := Node{
			Name:        fmt.Sprintf("node-%04d", i),
			Zone:        []string{"zone-a", "zone-b", "zone-c"}[i%3],
			Labels:      map[string]string{"disk": []string{"ssd", "hdd"}[rng.IntN(2)]},
			Ready:       rng.IntN(100) >= 2,
			Allocatable: sizes[rng.IntN(len(sizes))],
		}
		n.Unschedulable = rng.IntN(100) < 1
		if rng.IntN(100) < 5 {
			n.Taints = []api.Taint{{Key: "dedicated", Value: "batch", Effect: "NoSchedule"}}
		}
		snap.Nodes = append(snap.Nodes, n)
	}
	requests := []Resources{{100, gi / 8}, {250, gi / 4}, {500, gi / 2}, {1000, gi}, {2000, 4 * gi}}
	for i := range 5000 {
		snap.Bindings = append(snap.Bindings, Binding{
			Replica:  fmt.Sprintf("old-%d", i),
			Workload: fmt.Sprintf("old-%d", i%50),
			Node:     snap.Nodes[rng.IntN(len(snap.Nodes))].Name,
			Requests: requests[rng.IntN(len(requests))],
		})
	}
	var reqs []Request
	for w := range 20 {
		req := Request{Workload: fmt.Sprintf("web-%d", w), Policy: pol}
		var tmpl Replica
		switch w % 4 {
		case 1:
			tmpl.NodeSelector = map[string]string{"disk": "ssd"}
		case 2:
			tmpl.Tolerations = []api.Toleration{{Key: "dedicated", Operator: "Exists"}}
		case 3:
			tmpl.Preferred = []WeightedSelector{{Weight: 50, Selector: api.LabelSelector{MatchLabels: map[string]string{"disk": "ssd"}}}}
		}
		for k := range 500 {
			r := tmpl
			r.ID = fmt.Sprintf("%s-%d", req.Workload, k)
			r.Requests = requests[rng.IntN(len(requests))]
			req.Replicas = append(req.Replicas, r)
		}
		reqs = append(reqs, req)
	}
	return snap, reqs
}

// BenchmarkSchedule5000Nodes10000Replicas times New on the region plus
// the 20 Schedule calls that place its 10,000 replicas.
func BenchmarkSchedule5000Nodes10000Replicas(b *testing.B) {
	for _, bc := range []struct {
		name string
		pol  Policy
	}{
		{"spread+antiaffinity", Policy{ZoneSpread: true, AntiAffinity: true}},
		{"no-spread", Policy{}},
		{"binpack", Policy{Strategy: StrategyBinpack}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			snap, reqs := benchRegion(bc.pol)
			replicas := 0
			for _, r := range reqs {
				replicas += len(r.Replicas)
			}
			pending := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s := New(snap)
				pending = 0
				for _, r := range reqs {
					pending += len(s.Schedule(r).Pending)
				}
			}
			b.ReportMetric(float64(replicas)*float64(b.N)/b.Elapsed().Seconds(), "replicas/s")
			b.ReportMetric(float64(pending), "pending/op")
		})
	}
}
