package api

import (
	"testing"
	"time"
)

func TestRegionSplit(t *testing.T) {
	got := FormatRegionSplit(RegionSplit([]ClusterReplicas{
		{Cluster: "us-east-1", Region: "us-east", Ready: 2, Desired: 3},
		{Cluster: "eu-west-1", Region: "eu-west", Ready: 1, Desired: 1},
		{Cluster: "us-east-2", Region: "us-east", Ready: 1, Desired: 1},
		{Cluster: "lonely", Ready: 0, Desired: 2},
		{Cluster: "ap-south-1", Region: "ap-south"},           // moved off: nothing there
		{Cluster: "eu-west-2", Region: "eu-west", Present: 1}, // stopping: still there
	}))
	if want := "eu-west=1/1,lonely=0/2,us-east=3/4"; got != want { // eu-west-2 adds 0/0 to eu-west
		t.Errorf("want split %q; got %q", want, got)
	}
	if got := FormatRegionSplit(RegionSplit(nil)); got != "-" {
		t.Errorf("want %q for no clusters; got %q", "-", got)
	}
}

func TestWorkloadHealth(t *testing.T) {
	now := time.Now()
	placed := &PlacementStatus{Clusters: map[string]int32{"a": 2, "b": 1}}
	for _, tc := range []struct {
		name string
		w    Workload
		want string
	}{
		{"new", Workload{Spec: WorkloadSpec{Replicas: 3}}, WorkloadProgressing},
		{"scaled to zero", Workload{Spec: WorkloadSpec{Replicas: 0}}, WorkloadHealthy},
		{"all ready", Workload{Spec: WorkloadSpec{Replicas: 3}, Status: WorkloadStatus{ReadyReplicas: 3, Placement: placed,
			Clusters: []ClusterReplicas{{Cluster: "a", Desired: 2, Ready: 2}, {Cluster: "b", Desired: 1, Ready: 1}}}}, WorkloadHealthy},
		{"no reports yet", Workload{Spec: WorkloadSpec{Replicas: 3}, Status: WorkloadStatus{Placement: placed}}, WorkloadProgressing},
		{"rolling", Workload{Metadata: ObjectMeta{Generation: 2}, Spec: WorkloadSpec{Replicas: 3}, Status: WorkloadStatus{ObservedGeneration: 1, ReadyReplicas: 2, Placement: placed,
			Clusters: []ClusterReplicas{{Cluster: "a", Desired: 2, Ready: 2}, {Cluster: "b", Desired: 1}}}}, WorkloadProgressing},
		{"one short", Workload{Spec: WorkloadSpec{Replicas: 3}, Status: WorkloadStatus{ReadyReplicas: 2, Placement: placed,
			Clusters: []ClusterReplicas{{Cluster: "a", Region: "r1", Desired: 2, Ready: 2}, {Cluster: "b", Region: "r2", Desired: 1}}}}, WorkloadDegraded},
		{"none ready", Workload{Spec: WorkloadSpec{Replicas: 3}, Status: WorkloadStatus{Placement: placed,
			Clusters: []ClusterReplicas{{Cluster: "a", Desired: 2}, {Cluster: "b", Desired: 1}}}}, WorkloadUnavailable},
		{"unplaced", Workload{Spec: WorkloadSpec{Replicas: 5}, Status: WorkloadStatus{ReadyReplicas: 3, Placement: &PlacementStatus{Clusters: placed.Clusters, Unplaced: 2, Reason: "2 replicas unplaced: all full"}}}, WorkloadDegraded},
		{"deleting", Workload{Metadata: ObjectMeta{DeletionTimestamp: &now}, Spec: WorkloadSpec{Replicas: 3}}, WorkloadDeleting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.w.Health()
			if h.State != tc.want || h.Reason == "" {
				t.Errorf("want state %s with a reason; got %+v", tc.want, h)
			}
		})
	}
	dup := Workload{Spec: WorkloadSpec{Replicas: 2, Placement: &PlacementPolicy{ReplicaMode: "Duplicated"}},
		Status: WorkloadStatus{Placement: &PlacementStatus{Clusters: map[string]int32{"a": 2, "b": 2}, Unplaced: 2}}}
	if got := dup.DesiredReplicas(); got != 6 {
		t.Errorf("want a Duplicated workload's desired total to follow its placement (2+2 placed, 2 unplaced = 6); got %d", got)
	}
}
