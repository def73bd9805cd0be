package hub_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestJSONPatch: RFC 6902 patches apply all or nothing, need the operator
// role, are audited, and a bad one is a 4xx problem naming the operation.
func TestJSONPatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create(workload("web", 2, map[string]string{"app": "web"}))
	const ct = "application/json-patch+json"
	path := "/api/v1/workloads/web"

	r := e.do("PATCH", path, adminSecret, ct, []byte(`[{"op":"replace","path":"/spec/replicas","value":5},{"op":"add","path":"/metadata/labels/tier","value":"front"},{"op":"remove","path":"/metadata/labels/app"}]`))
	if r.status != 200 {
		t.Fatalf("want the patch applied; got %d %s", r.status, r.body)
	}
	var got api.Workload
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Replicas != 5 || got.Metadata.Labels["tier"] != "front" || got.Metadata.Labels["app"] != "" {
		t.Fatalf("want replicas 5 and labels {tier: front}; got %d %v", got.Spec.Replicas, got.Metadata.Labels)
	}
	audit, err := e.store.AuditLog(context.Background(), "Workload", "web", 0, 1)
	if err != nil || len(audit) != 1 || audit[0].Verb != "patch" || audit[0].Actor == "" {
		t.Fatalf("want the patch audited with its actor; got %+v, %v", audit, err)
	}
	before := got.Metadata.ResourceVersion

	huge := `[{"op":"add","path":"/metadata/annotations","value":{"a":"` + strings.Repeat("x", 100<<10) + `"}}` +
		strings.Repeat(`,{"op":"copy","from":"/metadata/annotations/a","path":"/metadata/annotations/b"}`, 30) + `]`
	many := "[" + strings.Repeat(`{"op":"test","path":"/spec/replicas","value":5},`, 1000) + `{"op":"test","path":"/spec/replicas","value":5}]`
	cases := []struct {
		name, body     string
		status         int
		code, location string
	}{
		{"not an array", `{"op":"add"}`, 400, api.CodeBadRequest, "body"},
		{"malformed", `[{"op":`, 400, api.CodeBadRequest, "body"},
		{"unknown op", `[{"op":"merge","path":"/spec"}]`, 422, api.CodeInvalid, "body[0].op"},
		{"no path", `[{"op":"remove"}]`, 422, api.CodeInvalid, "body[0].path"},
		{"not a pointer", `[{"op":"remove","path":"spec"}]`, 422, api.CodeInvalid, "body[0].path"},
		{"no value", `[{"op":"test","path":"/spec/replicas","value":5},{"op":"add","path":"/spec/x"}]`, 422, api.CodeInvalid, "body[1].value"},
		{"no from", `[{"op":"copy","path":"/spec/x"}]`, 422, api.CodeInvalid, "body[0].from"},
		{"unknown member", `[{"op":"remove","path":"/spec/replicas","valu":1}]`, 422, api.CodeInvalid, "body[0]"},
		{"status", `[{"op":"add","path":"/status","value":{"readyReplicas":9}}]`, 422, api.CodeInvalid, "body[0].path"},
		{"copy from status", `[{"op":"copy","from":"/status/x","path":"/spec/x"}]`, 422, api.CodeInvalid, "body[0].from"},
		{"failed test, nothing written", `[{"op":"replace","path":"/spec/replicas","value":7},{"op":"test","path":"/spec/replicas","value":3}]`, 422, api.CodeInvalid, "body[1]"},
		{"missing path", `[{"op":"replace","path":"/spec/nothing/here","value":1}]`, 422, api.CodeInvalid, "body[0]"},
		{"unknown field after patch", `[{"op":"add","path":"/spec/replicaz","value":1}]`, 422, api.CodeInvalid, "body.spec.replicaz"},
		{"invalid result", `[{"op":"replace","path":"/spec/replicas","value":-1}]`, 422, api.CodeInvalid, "body.spec.replicas"},
		{"rename", `[{"op":"replace","path":"/metadata/name","value":"other"}]`, 422, api.CodeInvalid, "body.metadata.name"},
		{"whole document not an object", `[{"op":"replace","path":"","value":5}]`, 422, api.CodeInvalid, "body[0]"},
		{"stale version", `[{"op":"replace","path":"/metadata/resourceVersion","value":"1"},{"op":"replace","path":"/spec/replicas","value":1}]`, 409, api.CodeConflict, ""},
		{"copy amplification", huge, 422, api.CodeInvalid, ""},
		{"too many operations", many, 422, api.CodeInvalid, "body"},
	}
	for _, c := range cases {
		r := e.do("PATCH", path, adminSecret, ct, []byte(c.body))
		if r.status != c.status || r.problem.Code != c.code {
			t.Errorf("%s: got %d %s, want %d %s; body %.400s", c.name, r.status, r.problem.Code, c.status, c.code, r.body)
			continue
		}
		if c.location != "" && !hasLocation(r.problem, c.location) {
			t.Errorf("%s: no error located at %q: %.400s", c.name, c.location, r.body)
		}
	}
	viewer := e.token("looker", api.RoleViewer)
	if r := e.do("PATCH", path, viewer, ct, []byte(`[{"op":"replace","path":"/spec/replicas","value":1}]`)); r.status != 403 {
		t.Errorf("want a viewer's JSON patch refused with 403; got %d %s", r.status, r.body)
	}
	var now api.Workload
	if err := e.admin.Get(context.Background(), "workloads", "web", &now); err != nil {
		t.Fatal(err)
	}
	if now.Metadata.ResourceVersion != before || now.Spec.Replicas != 5 {
		t.Errorf("refused patches wrote: version %s → %s, replicas %d", before, now.Metadata.ResourceVersion, now.Spec.Replicas)
	}
}
