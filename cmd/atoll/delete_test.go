package main

import (
	"os"
	"path/filepath"
	"testing"
)

// workloadYAML is a small valid workload manifest.
func workloadYAML(name, labels string) string {
	return "apiVersion: atoll.dev/v1\nkind: Workload\nmetadata:\n  name: " + name + "\n  labels: {" + labels + "}\n" +
		"spec:\n  replicas: 2\n  template:\n    driver: process\n    command: sleep\n    args: [\"100\"]\n"
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDeleteByFileAndSelector(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	all := workloadYAML("a", "app: web") + "---\n" + workloadYAML("b", "app: web") + "---\n" + workloadYAML("c", "app: db")
	h.must(t, "apply", "-f", writeTemp(t, "all.yaml", all))

	// -f deletes exactly the objects the file names.
	out := h.must(t, "delete", "-f", writeTemp(t, "a.yaml", workloadYAML("a", "app: web")))
	sameOutput(t, out, "workload/a deleted\n")
	// Gone already: an error naming the document, unless --ignore-not-found.
	if _, _, err := h.run(t, "delete", "-f", writeTemp(t, "a.yaml", workloadYAML("a", "app: web"))); err == nil || !contains(err.Error(), "a.yaml#1") {
		t.Fatalf("want deleting a missing object to fail naming its document; got %v", err)
	}
	sameOutput(t, h.must(t, "delete", "--ignore-not-found", "-f", writeTemp(t, "a.yaml", workloadYAML("a", "app: web"))), "")

	// From standard input too.
	out, _, err := h.runIn(t, workloadYAML("c", "app: db"), "delete", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	sameOutput(t, out, "workload/c deleted\n")

	// -l deletes what matches, and only that.
	h.must(t, "apply", "-f", writeTemp(t, "all.yaml", all))
	sameOutput(t, h.must(t, "delete", "workloads", "-l", "app=web"), "workload/a deleted\nworkload/b deleted\n")
	if names := listNames(t, h, "workloads"); len(names) != 1 || names[0] != "c" {
		t.Fatalf("want only workload c left after delete -l app=web; got %v", names)
	}
	sameOutput(t, h.must(t, "delete", "workloads", "-l", "app=web"), "No workloads match app=web.\n")

	// Mixed forms are refused before anything is deleted.
	for _, args := range [][]string{
		{"delete", "workloads", "c", "-f", "x.yaml"},
		{"delete", "workloads", "c", "-l", "app=db"},
		{"delete", "workloads"},
	} {
		if _, _, err := h.run(t, args...); err == nil {
			t.Errorf("atoll %v: want a refusal; got none", args)
		}
	}
	if _, _, err := h.run(t, "get", "workload", "c"); err != nil {
		t.Fatalf("want workload c kept by the refused deletes; got %v", err)
	}
}
