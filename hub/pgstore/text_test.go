package pgstore_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// TestTextTheDatabaseCannotStore: NUL and invalid UTF-8 that reach the
// store (the API refuses them first) are an Invalid domain error, not an
// internal one; a refusal naming them is still audited.
func TestTextTheDatabaseCannotStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: pgtest.NewDatabase(t), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	actor := pgstore.Actor{Name: "test"}
	for _, name := range []string{"a\x00b", "\xff"} {
		if _, err := store.Get(ctx, "Workload", name); api.ErrorCode(err) != api.CodeInvalid {
			t.Errorf("Get(%q): want an Invalid error, got %v", name, err)
		}
		_, err := store.Create(ctx, actor, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: name}, Spec: json.RawMessage(`{}`)})
		if api.ErrorCode(err) != api.CodeInvalid {
			t.Errorf("Create named %q: want an Invalid error, got %v", name, err)
		}
	}
	_, err = store.Create(ctx, actor, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "nul-in-spec"}, Spec: json.RawMessage(`{"a":"\u0000"}`)})
	if api.ErrorCode(err) != api.CodeInvalid {
		t.Errorf("Create with \\u0000 in the spec: want an Invalid error, got %v", err)
	}
	if _, err := store.List(ctx, "Workload", pgstore.ListOptions{Selector: api.Selector{Requirements: []api.Requirement{{Key: "a", Operator: "In", Values: []string{"x\x00"}}}}}); err != nil && api.ErrorCode(err) != api.CodeInvalid {
		t.Errorf("List with NUL in a selector: want nothing or an Invalid error, got %v", err)
	}

	store.AuditRefusal(ctx, pgstore.Actor{Name: "token:x", RequestID: "r\x00"}, pgstore.VerbCreate, "Workload", "a\x00b\xff", api.CodeBadRequest, "refused")
	entries, err := store.AuditLog(ctx, "Workload", "", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		found = found || e.Name == "a\uFFFDb\uFFFD"
	}
	if !found {
		t.Errorf("want the refusal audited with its name made storable (a\\uFFFDb\\uFFFD); got %+v", entries)
	}
}
