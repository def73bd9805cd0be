package placer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/hub/pgstore"
)

// TestRefreshDecidesWhatChanged: the first read decides every workload;
// later ones, from the change log or a whole list again, only those whose
// placement inputs changed, that came or that went.
func TestRefreshDecidesWhatChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := openStore(t)
	test := pgstore.Actor{Name: "test"}
	create := func(name string) { createWorkloads(t, store, 1, name) }
	create("a")
	create("b")
	p := NewPlacer(store, nil, fakeHealth{}, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	refresh := func(want ...string) {
		t.Helper()
		got := ""
		for deadline := time.Now().Add(30 * time.Second); ; {
			touched, _, _, err := p.refresh(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got = fmt.Sprint(slices.Sorted(maps.Keys(touched)))
			if got == fmt.Sprint(want) || len(want) == 0 || time.Now().After(deadline) {
				break // changes show once the watch horizon passes them
			}
		}
		if got != fmt.Sprint(want) {
			t.Fatalf("decided %s, want %v", got, want)
		}
	}
	refresh("a", "b")
	refresh()
	// A status write changes nothing placement reads: read (the cache
	// has it) but not decided.
	if _, err := store.Mutate(ctx, test, "status", "Workload", "a", func(r *pgstore.Record) error {
		r.Status = []byte(`{"replicas":1}`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); p.cache["a"].Status.Replicas != 1; {
		touched, _, _, err := p.refresh(ctx)
		if err != nil || len(touched) > 0 {
			t.Fatalf("after a status write: decided %v, %v", touched, err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the status write never reached the cache")
		}
	}
	create("c")
	refresh("c")
	// A whole list again: nothing new, nothing decided; one gone behind
	// the log's back is.
	p.workloads.Relist()
	refresh()
	if _, _, err := store.Delete(ctx, test, "Workload", "b", ""); err != nil {
		t.Fatal(err)
	}
	p.workloads.Relist()
	refresh("b")
	if _, ok := p.cache["b"]; ok || len(p.cache) != 2 {
		t.Fatalf("cache after b went: %v", slices.Sorted(maps.Keys(p.cache)))
	}
}
