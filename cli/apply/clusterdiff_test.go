package apply

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestClusterDiff: a change to an override shows in the diff of a cluster
// it selects (the env value, the replicas it gives), not in one it does
// not; a new workload diffs from nothing.
func TestClusterDiff(t *testing.T) {
	t.Parallel()
	three := int32(3)
	workload := func(greeting string, replicas *int32) json.RawMessage {
		w := api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 4,
			Template:  api.ReplicaTemplate{Driver: "process", Command: "web", Env: []api.EnvVar{{Name: "GREETING", Value: "hi"}}},
			Overrides: []api.Override{{Name: "europe", Regions: []string{"eu"}, Replicas: replicas, Env: []api.EnvVar{{Name: "GREETING", Value: greeting}}}}}}
		b, _ := json.Marshal(w)
		return b
	}
	eu := api.Target{Name: "eu-west", Labels: map[string]string{api.LabelRegion: "eu"}}
	us := api.Target{Name: "us-east", Labels: map[string]string{api.LabelRegion: "us"}}
	d, err := ClusterDiff("workload/web", eu, workload("hallo", nil), workload("bonjour", &three))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--- live/workload/web@eu-west", "-    value: hallo", "+    value: bonjour", "+replicas: 3"} {
		if !strings.Contains(d, want) {
			t.Errorf("eu-west: want the diff to have %q; got:\n%s", want, d)
		}
	}
	if d, err := ClusterDiff("workload/web", us, workload("hallo", nil), workload("bonjour", &three)); err != nil || d != "" {
		t.Errorf("us-east (not selected): want no diff; got %q, %v", d, err)
	}
	if d, _ := ClusterDiff("workload/web", us, nil, workload("bonjour", nil)); !strings.Contains(d, "+  command: web") {
		t.Errorf("a new workload: want its template added; got:\n%s", d)
	}
}
