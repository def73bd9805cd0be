package datasync

import (
	"maps"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// TestNeed: a cluster needs what the workloads it runs reference;
// tombstones and workloads without references need nothing.
func TestNeed(t *testing.T) {
	uses := api.Workload{Metadata: api.ObjectMeta{Name: "uses"}, Spec: api.WorkloadSpec{Template: api.ReplicaTemplate{
		Env:   []api.EnvVar{{Name: "A", ValueFrom: &api.EnvSource{Config: &api.KeyRef{Name: "app", Key: "k"}}}},
		Files: []api.FileSource{{Secret: "db", Dir: "db"}}}}}
	plain := api.Workload{Metadata: api.ObjectMeta{Name: "plain"}}
	workloads := map[string]api.Workload{"uses": uses, "plain": plain}
	got := Need([]pgstore.Placement{
		{Workload: "uses", Cluster: "a", Replicas: 2},
		{Workload: "uses", Cluster: "b", Replicas: 0}, // scaled to 0 here: keeps its data
		{Workload: "uses", Cluster: "c", Deleted: true},
		{Workload: "plain", Cluster: "d", Replicas: 1},
		{Workload: "gone", Cluster: "e", Replicas: 1},
	}, workloads)
	want := map[string]bool{"Config/app": true, "Secret/db": true}
	if len(got) != 2 || !maps.Equal(got["a"], want) || !maps.Equal(got["b"], want) {
		t.Errorf("Need = %v, want a and b to need %v", got, want)
	}
}
