package main

import (
	"testing"

	"github.com/atollhq/atoll/api"
)

func TestLabelAndPatch(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	h.must(t, "apply", "-f", writeTemp(t, "w.yaml", workloadYAML("web", "app: web, tier: front")))
	get := func() api.Workload {
		t.Helper()
		var w api.Workload
		if err := h.admin.Get(t.Context(), "workloads", "web", &w); err != nil {
			t.Fatal(err)
		}
		return w
	}

	sameOutput(t, h.must(t, "label", "workload", "web", "env=prod", "tier-"), "workload/web labeled\n")
	if l := get().Metadata.Labels; len(l) != 2 || l["app"] != "web" || l["env"] != "prod" {
		t.Fatalf("want labels {app: web, env: prod}; got %v", l)
	}
	if _, _, err := h.run(t, "label", "workload", "web", "env=dev"); err == nil || !contains(err.Error(), "--overwrite") {
		t.Fatalf("want changing a label without --overwrite refused, pointing at it; got %v", err)
	}
	sameOutput(t, h.must(t, "label", "wl", "web", "env=dev", "--overwrite"), "workload/web labeled\n")
	sameOutput(t, h.must(t, "label", "wl", "web", "env=dev", "gone-"), "workload/web not labeled (no change)\n")
	if _, _, err := h.run(t, "label", "wl", "web", "Bad Key=x"); err == nil || !contains(err.Error(), "metadata.labels") {
		t.Fatalf("want a bad label key refused by the hub, naming the field; got %v", err)
	}
	for _, bad := range []string{"justakey", "=v", "a=1 a-"} {
		if _, _, err := h.run(t, "label", "wl", "web", bad); err == nil {
			t.Errorf("label %q: want a refusal; got none", bad)
		}
	}

	sameOutput(t, h.must(t, "patch", "workload", "web", "-p", `{"spec":{"replicas":4}}`), "workload/web patched\n")
	sameOutput(t, h.must(t, "patch", "workload", "web", "-p", "spec:\n  replicas: 4\n"), "workload/web patched (no change)\n")
	sameOutput(t, h.must(t, "patch", "workload", "web", "--type", "json", "-p", `[{"op":"replace","path":"/spec/replicas","value":3},{"op":"add","path":"/metadata/annotations","value":{"note":"x"}}]`), "workload/web patched\n")
	if w := get(); w.Spec.Replicas != 3 || w.Metadata.Annotations["note"] != "x" {
		t.Fatalf("want replicas 3 and annotation note=x; got %d %v", w.Spec.Replicas, w.Metadata.Annotations)
	}
	rv := get().Metadata.ResourceVersion
	for _, c := range []struct{ args []string }{
		{[]string{"--type", "json", "-p", `{"spec":{"replicas":1}}`}},
		{[]string{"--type", "merge", "-p", `[{"op":"remove","path":"/spec"}]`}},
		{[]string{"--type", "strategic", "-p", `{}`}},
		{[]string{"--type", "json", "-p", `[{"op":"test","path":"/spec/replicas","value":9},{"op":"replace","path":"/spec/replicas","value":1}]`}},
		{[]string{"-p", `{"spec":{"replicas":-1}}`}},
	} {
		if _, _, err := h.run(t, append([]string{"patch", "workload", "web"}, c.args...)...); err == nil {
			t.Errorf("patch %v: want a refusal; got none", c.args)
		}
	}
	if got := get().Metadata.ResourceVersion; got != rv {
		t.Errorf("refused patches wrote: version %s → %s", rv, got)
	}
}
