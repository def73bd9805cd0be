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
	if len(reportedBy(f)) != 0 || len(f.pending) != 0 {
		t.Errorf("a report naming another cluster than its subject was taken: %v", reportedBy(f))
	}
	f.Observe("atoll.m.a.status", []byte("garbage"))
	f.Observe("atoll.m.a.status", report("a", protocol.WorkloadStatus{Workload: "w", Desired: 3, Ready: 3}))
	if ready(f, "w", "a") != 3 || f.pending["w"]["a"].Ready != 3 || !f.dirty["w"] {
		t.Fatalf("report not taken: %v", f.pending)
	}
	f.dirty = map[string]bool{}
	f.Observe("atoll.m.a.status", report("a", protocol.WorkloadStatus{Workload: "w", Desired: 3, Ready: 3}))
	if f.dirty["w"] {
		t.Error("an unchanged report marked the workload for a write")
	}
	// The same again with conditions and times, as members send them.
	at := time.Date(2026, 12, 5, 7, 0, 0, 123e6, time.UTC)
	rich := protocol.WorkloadStatus{Workload: "w", Desired: 3, Ready: 2, Pending: "1 pending",
		Conditions: []api.Condition{{Type: "Progressing", Status: "False", Reason: "Stalled", LastTransitionTime: &at}}}
	f.Observe("atoll.m.a.status", report("a", rich))
	f.dirty = map[string]bool{}
	f.Observe("atoll.m.a.status", report("a", rich))
	if f.dirty["w"] {
		t.Error("an unchanged report with conditions marked the workload for a write")
	}
	f.Observe("atoll.m.b.status", report("b", protocol.WorkloadStatus{Workload: "w", Desired: 3}, protocol.WorkloadStatus{Workload: "v", Desired: 1}))
	f.dirty = map[string]bool{}
	f.Observe("atoll.m.a.status", report("a"))
	if _, ok := readyOf(f, "w", "a"); ok || !f.dirty["w"] || f.pending["w"]["a"] != nil {
		t.Error("a workload the cluster no longer reports is still in its breakdown")
	}
	if _, ok := readyOf(f, "w", "b"); !ok || f.dirty["v"] {
		t.Errorf("a's report changed b's rows: %v, dirty %v", reportedBy(f), f.dirty)
	}
	f.Observe("atoll.m.b.status", report("b", protocol.WorkloadStatus{Workload: "w", Desired: 3}))
	if reportedBy(f)["v"] || !f.dirty["v"] {
		t.Errorf("a workload no cluster reports is still kept: %v", reportedBy(f))
	}
}

func TestFold(t *testing.T) {
	t.Parallel()
	st := fold(rowsOf([]protocol.WorkloadStatus{
		{Workload: "w", Generation: 2, Desired: 3, Scheduled: 3, Ready: 3, Updated: 3},
		{Workload: "w", Generation: 1, Desired: 2, Scheduled: 2, Ready: 1, Updated: 0},
	}, []string{"b", "a"}), map[string]string{"a": "eu", "b": "us"}, func(string) string { return api.HealthReady }, 2, nil, nil, time.Now())
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
	st = fold(rowsOf([]protocol.WorkloadStatus{
		{Workload: "w", Generation: 2, Desired: 3, Scheduled: 3, Ready: 3, Updated: 3},
		{Workload: "w", Generation: 2, Desired: 2, Scheduled: 2, Ready: 2, Updated: 2},
	}, []string{"b", "a"}), nil, lost, 2, &api.PlacementStatus{Clusters: map[string]int32{"a": 2}}, nil, time.Now())
	b := st.Clusters[1]
	if st.ReadyReplicas != 2 || st.Replicas != 2 || st.Conditions[0].Status != "True" || b.Cluster != "b" || b.Ready != 0 || len(b.Conditions) != 1 || b.Conditions[0].Reason != "ClusterUnreachable" ||
		!strings.Contains(b.Conditions[0].Message, "last reported 3 ready") {
		t.Errorf("want an Unreachable cluster's report shown as not reporting, with nothing ready; got %+v", st)
	}
	// Before the failover the placement still wants b's 3: not Available.
	st = fold(rowsOf([]protocol.WorkloadStatus{
		{Workload: "w", Generation: 2, Desired: 3, Scheduled: 3, Ready: 3, Updated: 3},
		{Workload: "w", Generation: 2, Desired: 2, Scheduled: 2, Ready: 2, Updated: 2},
	}, []string{"b", "a"}), nil, lost, 2, &api.PlacementStatus{Clusters: map[string]int32{"a": 2, "b": 3}}, nil, time.Now())
	if st.Conditions[0].Status != "False" || !strings.Contains(st.Conditions[0].Message, "2 of 5 placed replicas ready") {
		t.Errorf("want Available=False while the lost cluster's share is not running elsewhere; got %+v", st.Conditions)
	}
}

// TestSamePlacementStatusIgnoresEmptyMaps: a stored status (empty maps
// dropped) and a fresh decision (empty maps) with the same outcome are
// the same, so re-deciding a settled workload writes nothing; nor does a
// cluster's health alone, which a stored status never holds.
func TestSamePlacementStatusIgnoresEmptyMaps(t *testing.T) {
	stored := &api.PlacementStatus{Epoch: 3, Clusters: map[string]int32{"a": 1}}
	fresh := &api.PlacementStatus{Clusters: map[string]int32{"a": 1}, Filtered: map[string]string{}, FailedOverFrom: map[string]int32{}}
	if !samePlacementStatus(stored, fresh) {
		t.Errorf("want a stored status and a fresh decision with the same outcome judged the same")
	}
	// A cluster's health alone is no new outcome: a Suspect blip, or a
	// loss within its grace, writes nothing (a status stores no health).
	for _, health := range []string{"Suspect", "Unknown", "Unreachable", "Unreachable; failover at 12:00:05"} {
		fresh.Filtered = policyReasons(map[string]string{"b": health})
		if !samePlacementStatus(stored, fresh) {
			t.Errorf("b filtered out as %q judged a change", health)
		}
	}
	fresh.Filtered = policyReasons(map[string]string{"b": "cordoned"})
	if samePlacementStatus(stored, fresh) {
		t.Errorf("want a new filter reason judged a change")
	}
	// A status stored with a cluster's health (before statuses dropped
	// it) is written once without it.
	if samePlacementStatus(&api.PlacementStatus{Clusters: map[string]int32{"a": 1}, Filtered: map[string]string{"b": "Suspect"}}, stored) {
		t.Errorf("want a stored health reason judged different from none")
	}
	// Health next to a changed outcome is not written with it either.
	fresh.Filtered, fresh.Clusters["c"] = policyReasons(map[string]string{"b": "Suspect"}), 1
	if samePlacementStatus(stored, fresh) || len(fresh.Filtered) != 0 {
		t.Errorf("want a changed outcome judged a change, and no health in it: %v", fresh.Filtered)
	}
}

func TestWarningCount(t *testing.T) {
	for _, c := range []struct {
		prev     int32
		seen     bool
		restarts int32
		want     int32
	}{
		{0, false, 0, 1}, // new: once
		{0, false, 9, 1}, // new after a hub restart: once, not nine
		{3, true, 3, 0},  // nothing happened again
		{3, true, 7, 4},  // four more restarts
		{7, true, 2, 1},  // replicas replaced: their restarts start over
	} {
		if got := warningCount(c.prev, c.seen, c.restarts); got != c.want {
			t.Errorf("warningCount(%d, %v, %d) = %d, want %d", c.prev, c.seen, c.restarts, got, c.want)
		}
	}
}

// TestStatusFolderTakesOlderMembers: a member one version behind reports
// without states, examples or problems; its report folds all the same
// (counts only), and a current member's carries them into the API's
// status.
func TestStatusFolderTakesOlderMembers(t *testing.T) {
	t.Parallel()
	f := NewStatusFolder(nil, nil, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	old, _ := json.Marshal(map[string]any{"v": protocol.MinVersion, "cluster": "a", "workloads": []map[string]any{{"workload": "w", "desired": 2, "ready": 1}}})
	f.Observe("atoll.m.a.status", old)
	if f.pending["w"]["a"] == nil || f.pending["w"]["a"].Ready != 1 {
		t.Fatalf("a version %d report was not taken: %v", protocol.MinVersion, f.pending)
	}
	code := 127
	cur := protocol.WorkloadStatus{Workload: "w", Desired: 2, States: map[string]int32{protocol.StateBackOff: 2},
		Examples: []protocol.ReplicaSummary{{Replica: "w-1", Node: "n1", State: protocol.StateBackOff, ExitCode: &code, Message: "boom"}},
		Problems: []protocol.ReplicaProblem{{Reason: protocol.ProblemReplicaFailed, Replicas: 2, Message: "boom"}}}
	st := fold(rowsOf([]protocol.WorkloadStatus{*f.pending["w"]["a"], cur}, []string{"a", "b"}), nil, func(string) string { return api.HealthReady }, 1, nil, nil, time.Now())
	if len(st.Clusters) != 2 || st.Clusters[0].States != nil || st.Clusters[0].Examples != nil {
		t.Fatalf("the older member's cluster: %+v", st.Clusters)
	}
	b := st.Clusters[1]
	if b.States[protocol.StateBackOff] != 2 || len(b.Examples) != 1 || b.Examples[0].Cluster != "b" || *b.Examples[0].ExitCode != 127 || len(b.Problems) != 1 {
		t.Fatalf("the current member's cluster: %+v", b)
	}
}

// TestNewWarnings: a crash loop is one event whose count grows with the
// restarts; a problem that went away and came back counts again.
func TestNewWarnings(t *testing.T) {
	f := NewStatusFolder(nil, nil, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	failed := func(restarts int32) []protocol.ReplicaProblem {
		return []protocol.ReplicaProblem{{Reason: protocol.ProblemReplicaFailed, Replicas: 1, Restarts: restarts, Message: "boom"}}
	}
	fenced := []protocol.ReplicaProblem{{Reason: protocol.ProblemFenced, Replicas: 1, Message: "held"}}
	steps := []struct {
		problems []protocol.ReplicaProblem
		want     map[string]int32
	}{
		{failed(0), map[string]int32{protocol.ProblemReplicaFailed: 1}},
		{failed(0), nil},
		{failed(3), map[string]int32{protocol.ProblemReplicaFailed: 3}},
		{nil, nil},
		{failed(4), map[string]int32{protocol.ProblemReplicaFailed: 1}},
		{fenced, map[string]int32{protocol.ProblemFenced: 1}},
		{fenced, nil},
		{nil, nil},
		{fenced, map[string]int32{protocol.ProblemFenced: 1}},
	}
	for i, s := range steps {
		got := map[string]int32{}
		for _, w := range f.newWarningsLocked("w", "c", s.problems) {
			got[w.Reason] += w.add
		}
		if len(got) != len(s.want) {
			t.Fatalf("step %d: %v, want %v", i, got, s.want)
		}
		for r, n := range s.want {
			if got[r] != n {
				t.Fatalf("step %d: %v, want %v", i, got, s.want)
			}
		}
	}
}

// TestFoldUnreachableReplicasAreUnknown: what an Unreachable cluster
// reported last shows as Unknown, with its last words as history, and
// raises no problems.
func TestFoldUnreachableReplicasAreUnknown(t *testing.T) {
	r := protocol.WorkloadStatus{Workload: "w", Desired: 2, Ready: 2, States: map[string]int32{protocol.StateReady: 1, protocol.StateBackOff: 1},
		Examples: []protocol.ReplicaSummary{{Replica: "w-1", Node: "n1", State: protocol.StateBackOff, Message: "boom"}},
		Problems: []protocol.ReplicaProblem{{Reason: protocol.ProblemBackOff, Replicas: 1, Message: "boom"}}}
	st := fold(rowsOf([]protocol.WorkloadStatus{r}, []string{"a"}), nil, func(string) string { return api.HealthUnreachable }, 1, nil, nil, time.Now())
	c := st.Clusters[0]
	if c.States[protocol.StateUnknown] != 2 || len(c.States) != 1 || c.Problems != nil {
		t.Fatalf("states %v problems %v: want 2 Unknown and no problems", c.States, c.Problems)
	}
	if e := c.Examples[0]; e.State != protocol.StateUnknown || !strings.Contains(e.Message, "last known BackOff: boom") {
		t.Fatalf("example %+v", e)
	}
}

// rowsOf is the clusters' reports as their rows.
func rowsOf(reports []protocol.WorkloadStatus, clusters []string) []api.ClusterReplicas {
	rows := make([]api.ClusterReplicas, len(reports))
	for i := range reports {
		rows[i] = reportRow(clusters[i], &reports[i])
	}
	return rows
}
