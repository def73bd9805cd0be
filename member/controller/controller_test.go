package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/atollhq/atoll/internal/natstest"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// TestPassOverDirtyWorkloads: a pass woken for some workloads plans only
// them: their replicas are bound, scheduled around everything else bound
// in the region; the other workloads' status is kept as the last full
// pass left it; a tombstoned one loses its status. A full pass plans
// everything again.
func TestPassOverDirtyWorkloads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openState(t)
	now := time.Now()
	// One node with room for 8 replicas of 500m.
	nodes := NewNodes(nil, now, time.Hour)
	nodes.Observe(nodeBeat("n1"), now)
	c := New(Config{Store: st, Nodes: nodes})
	put := func(d protocol.DesiredWorkload) {
		t.Helper()
		if ack, err := st.PutDesired(ctx, d); err != nil || !ack.Accepted {
			t.Fatalf("store %s: %+v %v", d.Workload, ack, err)
		}
	}
	statusOf := func(w string) (protocol.WorkloadStatus, bool) {
		i := slices.IndexFunc(c.Status(), func(s protocol.WorkloadStatus) bool { return s.Workload == w })
		if i < 0 {
			return protocol.WorkloadStatus{}, false
		}
		return c.Status()[i], true
	}
	put(desired("a", 3, 1))
	put(desired("b", 3, 1))
	if _, err := c.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := statusOf("a"); a.Scheduled != 3 {
		t.Fatalf("want a's 3 replicas bound by the full pass; got %+v", a)
	}

	// b grows past the node's room, c arrives; only c is woken for.
	b := desired("b", 5, 1)
	b.Epoch = 2
	put(b)
	put(desired("c", 4, 1))
	c.WakeFor("c")
	ch, err := c.runWoken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, bd := range ch.Put {
		if bd.Workload != "c" {
			t.Errorf("want only c planned; the pass bound %s", bd.Replica)
		}
	}
	if got, _ := statusOf("c"); got.Scheduled != 2 || got.Pending == "" {
		t.Errorf("want c to get the 2 slots a and b leave free, 2 pending; got %+v", got)
	}
	if got, _ := statusOf("b"); got.Desired != 3 || got.Scheduled != 3 {
		t.Errorf("want b's status as the full pass left it (3 of 3) until b is planned again; got %+v", got)
	}
	if _, err := c.runWoken(ctx); err != nil {
		t.Fatal(err) // nothing dirty: nothing planned, nothing lost
	}
	if len(c.Status()) != 3 {
		t.Errorf("want the three statuses kept by an empty pass; got %+v", c.Status())
	}

	// a is tombstoned: a pass for a drops its status and its bindings.
	put(protocol.DesiredWorkload{Version: protocol.Version, Workload: "a", Epoch: 3, Deleted: true})
	c.WakeFor("a")
	ch, err = c.runWoken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := statusOf("a"); ok || len(ch.Delete) != 3 {
		t.Errorf("want a's status gone and its 3 bindings deleted; status %v, deleted %d", ok, len(ch.Delete))
	}
	// The room a freed goes to c's pending replicas at the next woken
	// pass, not at the next full one.
	if _, err := c.runWoken(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := statusOf("c"); got.Scheduled != 4 || got.Pending != "" {
		t.Errorf("want c's 2 pending replicas bound in a's freed room; got %+v", got)
	}
	// A full pass plans b again (5 wanted now): the last of the room.
	if _, err := c.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := statusOf("b"); got.Desired != 5 || got.Scheduled != 4 || got.Pending == "" {
		t.Errorf("want b at 4 of 5 after a full pass (c took 2 of the 3 slots a freed); got %+v", got)
	}
}

// TestNodeLossIsTold: a node silent beyond its grace is told once, as a
// Warn line naming it, how long it was silent and how many replicas
// move off it, and counted in member.nodes.lost; when heard again, an
// Info line says so, and a second loss is told again.
func TestNodeLossIsTold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openState(t)
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	nodes := NewNodes(nil, now, 3*time.Second)
	beat := func(n string) {
		nodes.Observe(nodeBeat(n), now)
	}
	beat("n1")
	beat("n2")
	var logs bytes.Buffer
	reader := sdkmetric.NewManualReader()
	c := New(Config{Store: st, Nodes: nodes, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Meter:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")})
	if ack, err := st.PutDesired(ctx, desired("a", 8, 1)); err != nil || !ack.Accepted {
		t.Fatalf("store a: %+v %v", ack, err)
	}
	pass := func() {
		t.Helper()
		if _, err := c.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pass()
	bs, err := st.Bindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	onN1 := 0
	for _, b := range bs {
		if b.Node == "n1" {
			onN1++
		}
	}
	if onN1 == 0 {
		t.Fatalf("no replica bound to n1: %+v", bs)
	}
	lines := func(msg string) []map[string]any {
		t.Helper()
		var out []map[string]any
		for line := range strings.Lines(logs.String()) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			if strings.HasPrefix(rec["msg"].(string), msg) {
				out = append(out, rec)
			}
		}
		return out
	}
	lostCount := func() int64 {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == "member.nodes.lost" {
					var n int64
					for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
						n += dp.Value
					}
					return n
				}
			}
		}
		return 0
	}
	if got := lines("node lost"); len(got) != 0 || lostCount() != 0 {
		t.Fatalf("no node is lost yet; told %v, counted %d", got, lostCount())
	}

	now = now.Add(10 * time.Second) // n1 silent, n2 heard
	beat("n2")
	pass()
	pass() // told once
	got := lines("node lost")
	if len(got) != 1 {
		t.Fatalf("want n1's loss told once, got %v", got)
	}
	if got[0]["level"] != "WARN" || got[0]["node"] != "n1" || got[0]["silent_for"] != float64(10*time.Second) || got[0]["replicas"] != float64(onN1) {
		t.Errorf("want a Warn line: n1, silent 10s, %d replicas moved; got %v", onN1, got[0])
	}
	if n := lostCount(); n != 1 {
		t.Errorf("member.nodes.lost = %d, want 1", n)
	}

	beat("n1")
	pass()
	if back := lines("node heard again"); len(back) != 1 || back[0]["node"] != "n1" || back[0]["level"] != "INFO" {
		t.Fatalf("want n1's return told once at Info, got %v", back)
	}
	now = now.Add(10 * time.Second)
	beat("n2")
	pass()
	if got := lines("node lost"); len(got) != 2 || lostCount() != 2 {
		t.Fatalf("a second loss of n1: told %v, counted %d", got, lostCount())
	}
}

// TestNodeLossToldInAPartialPass: a node found lost by a pass woken for
// some workloads (the hold on a behind member ends, or the backlog is
// read, at any time) is told with every replica bound to it, not only
// the ones of the workloads that pass planned, and not told again by the
// full pass that moves the rest.
func TestNodeLossToldInAPartialPass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openState(t)
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	nodes := NewNodes(nil, now, 3*time.Second)
	beat := func(n string) {
		nodes.Observe(nodeBeat(n), now)
	}
	beat("n1")
	var logs bytes.Buffer
	c := New(Config{Store: st, Nodes: nodes, Now: func() time.Time { return now }, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	for _, w := range []string{"a", "b"} {
		if ack, err := st.PutDesired(ctx, desired(w, 2, 1)); err != nil || !ack.Accepted {
			t.Fatalf("store %s: %+v %v", w, ack, err)
		}
	}
	if _, err := c.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Second) // n1 silent; n2 arrives
	beat("n2")
	c.WakeFor("a")
	if _, err := c.runWoken(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	var told []map[string]any
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.HasPrefix(rec["msg"].(string), "node lost") {
			told = append(told, rec)
		}
	}
	if len(told) != 1 || told[0]["node"] != "n1" || told[0]["replicas"] != float64(4) {
		t.Fatalf("want n1's loss told once with its 4 replicas; got %v", told)
	}
	bs, err := st.Bindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Node != "n2" {
			t.Errorf("a replica left on the lost node: %+v", b)
		}
	}
}

// TestBehindToldOncePerEpisode: a member that falls behind its nodes'
// heartbeats now and then (a backlog that comes and goes between passes)
// tells it once, Warn and member.nodes.behind, and says it reads in time
// again only once it has kept up for a grace; a later episode is told
// again.
func TestBehindToldOncePerEpisode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	nodes := NewNodes(nil, t0, 3*time.Second)
	unread := 0
	nodes.SetUnread(func() int { return unread })
	var logs bytes.Buffer
	reader := sdkmetric.NewManualReader()
	c := New(Config{Nodes: nodes, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")})
	pass := func(at time.Duration, backlog int) {
		unread = backlog
		now := t0.Add(at)
		c.tellNodes(ctx, nodes.Snapshot(now), nil, now)
	}
	told := func() (late, again int, counted int64) {
		for line := range strings.Lines(logs.String()) {
			switch {
			case strings.Contains(line, `"msg":"node heartbeats read late`):
				late++
			case strings.Contains(line, `"msg":"node heartbeats read in time again"`):
				again++
			}
		}
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == "member.nodes.behind" {
					for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
						counted += dp.Value
					}
				}
			}
		}
		return late, again, counted
	}
	// Behind at every other pass for 6 s.
	for s := range 6 {
		pass(time.Duration(s)*time.Second, 1000*(1-s%2))
	}
	if late, again, n := told(); late != 1 || again != 0 || n != 1 {
		t.Fatalf("a backlog that comes and goes: told late %d times, in time again %d, counted %d; want 1, 0, 1", late, again, n)
	}
	for s := 6; s <= 10; s++ { // keeping up from +5s
		pass(time.Duration(s)*time.Second, 0)
	}
	if late, again, n := told(); late != 1 || again != 1 || n != 1 {
		t.Fatalf("kept up for a grace: told late %d, in time again %d, counted %d; want 1, 1, 1", late, again, n)
	}
	pass(11*time.Second, 1000)
	if late, again, n := told(); late != 2 || again != 1 || n != 2 {
		t.Fatalf("a new episode: told late %d, in time again %d, counted %d; want 2, 1, 2", late, again, n)
	}
}

// TestStatusSinceChangesOnlyWithStatus: the status generation moves when
// a workload's status changes, comes or goes, and not on a pass, full or
// partial, that leaves every status as it was.
func TestStatusSinceChangesOnlyWithStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openState(t)
	now := time.Now()
	nodes := NewNodes(nil, now, time.Hour)
	hb := nodeBeat("n1")
	nodes.Observe(hb, now)
	c := New(Config{Store: st, Nodes: nodes})
	put := func(d protocol.DesiredWorkload) {
		t.Helper()
		if ack, err := st.PutDesired(ctx, d); err != nil || !ack.Accepted {
			t.Fatalf("store %s: %+v %v", d.Workload, ack, err)
		}
	}
	var gen uint64
	pass := func(what string, only []string, wantChange bool) {
		t.Helper()
		var err error
		if only == nil {
			_, err = c.RunOnce(ctx)
		} else {
			c.WakeFor(only...)
			_, err = c.runWoken(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		status, g, changed := c.StatusSince(gen)
		if changed != wantChange {
			t.Fatalf("%s: changed %v (generation %d -> %d), want %v", what, changed, gen, g, wantChange)
		}
		if changed {
			if g == gen || len(status) != len(c.Status()) {
				t.Fatalf("%s: generation %d -> %d, %d statuses against %d", what, gen, g, len(status), len(c.Status()))
			}
			gen = g
		} else if status != nil || g != gen {
			t.Fatalf("%s: unchanged, yet %d statuses, generation %d (was %d)", what, len(status), g, gen)
		}
	}
	put(desired("a", 2, 1))
	pass("a workload came", nil, true)
	pass("a full pass with nothing new", nil, false)
	pass("a partial pass with nothing new", []string{"a"}, false)

	// The node reports a's replicas running and ready.
	bs, err := st.Bindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		hb.Replicas = append(hb.Replicas, protocol.ReplicaState{ID: b.Replica, Workload: b.Workload, Generation: b.Generation, Phase: "Running", Ready: true})
	}
	nodes.Observe(hb, now)
	pass("a's replicas ready", []string{"a"}, true)
	pass("the same again", nil, false)

	put(desired("b", 1, 1))
	pass("another workload came", []string{"b"}, true)
	tomb := desired("b", 0, 1)
	tomb.Epoch, tomb.Deleted = 2, true
	put(tomb)
	pass("b tombstoned: its status went", []string{"b"}, true)
	pass("nothing new", nil, false)
}

// openState is a member's KV state on a fresh in-process JetStream,
// mirrored in memory as a member's is.
func openState(t *testing.T) *state.Store {
	t.Helper()
	ctx := context.Background()
	_, nc := natstest.JetStream(t)
	st, err := state.Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Mirror(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}
