package standby

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/protocol"
)

func cluster(name string, health string, mod func(*api.Cluster)) failover.Cluster {
	now := time.Now()
	c := failover.Cluster{Cluster: api.Cluster{Metadata: api.ObjectMeta{Name: name, Labels: map[string]string{api.LabelRegion: name}}},
		Known: true, Live: failover.Live{Health: health, Heard: true, Seen: now, Since: now.Add(-time.Hour)}}
	if mod != nil {
		mod(&c.Cluster)
	}
	return c
}

func oci(name string, replicas int32, pol *api.PlacementPolicy) api.Workload {
	return api.Workload{Metadata: api.ObjectMeta{Name: name, Generation: 3}, Spec: api.WorkloadSpec{Replicas: replicas, Placement: pol,
		Template: api.ReplicaTemplate{Driver: "oci", Image: "r.example/" + name + ":v1"}}}
}

// TestLists: a workload's pinned image goes to the clusters its placement
// allows and that run none of its replicas; not to clusters it runs in,
// excludes, that are tainted, cordoned or Unreachable; never unpinned,
// for process workloads, workloads scaled to zero or not placed yet.
func TestLists(t *testing.T) {
	clusters := []failover.Cluster{
		cluster("a", api.HealthReady, nil),
		cluster("b", api.HealthReady, nil),
		cluster("c", api.HealthReady, nil),
		cluster("tainted", api.HealthReady, func(c *api.Cluster) { c.Spec.Taints = []api.Taint{{Key: "k", Effect: "NoSchedule"}} }),
		cluster("cordoned", api.HealthReady, func(c *api.Cluster) { c.Spec.Unschedulable = true }),
		cluster("lost", api.HealthUnreachable, nil),
	}
	web := oci("web", 2, &api.PlacementPolicy{ExcludeClusters: []string{"c"}})
	unpinned := oci("unpinned", 1, nil)
	idle := oci("idle", 0, nil)
	fresh := oci("fresh", 1, nil)
	// Exclusive: one cluster at a time (spread maxGroups 1), so every
	// other allowed cluster is its standby.
	db := oci("db", 1, &api.PlacementPolicy{Clusters: []string{"a", "b", "c"}})
	db.Spec.Failover = &api.FailoverPolicy{Mode: "exclusive"}
	proc := api.Workload{Metadata: api.ObjectMeta{Name: "proc"}, Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "process", Command: "/bin/true"}}}
	pinned := map[string]string{"db": "r.example/db:v1@sha256:dd", "web": "r.example/web:v1@sha256:aa", "idle": "r.example/idle:v1@sha256:bb", "proc": "x", "fresh": "r.example/fresh:v1@sha256:cc"}
	got := Lists(Input{Workloads: []api.Workload{web, unpinned, idle, proc, fresh, db}, Pinned: pinned, Clusters: clusters,
		Placed: map[string]map[string]int32{"web": {"a": 2}, "db": {"b": 1}}, Now: time.Now()})
	var with, dbOn []string
	for c, list := range got {
		for _, im := range list {
			if im.Workload == "db" {
				dbOn = append(dbOn, c)
				continue
			}
			if im.Workload != "web" {
				t.Errorf("cluster %s holds %s: only web and db are pinned, oci and placed", c, im.Workload)
				continue
			}
			with = append(with, c)
			if im.Image != pinned["web"] || im.Replicas != 2 || im.Generation != 3 || im.Template.Image != pinned["web"] {
				t.Errorf("cluster %s: %+v; want web's pinned image, 2 replicas, generation 3", c, im)
			}
		}
	}
	slices.Sort(with)
	slices.Sort(dbOn)
	if !slices.Equal(dbOn, []string{"a", "c"}) {
		t.Errorf("exclusive db runs in b: want it warm in a and c; got %v", dbOn)
	}
	if !slices.Equal(with, []string{"b"}) {
		t.Errorf("web is kept warm on %v; want b alone (a runs it, c is excluded, the rest cannot take it)", with)
	}
	for c, list := range got {
		if d := protocol.StandbyDigest(list); d == protocol.StandbyDigest(nil) && len(list) > 0 {
			t.Errorf("cluster %s: a non-empty list has the empty list's digest", c)
		}
	}
}

// BenchmarkLists: the standby lists of 1,000 oci workloads over 20
// clusters, each placed in 2 and allowed in 10 (a pass of the
// controller decides this once).
func BenchmarkLists(b *testing.B) {
	var clusters []failover.Cluster
	var names []string
	for i := range 20 {
		n := fmt.Sprintf("c%02d", i)
		names = append(names, n)
		clusters = append(clusters, cluster(n, api.HealthReady, nil))
	}
	in := Input{Pinned: map[string]string{}, Placed: map[string]map[string]int32{}, Clusters: clusters, Now: time.Now()}
	for i := range 1000 {
		allowed := slices.Clone(names[i%10 : i%10+10])
		w := oci(fmt.Sprintf("w%04d", i), 4, &api.PlacementPolicy{Clusters: allowed})
		in.Workloads = append(in.Workloads, w)
		in.Pinned[w.Metadata.Name] = "r.example/" + w.Metadata.Name + ":v1@sha256:aa"
		in.Placed[w.Metadata.Name] = map[string]int32{allowed[0]: 2, allowed[1]: 2}
	}
	b.ReportAllocs()
	for b.Loop() {
		lists := Lists(in)
		if len(lists) != 17 { // c00, c01 always run what allows them; c19 is allowed nowhere
			b.Fatalf("%d clusters have lists", len(lists))
		}
	}
}
