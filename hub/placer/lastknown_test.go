package placer

import (
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

func TestRefold(t *testing.T) {
	for _, c := range []struct {
		was, is string
		want    bool
	}{
		{"", api.HealthReady, false},
		{"", api.HealthUnreachable, true},
		{api.HealthReady, api.HealthSuspect, true},
		{api.HealthSuspect, api.HealthUnreachable, true},
		{api.HealthUnreachable, api.HealthReady, true},
		{api.HealthUnreachable, api.HealthUnreachable, false},
		{api.HealthReady, api.HealthReady, false},
	} {
		if got := refold(c.was, c.is); got != c.want {
			t.Errorf("refold(%q, %q) = %v, want %v", c.was, c.is, got, c.want)
		}
	}
}

// TestStampClusters: rows say when their cluster last reported, and
// whether their figures are last known.
func TestStampClusters(t *testing.T) {
	t1 := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	t0 := t1.Add(-time.Minute)
	rows := []api.ClusterReplicas{{Cluster: "a"}, {Cluster: "b"}, {Cluster: "c"}}
	old := []api.ClusterReplicas{{Cluster: "c", ReportedAt: &t0}}
	health := map[string]string{"a": api.HealthReady, "b": api.HealthSuspect, "c": api.HealthUnreachable}
	stampClusters(rows, old, map[string]time.Time{"a": t1, "b": t1}, func(c string) string { return health[c] })
	if !rows[0].ReportedAt.Equal(t1) || rows[0].ClusterHealth != "" {
		t.Errorf("a Ready cluster: %+v", rows[0])
	}
	if !rows[1].ReportedAt.Equal(t1) || rows[1].ClusterHealth != api.HealthSuspect || rows[1].LastKnown(t1.Add(20*time.Second)) != "last known, 20 s ago" {
		t.Errorf("a Suspect cluster: %+v", rows[1])
	}
	if rows[2].ReportedAt == nil || !rows[2].ReportedAt.Equal(t0) || rows[2].ClusterHealth != api.HealthUnreachable {
		t.Errorf("an Unreachable cluster this hub did not hear keeps the stored time: %+v", rows[2])
	}
}
