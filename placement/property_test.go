package placement

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/atollhq/atoll/api"
)

var (
	regions  = []string{"eu-west", "eu-north", "us-east", "us-west", "ap-south"}
	taintGen = rapid.SampledFrom([]api.Taint{
		{Key: "maintenance", Value: "true", Effect: "NoSchedule"},
		{Key: "evacuate", Effect: "NoExecute"},
		{Key: "spot", Value: "true", Effect: "PreferNoSchedule"},
	})
	tolGen = rapid.SampledFrom([]api.Toleration{
		{Key: "maintenance", Operator: "Exists"},
		{Key: "evacuate", Operator: "Exists", Effect: "NoExecute"},
		{Operator: "Exists"},
		{Key: "maintenance", Value: "false"},
	})
	healthGen = rapid.SampledFrom([]string{api.HealthReady, api.HealthReady, api.HealthReady, api.HealthReady, api.HealthSuspect, api.HealthUnreachable, api.HealthUnknown})
)

// genClusters draws up to n clusters over the five regions, some
// tainted, cordoned, unhealthy or bounded.
func genClusters(t *rapid.T, n int) []Cluster {
	k := rapid.IntRange(0, n).Draw(t, "clusters")
	cs := make([]Cluster, k)
	for i := range cs {
		c := Cluster{
			Name:   fmt.Sprintf("c%02d", i),
			Labels: map[string]string{"region": rapid.SampledFrom(regions).Draw(t, "region")},
			Health: healthGen.Draw(t, "health"),
			Room:   rapid.SampledFrom([]int32{Unbounded, Unbounded, 0, 1, 2, 5, 20}).Draw(t, "room"),
		}
		if rapid.Bool().Draw(t, "hasZone") {
			c.Labels["zone"] = c.Labels["region"] + rapid.SampledFrom([]string{"-a", "-b"}).Draw(t, "zone")
		}
		if rapid.IntRange(0, 3).Draw(t, "tainted") == 0 {
			c.Taints = []api.Taint{taintGen.Draw(t, "taint")}
		}
		c.Unschedulable = rapid.IntRange(0, 9).Draw(t, "cordoned") == 0
		cs[i] = c
	}
	return cs
}

func genPolicy(t *rapid.T, divided bool) *api.PlacementPolicy {
	if rapid.IntRange(0, 5).Draw(t, "nilPolicy") == 0 {
		if divided {
			return nil
		}
		return &api.PlacementPolicy{ReplicaMode: ModeDuplicated}
	}
	p := &api.PlacementPolicy{ReplicaMode: ModeDivided}
	if !divided {
		p.ReplicaMode = ModeDuplicated
	}
	if rapid.Bool().Draw(t, "selector") {
		p.ClusterSelector = &api.LabelSelector{MatchExpressions: []api.Requirement{{Key: "region", Operator: "In",
			Values: rapid.SliceOfNDistinct(rapid.SampledFrom(regions), 1, 4, rapid.ID[string]).Draw(t, "regions")}}}
	}
	if rapid.IntRange(0, 4).Draw(t, "exclude") == 0 {
		p.ExcludeClusters = []string{fmt.Sprintf("c%02d", rapid.IntRange(0, 9).Draw(t, "excluded"))}
	}
	if rapid.IntRange(0, 4).Draw(t, "allow") == 0 {
		for range rapid.IntRange(1, 6).Draw(t, "allowed") {
			p.Clusters = append(p.Clusters, fmt.Sprintf("c%02d", rapid.IntRange(0, 11).Draw(t, "allowedName")))
		}
	}
	p.Tolerations = rapid.SliceOfN(tolGen, 0, 2).Draw(t, "tolerations")
	if rapid.Bool().Draw(t, "preferences") {
		for _, r := range rapid.SliceOfNDistinct(rapid.SampledFrom(regions), 1, 3, rapid.ID[string]).Draw(t, "prefs") {
			p.Preferences = append(p.Preferences, api.ClusterPreference{Selector: *sel("region", r)})
		}
	}
	if divided {
		switch rapid.IntRange(0, 2).Draw(t, "weights") {
		case 1:
			p.Weights = &api.WeightPolicy{Type: "dynamic"}
		case 2:
			p.Weights = &api.WeightPolicy{Type: "static"}
			for _, r := range regions {
				if w := rapid.IntRange(0, 4).Draw(t, "regionWeight"); w > 0 {
					p.Weights.Static = append(p.Weights.Static, api.StaticWeight{LabelKey: "region", LabelValue: r, Weight: int32(w)})
				}
			}
			if rapid.Bool().Draw(t, "clusterWeight") {
				p.Weights.Static = append(p.Weights.Static, api.StaticWeight{Cluster: fmt.Sprintf("c%02d", rapid.IntRange(0, 9).Draw(t, "weighted")), Weight: int32(rapid.IntRange(0, 9).Draw(t, "w"))})
			}
		}
	}
	if rapid.Bool().Draw(t, "spread") {
		s := api.SpreadConstraint{TopologyKey: rapid.SampledFrom([]string{"region", "region", "zone"}).Draw(t, "key")}
		s.MinGroups = int32(rapid.IntRange(0, 4).Draw(t, "minGroups"))
		if rapid.Bool().Draw(t, "hasMax") {
			s.MaxGroups = max(s.MinGroups, 1) + int32(rapid.IntRange(0, 2).Draw(t, "maxGroups"))
		}
		p.Spread = []api.SpreadConstraint{s}
	}
	if divided && rapid.IntRange(0, 3).Draw(t, "min") == 0 {
		p.MinReplicasPerCluster = int32(rapid.IntRange(1, 3).Draw(t, "minPer"))
	}
	if rapid.IntRange(0, 3).Draw(t, "max") == 0 {
		p.MaxReplicasPerCluster = max(p.MinReplicasPerCluster, 1) + int32(rapid.IntRange(0, 5).Draw(t, "maxPer"))
	}
	return p
}

func genInput(t *rapid.T) Input {
	divided := rapid.IntRange(0, 4).Draw(t, "duplicated") > 0
	in := Input{
		Workload: "web",
		Replicas: int32(rapid.IntRange(0, 40).Draw(t, "replicas")),
		Policy:   genPolicy(t, divided),
		Clusters: genClusters(t, 12),
	}
	if rapid.Bool().Draw(t, "hasCurrent") {
		in.Current = map[string]int32{}
		for range rapid.IntRange(0, 6).Draw(t, "currentN") {
			in.Current[fmt.Sprintf("c%02d", rapid.IntRange(0, 13).Draw(t, "cur"))] = int32(rapid.IntRange(0, 8).Draw(t, "curN"))
		}
	}
	return in
}

func divided(in Input) bool { return in.Policy == nil || in.Policy.ReplicaMode != ModeDuplicated }

func sum(a map[string]int32) int32 {
	var s int32
	for _, n := range a {
		s += n
	}
	return s
}

// capacity is the most the eligible clusters could hold in total,
// counting what filtered clusters keep, with no policy bound but room and
// maxReplicasPerCluster.
func cond(d Decision, typ string) api.Condition {
	for _, c := range d.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return api.Condition{}
}

// TestPropertyInvariants: the decision never breaks a hard rule,
// whatever the input.
func TestPropertyInvariants(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		d := Decide(in)
		byName := map[string]Cluster{}
		for _, c := range in.Clusters {
			if _, ok := byName[c.Name]; !ok {
				byName[c.Name] = c
			}
		}
		pol := in.Policy
		if pol == nil {
			pol = &api.PlacementPolicy{}
		}
		var sel api.Selector
		if pol.ClusterSelector != nil {
			sel = pol.ClusterSelector.Selector()
		}
		for name, n := range d.Assignment {
			c, ok := byName[name]
			if n <= 0 || !ok {
				t.Fatalf("assignment %s=%d: not a known cluster or not positive", name, n)
			}
			if !sel.Matches(c.Labels) || slices.Contains(pol.ExcludeClusters, name) || (len(pol.Clusters) > 0 && !slices.Contains(pol.Clusters, name)) {
				t.Fatalf("%d replicas on %s, outside the selection", n, name)
			}
			for _, taint := range c.Taints {
				if taint.Effect == "PreferNoSchedule" {
					continue
				}
				tolerated := slices.ContainsFunc(pol.Tolerations, func(tol api.Toleration) bool { return tol.Tolerates(taint) })
				if !tolerated && taint.Effect == "NoExecute" {
					t.Fatalf("%d replicas on %s tainted %v without toleration", n, name, taint)
				}
				if !tolerated && n > in.Current[name] {
					t.Fatalf("%s tainted %v without toleration got new replicas: %d -> %d", name, taint, in.Current[name], n)
				}
			}
			if c.Health == api.HealthUnreachable {
				t.Fatalf("%d replicas on Unreachable %s", n, name)
			}
			if (c.Health != api.HealthReady || c.Unschedulable) && n > in.Current[name] {
				t.Fatalf("%s (health %q, cordoned %v) got new replicas: %d -> %d", name, c.Health, c.Unschedulable, in.Current[name], n)
			}
			if c.Room >= 0 && n > max(in.Current[name]+c.Room, in.Current[name]) {
				t.Fatalf("%s holds %d, more than current %d + room %d", name, n, in.Current[name], c.Room)
			}
			if pol.MaxReplicasPerCluster > 0 && n > pol.MaxReplicasPerCluster {
				t.Fatalf("%s holds %d, above maxReplicasPerCluster %d", name, n, pol.MaxReplicasPerCluster)
			}
			if !divided(in) && n > in.Replicas {
				t.Fatalf("Duplicated: %s holds %d of %d", name, n, in.Replicas)
			}
		}
		if divided(in) {
			if got := sum(d.Assignment) + d.Unplaced; got != in.Replicas {
				t.Fatalf("placed %d + unplaced %d != desired %d", sum(d.Assignment), d.Unplaced, in.Replicas)
			}
		}
		if (d.Unplaced > 0) != (d.UnplacedReason != "") || (d.Unplaced > 0) != (cond(d, ConditionPlaced).Status == "False") {
			t.Fatalf("unplaced %d, reason %q, condition %+v disagree", d.Unplaced, d.UnplacedReason, cond(d, ConditionPlaced))
		}
		// Spread: maxGroups always; minGroups unless the decision says it is unsatisfiable.
		for _, s := range pol.Spread {
			groups := map[string]bool{}
			for name := range d.Assignment {
				groups[byName[name].Labels[s.TopologyKey]] = true
			}
			if s.MaxGroups > 0 && int32(len(groups)) > s.MaxGroups {
				t.Fatalf("spread by %s: %d groups, above maxGroups %d", s.TopologyKey, len(groups), s.MaxGroups)
			}
			if in.Replicas > 0 && int32(len(groups)) < s.MinGroups && cond(d, ConditionUnsatisfiable).Status != "True" {
				t.Fatalf("spread by %s: %d groups, below minGroups %d, and not reported unsatisfiable: %v", s.TopologyKey, len(groups), s.MinGroups, d.Assignment)
			}
		}
		// Every cluster that got nothing new has a reason, or was simply not needed.
		for name := range d.Filtered {
			if _, ok := byName[name]; !ok && in.Current[name] == 0 {
				t.Fatalf("filtered %s is neither a cluster nor in current", name)
			}
		}
	})
}

// TestPropertySumWhenCapacityAllows: with Ready, uncordoned, untainted,
// unbounded clusters and a satisfiable policy, every replica is placed
// and spread minGroups is met.
func TestPropertySumWhenCapacityAllows(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		for i := range in.Clusters {
			c := &in.Clusters[i]
			c.Health, c.Unschedulable, c.Taints = api.HealthReady, false, nil
			if c.Room >= 0 {
				c.Room += in.Replicas // room enough for all
			}
		}
		d := Decide(in)
		if cond(d, ConditionUnsatisfiable).Status == "True" {
			return // selection empty or spread impossible: covered by the invariants
		}
		pol := in.Policy
		if pol == nil {
			pol = &api.PlacementPolicy{}
		}
		if !divided(in) || pol.MaxReplicasPerCluster > 0 || pol.Weights != nil && pol.Weights.Type == "static" {
			return // bounded by the policy itself
		}
		if d.Unplaced != 0 && len(d.Filtered) < len(in.Clusters) {
			t.Fatalf("%d unplaced (%s) with room everywhere: %v\n%v", d.Unplaced, d.UnplacedReason, d.Assignment, d.Explanation)
		}
	})
}

// TestPropertyDeterministic: the same input gives the same decision,
// whatever the order of the clusters.
func TestPropertyDeterministic(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		a := Decide(in)
		shuffled := in
		shuffled.Clusters = slices.Clone(in.Clusters)
		perm := rapid.Permutation(shuffled.Clusters).Draw(t, "perm")
		shuffled.Clusters = perm
		// Repeated names would keep a different first entry: skip those.
		names := map[string]bool{}
		for _, c := range in.Clusters {
			if names[c.Name] {
				return
			}
			names[c.Name] = true
		}
		b := Decide(shuffled)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("same input, different decisions:\n%+v\n%+v", a, b)
		}
	})
}

// apply is the input after the caller carried a decision out: Current is
// the assignment and each cluster's Room shrinks (or grows) by what it
// gained (or gave up), as the member's next capacity report would say.
func apply(in Input, d Decision) Input {
	in.Clusters = slices.Clone(in.Clusters)
	for i := range in.Clusters {
		c := &in.Clusters[i]
		if c.Room >= 0 {
			c.Room = max(c.Room-(d.Assignment[c.Name]-in.Current[c.Name]), 0)
		}
	}
	in.Current = maps.Clone(d.Assignment)
	return in
}

// settled is a decision's input with Current set to its own answer, the
// way the next decision sees it.
func settled(t *rapid.T, in Input) (Input, Decision) {
	d := Decide(in)
	in = apply(in, d)
	again := Decide(in)
	if !maps.Equal(again.Assignment, d.Assignment) {
		t.Fatalf("no churn: deciding again on the answer moved replicas:\n%v\n%v\n%v", d.Assignment, again.Assignment, again.Explanation)
	}
	return in, again
}

// TestPropertyScaleByOne: from a settled placement, +1 only adds one
// replica somewhere and -1 only removes one (in Divided mode, when
// capacity allows). minReplicasPerCluster is left out: reaching a new
// cluster moves a block of that size.
func TestPropertyScaleByOne(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		if in.Policy == nil {
			in.Policy = &api.PlacementPolicy{}
		}
		in.Policy.ReplicaMode = ModeDivided
		in.Policy.MinReplicasPerCluster = 0
		in, d0 := settled(t, in)
		for _, delta := range []int32{1, -1} {
			next := in
			next.Replicas = in.Replicas + delta
			if next.Replicas < 0 {
				continue
			}
			d1 := Decide(next)
			if delta == 1 && d0.Unplaced > 0 {
				// Capacity-bound: nothing may move, nothing new fits.
				if !maps.Equal(d1.Assignment, d0.Assignment) {
					t.Fatalf("+1 while full moved replicas: %v -> %v", d0.Assignment, d1.Assignment)
				}
				continue
			}
			if delta == -1 && d0.Unplaced > 0 {
				continue // one fewer unplaced
			}
			gained, lost := 0, 0
			for name := range mergeKeys(d0.Assignment, d1.Assignment) {
				switch diff := d1.Assignment[name] - d0.Assignment[name]; {
				case diff > 0:
					gained += int(diff)
				case diff < 0:
					lost += int(-diff)
				}
			}
			if delta == 1 && d1.Unplaced > 0 && (gained != 0 || lost != 0) {
				t.Fatalf("+1 that does not fit moved replicas: %v -> %v\n%v", d0.Assignment, d1.Assignment, d1.Explanation)
			}
			if delta == 1 && d1.Unplaced == 0 && (gained != 1 || lost != 0) {
				t.Fatalf("+1: want one cluster to gain one and none to lose, got +%d -%d\n%v -> %v\n%v", gained, lost, d0.Assignment, d1.Assignment, d1.Explanation)
			}
			if delta == -1 && (lost != 1 || gained != 0) {
				t.Fatalf("-1: want one replica removed and none added, got +%d -%d\n%v -> %v\n%v", gained, lost, d0.Assignment, d1.Assignment, d1.Explanation)
			}
		}
	})
}

// TestPropertyOnlyLostReplicasMove: when a cluster becomes Unreachable,
// every other cluster keeps at least what it had.
func TestPropertyOnlyLostReplicasMove(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		if in.Policy != nil {
			in.Policy.MinReplicasPerCluster = 0
			in.Policy.Spread = nil
		}
		in, d0 := settled(t, in)
		if len(d0.Assignment) == 0 {
			return
		}
		names := slices.Sorted(maps.Keys(d0.Assignment))
		victim := rapid.SampledFrom(names).Draw(t, "victim")
		next := in
		next.Clusters = slices.Clone(in.Clusters)
		for i := range next.Clusters {
			if next.Clusters[i].Name == victim {
				next.Clusters[i].Health = api.HealthUnreachable
			}
		}
		d1 := Decide(next)
		for name, n := range d0.Assignment {
			if name != victim && d1.Assignment[name] < n {
				t.Fatalf("%s went Unreachable, yet %s lost replicas: %v -> %v", victim, name, d0.Assignment, d1.Assignment)
			}
		}
	})
}

func mergeKeys(a, b map[string]int32) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
