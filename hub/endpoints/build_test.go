package endpoints

import (
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// TestBuild: a service's endpoints are its workload's ready replicas in
// usable clusters where the workload is placed, with ports resolved from
// the template; other workloads, Unreachable clusters, clusters not
// registered and clusters the workload is not placed on give none.
func TestBuild(t *testing.T) {
	w := &api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Template: api.ReplicaTemplate{Ports: []api.Port{{Name: "admin", HostPort: 9000}}}},
		Status: api.WorkloadStatus{Placement: &api.PlacementStatus{Clusters: map[string]int32{"a": 1, "b": 1, "gone": 1}}}}
	svc := api.Service{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.ServiceSpec{Workload: "web",
		Ports: []api.ServicePort{{Name: "http"}, {Name: "admin", Protocol: "tcp", Port: 7000, TargetPort: "admin"}}}}
	addr := func(r string, port int) protocol.ReplicaAddress {
		return protocol.ReplicaAddress{Replica: r, Host: "10.0.0.1", Port: port}
	}
	reports := map[string]report{
		"a":     {workloads: map[string][]protocol.ReplicaAddress{"web": {addr("a1", 31000)}, "other": {addr("o1", 1)}}},
		"b":     {workloads: map[string][]protocol.ReplicaAddress{"web": {addr("b1", 31001)}}},
		"c":     {workloads: map[string][]protocol.ReplicaAddress{"web": {addr("c1", 31002)}}}, // not placed on c
		"down":  {workloads: map[string][]protocol.ReplicaAddress{"web": {addr("d1", 31003)}}}, // Unreachable
		"stray": {workloads: map[string][]protocol.ReplicaAddress{"web": {addr("s1", 31004)}}}, // not registered
	}
	regions := map[string]string{"a": "eu", "b": "us", "c": "us", "down": "ap"}
	usable := func(c string) bool { return c != "down" }
	got := build([]api.Service{svc}, map[string]*api.Workload{"web": w}, regions, reports, usable)
	if len(got) != 1 || len(got[0].Endpoints) != 2 {
		t.Fatalf("want web with the endpoints of a and b only; got %+v", got)
	}
	e := got[0].Endpoints[0]
	if e.Cluster != "a" || e.Region != "eu" || e.Ports["http"] != 31000 || e.Ports["admin"] != 9000 {
		t.Errorf("want a's endpoint in eu, http on its PORT and admin on the template's host port; got %+v", e)
	}
	// A workload not placed yet takes every usable cluster's.
	w.Status.Placement = nil
	if got := build([]api.Service{svc}, map[string]*api.Workload{"web": w}, regions, reports, usable); len(got[0].Endpoints) != 3 {
		t.Errorf("want a, b and c's endpoints for a workload without a placement; got %+v", got[0].Endpoints)
	}
	// A workload placed nowhere (scaled to zero, unschedulable: the
	// placer writes no clusters) takes no cluster's: a member claiming
	// its replicas draws none of its traffic.
	w.Status.Placement = &api.PlacementStatus{Unplaced: 3, Reason: "no cluster fits"}
	if got := build([]api.Service{svc}, map[string]*api.Workload{"web": w}, regions, reports, usable); len(got[0].Endpoints) != 0 {
		t.Errorf("want no endpoints for a workload placed nowhere; got %+v", got[0].Endpoints)
	}
	// A service whose workload is gone has no endpoints (and is still listed).
	if got := build([]api.Service{svc}, nil, regions, reports, usable); len(got) != 1 || len(got[0].Endpoints) != 0 {
		t.Errorf("want web listed without endpoints; got %+v", got)
	}
}
