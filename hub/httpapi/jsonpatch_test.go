package httpapi

import (
	"errors"
	"testing"
)

// FuzzJSONPatch: whatever the patch, reading and applying it either
// succeeds or fails with a 4xx problem that says where; it never panics.
func FuzzJSONPatch(f *testing.F) {
	doc := []byte(`{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":"w","labels":{"a":"b"}},"spec":{"replicas":2,"template":{"args":["x","y"]}}}`)
	for _, seed := range []string{
		`[{"op":"replace","path":"/spec/replicas","value":3}]`,
		`[{"op":"remove","path":"/spec/template/args/-"}]`,
		`[{"op":"copy","from":"/spec","path":"/spec/template/copy"},{"op":"copy","from":"/spec","path":"/spec/template/copy2"}]`,
		`[{"op":"move","from":"/metadata","path":"/metadata/labels/x"}]`,
		`[{"op":"test","path":"/spec/template/args/1","value":"y"}]`,
		`[{"op":"add","path":"/spec/template/args/-1","value":"z"}]`,
		`[{"op":"add","path":"/spec/template/args/99999999999999999999","value":"z"}]`,
		`[{"op":"add","path":"/~2","value":1}]`,
		`[{"op":"add","path":"","value":[]}]`,
		`[]`, `[null]`, `[1]`, `{}`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkJSONCost(body) != nil {
			return
		}
		patch, err := readJSONPatch(body)
		if err == nil {
			_, err = applyJSONPatch(doc, patch)
		}
		if err == nil {
			return
		}
		var p *problem
		if !errors.As(err, &p) || p.Status < 400 || p.Status >= 500 || len(p.Errors) == 0 || p.Errors[0].Location == "" {
			t.Fatalf("want a located 4xx problem; got %#v", err)
		}
	})
}
