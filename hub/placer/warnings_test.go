package placer

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// TestCrashLoopIsOneEvent: a crash loop reported over many passes (on a
// real PostgreSQL) leaves one Warning event per workload, cluster and
// reason, whose count follows the restarts and whose first time stays
// while its last time moves.
func TestCrashLoopIsOneEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := openStore(t)
	registerClusters(t, store, "a", "b")
	spec, _ := json.Marshal(api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "process", Command: "nope"}})
	if _, err := store.Create(ctx, pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "w"}, Spec: spec, Status: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewStatusFolder(store, nil, nil, nil, func() time.Time { return clock }, noop.NewMeterProvider().Meter(""), 0)
	const msg = `exec: "nope": executable file not found in $PATH`
	report := func(cluster string, restarts int32) {
		ws := protocol.WorkloadStatus{Workload: "w", Desired: 1, Scheduled: 1, States: map[string]int32{protocol.StateBackOff: 1},
			Problems: []protocol.ReplicaProblem{{Reason: protocol.ProblemReplicaFailed, Replicas: 1, Restarts: restarts, Replica: "w-1", Node: "n1", Message: msg}}}
		b, _ := json.Marshal(protocol.StatusReport{Version: protocol.Version, Cluster: cluster, Workloads: []protocol.WorkloadStatus{ws}})
		f.Observe(protocol.StatusSubject(cluster), b)
		if _, err := f.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Ten minutes of restarts, one a minute (each report also changes
	// nothing else, as a crash loop's do).
	for i := range 11 {
		report("a", int32(i))
		clock = clock.Add(time.Minute)
	}
	report("b", 0) // another cluster: an event of its own
	res, err := store.List(ctx, "Event", pgstore.ListOptions{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	byCluster := map[string]api.Event{}
	for _, rec := range res.Items {
		var e api.Event
		if err := rec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		if e.Reason != protocol.ProblemReplicaFailed {
			continue
		}
		if _, dup := byCluster[e.Cluster]; dup {
			t.Fatalf("two ReplicaFailed events for cluster %s", e.Cluster)
		}
		byCluster[e.Cluster] = e
	}
	a, b := byCluster["a"], byCluster["b"]
	if a.Count != 11 || a.Type != api.EventWarning || a.InvolvedObject.Name != "w" {
		t.Errorf("cluster a's event: count %d type %s object %s, want 11, Warning, w", a.Count, a.Type, a.InvolvedObject.Name)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if a.FirstTimestamp == nil || !a.FirstTimestamp.Equal(start) || a.EventTime == nil || !a.EventTime.Equal(start.Add(10*time.Minute)) {
		t.Errorf("cluster a's event: first %v last %v, want %v and 10 minutes later", a.FirstTimestamp, a.EventTime, start)
	}
	if b.Count != 1 || b.Message == "" {
		t.Errorf("cluster b's event: %+v, want one occurrence with words", b)
	}
}
