package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/pgserver"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/hub/revisions"
)

// revisionsOf reads a workload's revisions through the API.
func (e *env) revisionsOf(name string) []api.Revision {
	e.t.Helper()
	list, err := e.admin.Revisions(context.Background(), name)
	if err != nil {
		e.t.Fatalf("revisions of %s: %v", name, err)
	}
	return list.Items
}

func revisionSummary(rs []api.Revision) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%d:%s:%s:%q", r.Number, r.Actor, r.Template.Command, r.ChangeCause))
	}
	return strings.Join(parts, " ")
}

// TestRevisions: every template change, by whichever write (create, PUT,
// merge patch), is the next revision with its actor and change cause; a
// change that keeps the template, or a refused write, makes none; the
// limit trims the oldest; a deleted workload's revisions go with it.
func TestRevisions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ops := client.New(e.url, e.token("ops", api.RoleOperator), nil)
	viewer := e.token("watcher", api.RoleViewer)

	w := workload("web", 2, nil)
	w.Spec.Template = api.ReplicaTemplate{Driver: "process", Command: "v1"}
	w.Metadata.Annotations = map[string]string{api.AnnotationChangeCause: "first release"}
	e.create(w)
	rs := e.revisionsOf("web")
	if got := revisionSummary(rs); got != `1:token:bootstrap-admin:v1:"first release"` {
		t.Fatalf("after create: %s", got)
	}
	if rs[0].TemplateHash != api.TemplateHash(w.Spec.Template) || rs[0].Generation != 1 || rs[0].CreatedAt.IsZero() {
		t.Errorf("revision 1: %+v", rs[0])
	}

	// A scale changes the spec, not the template: no revision.
	if err := ops.Patch(ctx, "workloads", "web", []byte(`{"spec":{"replicas":5}}`), nil); err != nil {
		t.Fatal(err)
	}
	// A template change by merge patch, by another actor.
	if err := ops.Patch(ctx, "workloads", "web", []byte(`{"metadata":{"annotations":{"atoll.dev/change-cause":"v2 please"}},"spec":{"template":{"command":"v2"}}}`), nil); err != nil {
		t.Fatal(err)
	}
	// A refused write (stale resourceVersion) makes no revision.
	var cur api.Workload
	if err := e.admin.Get(ctx, "workloads", "web", &cur); err != nil {
		t.Fatal(err)
	}
	stale := cur
	stale.Metadata.ResourceVersion = "1"
	stale.Spec.Template.Command = "never"
	if err := e.admin.Update(ctx, "workloads", "web", stale, nil); api.ErrorCode(err) != api.CodeConflict {
		t.Fatalf("stale update: want Conflict, got %v", err)
	}
	// An invalid one neither.
	r := e.do("PATCH", "/api/v1/workloads/web", adminSecret, "application/merge-patch+json", []byte(`{"spec":{"template":{"command":"v9","env":[{"name":"1x","value":""}]}}}`))
	if r.status != 422 || !hasLocation(r.problem, "body.spec.template.env[0].name") {
		t.Fatalf("invalid template: want 422 at spec.template.env[0].name, got %d %s", r.status, r.body)
	}
	// Back to v1 by PUT: a new revision, not the old number.
	e.updateWorkload(t, "web", func(w *api.Workload) {
		w.Spec.Template.Command = "v1"
		if w.Metadata.Annotations == nil {
			w.Metadata.Annotations = map[string]string{}
		}
		w.Metadata.Annotations[api.AnnotationChangeCause] = "undo"
	})
	if got := revisionSummary(e.revisionsOf("web")); got != `1:token:bootstrap-admin:v1:"first release" 2:token:ops:v2:"v2 please" 3:token:bootstrap-admin:v1:"undo"` {
		t.Fatalf("after the changes: %s", got)
	}

	// Each template change says so on the workload, with its actor and
	// cause; the creation does not.
	var evs api.EventList
	if err := e.admin.List(ctx, "events", client.ListOptions{LabelSelector: api.LabelEventName + "=web"}, &evs); err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, ev := range evs.Items {
		if ev.Reason == revisions.ReasonTemplateChanged {
			changed = append(changed, ev.Message)
		}
	}
	sort.Strings(changed) // the test's clock is frozen: one time, any order
	if len(changed) != 2 || !strings.HasPrefix(changed[0], "revision 2 (template ") || !strings.HasSuffix(changed[0], "by token:ops: v2 please") ||
		!strings.HasSuffix(changed[1], "by token:bootstrap-admin: undo") {
		t.Errorf("want TemplateChanged events for revisions 2 and 3; got %q", changed)
	}

	// The limit keeps the newest, at once when lowered; numbers keep
	// counting.
	if err := ops.Patch(ctx, "workloads", "web", []byte(`{"spec":{"revisionHistoryLimit":2}}`), nil); err != nil {
		t.Fatal(err)
	}
	if rs := e.revisionsOf("web"); len(rs) != 2 || rs[0].Number != 2 {
		t.Fatalf("with revisionHistoryLimit lowered to 2: %s", revisionSummary(rs))
	}
	for _, c := range []string{"v4", "v5"} {
		if err := ops.Patch(ctx, "workloads", "web", []byte(`{"spec":{"template":{"command":"`+c+`"}}}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	rs = e.revisionsOf("web")
	if len(rs) != 2 || rs[0].Number != 4 || rs[1].Number != 5 || rs[1].Template.Command != "v5" {
		t.Fatalf("with revisionHistoryLimit 2: %s", revisionSummary(rs))
	}
	// Hostile limits are 4xx with the field's path, and change nothing.
	for _, body := range []string{`{"spec":{"revisionHistoryLimit":0}}`, `{"spec":{"revisionHistoryLimit":1000000}}`, `{"spec":{"revisionHistoryLimit":"x"}}`} {
		r := e.do("PATCH", "/api/v1/workloads/web", adminSecret, "application/merge-patch+json", []byte(body))
		// (The patch route's schema check reports the path under
		// body.metadata.spec when the workload has annotations: a
		// finding of its own, outside this test.)
		if r.status != 422 || len(r.problem.Errors) == 0 || !strings.HasSuffix(r.problem.Errors[0].Location, "spec.revisionHistoryLimit") {
			t.Errorf("%s: want 422 at spec.revisionHistoryLimit, got %d %s", body, r.status, r.body)
		}
	}

	// Reading: viewers may, the anonymous may not; unknown or hostile
	// names are 4xx.
	for _, c := range []struct {
		who, path string
		want      int
	}{
		{viewer, "/api/v1/workloads/web/revisions", 200},
		{"", "/api/v1/workloads/web/revisions", 401},
		{viewer, "/api/v1/workloads/nope/revisions", 404},
		{viewer, "/api/v1/workloads/" + strings.Repeat("a", 300) + "/revisions", 422},
		{viewer, "/api/v1/workloads/%00/revisions", 0},
	} {
		r := e.do("GET", c.path, c.who, "", nil)
		if c.want == 0 && r.status >= 400 && r.status < 500 {
			continue
		}
		if r.status != c.want {
			t.Errorf("GET %.60s as %.10s: want %d, got %d %s", c.path, c.who, c.want, r.status, r.body)
		}
	}

	// Deleted: the revisions go; made again: it starts over.
	var uid string
	if err := e.store.Pool().QueryRow(ctx, `SELECT uid::text FROM objects WHERE kind = 'Workload' AND name = 'web'`).Scan(&uid); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Delete(ctx, "workloads", "web", nil); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM workload_revisions WHERE workload_uid = $1`, uid).Scan(&left); err != nil || left != 0 {
		t.Fatalf("revisions of the deleted workload: %d left (%v)", left, err)
	}
	e.create(workload("web", 1, nil))
	if got := revisionSummary(e.revisionsOf("web")); got != `1:token:bootstrap-admin::""` {
		t.Fatalf("made again: %s", got)
	}
	b, _ := json.Marshal(e.revisionsOf("web")[0])
	if !strings.Contains(string(b), `"template":{"driver":"sim"}`) {
		t.Errorf("revision as JSON: %s", b)
	}
}

// TestRevisionsOfWorkloadsFromBefore: a workload stored before revisions
// were kept (no rows) gets its template so far as revision 1, by an actor
// the hub cannot name, when its template first changes.
func TestRevisionsOfWorkloadsFromBefore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	w := workload("old", 1, nil)
	w.Spec.Template.Env = []api.EnvVar{{Name: "V", Value: "1"}}
	created := e.create(w)
	if _, err := e.store.Pool().Exec(ctx, `DELETE FROM workload_revisions WHERE workload_uid = $1`, created.Metadata.UID); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Patch(ctx, "workloads", "old", []byte(`{"spec":{"replicas":2}}`), nil); err != nil {
		t.Fatal(err)
	}
	if rs := e.revisionsOf("old"); len(rs) != 0 {
		t.Fatalf("a change that keeps the template made revisions: %s", revisionSummary(rs))
	}
	if err := e.admin.Patch(ctx, "workloads", "old", []byte(`{"spec":{"template":{"env":[{"name":"V","value":"2"}]}}}`), nil); err != nil {
		t.Fatal(err)
	}
	rs := e.revisionsOf("old")
	if len(rs) != 2 || rs[0].Number != 1 || !strings.HasPrefix(rs[0].Actor, "unknown") || rs[0].Template.Env[0].Value != "1" || rs[0].Generation != 2 ||
		rs[1].Number != 2 || rs[1].Actor != "token:bootstrap-admin" || rs[1].Template.Env[0].Value != "2" || rs[1].Generation != 3 {
		t.Fatalf("want the template from before as revision 1 and the change as 2; got %+v", rs)
	}
}

// TestRevisionFailureAbortsTheChange: when the revision cannot be
// written, the template change does not happen either (one transaction),
// while a change that needs no revision still goes through.
func TestRevisionFailureAbortsTheChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	roles := pgtest.NewDatabaseRoles(t)
	owner, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: roles.Hub, MigrateURL: roles.Owner, MaxConns: 1})
	if err != nil {
		t.Fatalf("migrate as the owner: %v", err)
	}
	owner.Close()
	e := newEnvOn(t, roles.Hub)
	e.create(workload("web", 1, nil))

	conn, err := pgx.Connect(ctx, roles.Owner)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `REVOKE INSERT ON workload_revisions FROM `+string(pgserver.Hub)); err != nil {
		t.Fatal(err)
	}
	r := e.do("PATCH", "/api/v1/workloads/web", adminSecret, "application/merge-patch+json", []byte(`{"spec":{"template":{"command":"v2"}}}`))
	if r.status < 500 {
		t.Fatalf("want the template change to fail when its revision cannot be written; got %d %s", r.status, r.body)
	}
	var w api.Workload
	if err := e.admin.Get(ctx, "workloads", "web", &w); err != nil {
		t.Fatal(err)
	}
	if w.Spec.Template.Command != "" || w.Metadata.Generation != 1 {
		t.Fatalf("the template changed without its revision: %+v", w.Spec.Template)
	}
	if err := e.admin.Patch(ctx, "workloads", "web", []byte(`{"spec":{"replicas":3}}`), nil); err != nil {
		t.Fatalf("a scale needs no revision, and must still work: %v", err)
	}
	if rs := e.revisionsOf("web"); len(rs) != 1 || rs[0].Template.Command != "" {
		t.Fatalf("revisions: %s", revisionSummary(rs))
	}
}
