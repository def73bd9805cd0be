package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestGetAudit: `atoll get audit` reads the hub's audit log, newest
// first, narrowed by object, verb, result and time; its filters are
// refused for other kinds.
func TestGetAudit(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	web := "apiVersion: atoll.dev/v1\nkind: Workload\nmetadata: {name: web}\nspec: {replicas: 1, template: {driver: sim}}\n"
	h.mustIn(t, web, "apply", "-f", "-")
	out := h.must(t, "get", "audit", "--for", "workload/web")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], "create") || !strings.Contains(lines[1], "workload/web") || !strings.HasSuffix(lines[1], "ok") {
		t.Errorf("get audit --for workload/web: want the header and the create; got\n%s", out)
	}
	// A write the hub refuses (the CLI checks an applied manifest itself,
	// a patch it sends as it is).
	if _, _, err := h.run(t, "patch", "workload", "web", "--type", "merge", "-p", `{"spec":{"replicas":-1}}`); err == nil {
		t.Fatal("a patch to -1 replicas was taken")
	}
	var page struct {
		Items []struct {
			Name, Verb, Result string
		} `json:"items"`
	}
	out = h.must(t, "get", "audit", "--for", "workload", "--refused", "--since", "1h", "-o", "json")
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("get audit -o json: %v\n%s", err, out)
	}
	if len(page.Items) != 1 || page.Items[0].Name != "web" || page.Items[0].Verb != "patch" || page.Items[0].Result == "ok" {
		t.Errorf("get audit --for workload --refused: want only the refused patch of web; got %+v", page.Items)
	}
	if out := h.must(t, "get", "audit", "--verb", "delete"); strings.Contains(out, "workload/") {
		t.Errorf("get audit --verb delete: want no workload entry; got\n%s", out)
	}
	for args, want := range map[string]string{
		"get workloads --refused":         "filter 'atoll get audit' only",
		"get audit --since yesterday":     "--since",
		"get audit --refused --result ok": "do not go together",
		"get audit web":                   "takes no names",
		"get audit --for nokind/x":        "--for",
	} {
		if _, _, err := h.run(t, strings.Fields(args)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("atoll %s: want an error containing %q; got %v", args, want, err)
		}
	}
}
