package placement

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

// ready is a Ready cluster with room for n more (Unbounded for no limit)
// and labels as key, value pairs.
func ready(name string, room int32, labels ...string) Cluster {
	c := Cluster{Name: name, Health: api.HealthReady, Room: room, Labels: map[string]string{}}
	for i := 0; i+1 < len(labels); i += 2 {
		c.Labels[labels[i]] = labels[i+1]
	}
	return c
}

func with(c Cluster, f func(*Cluster)) Cluster { f(&c); return c }

func static(ws ...api.StaticWeight) *api.WeightPolicy {
	return &api.WeightPolicy{Type: "static", Static: ws}
}

func sel(kv ...string) *api.LabelSelector {
	ls := &api.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		ls.MatchLabels[kv[i]] = kv[i+1]
	}
	return ls
}

func threeRegions() []Cluster {
	return []Cluster{
		ready("eu-1", Unbounded, "region", "eu-west"), ready("eu-2", Unbounded, "region", "eu-west"),
		ready("us-1", Unbounded, "region", "us-east"), ready("ap-1", Unbounded, "region", "ap-south"),
	}
}

type tcase struct {
	name         string
	in           Input
	want         map[string]int32
	filtered     map[string]string // each must be in Decision.Filtered with this reason
	unplaced     int32
	reason       string // substring of UnplacedReason
	unsat        string // Unsatisfiable reason when True
	explain      string // substring of one explanation line
	placedReason string // ConditionPlaced reason
}

func (tc tcase) check(t *testing.T) {
	t.Helper()
	got := Decide(tc.in)
	if tc.want == nil {
		tc.want = map[string]int32{}
	}
	if !maps.Equal(got.Assignment, tc.want) {
		t.Errorf("assignment: want %v, got %v\nexplanation:\n  %s", tc.want, got.Assignment, strings.Join(got.Explanation, "\n  "))
	}
	for c, why := range tc.filtered {
		if got.Filtered[c] != why {
			t.Errorf("filtered[%s]: want %q, got %q (all: %v)", c, why, got.Filtered[c], got.Filtered)
		}
	}
	if got.Unplaced != tc.unplaced {
		t.Errorf("unplaced: want %d, got %d (%s)", tc.unplaced, got.Unplaced, got.UnplacedReason)
	}
	if tc.unplaced > 0 && !strings.Contains(got.UnplacedReason, tc.reason) {
		t.Errorf("unplaced reason: want it to contain %q, got %q", tc.reason, got.UnplacedReason)
	}
	if tc.unplaced == 0 && got.UnplacedReason != "" {
		t.Errorf("unplaced reason: want none, got %q", got.UnplacedReason)
	}
	var placed, unsat api.Condition
	for _, c := range got.Conditions {
		switch c.Type {
		case ConditionPlaced:
			placed = c
		case ConditionUnsatisfiable:
			unsat = c
		}
	}
	if (placed.Status == "True") != (got.Unplaced == 0) {
		t.Errorf("Placed condition %+v does not match %d unplaced", placed, got.Unplaced)
	}
	if tc.placedReason != "" && placed.Reason != tc.placedReason {
		t.Errorf("Placed reason: want %s, got %s", tc.placedReason, placed.Reason)
	}
	if tc.unsat == "" && unsat.Status != "False" {
		t.Errorf("Unsatisfiable: want False, got %+v", unsat)
	}
	if tc.unsat != "" && (unsat.Status != "True" || unsat.Reason != tc.unsat || unsat.Message == "") {
		t.Errorf("Unsatisfiable: want True %s with a message, got %+v", tc.unsat, unsat)
	}
	if tc.explain != "" && !strings.Contains(strings.Join(got.Explanation, "\n"), tc.explain) {
		t.Errorf("explanation: want %q in\n  %s", tc.explain, strings.Join(got.Explanation, "\n  "))
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	maint := api.Taint{Key: "maintenance", Value: "true", Effect: "NoSchedule"}
	evict := api.Taint{Key: "evacuate", Effect: "NoExecute"}
	cases := []tcase{
		{
			name: "excluded clusters lose what they run",
			in: Input{Replicas: 4, Policy: &api.PlacementPolicy{ExcludeClusters: []string{"b"}},
				Clusters: []Cluster{ready("a", Unbounded), ready("b", Unbounded)}, Current: map[string]int32{"a": 2, "b": 2}},
			want: map[string]int32{"a": 4}, filtered: map[string]string{"b": ReasonExcluded},
			explain: "b: its 2 replicas are re-placed (excluded)",
		},
		{
			name: "allow-list by name",
			in: Input{Replicas: 3, Policy: &api.PlacementPolicy{Clusters: []string{"a", "c"}},
				Clusters: []Cluster{ready("a", Unbounded), ready("b", Unbounded), ready("c", Unbounded)}},
			want: map[string]int32{"a": 1, "c": 2}, filtered: map[string]string{"b": ReasonNotListed},
		},
		{
			name: "cluster selector",
			in: Input{Replicas: 4, Policy: &api.PlacementPolicy{ClusterSelector: sel("region", "eu-west")},
				Clusters: threeRegions()},
			want:     map[string]int32{"eu-1": 2, "eu-2": 2},
			filtered: map[string]string{"us-1": ReasonOutsideSelector, "ap-1": ReasonOutsideSelector},
		},
		{
			name: "NoSchedule taint without toleration: no new replicas, keeps what runs",
			in: Input{Replicas: 4, Clusters: []Cluster{ready("a", Unbounded), with(ready("b", Unbounded), func(c *Cluster) { c.Taints = []api.Taint{maint} })},
				Current: map[string]int32{"b": 1}},
			want:     map[string]int32{"a": 3, "b": 1},
			filtered: map[string]string{"b": "tainted: maintenance=true:NoSchedule (no toleration)"},
		},
		{
			name: "toleration lets a tainted cluster in",
			in: Input{Replicas: 4, Policy: &api.PlacementPolicy{Tolerations: []api.Toleration{{Key: "maintenance", Operator: "Exists"}}},
				Clusters: []Cluster{ready("a", Unbounded), with(ready("b", Unbounded), func(c *Cluster) { c.Taints = []api.Taint{maint} })}},
			want: map[string]int32{"a": 2, "b": 2},
		},
		{
			name: "NoExecute taint moves what runs",
			in: Input{Replicas: 4, Clusters: []Cluster{ready("a", Unbounded), with(ready("b", Unbounded), func(c *Cluster) { c.Taints = []api.Taint{evict} })},
				Current: map[string]int32{"a": 2, "b": 2}},
			want:     map[string]int32{"a": 4},
			filtered: map[string]string{"b": "tainted: evacuate:NoExecute (no toleration)"},
		},
		{
			name: "Unreachable: replicas are not counted and are re-placed",
			in: Input{Replicas: 6, Clusters: []Cluster{ready("a", Unbounded), ready("b", Unbounded), with(ready("c", Unbounded), func(c *Cluster) { c.Health = api.HealthUnreachable })},
				Current: map[string]int32{"a": 2, "b": 2, "c": 2}},
			want:     map[string]int32{"a": 3, "b": 3},
			filtered: map[string]string{"c": api.HealthUnreachable},
			explain:  "c: its 2 replicas are re-placed (Unreachable)",
		},
		{
			name: "Suspect and Unknown keep what they run, take nothing new",
			in: Input{Replicas: 6, Clusters: []Cluster{ready("a", Unbounded), with(ready("b", Unbounded), func(c *Cluster) { c.Health = api.HealthSuspect }), with(ready("c", Unbounded), func(c *Cluster) { c.Health = "" })},
				Current: map[string]int32{"b": 2, "c": 1}},
			want:     map[string]int32{"a": 3, "b": 2, "c": 1},
			filtered: map[string]string{"b": api.HealthSuspect, "c": api.HealthUnknown},
		},
		{
			name: "cordoned keeps what it runs and loses it first on scale down",
			in: Input{Replicas: 3, Clusters: []Cluster{ready("a", Unbounded), ready("b", Unbounded), with(ready("c", Unbounded), func(c *Cluster) { c.Unschedulable = true })},
				Current: map[string]int32{"a": 1, "b": 1, "c": 2}},
			want:     map[string]int32{"a": 1, "b": 1, "c": 1},
			filtered: map[string]string{"c": ReasonCordoned},
		},
		{
			name: "the first failing filter is reported, the strictest effect applies",
			in: Input{Replicas: 2, Policy: &api.PlacementPolicy{ClusterSelector: sel("region", "eu-west")},
				Clusters: []Cluster{ready("a", Unbounded, "region", "eu-west"), with(ready("b", Unbounded, "region", "us-east"), func(c *Cluster) { c.Unschedulable = true })},
				Current:  map[string]int32{"b": 2}},
			want: map[string]int32{"a": 2}, filtered: map[string]string{"b": ReasonOutsideSelector},
		},
		{
			name: "no room",
			in:   Input{Replicas: 4, Clusters: []Cluster{ready("a", Unbounded), ready("b", 0)}},
			want: map[string]int32{"a": 4}, filtered: map[string]string{"b": ReasonNoRoom},
		},
		{
			name: "a cluster gone from the snapshot loses its replicas",
			in:   Input{Replicas: 2, Clusters: []Cluster{ready("a", Unbounded)}, Current: map[string]int32{"gone": 2}},
			want: map[string]int32{"a": 2}, filtered: map[string]string{"gone": ReasonGone},
		},
		{
			name: "every cluster filtered: unplaced with counts",
			in: Input{Replicas: 3, Policy: &api.PlacementPolicy{ClusterSelector: sel("region", "eu-west")},
				Clusters: []Cluster{
					ready("a", Unbounded, "region", "us-east"), ready("b", Unbounded, "region", "us-east"),
					with(ready("c", Unbounded, "region", "eu-west"), func(c *Cluster) { c.Health = api.HealthUnreachable }),
				}},
			unplaced: 3, reason: "3 replicas unplaced: 0/3 clusters eligible: 2 outside clusterSelector, 1 Unreachable",
			placedReason: ReasonNoEligibleClusters,
		},
		{
			name: "selector matches nothing: unsatisfiable, not a panic",
			in: Input{Replicas: 3, Policy: &api.PlacementPolicy{ClusterSelector: sel("region", "mars")},
				Clusters: threeRegions()},
			unplaced: 3, reason: "0/4 clusters eligible: 4 outside clusterSelector", unsat: ReasonNoMatchingClusters,
		},
		{
			name:     "no clusters at all",
			in:       Input{Replicas: 2},
			unplaced: 2, reason: "2 replicas unplaced: 0/0 clusters eligible", unsat: ReasonNoMatchingClusters,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { t.Parallel(); tc.check(t) })
	}
}

func TestModesAndWeights(t *testing.T) {
	t.Parallel()
	ab := []Cluster{ready("a", Unbounded, "region", "eu-west"), ready("b", Unbounded, "region", "us-east")}
	cases := []tcase{
		{
			name: "Divided by default, equal weights, largest remainder",
			in:   Input{Replicas: 5, Clusters: threeRegions()},
			want: map[string]int32{"ap-1": 1, "eu-1": 1, "eu-2": 1, "us-1": 2},
			// 1.25 each: whole parts 1, the one left over to the first in
			// this workload's order of equal clusters (tieRank).
			explain: "quotas for 5 replicas: ap-1 1.25, eu-1 1.25, eu-2 1.25, us-1 1.25",
		},
		{
			name: "2 replicas at 2:1 become 1/1, explained",
			in: Input{Replicas: 2, Policy: &api.PlacementPolicy{Weights: static(api.StaticWeight{Cluster: "a", Weight: 2}, api.StaticWeight{Cluster: "b", Weight: 1})},
				Clusters: ab},
			want:    map[string]int32{"a": 1, "b": 1},
			explain: "1 went to the largest remainders: b 0.67",
		},
		{
			name: "3 replicas at 2:1 become 2/1",
			in: Input{Replicas: 3, Policy: &api.PlacementPolicy{Weights: static(api.StaticWeight{Cluster: "a", Weight: 2}, api.StaticWeight{Cluster: "b", Weight: 1})},
				Clusters: ab},
			want: map[string]int32{"a": 2, "b": 1},
		},
		{
			name: "weights by label value; unweighted clusters take nothing",
			in: Input{Replicas: 9, Policy: &api.PlacementPolicy{Weights: static(api.StaticWeight{LabelKey: "region", LabelValue: "eu-west", Weight: 2}, api.StaticWeight{LabelKey: "region", LabelValue: "us-east", Weight: 1})},
				Clusters: threeRegions()},
			want:     map[string]int32{"eu-1": 4, "eu-2": 3, "us-1": 2}, // 3.6, 3.6, 1.8 each: weights are per cluster
			filtered: map[string]string{"ap-1": ReasonWeightZero},
		},
		{
			name: "a cluster's own weight wins over its label's",
			in: Input{Replicas: 4, Policy: &api.PlacementPolicy{Weights: static(api.StaticWeight{LabelKey: "region", LabelValue: "eu-west", Weight: 1}, api.StaticWeight{Cluster: "eu-2", Weight: 3})},
				Clusters: threeRegions()},
			want: map[string]int32{"eu-1": 1, "eu-2": 3},
		},
		{
			name: "dynamic weights follow current + room",
			in: Input{Replicas: 8, Policy: &api.PlacementPolicy{Weights: &api.WeightPolicy{Type: "dynamic"}},
				Clusters: []Cluster{ready("a", 30), ready("b", 10)}},
			want:    map[string]int32{"a": 6, "b": 2},
			explain: "weights (dynamic",
		},
		{
			name: "Duplicated: the count in every eligible cluster",
			in: Input{Replicas: 2, Policy: &api.PlacementPolicy{ReplicaMode: ModeDuplicated, ExcludeClusters: []string{"ap-1"}},
				Clusters: threeRegions()},
			want: map[string]int32{"eu-1": 2, "eu-2": 2, "us-1": 2},
		},
		{
			name: "Duplicated bounded by room: the shortfall is unplaced",
			in: Input{Replicas: 3, Policy: &api.PlacementPolicy{ReplicaMode: ModeDuplicated},
				Clusters: []Cluster{ready("a", Unbounded), ready("b", 1)}, Current: map[string]int32{"b": 1}},
			want:     map[string]int32{"a": 3, "b": 2},
			unplaced: 1, reason: "1 replica unplaced: 2/2 clusters eligible, all full", placedReason: ReasonInsufficientCapacity,
		},
		{
			name: "Duplicated with maxReplicasPerCluster",
			in: Input{Replicas: 5, Policy: &api.PlacementPolicy{ReplicaMode: ModeDuplicated, MaxReplicasPerCluster: 2},
				Clusters: []Cluster{ready("a", Unbounded), ready("b", Unbounded)}},
			want: map[string]int32{"a": 2, "b": 2},
		},
		{
			name: "zero replicas",
			in:   Input{Replicas: 0, Clusters: threeRegions(), Current: map[string]int32{"eu-1": 3}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { t.Parallel(); tc.check(t) })
	}
}

func TestPreferencesSpreadBounds(t *testing.T) {
	t.Parallel()
	euFirst := []api.ClusterPreference{{Selector: *sel("region", "eu-west")}, {Selector: *sel("region", "us-east")}}
	cases := []tcase{
		{
			name: "the first tier takes everything it can hold",
			in:   Input{Replicas: 6, Policy: &api.PlacementPolicy{Preferences: euFirst}, Clusters: threeRegions()},
			want: map[string]int32{"eu-1": 3, "eu-2": 3},
		},
		{
			name: "overflow goes to the next tier, then to clusters matching no preference",
			in: Input{Replicas: 10, Policy: &api.PlacementPolicy{Preferences: euFirst},
				Clusters: []Cluster{ready("eu-1", 2, "region", "eu-west"), ready("eu-2", 3, "region", "eu-west"), ready("us-1", 4, "region", "us-east"), ready("ap-1", Unbounded, "region", "ap-south")}},
			want:    map[string]int32{"eu-1": 2, "eu-2": 3, "us-1": 4, "ap-1": 1},
			explain: "tiers, filled in order: preference 1 (region=eu-west): 2 clusters take 5, full",
		},
		{
			name: "scale down removes from the least preferred tier first",
			in: Input{Replicas: 8, Policy: &api.PlacementPolicy{Preferences: euFirst},
				Clusters: []Cluster{ready("eu-1", 0, "region", "eu-west"), ready("eu-2", 0, "region", "eu-west"), ready("us-1", 0, "region", "us-east"), ready("ap-1", 0, "region", "ap-south")},
				Current:  map[string]int32{"eu-1": 2, "eu-2": 3, "us-1": 4, "ap-1": 1}},
			want: map[string]int32{"eu-1": 2, "eu-2": 3, "us-1": 3},
		},
		{
			name: "spread minGroups: the first tier alone is not enough",
			in: Input{Replicas: 6, Policy: &api.PlacementPolicy{Preferences: euFirst, Spread: []api.SpreadConstraint{{TopologyKey: "region", MinGroups: 2}}},
				Clusters: threeRegions()},
			want: map[string]int32{"eu-1": 3, "eu-2": 2, "us-1": 1},
		},
		{
			name: "spread minGroups repaired by a move when the count is already right",
			in: Input{Replicas: 4, Policy: &api.PlacementPolicy{Spread: []api.SpreadConstraint{{TopologyKey: "region", MinGroups: 2}}},
				Clusters: threeRegions()[:3], Current: map[string]int32{"eu-1": 2, "eu-2": 2}},
			want:    map[string]int32{"eu-1": 2, "eu-2": 1, "us-1": 1},
			explain: "spread by region needs 2 groups: moved 1 from eu-2 to us-1 (region=us-east)",
		},
		{
			name: "spread minGroups above what exists: unsatisfiable, placed anyway",
			in: Input{Replicas: 4, Policy: &api.PlacementPolicy{Spread: []api.SpreadConstraint{{TopologyKey: "region", MinGroups: 5}}},
				Clusters: threeRegions()},
			want:  map[string]int32{"eu-1": 1, "eu-2": 1, "us-1": 1, "ap-1": 1},
			unsat: ReasonSpreadUnsatisfiable,
		},
		{
			name: "spread minGroups above the replica count",
			in: Input{Replicas: 2, Policy: &api.PlacementPolicy{Spread: []api.SpreadConstraint{{TopologyKey: "region", MinGroups: 3}}},
				Clusters: threeRegions()},
			want:  map[string]int32{"eu-1": 1, "us-1": 1},
			unsat: ReasonSpreadUnsatisfiable,
		},
		{
			name: "clusters without the spread label are filtered",
			in: Input{Replicas: 2, Policy: &api.PlacementPolicy{Spread: []api.SpreadConstraint{{TopologyKey: "zone", MinGroups: 1}}},
				Clusters: []Cluster{ready("a", Unbounded, "zone", "z1"), ready("b", Unbounded)}},
			want: map[string]int32{"a": 2}, filtered: map[string]string{"b": "no zone label (spread)"},
		},
		{
			name: "spread maxGroups keeps the groups already used",
			in: Input{Replicas: 6, Policy: &api.PlacementPolicy{Spread: []api.SpreadConstraint{{TopologyKey: "region", MaxGroups: 2}}},
				Clusters: threeRegions(), Current: map[string]int32{"us-1": 1, "ap-1": 1}},
			want:     map[string]int32{"us-1": 3, "ap-1": 3},
			filtered: map[string]string{"eu-1": "spread: region=eu-west beyond maxGroups 2"},
		},
		{
			name: "spread maxGroups from scratch prefers the earlier tier, then weight",
			in: Input{Replicas: 4, Policy: &api.PlacementPolicy{Preferences: euFirst[1:], Spread: []api.SpreadConstraint{{TopologyKey: "region", MaxGroups: 2}}},
				Clusters: threeRegions()},
			want: map[string]int32{"us-1": 4},
		},
		{
			name: "maxReplicasPerCluster bounds every cluster; the rest is unplaced",
			in: Input{Replicas: 7, Policy: &api.PlacementPolicy{MaxReplicasPerCluster: 3},
				Clusters: []Cluster{ready("a", Unbounded), ready("b", Unbounded)}, Current: map[string]int32{"a": 5}},
			want:     map[string]int32{"a": 3, "b": 3},
			unplaced: 1, reason: "1 replica unplaced: 2/2 clusters eligible, all at maxReplicasPerCluster 3",
		},
		{
			name: "minReplicasPerCluster: no cluster gets fewer",
			in: Input{Replicas: 5, Policy: &api.PlacementPolicy{MinReplicasPerCluster: 2},
				Clusters: threeRegions()},
			want: map[string]int32{"eu-1": 2, "us-1": 3},
		},
		{
			name: "minReplicasPerCluster raises a cluster below it",
			in: Input{Replicas: 5, Policy: &api.PlacementPolicy{MinReplicasPerCluster: 2},
				Clusters: []Cluster{ready("a", Unbounded), ready("b", Unbounded)}, Current: map[string]int32{"a": 4, "b": 1}},
			want:    map[string]int32{"a": 3, "b": 2},
			explain: "b raised from 1 to minReplicasPerCluster 2",
		},
		{
			name: "room bounds Current+Room, counting what this decision gave",
			in: Input{Replicas: 10, Clusters: []Cluster{ready("a", 1), ready("b", 2)},
				Current: map[string]int32{"a": 3, "b": 1}},
			want:     map[string]int32{"a": 4, "b": 3},
			unplaced: 3, reason: "3 replicas unplaced: 2/2 clusters eligible, all full", placedReason: ReasonInsufficientCapacity,
		},
		{
			name: "no churn: a current placement that satisfies the policy comes back unchanged",
			in: Input{Replicas: 6, Policy: &api.PlacementPolicy{Weights: static(api.StaticWeight{Cluster: "eu-1", Weight: 1}, api.StaticWeight{Cluster: "us-1", Weight: 1})},
				Clusters: threeRegions(), Current: map[string]int32{"eu-1": 4, "us-1": 2}},
			want: map[string]int32{"eu-1": 4, "us-1": 2},
		},
		{
			name: "rebalance applies changed weights",
			in: Input{Replicas: 6, Rebalance: true, Policy: &api.PlacementPolicy{Weights: static(api.StaticWeight{Cluster: "eu-1", Weight: 1}, api.StaticWeight{Cluster: "us-1", Weight: 1})},
				Clusters: threeRegions(), Current: map[string]int32{"eu-1": 4, "us-1": 2}},
			want: map[string]int32{"eu-1": 3, "us-1": 3},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { t.Parallel(); tc.check(t) })
	}
}

// TestEvictedNamesTheFilter: a decision names the filter that evicts each
// cluster, so callers need not read the reasons' text.
func TestEvictedNamesTheFilter(t *testing.T) {
	d := Decide(Input{Replicas: 3, Clusters: []Cluster{
		{Name: "a", Health: api.HealthReady, Room: Unbounded, Taints: []api.Taint{{Key: "k", Effect: "NoExecute"}}},
		{Name: "b", Health: api.HealthUnreachable, Room: Unbounded},
		{Name: "c", Health: api.HealthReady, Room: Unbounded, Taints: []api.Taint{{Key: "k", Effect: "NoSchedule"}}},
		{Name: "d", Health: api.HealthReady, Room: Unbounded},
	}, Current: map[string]int32{"a": 1, "b": 1, "c": 1}})
	want := map[string]string{"a": ReasonTainted, "b": api.HealthUnreachable}
	if len(d.Evicted) != len(want) || d.Evicted["a"] != want["a"] || d.Evicted["b"] != want["b"] {
		t.Errorf("want evicted %v (c's NoSchedule taint keeps what it runs); got %v", want, d.Evicted)
	}
}

// TestEqualClustersShareWorkloads: 100 workloads of 10 replicas over 32
// equal clusters. Ties between equal clusters are broken per workload, so
// every cluster gets its share, not the first 10 by name every time
// (which left 22 of 32 clusters empty at scale); and a workload's own
// decision does not change from one pass to the next.
func TestEqualClustersShareWorkloads(t *testing.T) {
	var clusters []Cluster
	for i := range 32 {
		clusters = append(clusters, ready(fmt.Sprintf("c%02d", i), Unbounded))
	}
	per := map[string]int32{}
	for w := range 100 {
		in := Input{Workload: fmt.Sprintf("web-%d", w), Replicas: 10, Clusters: clusters}
		d := Decide(in)
		for c, n := range d.Assignment {
			per[c] += n
		}
		if again := Decide(in); !maps.Equal(again.Assignment, d.Assignment) {
			t.Fatalf("%s: %v, then %v", in.Workload, d.Assignment, again.Assignment)
		}
	}
	// 31.25 each on average; name order gave 100 to ten clusters and 0 to
	// the other 22.
	for _, c := range clusters {
		if n := per[c.Name]; n < 10 || n > 60 {
			t.Errorf("cluster %s holds %d of the 1,000 replicas, want about 31: %v", c.Name, n, per)
		}
	}
}
