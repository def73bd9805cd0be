package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// TestBadInput sends every kind of bad request and checks that each gets a
// clear 4xx problem with a stable code (and the field's location where
// there is one), and that nothing was written.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	existing := e.create(workload("existing", 1, nil))
	big := `{"metadata":{"name":"big","annotations":{"a":"` + strings.Repeat("x", 1<<20) + `"}},"spec":{"replicas":1,"template":{"driver":"sim"}}}`
	const ok = `{"metadata":{"name":"fine"},"spec":{"replicas":1,"template":{"driver":"sim"}}}`
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		code, location                  string
	}{
		{"malformed json", "POST", "/api/v1/workloads", "application/json", `{"metadata":`, 400, api.CodeBadRequest, "body"},
		{"malformed yaml", "POST", "/api/v1/workloads", "application/yaml", "metadata: [\n", 400, api.CodeBadRequest, "body"},
		{"unknown field", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"a"},"spec":{"replicas":1,"bogus":true,"template":{"driver":"sim"}}}`, 422, api.CodeInvalid, "body.spec.bogus"},
		{"unknown field in yaml", "POST", "/api/v1/workloads", "application/yaml", "metadata:\n  name: a\nspec:\n  replicas: 1\n  template:\n    driver: sim\n    comand: x\n", 422, api.CodeInvalid, "body.spec.template.comand"},
		{"name not a DNS label", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"Bad_Name"},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, 422, api.CodeInvalid, "body.metadata.name"},
		{"name too long", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"` + strings.Repeat("a", 64) + `"},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, 422, api.CodeInvalid, "body.metadata.name"},
		{"negative replicas", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"a"},"spec":{"replicas":-1,"template":{"driver":"sim"}}}`, 422, api.CodeInvalid, "body.spec.replicas"},
		{"bad cpu quantity", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"a"},"spec":{"replicas":1,"template":{"driver":"sim","resources":{"cpu":"lots"}}}}`, 422, api.CodeInvalid, "body.spec.template.resources.cpu"},
		{"process without command", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"a"},"spec":{"replicas":1,"template":{"driver":"process"}}}`, 422, api.CodeInvalid, "body.spec.template.command"},
		{"bad placement selector", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"a"},"spec":{"replicas":1,"template":{"driver":"sim"},"placement":{"clusterSelector":{"matchExpressions":[{"key":"region","operator":"In"}]}}}}`, 422, api.CodeInvalid, "body.spec.placement.clusterSelector.matchExpressions[0].values"},
		{"bad duration", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"a"},"spec":{"replicas":1,"template":{"driver":"sim"},"failover":{"gracePeriod":"soon"}}}`, 422, api.CodeInvalid, "body.spec.failover.gracePeriod"},
		{"wrong kind", "POST", "/api/v1/workloads", "application/json", `{"kind":"Token","metadata":{"name":"a"},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, 422, api.CodeInvalid, "body.kind"},
		{"resourceVersion on create", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"a","resourceVersion":"5"},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, 422, api.CodeInvalid, "body.metadata.resourceVersion"},
		{"body over 1 MiB", "POST", "/api/v1/workloads", "application/json", big, 413, api.CodePayloadTooLarge, ""},
		{"wrong content type", "POST", "/api/v1/workloads", "text/plain", ok, 415, api.CodeUnsupportedMediaType, "body"},
		{"form content type", "POST", "/api/v1/workloads", "application/x-www-form-urlencoded", ok, 415, api.CodeUnsupportedMediaType, "body"},
		{"empty body", "POST", "/api/v1/workloads", "application/json", "", 400, api.CodeBadRequest, ""},
		{"already exists", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"existing"},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, 409, api.CodeAlreadyExists, ""},
		{"stale resourceVersion", "PUT", "/api/v1/workloads/existing", "application/json", `{"metadata":{"name":"existing","resourceVersion":"1"},"spec":{"replicas":2,"template":{"driver":"sim"}}}`, 409, api.CodeConflict, ""},
		{"garbage resourceVersion", "PUT", "/api/v1/workloads/existing", "application/json", `{"metadata":{"name":"existing","resourceVersion":"abc"},"spec":{"replicas":2,"template":{"driver":"sim"}}}`, 422, api.CodeInvalid, "body.metadata.resourceVersion"},
		{"name differs from path", "PUT", "/api/v1/workloads/existing", "application/json", `{"metadata":{"name":"other"},"spec":{"replicas":2,"template":{"driver":"sim"}}}`, 422, api.CodeInvalid, "body.metadata.name"},
		{"update missing object", "PUT", "/api/v1/workloads/missing", "application/json", `{"metadata":{"name":"missing"},"spec":{"replicas":2,"template":{"driver":"sim"}}}`, 404, api.CodeNotFound, ""},
		{"get missing object", "GET", "/api/v1/workloads/missing", "", "", 404, api.CodeNotFound, ""},
		{"delete missing object", "DELETE", "/api/v1/workloads/missing", "", "", 404, api.CodeNotFound, ""},
		{"delete stale precondition", "DELETE", "/api/v1/workloads/existing?resourceVersion=1", "", "", 409, api.CodeConflict, ""},
		{"patch wrong content type", "PATCH", "/api/v1/workloads/existing", "text/plain", `{"spec":{"replicas":2}}`, 415, api.CodeUnsupportedMediaType, "body"},
		{"patch malformed", "PATCH", "/api/v1/workloads/existing", "application/merge-patch+json", `{"spec":`, 400, api.CodeBadRequest, "body"},
		{"patch not an object", "PATCH", "/api/v1/workloads/existing", "application/merge-patch+json", `[1,2]`, 422, api.CodeInvalid, "body"},
		{"patch status", "PATCH", "/api/v1/workloads/existing", "application/merge-patch+json", `{"status":{"readyReplicas":9}}`, 422, api.CodeInvalid, "body.status"},
		{"patch unknown field", "PATCH", "/api/v1/workloads/existing", "application/merge-patch+json", `{"spec":{"replicaz":2}}`, 422, api.CodeInvalid, "body.spec.replicaz"},
		{"patch negative replicas", "PATCH", "/api/v1/workloads/existing", "application/merge-patch+json", `{"spec":{"replicas":-2}}`, 422, api.CodeInvalid, "body.spec.replicas"},
		{"patch rename", "PATCH", "/api/v1/workloads/existing", "application/merge-patch+json", `{"metadata":{"name":"renamed"}}`, 422, api.CodeInvalid, "body.metadata.name"},
		{"patch stale version", "PATCH", "/api/v1/workloads/existing", "application/merge-patch+json", `{"metadata":{"resourceVersion":"1"},"spec":{"replicas":2}}`, 409, api.CodeConflict, ""},
		{"patch missing object", "PATCH", "/api/v1/workloads/missing", "application/merge-patch+json", `{"spec":{"replicas":2}}`, 404, api.CodeNotFound, ""},
		{"bad label selector", "GET", "/api/v1/workloads?labelSelector=app+in+(web", "", "", 400, api.CodeBadRequest, "query.labelSelector"},
		{"negative limit", "GET", "/api/v1/workloads?limit=-1", "", "", 422, api.CodeInvalid, "query.limit"},
		{"limit not a number", "GET", "/api/v1/workloads?limit=ten", "", "", 422, api.CodeInvalid, "query.limit"},
		{"forged continue token", "GET", "/api/v1/workloads?continue=not-a-token", "", "", 400, api.CodeBadRequest, ""},
		{"unknown query parameter", "GET", "/api/v1/workloads?labelselector=app", "", "", 422, api.CodeInvalid, "query.labelselector"},
		{"watch from garbage version", "GET", "/api/v1/watch/workloads?resourceVersion=abc", "", "", 400, api.CodeBadRequest, "query.resourceVersion"},
		{"unknown route", "GET", "/api/v1/nothings", "", "", 404, api.CodeNotFound, ""},
		{"method not allowed", "PUT", "/api/v1/workloads", "application/json", ok, 405, api.CodeMethodNotAllowed, ""},
		{"token without role", "POST", "/api/v1/tokens", "application/json", `{"metadata":{"name":"t"},"spec":{"role":""}}`, 422, api.CodeInvalid, "body.spec.role"},
		{"token with ttl and expiry", "POST", "/api/v1/tokens", "application/json", `{"metadata":{"name":"t"},"spec":{"role":"viewer","ttl":"1h","expiresAt":"2099-01-01T00:00:00Z"}}`, 422, api.CodeInvalid, "body.spec.ttl"},
		{"token expired at birth", "POST", "/api/v1/tokens", "application/json", `{"metadata":{"name":"t"},"spec":{"role":"viewer","expiresAt":"2001-01-01T00:00:00Z"}}`, 422, api.CodeInvalid, "body.spec.expiresAt"},
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, adminSecret, c.ctype, []byte(c.body))
		if r.status != c.status || r.problem.Code != c.code {
			t.Errorf("%s: got %d %s, want %d %s; body %.300s", c.name, r.status, r.problem.Code, c.status, c.code, r.body)
			continue
		}
		if r.problem.RequestID == "" {
			t.Errorf("%s: problem has no requestId: %s", c.name, r.body)
		}
		if c.location != "" && !hasLocation(r.problem, c.location) {
			t.Errorf("%s: no error located at %q: %s", c.name, c.location, r.body)
		}
	}
	// Nothing was written: only "existing" is there, unchanged.
	var list api.WorkloadList
	if err := e.admin.List(context.Background(), "workloads", client.ListOptions{}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Metadata.ResourceVersion != existing.Metadata.ResourceVersion {
		t.Errorf("bad input changed the store: want only %q at version %s, got %+v", "existing", existing.Metadata.ResourceVersion, list.Items)
	}
	var tokens api.TokenList
	if err := e.admin.List(context.Background(), "tokens", client.ListOptions{}, &tokens); err != nil {
		t.Fatal(err)
	}
	if len(tokens.Items) != 1 {
		t.Errorf("bad token requests created tokens: %+v", tokens.Items)
	}
}

func hasLocation(p api.Problem, loc string) bool {
	for _, d := range p.Errors {
		if d.Location == loc {
			return true
		}
	}
	return false
}

// TestResourceSemantics checks the Kubernetes conventions: generation moves
// only with spec, no-op writes write nothing, finalizers hold deletion.
func TestResourceSemantics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	w := e.create(workload("web", 2, map[string]string{"app": "web"}))
	if w.Metadata.Generation != 1 || w.Metadata.UID == "" || w.Metadata.ResourceVersion == "" || w.Metadata.CreationTimestamp == nil {
		t.Fatalf("created object lacks server fields: %+v", w.Metadata)
	}
	update := func(w api.Workload) api.Workload {
		t.Helper()
		var out api.Workload
		if err := e.admin.Update(ctx, "workloads", w.Metadata.Name, w, &out); err != nil {
			t.Fatalf("update: %v", err)
		}
		return out
	}
	// Labels only: new version, same generation.
	w.Metadata.Labels["tier"] = "front"
	w2 := update(w)
	if w2.Metadata.Generation != 1 || w2.Metadata.ResourceVersion == w.Metadata.ResourceVersion {
		t.Errorf("label change: want generation 1 and a new version, got generation %d version %s (was %s)", w2.Metadata.Generation, w2.Metadata.ResourceVersion, w.Metadata.ResourceVersion)
	}
	// Spec change: generation 2.
	w2.Spec.Replicas = 3
	w3 := update(w2)
	if w3.Metadata.Generation != 2 {
		t.Errorf("spec change: want generation 2, got %d", w3.Metadata.Generation)
	}
	// No-op: same version.
	w4 := update(w3)
	if w4.Metadata.ResourceVersion != w3.Metadata.ResourceVersion {
		t.Errorf("no-op update wrote a new version %s (was %s)", w4.Metadata.ResourceVersion, w3.Metadata.ResourceVersion)
	}
	// Merge patch: replicas and a finalizer, labels removed with null.
	var p api.Workload
	if err := e.admin.Patch(ctx, "workloads", "web", []byte(`{"metadata":{"labels":{"tier":null},"finalizers":["atoll.dev/test"]},"spec":{"replicas":5}}`), &p); err != nil {
		t.Fatalf("patch: %v", err)
	}
	if p.Spec.Replicas != 5 || p.Metadata.Labels["tier"] != "" || p.Metadata.Labels["app"] != "web" || len(p.Metadata.Finalizers) != 1 || p.Metadata.Generation != 3 {
		t.Errorf("patch result wrong: %+v", p)
	}
	// Delete with a finalizer: marked, not gone.
	var del api.Workload
	if err := e.admin.Delete(ctx, "workloads", "web", &del); err != nil {
		t.Fatalf("delete: %v", err)
	}
	var got api.Workload
	if err := e.admin.Get(ctx, "workloads", "web", &got); err != nil || got.Metadata.DeletionTimestamp == nil {
		t.Fatalf("after delete with finalizer: want the object with a deletionTimestamp, got %+v, %v", got.Metadata, err)
	}
	// Spec changes are still possible, but the timestamp stays.
	if err := e.admin.Patch(ctx, "workloads", "web", []byte(`{"metadata":{"finalizers":null}}`), nil); err != nil {
		t.Fatalf("release finalizer: %v", err)
	}
	err := e.admin.Get(ctx, "workloads", "web", &got)
	var prob *api.Problem
	if !errors.As(err, &prob) || prob.Code != api.CodeNotFound {
		t.Errorf("after the last finalizer went: want NotFound, got %v", err)
	}
	// Every mutation is audited with its version.
	r := e.do("GET", "/api/v1/audit?kind=Workload&name=web", adminSecret, "", nil)
	var audit struct {
		Items []struct{ Verb, Result, ResourceVersion, Actor string }
	}
	if err := json.Unmarshal(r.body, &audit); err != nil {
		t.Fatalf("audit: %v: %s", err, r.body)
	}
	var verbs []string
	for _, a := range audit.Items {
		if a.Result == "ok" {
			verbs = append(verbs, a.Verb)
			if a.ResourceVersion == "" || a.Actor != "token:bootstrap-admin" {
				t.Errorf("audit row lacks version or actor: %+v", a)
			}
		}
	}
	want := "patch,delete,patch,update,update,create" // newest first; the no-op update wrote nothing
	if strings.Join(verbs, ",") != want {
		t.Errorf("audited verbs %v, want %s", verbs, want)
	}
}

// TestConcurrentUpdates: 50 writers with the same resourceVersion, exactly
// one wins.
func TestConcurrentUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.create(workload("contended", 1, nil))
	const n = 50
	var wg sync.WaitGroup
	results := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := w
			u.Spec.Replicas = int32(i + 2)
			b, _ := json.Marshal(u)
			results <- e.do("PUT", "/api/v1/workloads/contended", adminSecret, "application/json", b).status
		}()
	}
	wg.Wait()
	close(results)
	counts := map[int]int{}
	for s := range results {
		counts[s]++
	}
	if counts[200] != 1 || counts[409] != n-1 {
		t.Errorf("want 1 success and %d conflicts, got %v", n-1, counts)
	}
}

// TestListPagingAndSelectors pages through a list and filters by labels.
func TestListPagingAndSelectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for i := range 25 {
		labels := map[string]string{"app": []string{"web", "api", "db"}[i%3]}
		if i%5 == 0 {
			labels["canary"] = "true"
		}
		e.create(workload(fmt.Sprintf("w-%02d", i), 1, labels))
	}
	var names []string
	opts := client.ListOptions{Limit: 10}
	pages := 0
	for {
		var page api.WorkloadList
		if err := e.admin.List(ctx, "workloads", opts, &page); err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range page.Items {
			names = append(names, it.Metadata.Name)
		}
		if page.Metadata.ResourceVersion == "" {
			t.Errorf("page %d has no resourceVersion", pages)
		}
		if page.Metadata.Continue == "" {
			break
		}
		opts.Continue = page.Metadata.Continue
	}
	if pages != 3 || len(names) != 25 || names[0] != "w-00" || names[24] != "w-24" {
		t.Errorf("paging: want 3 pages of 25 names in order, got %d pages: %v", pages, names)
	}
	count := func(sel string) int {
		t.Helper()
		var l api.WorkloadList
		if err := e.admin.List(ctx, "workloads", client.ListOptions{LabelSelector: sel}, &l); err != nil {
			t.Fatalf("selector %q: %v", sel, err)
		}
		for _, it := range l.Items {
			s, _ := api.ParseSelector(sel)
			if !s.Matches(it.Metadata.Labels) {
				t.Errorf("selector %q returned %s with labels %v", sel, it.Metadata.Name, it.Metadata.Labels)
			}
		}
		return len(l.Items)
	}
	for sel, want := range map[string]int{
		"app=web": 9, "app!=web": 16, "app in (web,db)": 17, "app notin (web,db)": 8,
		"canary": 5, "!canary": 20, "app=web,canary": 2, "app=nothing": 0, "": 25,
	} {
		if got := count(sel); got != want {
			t.Errorf("selector %q: want %d, got %d", sel, want, got)
		}
	}
}

// TestYAML writes YAML and reads YAML back.
func TestYAML(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/api/v1/workloads", adminSecret, "application/yaml", []byte("apiVersion: atoll.dev/v1\nkind: Workload\nmetadata:\n  name: y\nspec:\n  replicas: 2\n  template:\n    driver: sim\n  update:\n    maxSurge: 1\n    maxUnavailable: 25%\n"))
	if r.status != 201 {
		t.Fatalf("create from YAML: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("GET", e.url+"/api/v1/workloads/y", nil)
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	req.Header.Set("Accept", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/yaml" || !strings.Contains(string(body), "maxUnavailable: 25%") || !strings.Contains(string(body), "maxSurge: 1") {
		t.Errorf("GET with Accept: application/yaml: Content-Type %q, body:\n%s", ct, body)
	}
}

// TestOpenAPIAndHealth checks the generated spec and the probes.
func TestOpenAPIAndHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("GET", "/openapi.json", "", "", nil)
	var doc struct {
		OpenAPI    string         `json:"openapi"`
		Paths      map[string]any `json:"paths"`
		Components struct {
			Schemas         map[string]any `json:"schemas"`
			SecuritySchemes map[string]any `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi version %q, want 3.1.0", doc.OpenAPI)
	}
	for _, p := range []string{"/api/v1/workloads", "/api/v1/workloads/{name}", "/api/v1/watch/workloads", "/api/v1/tokens", "/api/v1/audit",
		"/api/v1/drills", "/api/v1/drills/plan", "/api/v1/drills/{name}/abort", "/api/v1/drills/{name}/timeline"} {
		if doc.Paths[p] == nil {
			t.Errorf("openapi.json lacks path %s", p)
		}
	}
	for _, s := range []string{"Workload", "WorkloadSpec", "Token", "Problem", "Drill", "DrillPlan"} {
		if doc.Components.Schemas[s] == nil {
			t.Errorf("openapi.json lacks schema %s (has %d schemas)", s, len(doc.Components.Schemas))
		}
	}
	if doc.Components.SecuritySchemes["bearer"] == nil {
		t.Error("openapi.json lacks the bearer security scheme")
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := e.do("GET", p, "", "", nil); r.status != 200 {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
	e.create(workload("m", 1, nil))
	r = e.do("GET", "/metrics", "", "", nil)
	for _, m := range []string{"atoll_http_server_request_duration_seconds_bucket", `http_route="/api/v1/workloads"`, `atoll_db_query_duration_seconds_bucket{db_operation="INSERT"`} {
		if !strings.Contains(string(r.body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}
