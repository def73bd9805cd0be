package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// benchFleet is 100 clusters over 5 regions of 2 zones and 2 providers:
// 5% tainted for maintenance, 2% cordoned, 2% Suspect, 1% Unreachable,
// room from none to plenty (a fifth unknown).
func benchFleet(rng *rand.Rand) []Cluster {
	regions := []string{"eu-west", "eu-north", "us-east", "us-west", "ap-south"}
	cs := make([]Cluster, 100)
	for i := range cs {
		r := regions[i%len(regions)]
		c := Cluster{
			Name:   fmt.Sprintf("%s-%02d", r, i),
			Labels: map[string]string{"region": r, "zone": fmt.Sprintf("%s-%c", r, 'a'+i%2), "provider": []string{"aws", "gcp"}[i%2]},
			Health: api.HealthReady,
			Room:   int32(rng.IntN(60)),
		}
		if rng.IntN(5) == 0 {
			c.Room = Unbounded
		}
		switch n := rng.IntN(100); {
		case n < 5:
			c.Taints = []api.Taint{{Key: "maintenance", Value: "true", Effect: "NoSchedule"}}
		case n < 7:
			c.Unschedulable = true
		case n < 9:
			c.Health = api.HealthSuspect
		case n < 10:
			c.Health = api.HealthUnreachable
		}
		cs[i] = c
	}
	return cs
}

// benchWorkloads is 10,000 decisions with varied policies: selectors by
// region, static weights by region or dynamic ones, preferences, spread
// by region (min 2-3 groups, some max) or zone, tolerations, per-cluster
// bounds, a tenth Duplicated. A third are fresh, a third scale an
// existing placement, a third re-decide an existing one unchanged.
func benchWorkloads(rng *rand.Rand, fleet []Cluster) []Input {
	regions := []string{"eu-west", "eu-north", "us-east", "us-west", "ap-south"}
	ins := make([]Input, 10000)
	for w := range ins {
		p := &api.PlacementPolicy{}
		if rng.IntN(3) == 0 {
			k := 2 + rng.IntN(2)
			p.ClusterSelector = &api.LabelSelector{MatchExpressions: []api.Requirement{{Key: "region", Operator: "In", Values: regions[:k]}}}
		}
		if rng.IntN(4) == 0 {
			p.ExcludeClusters = []string{fleet[rng.IntN(len(fleet))].Name}
		}
		if rng.IntN(3) == 0 {
			p.Tolerations = []api.Toleration{{Key: "maintenance", Operator: "Exists"}}
		}
		if rng.IntN(4) == 0 {
			p.Preferences = []api.ClusterPreference{{Selector: api.LabelSelector{MatchLabels: map[string]string{"region": regions[rng.IntN(5)]}}}}
		}
		switch rng.IntN(3) {
		case 1:
			p.Weights = &api.WeightPolicy{Type: "static"}
			for i, r := range regions {
				p.Weights.Static = append(p.Weights.Static, api.StaticWeight{LabelKey: "region", LabelValue: r, Weight: int32(1 + (i+w)%3)})
			}
		case 2:
			p.Weights = &api.WeightPolicy{Type: "dynamic"}
		}
		switch rng.IntN(4) {
		case 0, 1:
			p.Spread = []api.SpreadConstraint{{TopologyKey: "region", MinGroups: int32(2 + rng.IntN(2))}}
		case 2:
			p.Spread = []api.SpreadConstraint{{TopologyKey: "region", MinGroups: 2, MaxGroups: 3}, {TopologyKey: "zone", MinGroups: 3}}
		}
		if rng.IntN(4) == 0 {
			p.MinReplicasPerCluster = 2
		}
		if rng.IntN(4) == 0 {
			p.MaxReplicasPerCluster = 10
		}
		if rng.IntN(10) == 0 {
			p.ReplicaMode, p.Weights, p.MinReplicasPerCluster = ModeDuplicated, nil, 0
		}
		in := Input{Workload: fmt.Sprintf("w-%d", w), Replicas: int32(1 + rng.IntN(60)), Policy: p, Clusters: fleet}
		switch w % 3 {
		case 1: // scale an existing placement
			prev := in
			prev.Replicas = max(in.Replicas+int32(rng.IntN(11))-5, 0)
			in = apply(in, Decide(prev))
		case 2: // re-decide an existing placement
			in = apply(in, Decide(in))
		}
		ins[w] = in
	}
	return ins
}

// BenchmarkDecide times single decisions: 10,000 workloads over 100
// clusters, each op deciding all of them once, and reports the latency
// percentiles of one decision.
//
//	go test ./placement/ -run '^$' -bench BenchmarkDecide -benchtime 5x -count 3
func BenchmarkDecide(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 100))
	ins := benchWorkloads(rng, benchFleet(rng))
	lat := make([]time.Duration, 0, len(ins))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		lat = lat[:0]
		for i := range ins {
			start := time.Now()
			Decide(ins[i])
			lat = append(lat, time.Since(start))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.50), "p50-µs/decision")
	b.ReportMetric(pct(0.99), "p99-µs/decision")
	b.ReportMetric(pct(1), "max-µs/decision")
	b.ReportMetric(float64(len(ins))*float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
