package placer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// TestStatusFolderObserve: a member speaks only for itself; a workload it
// stops reporting leaves its breakdown.
func TestStatusFolderObserve(t *testing.T) {
	t.Parallel()
	f := NewStatusFolder(nil, nil, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	report := func(cluster string, ws ...protocol.WorkloadStatus) []byte {
		b, _ := json.Marshal(protocol.StatusReport{Version: protocol.Version, Cluster: cluster, Workloads: ws})
		return b
	}
	f.Observe("atoll.m.a.status", report("b", protocol.WorkloadStatus{Workload: "w", Desired: 3}))
	if len(f.reports) != 0 {
		t.Errorf("a report naming another cluster than its subject was taken: %+v", f.reports)
	}
	f.Observe("atoll.m.a.status", []byte("garbage"))
	f.Observe("atoll.m.a.status", report("a", protocol.WorkloadStatus{Workload: "w", Desired: 3, Ready: 3}))
	if f.reports["w"]["a"].Ready != 3 || !f.dirty["w"] {
		t.Fatalf("report not taken: %+v", f.reports)
	}
	f.dirty = map[string]bool{}
	f.Observe("atoll.m.a.status", report("a", protocol.WorkloadStatus{Workload: "w", Desired: 3, Ready: 3}))
	if f.dirty["w"] {
		t.Error("an unchanged report marked the workload for a write")
	}
	f.Observe("atoll.m.a.status", report("a"))
	if _, ok := f.reports["w"]["a"]; ok || !f.dirty["w"] {
		t.Error("a workload the cluster no longer reports is still in its breakdown")
	}
}

func TestFold(t *testing.T) {
	t.Parallel()
	st := fold([]protocol.WorkloadStatus{
		{Workload: "w", Generation: 2, Desired: 3, Scheduled: 3, Ready: 3, Updated: 3},
		{Workload: "w", Generation: 1, Desired: 2, Scheduled: 2, Ready: 1, Updated: 0},
	}, []string{"b", "a"}, map[string]string{"a": "eu", "b": "us"}, func(string) string { return api.HealthReady }, 2, nil, nil, time.Now())
	if st.Replicas != 5 || st.ReadyReplicas != 4 || st.UpdatedReplicas != 3 || st.ObservedGeneration != 1 ||
		st.Clusters[0].Cluster != "a" || st.Clusters[0].Region != "eu" || st.Conditions[0].Status != "False" {
		t.Errorf("folded: %+v", st)
	}
	// b is lost: its last report counts for nothing ready.
	lost := func(c string) string {
		if c == "b" {
			return api.HealthUnreachable
		}
		return api.HealthReady
	}
	st = fold([]protocol.WorkloadStatus{
		{Workload: "w", Generation: 2, Desired: 3, Scheduled: 3, Ready: 3, Updated: 3},
		{Workload: "w", Generation: 2, Desired: 2, Scheduled: 2, Ready: 2, Updated: 2},
	}, []string{"b", "a"}, nil, lost, 2, &api.PlacementStatus{Clusters: map[string]int32{"a": 2}}, nil, time.Now())
	b := st.Clusters[1]
	if st.ReadyReplicas != 2 || st.Replicas != 2 || st.Conditions[0].Status != "True" || b.Cluster != "b" || b.Ready != 0 || len(b.Conditions) != 1 || b.Conditions[0].Reason != "ClusterUnreachable" ||
		!strings.Contains(b.Conditions[0].Message, "last reported 3 ready") {
		t.Errorf("want an Unreachable cluster's report shown as not reporting, with nothing ready; got %+v", st)
	}
	// Before the failover the placement still wants b's 3: not Available.
	st = fold([]protocol.WorkloadStatus{
		{Workload: "w", Generation: 2, Desired: 3, Scheduled: 3, Ready: 3, Updated: 3},
		{Workload: "w", Generation: 2, Desired: 2, Scheduled: 2, Ready: 2, Updated: 2},
	}, []string{"b", "a"}, nil, lost, 2, &api.PlacementStatus{Clusters: map[string]int32{"a": 2, "b": 3}}, nil, time.Now())
	if st.Conditions[0].Status != "False" || !strings.Contains(st.Conditions[0].Message, "2 of 5 placed replicas ready") {
		t.Errorf("want Available=False while the lost cluster's share is not running elsewhere; got %+v", st.Conditions)
	}
}

// TestSamePlacementStatusIgnoresEmptyMaps: a stored status (empty maps
// dropped) and a fresh decision (empty maps) with the same outcome are
// the same, so re-deciding a settled workload writes nothing.
func TestSamePlacementStatusIgnoresEmptyMaps(t *testing.T) {
	stored := &api.PlacementStatus{Epoch: 3, Clusters: map[string]int32{"a": 1}}
	fresh := &api.PlacementStatus{Clusters: map[string]int32{"a": 1}, Filtered: map[string]string{}, FailedOverFrom: map[string]int32{}}
	if !samePlacementStatus(stored, fresh) {
		t.Errorf("want a stored status and a fresh decision with the same outcome judged the same")
	}
	fresh.Filtered["b"] = "cordoned"
	if samePlacementStatus(stored, fresh) {
		t.Errorf("want a new filter reason judged a change")
	}
}

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
