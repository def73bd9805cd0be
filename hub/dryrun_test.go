package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// TestDryRun: dryRun=All on create, update and patch answers what would
// be stored and commits nothing: no object, no audit row, no event, no
// watch event.
func TestDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	base := e.create(workload("web", 2, nil))
	auditBefore, err := e.store.AuditLog(ctx, "", "", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var events api.EventList
	if err := e.admin.List(ctx, "events", client.ListOptions{}, &events); err != nil {
		t.Fatal(err)
	}
	eventsBefore := len(events.Items)

	// A watch from now on must see the real change below first.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	first := make(chan client.Event, 1)
	go func() {
		_ = e.admin.Watch(wctx, "workloads", "", base.Metadata.ResourceVersion, func(ev client.Event) error {
			first <- ev
			return errors.New("one is enough")
		})
	}()

	dry := e.admin.DryRun()
	var created api.Workload
	if err := dry.Create(ctx, "workloads", workload("new", 3, map[string]string{"a": "b"}), &created); err != nil {
		t.Fatalf("dry-run create: %v", err)
	}
	if created.Metadata.Name != "new" || created.Spec.Replicas != 3 || created.Metadata.UID == "" || created.Metadata.Generation != 1 {
		t.Errorf("want the object as it would be stored (uid, generation 1); got %+v", created.Metadata)
	}
	upd := base
	upd.Spec.Replicas = 7
	var updated api.Workload
	if err := dry.Update(ctx, "workloads", "web", upd, &updated); err != nil || updated.Spec.Replicas != 7 || updated.Metadata.Generation != base.Metadata.Generation+1 {
		t.Errorf("dry-run update: want replicas 7 at the next generation; got %d gen %d, %v", updated.Spec.Replicas, updated.Metadata.Generation, err)
	}
	var patched api.Workload
	if err := dry.PatchAs(ctx, "workloads", "web", client.MergePatch, []byte(`{"spec":{"replicas":9}}`), &patched); err != nil || patched.Spec.Replicas != 9 {
		t.Errorf("dry-run merge patch: want replicas 9; got %d, %v", patched.Spec.Replicas, err)
	}
	if err := dry.PatchAs(ctx, "workloads", "web", client.JSONPatch, []byte(`[{"op":"replace","path":"/spec/replicas","value":8}]`), &patched); err != nil || patched.Spec.Replicas != 8 {
		t.Errorf("dry-run JSON patch: want replicas 8; got %d, %v", patched.Spec.Replicas, err)
	}
	// Checks still apply.
	if err := dry.PatchAs(ctx, "workloads", "web", client.MergePatch, []byte(`{"spec":{"replicas":-1}}`), nil); api.ErrorCode(err) != api.CodeInvalid {
		t.Errorf("want an invalid dry-run patch refused as Invalid; got %v", err)
	}
	if err := dry.Create(ctx, "workloads", workload("bad", -1, nil), nil); api.ErrorCode(err) != api.CodeInvalid {
		t.Errorf("want an invalid dry-run create refused as Invalid; got %v", err)
	}
	if err := dry.Create(ctx, "workloads", workload("web", 1, nil), nil); api.ErrorCode(err) != api.CodeAlreadyExists {
		t.Errorf("want a dry-run create of an existing name refused; got %v", err)
	}
	if err := dry.Create(ctx, "tokens", api.Token{Metadata: api.ObjectMeta{Name: "t"}, Spec: api.TokenSpec{Role: "viewer"}}, nil); api.ErrorCode(err) != api.CodeInvalid {
		t.Errorf("want a dry-run token create refused; got %v", err)
	}
	if r := e.do("PATCH", "/api/v1/workloads/web?dryRun=Some", adminSecret, "application/merge-patch+json", []byte(`{}`)); r.status != 422 || !hasLocation(r.problem, "query.dryRun") {
		t.Errorf("want dryRun=Some refused at query.dryRun; got %d %s", r.status, r.body)
	}

	// Nothing was committed.
	var list api.WorkloadList
	if err := e.admin.List(ctx, "workloads", client.ListOptions{}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Metadata.ResourceVersion != base.Metadata.ResourceVersion || list.Items[0].Spec.Replicas != 2 {
		t.Fatalf("dry runs wrote: %+v", list.Items)
	}
	auditAfter, err := e.store.AuditLog(ctx, "", "", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// Not even refusals: a dry run attempts no write.
	for _, a := range auditAfter[:len(auditAfter)-len(auditBefore)] {
		t.Errorf("a dry run left an audit row: %+v", a)
	}
	if err := e.admin.List(ctx, "events", client.ListOptions{}, &events); err != nil || len(events.Items) != eventsBefore {
		t.Errorf("dry runs made events: %d → %d (%v)", eventsBefore, len(events.Items), err)
	}
	// The first event the watch sees is this real change, not a dry run.
	if err := e.admin.PatchAs(ctx, "workloads", "web", client.MergePatch, []byte(`{"metadata":{"labels":{"real":"yes"}}}`), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-first:
		var w api.Workload
		_ = json.Unmarshal(ev.Object, &w)
		if w.Metadata.Labels["real"] != "yes" {
			t.Errorf("want the watch's first event to be the real patch; got %s %s", ev.Type, ev.Object)
		}
	case <-wctx.Done():
		t.Fatal("the watch saw no event within 30 s")
	}
}
