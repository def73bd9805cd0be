package web

import (
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

func TestLastKnownAfter(t *testing.T) {
	for _, c := range []struct {
		health string
		age    float64
		want   string
	}{
		{api.HealthReady, 0.4, ""},
		{api.HealthUnreachable, 20.7, "last known, 20 s ago"},
		{api.HealthSuspect, 1.2, "last known, 1 s ago"},
		{api.HealthUnknown, -1, "last known"},
	} {
		if got := lastKnownAfter(c.health, c.age); got != c.want {
			t.Errorf("lastKnownAfter(%s, %v) = %q, want %q", c.health, c.age, got, c.want)
		}
	}
}

// TestWorkloadClusters: a workload's rows of clusters that are not Ready
// now are labelled, by the live health, with the report's age.
func TestWorkloadClusters(t *testing.T) {
	now := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	reported, heard := now.Add(-20*time.Second), now.Add(-30*time.Second)
	cluster := func(name, health string) *api.Cluster {
		return &api.Cluster{Metadata: api.ObjectMeta{Name: name}, Status: api.ClusterStatus{Health: health, LastHeartbeatTime: &heard}}
	}
	rows := []api.ClusterReplicas{
		{Cluster: "live", ReportedAt: &reported},
		{Cluster: "lost", ReportedAt: &reported},
		{Cluster: "lost-unreported"},
		{Cluster: "back", ReportedAt: &reported, ClusterHealth: api.HealthUnreachable}, // folded while lost, Ready now
		{Cluster: "gone", ReportedAt: &reported, ClusterHealth: api.HealthUnreachable}, // no longer a cluster
	}
	got := workloadClusters(rows, []*api.Cluster{cluster("live", api.HealthReady), cluster("lost", api.HealthUnreachable),
		cluster("lost-unreported", api.HealthSuspect), cluster("back", api.HealthReady)}, now)
	want := []string{"", "last known, 20 s ago", "last known, 30 s ago", "", "last known, 20 s ago"}
	for i, w := range want {
		if got[i].LastKnown != w || got[i].Cluster != rows[i].Cluster {
			t.Errorf("%s: %q, want %q", rows[i].Cluster, got[i].LastKnown, w)
		}
	}
}

// TestCandidateWhy: a cluster not Ready is left out for its live health
// (a stored status names none); a Ready one for its stored reason, never
// a health stored before it came back.
func TestCandidateWhy(t *testing.T) {
	for _, c := range []struct{ stored, health, want string }{
		{"", api.HealthReady, ""},
		{"cordoned", api.HealthReady, "cordoned"},
		{"", api.HealthUnreachable, api.HealthUnreachable},
		{"cordoned", api.HealthSuspect, api.HealthSuspect},
		{api.HealthSuspect, api.HealthReady, ""},
		{"Unreachable; failover at 12:00:05", api.HealthReady, ""},
		{"", api.HealthUnknown, api.HealthUnknown},
	} {
		if got := candidateWhy(c.stored, c.health); got != c.want {
			t.Errorf("candidateWhy(%q, %s) = %q, want %q", c.stored, c.health, got, c.want)
		}
	}
}
