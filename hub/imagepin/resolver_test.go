package imagepin

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/hub/revisions"
	"github.com/atollhq/atoll/member/image"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// registry answers tags from a map; anything else is refused.
type registry struct {
	mu   sync.Mutex
	tags map[string]string
	asks map[string]int
}

func (r *registry) Resolve(_ context.Context, ref string, _ ...image.PullOption) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asks[ref]++
	if d, ok := r.tags[ref]; ok {
		return d, nil
	}
	return "", errors.New("MANIFEST_UNKNOWN: manifest unknown")
}

// TestResolverPinsOncePerRevision, on a real store: a revision's tag is
// resolved once and pinned, whatever the tag does later; a tag the
// registry refuses sets ImageResolved=False with its answer and is asked
// again only after its backoff; an older revision that still fails does
// not take the condition back from the newest, which resolved.
func TestResolverPinsOncePerRevision(t *testing.T) {
	ctx := context.Background()
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: pgtest.NewDatabase(t), MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	revisions.New(store, tnoop.NewTracerProvider(), noop.NewMeterProvider())
	reg := &registry{tags: map[string]string{"r.example/app:v1": "sha256:" + strings.Repeat("1", 64)}, asks: map[string]int{}}
	now := time.Now()
	r := New(store, reg, nil, Config{Now: func() time.Time { return now }, Backoff: time.Minute, MaxBackoff: time.Hour})
	pins := NewPins(store)
	admin := pgstore.Actor{Name: "admin"}

	// A progressive rollout may deliver an older revision: those are
	// resolved too.
	w := api.Workload{Metadata: api.ObjectMeta{Name: "app"}, Spec: api.WorkloadSpec{Replicas: 1, Rollout: &api.ProgressiveRollout{},
		Template: api.ReplicaTemplate{Driver: "oci", Image: "r.example/gone:v1"}}}
	spec, _ := json.Marshal(w.Spec)
	if _, err := store.Create(ctx, admin, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "app"}, Spec: spec, Status: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	get := func() api.Workload {
		t.Helper()
		got, err := store.Get(ctx, "Workload", "app")
		if err != nil {
			t.Fatal(err)
		}
		var w api.Workload
		if err := got.Decode(&w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	cond := func(w api.Workload) api.Condition {
		for _, c := range w.Status.Conditions {
			if c.Type == api.ConditionImageResolved {
				return c
			}
		}
		return api.Condition{}
	}
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	w = get()
	if c := cond(w); c.Status != "False" || c.Reason != api.ReasonResolveFailed || !strings.Contains(c.Message, "MANIFEST_UNKNOWN") {
		t.Fatalf("after a refused tag: want ImageResolved=False with the registry's answer; got %+v", c)
	}
	if _, ok, _ := pins.Pin(ctx, w, w.Metadata.Generation, w.Spec.Template); ok {
		t.Fatal("a revision whose tag was refused is pinned")
	}
	if err := r.RunOnce(ctx); err != nil || reg.asks["r.example/gone:v1"] != 1 {
		t.Fatalf("within the backoff the registry was asked %d times (want 1); %v", reg.asks["r.example/gone:v1"], err)
	}

	// The user fixes the image: revision 2 resolves; revision 1, retried
	// after its backoff, fails again without taking the condition back.
	w.Spec.Template.Image = "r.example/app:v1"
	b, _ := json.Marshal(w.Spec)
	if _, err := store.Mutate(ctx, admin, "update", "Workload", "app", func(cur *pgstore.Record) error { cur.Spec = b; return nil }); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	w = get()
	if c := cond(w); c.Status != "True" || !strings.Contains(c.Message, "revision 2") {
		t.Fatalf("after revision 2 resolved: want ImageResolved=True about it; got %+v (asks %v)", c, reg.asks)
	}
	pinned, ok, err := pins.Pin(ctx, w, w.Metadata.Generation, w.Spec.Template)
	want := "r.example/app:v1@sha256:" + strings.Repeat("1", 64)
	if err != nil || !ok || pinned.Image != want {
		t.Fatalf("pin of revision 2: %q, %v, %v; want %q", pinned.Image, ok, err, want)
	}
	if reg.asks["r.example/gone:v1"] != 2 {
		t.Errorf("revision 1 was asked %d times; want 2 (once more after its backoff)", reg.asks["r.example/gone:v1"])
	}

	// The tag moves: the revision keeps its digest, and is not asked again.
	reg.mu.Lock()
	reg.tags["r.example/app:v1"] = "sha256:" + strings.Repeat("2", 64)
	reg.mu.Unlock()
	now = now.Add(time.Hour)
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	later := NewPins(store) // reads every revision at its first use: now
	if pinned, ok, _ := later.Pin(ctx, w, w.Metadata.Generation, w.Spec.Template); !ok || pinned.Image != want || reg.asks["r.example/app:v1"] != 1 {
		t.Errorf("after the tag moved: pin %q (want %q), the tag asked %d times (want 1)", pinned.Image, want, reg.asks["r.example/app:v1"])
	}
	if c := cond(get()); c.Status != "True" {
		t.Errorf("revision 1's later failure took the condition back: %+v", c)
	}

	// A restart makes a new revision of the same tag: resolved anew, and
	// a Pins that read the revisions before answers the new digest.
	w = get()
	w.Spec.Template.Annotations = map[string]string{api.AnnotationRestartedAt: "now"}
	b, _ = json.Marshal(w.Spec)
	if _, err := store.Mutate(ctx, admin, "update", "Workload", "app", func(cur *pgstore.Record) error { cur.Spec = b; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	w = get()
	moved := "r.example/app:v1@sha256:" + strings.Repeat("2", 64)
	if pinned, ok, err := later.Pin(ctx, w, w.Metadata.Generation, w.Spec.Template); err != nil || !ok || pinned.Image != moved {
		t.Errorf("after a restart: pin %q, %v, %v; want %q", pinned.Image, ok, err, moved)
	}

	// Without a progressive rollout, an older revision is never delivered
	// again: it is not asked for any more.
	w = get()
	w.Spec.Rollout = nil
	b, _ = json.Marshal(w.Spec)
	if _, err := store.Mutate(ctx, admin, "update", "Workload", "app", func(cur *pgstore.Record) error { cur.Spec = b; return nil }); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	asked := reg.asks["r.example/gone:v1"]
	if err := r.RunOnce(ctx); err != nil || reg.asks["r.example/gone:v1"] != asked {
		t.Errorf("revision 1 of a workload without a rollout was asked again (%d times, %d before): %v", reg.asks["r.example/gone:v1"], asked, err)
	}

	// Named by digest now: nothing to resolve, and the condition, which
	// spoke of the tag, goes.
	w = get()
	w.Spec.Template.Image = "r.example/app@sha256:" + strings.Repeat("3", 64)
	b, _ = json.Marshal(w.Spec)
	if _, err := store.Mutate(ctx, admin, "update", "Workload", "app", func(cur *pgstore.Record) error { cur.Spec = b; return nil }); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if c := cond(get()); c.Type != "" {
		t.Errorf("a template named by digest keeps the tag's condition: %+v", c)
	}
}
