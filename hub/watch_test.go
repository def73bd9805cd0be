package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/compactor"
)

// watch runs a watch in the background and hands its events over a
// channel; the returned channel of errors gets the watch's end.
func watch(t *testing.T, e *env, selector, rv string) (<-chan client.Event, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events := make(chan client.Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- e.admin.Watch(ctx, "workloads", selector, rv, func(ev client.Event) error {
			events <- ev
			return nil
		})
	}()
	return events, done
}

// next waits for the next event, failing after a generous deadline.
func next(t *testing.T, events <-chan client.Event) client.Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
		return client.Event{}
	}
}

func expect(t *testing.T, ev client.Event, typ, name string) {
	t.Helper()
	var o struct {
		Metadata api.ObjectMeta `json:"metadata"`
	}
	_ = json.Unmarshal(ev.Object, &o)
	if ev.Type != typ || o.Metadata.Name != name || ev.ResourceVersion != o.Metadata.ResourceVersion {
		t.Fatalf("want %s %s, got %s %s (event id %s, object version %s)", typ, name, ev.Type, o.Metadata.Name, ev.ResourceVersion, o.Metadata.ResourceVersion)
	}
}

// TestWatch covers the initial state, live events in order, label
// filtering, resuming and 410 after compaction.
func TestWatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.create(workload("a", 1, map[string]string{"app": "web"}))
	e.create(workload("b", 1, map[string]string{"app": "db"}))

	all, _ := watch(t, e, "", "")
	expect(t, next(t, all), api.Added, "a")
	expect(t, next(t, all), api.Added, "b")
	web, _ := watch(t, e, "app=web", "")
	expect(t, next(t, web), api.Added, "a")

	c := e.create(workload("c", 1, map[string]string{"app": "web"}))
	if err := e.admin.Patch(ctx, "workloads", "b", []byte(`{"spec":{"replicas":4}}`), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Delete(ctx, "workloads", "a", nil); err != nil {
		t.Fatal(err)
	}
	added := next(t, all)
	expect(t, added, api.Added, "c")
	expect(t, next(t, all), api.Modified, "b")
	deleted := next(t, all)
	expect(t, deleted, api.Deleted, "a")
	addedRV, _ := strconv.ParseInt(added.ResourceVersion, 10, 64)
	deletedRV, _ := strconv.ParseInt(deleted.ResourceVersion, 10, 64)
	if deletedRV <= addedRV {
		t.Errorf("event ids must increase: %d then %d", addedRV, deletedRV)
	}
	// The filtered watch sees c and a's deletion, never b.
	expect(t, next(t, web), api.Added, "c")
	expect(t, next(t, web), api.Deleted, "a")

	// Resuming from c's version replays exactly what came after it.
	resumed, _ := watch(t, e, "", c.Metadata.ResourceVersion)
	expect(t, next(t, resumed), api.Modified, "b")
	expect(t, next(t, resumed), api.Deleted, "a")

	// After compaction, an old version is gone: 410 before streaming.
	e.clock.Advance(2 * time.Hour)
	e.create(workload("d", 1, nil)) // a newer row, so the older ones can go
	n, err := compactor.New(e.store, nil, time.Hour, 0, time.Minute).RunOnce(ctx)
	if err != nil || n == 0 {
		t.Fatalf("compaction: removed %d rows, err %v", n, err)
	}
	r := e.do("GET", "/api/v1/watch/workloads?resourceVersion="+c.Metadata.ResourceVersion, adminSecret, "", nil)
	if r.status != 410 || r.problem.Code != api.CodeGone {
		t.Errorf("watch from a compacted version: want 410 Gone, got %d %s", r.status, r.body)
	}
	// Live watches were past the horizon and keep going.
	expect(t, next(t, all), api.Added, "d")
	// A list gives a version a new watch can start from.
	var list api.WorkloadList
	if err := e.admin.List(ctx, "workloads", client.ListOptions{}, &list); err != nil {
		t.Fatal(err)
	}
	fresh, _ := watch(t, e, "", list.Metadata.ResourceVersion)
	e.create(workload("e", 1, nil))
	expect(t, next(t, fresh), api.Added, "e")
}

// TestWatchEndsOnStop: stopping the server ends open watches cleanly.
func TestWatchEndsOnStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create(workload("a", 1, nil))
	events, done := watch(t, e, "", "")
	expect(t, next(t, events), api.Added, "a")
	e.server.Stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("watch ended with %v, want a clean end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch still open 10s after Stop")
	}
}
