package failover

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// TestRebalance: an operator's request moves replicas toward the fresh
// split at once, make-before-break; the auto policy does it after the
// stabilisation window within failbackRate; neither moves anything while
// a failover is under way, earlier moves are not ready, a cluster running
// the workload is unhealthy, or the workload is exclusive.
func TestRebalance(t *testing.T) {
	t.Parallel()
	hourAgo := t0.Add(-time.Hour)
	// c came back (Ready since t0); a and b never left.
	backC := []Cluster{lc("a", api.HealthReady, t0, hourAgo), lc("b", api.HealthReady, t0, hourAgo), lc("c", api.HealthReady, t0, t0)}
	suspectB := slices.Clone(backC)
	suspectB[1].Live.Health = api.HealthSuspect
	onAB := map[string]int32{"a": 3, "b": 3}
	web := workload(6, &api.FailoverPolicy{StabilizationWindow: "30s"})
	auto := with(web, func(w *api.Workload) { w.Spec.Failover.Rebalance = api.RebalanceAuto })
	limited := with(auto, func(w *api.Workload) { w.Spec.Failover.FailbackRate = 1 })
	exclusive := workload(1, &api.FailoverPolicy{Mode: "exclusive"})

	cases := []struct {
		name     string
		clusters []Cluster
		w        *api.Workload
		current  map[string]int32
		asked    bool
		now      time.Time
		want     outcome
		moves    []api.RebalanceMove
		blocked  string // a part of Rebalance.Blocked ("": none)
		done     bool
	}{
		{"not asked, manual policy: nothing moves", backC, web, onAB, false, t0.Add(time.Hour),
			outcome{Assignment: onAB}, nil, "", false},
		{"asked: one from a and one from b to c, kept until ready", backC, web, onAB, true, t0.Add(time.Second),
			outcome{Assignment: map[string]int32{"a": 3, "b": 3, "c": 2}, FailingBack: map[string]int32{"c": 2}, Waiting: true,
				Explains: "rebalance: moving 1 a→c, 1 b→c toward the fresh split a 2, b 2, c 2"},
			[]api.RebalanceMove{{From: "a", To: "c", Replicas: 1}, {From: "b", To: "c", Replicas: 1}}, "", true},
		{"asked, already balanced: done, nothing moves", backC, web, map[string]int32{"a": 2, "b": 2, "c": 2}, true, t0,
			outcome{Assignment: map[string]int32{"a": 2, "b": 2, "c": 2}, Explains: "rebalance: nothing to move"}, nil, "", true},
		{"asked while b is Suspect: waits", suspectB, web, onAB, true, t0,
			outcome{Assignment: onAB, Explains: "rebalance waits: b, which runs 3 of its replicas, is Suspect"}, nil, "is Suspect", false},
		{"asked while earlier moves are not ready: waits", backC, with(web, away(nil, map[string]int32{"c": 1})),
			map[string]int32{"a": 3, "b": 2, "c": 1}, true, t0,
			outcome{Assignment: map[string]int32{"a": 3, "b": 2, "c": 1}, FailingBack: map[string]int32{"c": 1}, Waiting: true}, nil, "not ready yet", false},
		{"asked for an exclusive workload: refused to move", backC, exclusive, map[string]int32{"a": 1}, true, t0,
			outcome{Assignment: map[string]int32{"a": 1}}, nil, "exclusive", false},
		{"auto within c's window: nothing yet, decided again when it ends", backC, auto, onAB, false, t0.Add(10 * time.Second),
			outcome{Assignment: onAB, WakeAt: t0.Add(30 * time.Second)}, nil, "", false},
		{"auto after the window: c takes its share", backC, auto, onAB, false, t0.Add(30 * time.Second),
			outcome{Assignment: map[string]int32{"a": 3, "b": 3, "c": 2}, FailingBack: map[string]int32{"c": 2}, Waiting: true},
			[]api.RebalanceMove{{From: "a", To: "c", Replicas: 1}, {From: "b", To: "c", Replicas: 1}}, "", false},
		{"auto at failbackRate 1: one replica a minute", backC, limited, onAB, false, t0.Add(30 * time.Second),
			outcome{Assignment: map[string]int32{"a": 3, "b": 3, "c": 1}, FailingBack: map[string]int32{"c": 1}, Waiting: true,
				Bucket: &Bucket{Tokens: 0, At: t0.Add(30 * time.Second)}},
			[]api.RebalanceMove{{From: "a", To: "c", Replicas: 1}}, "", false},
		{"auto leaves failback's clusters to failback", backC, with(auto, away(map[string]int32{"c": 2}, nil)), onAB, false, t0.Add(10 * time.Second),
			outcome{Assignment: onAB, FailedOverFrom: map[string]int32{"c": 2}, WakeAt: t0.Add(30 * time.Second)}, nil, "", false},
		{"asked: answers failback's record for what it brings back", backC,
			with(web, func(w *api.Workload) { away(map[string]int32{"c": 2}, nil)(w); w.Spec.Failover.Failback = "manual" }), onAB, true, t0.Add(10 * time.Second),
			outcome{Assignment: map[string]int32{"a": 3, "b": 3, "c": 2}, FailingBack: map[string]int32{"c": 2}, Waiting: true},
			[]api.RebalanceMove{{From: "a", To: "c", Replicas: 1}, {From: "b", To: "c", Replicas: 1}}, "", true},
	}
	for _, c := range cases {
		got := Decide(Input{Workload: c.w, Clusters: c.clusters, Current: c.current, Now: c.now, RebalanceAsked: c.asked}, NewLedger(c.clusters))
		expect(t, c.name, got, c.want)
		if !slices.Equal(got.Rebalance.Moves, c.moves) {
			t.Errorf("%s: moves: want %v; got %v", c.name, c.moves, got.Rebalance.Moves)
		}
		if (c.blocked == "") != (got.Rebalance.Blocked == "") || !strings.Contains(got.Rebalance.Blocked, c.blocked) {
			t.Errorf("%s: blocked: want %q; got %q", c.name, c.blocked, got.Rebalance.Blocked)
		}
		if got.Rebalance.Done != c.done {
			t.Errorf("%s: done: want %v; got %v", c.name, c.done, got.Rebalance.Done)
		}
	}
}
