package hub_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/pgstore"
)

// BenchmarkHugeWorkload (issue 14, finding 6): one operator request for a
// sim workload at the API's maximum replica count (100,000, Divided over
// three in-process members with 200 sim nodes each) must not starve the
// members' heartbeats: it reports every Suspect and Unreachable
// transition the hub recorded from the apply to the end of the delete
// (target 0), the time until every replica ran, and the time from the
// delete until every member's bindings were gone (target under 30 s).
func BenchmarkHugeWorkload(b *testing.B) {
	const (
		nMembers, nodesPer = 3, 200
		replicas           = 100000
	)
	var readies, clears, suspects, unreachables []float64
	for range b.N {
		b.StopTimer()
		e := newMemberEnv(b, members.HealthConfig{})
		var mu sync.Mutex
		ready := map[string]bool{}
		allIn := make(chan struct{})
		regions := startSimRegions(b, e, nMembers, nodesPer, func(cluster, replica string, _ time.Time) {
			mu.Lock()
			defer mu.Unlock()
			if key := cluster + "/" + replica; !ready[key] {
				ready[key] = true
				if len(ready) == replicas {
					close(allIn)
				}
			}
		})
		ctx := context.Background()
		t0 := time.Now()
		b.StartTimer()
		w := api.Workload{Metadata: api.ObjectMeta{Name: "huge"}, Spec: api.WorkloadSpec{Replicas: replicas,
			Template:  api.ReplicaTemplate{Driver: "sim", Sim: &api.SimSpec{StartLatency: "10ms"}},
			Placement: &api.PlacementPolicy{ReplicaMode: "Divided"}}}
		if err := e.admin.Create(ctx, "workloads", w, nil); err != nil {
			b.Fatalf("create: %v", err)
		}
		select {
		case <-allIn:
		case <-time.After(4 * time.Minute):
			mu.Lock()
			n := len(ready)
			mu.Unlock()
			var where []string
			for _, r := range regions {
				for _, s := range r.member.Workloads() {
					bs, _ := r.member.State().Bindings(ctx)
					where = append(where, fmt.Sprintf("%s: desired %d scheduled %d ready %d present %d pending %q, %d bindings",
						r.name, s.Desired, s.Scheduled, s.Ready, s.Present, s.Pending, len(bs)))
				}
			}
			b.Fatalf("%d of %d replicas Ready after 4m; the members say: %s", n, replicas, strings.Join(where, "; "))
		}
		readyAt := time.Now()
		if err := e.admin.Delete(ctx, "workloads", "huge", nil); err != nil {
			b.Fatalf("delete: %v", err)
		}
		deleted := time.Now()
		waitFor(b, "every member's bindings gone", 10*time.Minute, func() bool {
			for _, r := range regions {
				bs, err := r.member.State().Bindings(ctx)
				if err != nil || len(bs) > 0 {
					return false
				}
			}
			return true
		})
		cleared := time.Now()
		b.StopTimer()
		s, u := healthTransitions(b, e.store, t0)
		readies = append(readies, readyAt.Sub(t0).Seconds())
		clears = append(clears, cleared.Sub(deleted).Seconds())
		suspects, unreachables = append(suspects, float64(s)), append(unreachables, float64(u))
		b.Logf("100,000 replicas Ready %.1f s after the apply; bindings gone %.1f s after the delete; %d Suspect and %d Unreachable transitions",
			readyAt.Sub(t0).Seconds(), cleared.Sub(deleted).Seconds(), s, u)
		b.StartTimer()
	}
	b.ReportMetric(mean(readies), "all-ready-s")
	b.ReportMetric(mean(clears), "delete-clear-s")
	b.ReportMetric(mean(suspects), "suspect-transitions")
	b.ReportMetric(mean(unreachables), "unreachable-transitions")
}

// healthTransitions counts the ClusterSuspect and ClusterUnreachable
// events the hub recorded since t0.
func healthTransitions(b *testing.B, store *pgstore.Store, since time.Time) (suspect, unreachable int) {
	b.Helper()
	res, err := store.List(context.Background(), "Event", pgstore.ListOptions{Limit: -1})
	if err != nil {
		b.Fatal(err)
	}
	for _, rec := range res.Items {
		var ev api.Event
		if err := rec.Decode(&ev); err != nil {
			b.Fatal(err)
		}
		if ev.EventTime == nil || ev.EventTime.Before(since) {
			continue
		}
		switch ev.Reason {
		case "ClusterSuspect":
			suspect++
		case "ClusterUnreachable":
			unreachable++
		}
	}
	return suspect, unreachable
}
