package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/member"
)

// TestStaleRowsAreLabelled: a workload's row of a cluster whose member
// stopped says the cluster is Unreachable and when it last reported, so
// clients can show "last known, 20 s ago"; the cluster says when it was
// last heard.
func TestStaleRowsAreLabelled(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{Interval: 100 * time.Millisecond, UnreachableAfter: 500 * time.Millisecond})
	m, err := member.New(member.Config{JoinToken: e.joinToken("j", api.TokenSpec{}), Name: "r1", Region: "eu", DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	waitFor(t, "the member's leaf link", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}}})

	row := func() api.ClusterReplicas {
		var w api.Workload
		if err := e.admin.Get(context.Background(), "workloads", "web", &w); err != nil {
			t.Fatal(err)
		}
		for _, c := range w.Status.Clusters {
			if c.Cluster == "r1" {
				return c
			}
		}
		return api.ClusterReplicas{}
	}
	waitFor(t, "r1's report of web, live", 20*time.Second, func() bool { r := row(); return r.ReportedAt != nil && r.ClusterHealth == "" })
	cancel()
	<-done
	stopped := time.Now()
	waitFor(t, "r1's row last known", 20*time.Second, func() bool { return row().ClusterHealth == api.HealthUnreachable })
	r := row()
	if r.ReportedAt == nil || r.ReportedAt.After(stopped) || stopped.Sub(*r.ReportedAt) > 10*time.Second {
		t.Errorf("want the row's report time shortly before the member stopped (%s); got %v", stopped.Format(time.RFC3339Nano), r.ReportedAt)
	}
	if lk := r.LastKnown(time.Now()); len(lk) < len("last known, 0 s ago") {
		t.Errorf("want the row labelled last known with an age; got %q", lk)
	}
	var c api.Cluster
	if err := e.admin.Get(context.Background(), "clusters", "r1", &c); err != nil {
		t.Fatal(err)
	}
	if lk := api.LastKnown(c.HealthOrUnknown(), c.Status.LastHeartbeatTime, time.Now()); lk == "" || lk == "last known" {
		t.Errorf("want the Unreachable cluster's figures labelled with their age; got %q (%+v)", lk, c.Status)
	}
}
