package rollout

import (
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestEvaluate: each stage of a rollout reads as kubectl's would, an
// Unreachable cluster counts for nothing, and any cluster's
// Progressing=False is a stall.
func TestEvaluate(t *testing.T) {
	cl := func(name string, gen int64, desired, scheduled, updated, ready int32, conds ...api.Condition) api.ClusterReplicas {
		return api.ClusterReplicas{Cluster: name, Generation: gen, Desired: desired, Scheduled: scheduled, Updated: updated, Ready: ready, Conditions: conds}
	}
	placed := &api.PlacementStatus{Epoch: 7, Clusters: map[string]int32{"eu": 2, "us": 2}}
	wl := func(clusters ...api.ClusterReplicas) api.Workload {
		return api.Workload{Metadata: api.ObjectMeta{Name: "web", Generation: 3}, Status: api.WorkloadStatus{Placement: placed, Clusters: clusters}}
	}
	unreachable := api.Condition{Type: "Reporting", Status: "False"}
	stall := api.Condition{Type: "Progressing", Status: "False", Reason: "ProgressDeadlineExceeded", Message: "no progress"}
	for _, c := range []struct {
		name  string
		w     api.Workload
		want  string
		done  bool
		stall bool
	}{
		{"not placed", api.Workload{Metadata: api.ObjectMeta{Name: "web", Generation: 1}}, "has not placed it yet", false, false},
		{"one cluster behind", wl(cl("eu", 3, 2, 2, 2, 2), cl("us", 2, 2, 2, 2, 2)), "cluster us is not yet on generation 3", false, false},
		{"one cluster silent", wl(cl("eu", 3, 2, 2, 2, 2)), "waiting for cluster us to report", false, false},
		{"updating", wl(cl("eu", 3, 2, 3, 1, 2), cl("us", 3, 2, 2, 0, 2)), "1 out of 4 new replicas have been updated... (eu: 1/2 updated, 2 old; us: 0/2 updated, 2 old)", false, false},
		{"old ones going", wl(cl("eu", 3, 2, 3, 2, 2), cl("us", 3, 2, 2, 2, 2)), "1 old replicas are pending termination", false, false},
		{"not ready", wl(cl("eu", 3, 2, 2, 2, 1), cl("us", 3, 2, 2, 2, 2)), "3 of 4 updated replicas are available", false, false},
		{"done", wl(cl("eu", 3, 2, 2, 2, 2), cl("us", 3, 2, 2, 2, 2)), `workload "web" successfully rolled out`, true, false},
		{"unreachable counts for nothing", wl(cl("eu", 3, 2, 2, 2, 2), cl("us", 3, 2, 2, 2, 2), cl("ap", 1, 2, 2, 0, 0, unreachable)), "successfully rolled out", true, false},
		{"stalled", wl(cl("eu", 3, 2, 3, 1, 2, stall), cl("us", 3, 2, 2, 2, 2)), "cluster eu: no progress (ProgressDeadlineExceeded)", false, true},
	} {
		p := Evaluate(c.w)
		if !strings.Contains(p.Message, c.want) || p.Done != c.done || (p.Stalled != "") != c.stall {
			t.Errorf("%s: want %q (done %v, stalled %v); got %+v", c.name, c.want, c.done, c.stall, p)
		}
	}
}
