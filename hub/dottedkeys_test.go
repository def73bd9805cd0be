package hub_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestErrorPathsAfterDottedKeys: a label or annotation key with dots in
// it (atoll.dev/change-cause) must not bend the field path of an error
// found after it. huma's path buffer takes a key's dots for separators,
// so the hub hands it such keys escaped.
func TestErrorPathsAfterDottedKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := `{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":"dotted","labels":{"app.kubernetes.io/name":"x"},"annotations":{"atoll.dev/change-cause":"first"}},
		"spec":{"replicas":1,"template":{"driver":"sim"}}}`
	if r := e.do("POST", "/api/v1/workloads", adminSecret, "application/json", []byte(good)); r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	bad := `{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":"dotted","labels":{"app.kubernetes.io/name":"x"},"annotations":{"atoll.dev/change-cause":"first"}},
		"spec":{"replicas":"three","template":{"driver":"sim"}}}`
	for _, c := range []struct{ method, path, ct, body string }{
		{"POST", "/api/v1/workloads", "application/json", `{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":"dotted2","labels":{"app.kubernetes.io/name":"x"}},"spec":{"replicas":"three","template":{"driver":"sim"}}}`},
		{"PUT", "/api/v1/workloads/dotted", "application/json", bad},
		{"PATCH", "/api/v1/workloads/dotted", "application/merge-patch+json", `{"spec":{"replicas":"three"}}`},
	} {
		r := e.do(c.method, c.path, adminSecret, c.ct, []byte(c.body))
		var p api.Problem
		if r.status != http.StatusUnprocessableEntity || json.Unmarshal(r.body, &p) != nil {
			t.Errorf("%s %s with replicas \"three\": want 422 problem; got %d %s", c.method, c.path, r.status, r.body)
			continue
		}
		found := false
		for _, d := range p.Errors {
			found = found || d.Location == "body.spec.replicas"
		}
		if !found {
			t.Errorf("%s %s: want an error at body.spec.replicas; got %+v", c.method, c.path, p.Errors)
		}
	}
	// An error inside such a map names its key as sent.
	r := e.do("PATCH", "/api/v1/workloads/dotted", adminSecret, "application/merge-patch+json", []byte(`{"metadata":{"labels":{"app.kubernetes.io/name":5,"100%.[x]":"y"}}}`))
	var p api.Problem
	if r.status != http.StatusUnprocessableEntity || json.Unmarshal(r.body, &p) != nil || len(p.Errors) != 1 || p.Errors[0].Location != "body.metadata.labels.app.kubernetes.io/name" {
		t.Errorf("a number as a dotted label's value: want 422 at body.metadata.labels.app.kubernetes.io/name; got %d %s", r.status, r.body)
	}
}
