package main

import (
	"errors"
	"testing"
)

func TestApplyDryRunDiffPrune(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	a := writeTemp(t, "a.yaml", workloadYAML("a", "app: web"))

	// Dry runs, client and server, store nothing.
	sameOutput(t, h.must(t, "apply", "-f", a, "--dry-run=client"), "workload/a created (dry run)\n")
	sameOutput(t, h.must(t, "apply", "-f", a, "--dry-run=server"), "workload/a created (server dry run)\n")
	if names := listNames(t, h, "workloads"); len(names) != 0 {
		t.Fatalf("dry runs created %v", names)
	}
	// Kinds the hub does not dry-run (creating them acts at once) are
	// said so, and not created.
	tokDrill := writeTemp(t, "td.yaml", "apiVersion: atoll.dev/v1\nkind: Token\nmetadata: {name: ci}\nspec: {role: viewer}\n---\n"+
		"apiVersion: atoll.dev/v1\nkind: Drill\nmetadata: {name: d1}\nspec: {kind: evacuate, target: {region: eu}}\n")
	sameOutput(t, h.must(t, "apply", "-f", tokDrill, "--dry-run=server"),
		"token/ci created (checked by the client only: the hub cannot dry-run tokens, whose create acts at once) (server dry run)\n"+
			"drill/d1 created (checked by the client only: the hub cannot dry-run drills, whose create acts at once) (server dry run)\n")
	if names := listNames(t, h, "drills"); len(names) != 0 {
		t.Fatalf("a dry run started drills %v", names)
	}
	if names := listNames(t, h, "tokens"); len(names) != 1 {
		t.Fatalf("a dry run created tokens: %v", names)
	}
	h.must(t, "apply", "-f", a)
	bad := writeTemp(t, "bad.yaml", "apiVersion: atoll.dev/v1\nkind: Workload\nmetadata: {name: a}\nspec:\n  replicas: 2\n  template: {driver: process, command: sleep, args: [\"100\"]}\n  failover: {gracePeriod: 1h, mode: nope}\n")
	if _, _, err := h.run(t, "apply", "-f", bad, "--dry-run=server"); err == nil {
		t.Errorf("want a server dry run of an invalid object refused")
	}
	if _, _, err := h.run(t, "apply", "-f", a, "--dry-run=sideways"); err == nil {
		t.Errorf("want --dry-run=sideways refused")
	}

	// diff: nothing to show → exit 0 and no output.
	out, _, err := h.run(t, "diff", "-f", a)
	if err != nil || out != "" {
		t.Fatalf("want no diff for an applied manifest; got %q, %v", out, err)
	}
	changed := writeTemp(t, "a.yaml", workloadYAML("a", "app: web, tier: front")+"---\n"+workloadYAML("b", "app: web"))
	out, _, err = h.run(t, "diff", "-f", changed)
	var differs errDiffers
	if !errors.As(err, &differs) || differs.n != 2 {
		t.Fatalf("want diff to report 2 objects differing; got %v", err)
	}
	sameOutput(t, out, `--- live/workload/a
+++ applied/workload/a
@@ -3,6 +3,7 @@
 metadata:
   labels:
     app: web
+    tier: front
   name: a
 spec:
   replicas: 2
--- live/workload/b
+++ applied/workload/b
@@ -0,0 +1,13 @@
+apiVersion: atoll.dev/v1
+kind: Workload
+metadata:
+  labels:
+    app: web
+  name: b
+spec:
+  replicas: 2
+  template:
+    args:
+    - "100"
+    command: sleep
+    driver: process
`)
	if names := listNames(t, h, "workloads"); len(names) != 1 {
		t.Fatalf("diff wrote: %v", names)
	}

	// -l alone applies only the manifests it matches.
	all := workloadYAML("a", "app: web") + "---\n" + workloadYAML("b", "app: web") + "---\n" + workloadYAML("other", "app: db")
	sameOutput(t, h.must(t, "apply", "-f", writeTemp(t, "all.yaml", all), "-l", "app=db"), "workload/other created\n")
	// --prune deletes what matches -l and is not in the files.
	h.must(t, "apply", "-f", writeTemp(t, "all.yaml", all))
	if _, _, err := h.run(t, "apply", "-f", a, "--prune"); err == nil || !contains(err.Error(), "-l") {
		t.Fatalf("want --prune without -l refused; got %v", err)
	}
	sameOutput(t, h.must(t, "apply", "-f", a, "--prune", "-l", "app=web", "--dry-run=server"), "workload/a unchanged (server dry run)\nworkload/b pruned (server dry run)\n")
	sameOutput(t, h.must(t, "apply", "-f", a, "--prune", "-l", "app=web"), "workload/a unchanged\nworkload/b pruned\n")
	if names := listNames(t, h, "workloads"); len(names) != 2 || names[0] != "a" || names[1] != "other" {
		t.Fatalf("want a and other left after the prune; got %v", names)
	}
}
