package datasync

import (
	"maps"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// uses is a workload that reads config app and secret db, its template
// pinning them at pin.
func uses(name, pin string) api.Workload {
	return api.Workload{Metadata: api.ObjectMeta{Name: name, Generation: 3}, Spec: api.WorkloadSpec{Template: api.ReplicaTemplate{
		Annotations: map[string]string{api.AnnotationData: pin},
		Env:         []api.EnvVar{{Name: "A", ValueFrom: &api.EnvSource{Config: &api.KeyRef{Name: "app", Key: "k"}}}},
		Files:       []api.FileSource{{Secret: "db", Dir: "db"}}}}}
}

func versions(vs ...int64) map[int64]bool {
	out := map[int64]bool{}
	for _, v := range vs {
		out[v] = true
	}
	return out
}

func sameNeed(a, b map[string]map[int64]bool) bool {
	return maps.EqualFunc(a, b, func(x, y map[int64]bool) bool { return maps.Equal(x, y) })
}

// TestNeed: a cluster needs what the workloads it runs reference, at the
// versions their template pins (the newest for a reference it does not
// pin); tombstones and workloads without references need nothing; while
// a cluster is not settled on its template, it keeps the versions of the
// revision before.
func TestNeed(t *testing.T) {
	w := uses("uses", "Config/app=10,Secret/db=20")
	settled := []api.ClusterReplicas{{Cluster: "a", Generation: 3, Desired: 2, Updated: 2, Present: 2}, {Cluster: "b", Generation: 2}}
	w.Status.Clusters = settled
	plain := api.Workload{Metadata: api.ObjectMeta{Name: "plain"}}
	old := uses("old", "") // written before the hub pinned versions
	old.Spec.Template.Annotations = nil
	workloads := map[string]api.Workload{"uses": w, "plain": plain, "old": old}
	revs := map[string][]Revision{"uses": {
		{Number: 1, Generation: 1, Pins: map[string]int64{"Config/app": 10, "Secret/db": 15}},
		{Number: 2, Generation: 3, Pins: map[string]int64{"Config/app": 10, "Secret/db": 20}},
	}}
	newest := map[string]int64{"Config/app": 10, "Secret/db": 20}
	got := Need([]pgstore.Placement{
		{Workload: "uses", Cluster: "a", Replicas: 2},
		{Workload: "uses", Cluster: "b", Replicas: 0}, // scaled to 0 here: keeps its data
		{Workload: "uses", Cluster: "c", Deleted: true},
		{Workload: "plain", Cluster: "d", Replicas: 1},
		{Workload: "gone", Cluster: "e", Replicas: 1},
		{Workload: "old", Cluster: "f", Replicas: 1},
	}, workloads, revs, newest)
	if len(got) != 3 {
		t.Errorf("want a, b and f to need something; got %v", got)
	}
	if want := map[string]map[int64]bool{"Config/app": versions(10), "Secret/db": versions(20)}; !sameNeed(got["a"], want) || !sameNeed(got["f"], want) {
		t.Errorf("settled a and unpinned f: want %v; got %v and %v", want, got["a"], got["f"])
	}
	if want := map[string]map[int64]bool{"Config/app": versions(10), "Secret/db": versions(15, 20)}; !sameNeed(got["b"], want) {
		t.Errorf("b, not settled on generation 3: want the revision before's versions too, %v; got %v", want, got["b"])
	}
}

// TestNeedUnderRollout: under a progressive rollout, each cluster needs
// the versions of the revision it is given, and of the stable one while
// the rollout is under way (a rollback is instant); once completed and
// settled, only its own.
func TestNeedUnderRollout(t *testing.T) {
	w := uses("web", "Config/app=10,Secret/db=20")
	w.Spec.Rollout = &api.ProgressiveRollout{}
	w.Status.Rollout = &api.RolloutStatus{Revision: 2, StableRevision: 1, Phase: api.RolloutProgressing, Clusters: []api.RolloutCluster{
		{Cluster: "canary", Revision: 2, Generation: 3}, {Cluster: "later", Revision: 1, Generation: 1}}}
	w.Status.Clusters = []api.ClusterReplicas{{Cluster: "canary", Generation: 3, Desired: 1, Updated: 1, Present: 1}, {Cluster: "later", Generation: 1, Desired: 1, Updated: 1, Present: 1}}
	revs := map[string][]Revision{"web": {
		{Number: 1, Generation: 1, Pins: map[string]int64{"Config/app": 10, "Secret/db": 15}},
		{Number: 2, Generation: 3, Pins: map[string]int64{"Config/app": 10, "Secret/db": 20}},
	}}
	place := []pgstore.Placement{{Workload: "web", Cluster: "canary", Replicas: 1}, {Workload: "web", Cluster: "later", Replicas: 1}}
	got := Need(place, map[string]api.Workload{"web": w}, revs, nil)
	both := map[string]map[int64]bool{"Config/app": versions(10), "Secret/db": versions(15, 20)}
	if !sameNeed(got["canary"], both) {
		t.Errorf("canary on the new revision mid-rollout: want %v; got %v", both, got["canary"])
	}
	if !got["later"]["Secret/db"][15] {
		t.Errorf("a later wave's cluster: want the stable version it runs; got %v", got["later"])
	}
	w.Status.Rollout.Phase = api.RolloutCompleted
	w.Status.Rollout.Clusters[1] = api.RolloutCluster{Cluster: "later", Revision: 2, Generation: 3}
	w.Status.Clusters[1].Generation = 3
	got = Need(place, map[string]api.Workload{"web": w}, revs, nil)
	only := map[string]map[int64]bool{"Config/app": versions(10), "Secret/db": versions(20)}
	if !sameNeed(got["canary"], only) || !sameNeed(got["later"], only) {
		t.Errorf("completed and settled: want only the new versions, %v; got %v", only, got)
	}
}
