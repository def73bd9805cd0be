package api

import (
	"slices"
	"testing"
)

// TestEffective: overrides apply in order to the clusters they select
// (by name, region and labels, all given parts at once); later ones win;
// the workload's template is not changed.
func TestEffective(t *testing.T) {
	one, five := int32(1), int32(5)
	s := WorkloadSpec{Replicas: 4, Template: ReplicaTemplate{Driver: "process", Command: "app", Args: []string{"a"},
		Env: []EnvVar{{Name: "A", Value: "1"}}, NodeSelector: map[string]string{"disk": "ssd"}}}
	s.Overrides = []Override{
		{Name: "eu", Regions: []string{"eu"}, Env: []EnvVar{{Name: "A", Value: "eu"}, {Name: "B", Value: "x"}}, Replicas: &one},
		{Name: "big", ClusterSelector: &LabelSelector{MatchLabels: map[string]string{"size": "big"}}, Replicas: &five, Args: []string{"b", "c"}},
		{Name: "one", Clusters: []string{"eu-2"}, Regions: []string{"us"}, Command: "never"}, // both must match: never
		{Name: "late", Regions: []string{"eu"}, Env: []EnvVar{{Name: "A", Value: "late"}}, NodeSelector: map[string]string{"gpu": "yes"}},
	}
	cases := []struct {
		target   Target
		replicas int32
		applied  []string
		env      []EnvVar
		args     []string
	}{
		{Target{Name: "us-1", Labels: map[string]string{LabelRegion: "us"}}, 2, nil, s.Template.Env, []string{"a"}},
		{Target{Name: "eu-1", Labels: map[string]string{LabelRegion: "eu"}}, 1, []string{"eu", "late"}, []EnvVar{{Name: "A", Value: "late"}, {Name: "B", Value: "x"}}, []string{"a"}},
		{Target{Name: "eu-2", Labels: map[string]string{LabelRegion: "eu", "size": "big"}}, 5, []string{"eu", "big", "late"}, []EnvVar{{Name: "A", Value: "late"}, {Name: "B", Value: "x"}}, []string{"b", "c"}},
	}
	for _, c := range cases {
		tm, n, applied := s.Effective(c.target, 2)
		if n != c.replicas || !slices.Equal(applied, c.applied) || !slices.Equal(tm.Env, c.env) || !slices.Equal(tm.Args, c.args) || tm.Command != "app" {
			t.Errorf("%s: got replicas %d, applied %v, env %v, args %v, command %q", c.target.Name, n, applied, tm.Env, tm.Args, tm.Command)
		}
	}
	if tm, _, _ := s.Effective(cases[1].target, 2); tm.NodeSelector["gpu"] != "yes" || tm.NodeSelector["disk"] != "ssd" {
		t.Errorf("want node selectors merged; got %v", tm.NodeSelector)
	}
	if len(s.Template.Env) != 1 || s.Template.Env[0].Value != "1" || len(s.Template.NodeSelector) != 1 {
		t.Errorf("the workload's template changed: %+v", s.Template)
	}
}
