package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/cli/describe"
	"github.com/atollhq/atoll/cli/replicas"
)

// TestStaleIsLabelled: figures of a cluster not heard from carry their
// age in get clusters, get workloads -o wide and describe.
func TestStaleIsLabelled(t *testing.T) {
	now := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	heard := now.Add(-20 * time.Second)
	capa := &api.ClusterCapacity{NodesReady: 3, NodesTotal: 3, ReplicasReady: 6, Replicas: 8}
	cluster := func(health string) json.RawMessage {
		b, _ := json.Marshal(api.Cluster{Metadata: api.ObjectMeta{Name: "us-east"}, Status: api.ClusterStatus{Health: health, LastHeartbeatTime: &heard, Capacity: capa}})
		return b
	}
	row := printers["Cluster"].row(cluster(api.HealthUnreachable), now, false)
	if got := strings.Join(row, "|"); !strings.Contains(got, "|3/3 (last known, 20 s ago)|6/8 (last known, 20 s ago)|") {
		t.Errorf("an Unreachable cluster's row: %s", got)
	}
	row = printers["Cluster"].row(cluster(api.HealthReady), now, false)
	if got := strings.Join(row, "|"); strings.Contains(got, "last known") || !strings.Contains(got, "|3/3|6/8|") {
		t.Errorf("a Ready cluster's row: %s", got)
	}
	var described strings.Builder
	if err := describe.Object(&described, "Cluster", cluster(api.HealthSuspect), now); err != nil {
		t.Fatal(err)
	}
	if got := described.String(); !strings.Contains(got, "the cluster is Suspect: its capacity, nodes and replicas below are last known, 20 s ago") ||
		!strings.Contains(got, "3/3 ready (last known, 20 s ago)") {
		t.Errorf("describe of a Suspect cluster:\n%s", got)
	}

	w := api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Status: api.WorkloadStatus{Clusters: []api.ClusterReplicas{
		{Cluster: "eu-west", ReportedAt: &now},
		{Cluster: "us-east", ReportedAt: &heard, ClusterHealth: api.HealthUnreachable},
	}}}
	raw, _ := json.Marshal(w)
	if got := strings.Join(printers["Workload"].row(raw, now, true), "|"); !strings.Contains(got, "|us-east: last known, 20 s ago|") {
		t.Errorf("get workloads -o wide: %s", got)
	}
	var out strings.Builder
	if err := replicas.Describe(&out, w.Status, now); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "  us-east: 0/0 ready (Unreachable: last known, 20 s ago)\n") || strings.Contains(got, "eu-west: 0/0 ready (") {
		t.Errorf("describe of the workload:\n%s", got)
	}
	w.Status.Clusters = w.Status.Clusters[:1]
	raw, _ = json.Marshal(w)
	if got := strings.Join(printers["Workload"].row(raw, now, true), "|"); !strings.Contains(got, "|-|") {
		t.Errorf("get workloads -o wide, every cluster live: %s", got)
	}
}
