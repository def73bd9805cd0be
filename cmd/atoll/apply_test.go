package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestApplyRefusesAliasBombs: `atoll apply` reads manifests through the
// same bounded YAML reader as the hub, and says why it stops.
func TestApplyRefusesAliasBombs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bomb := "apiVersion: atoll.dev/v1\nkind: Workload\nmetadata: {name: web}\nspec:\n  s: &s \"" + strings.Repeat("x", 200<<10) +
		"\"\n  l: [*s" + strings.Repeat(", *s", 998) + "]\n"
	path := filepath.Join(dir, "bomb.yaml")
	if err := os.WriteFile(path, []byte(bomb), 0o600); err != nil {
		t.Fatal(err)
	}
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	// No server is reachable: the file must be refused before any request.
	root.SetArgs([]string{"apply", "-f", path, "--server", "http://127.0.0.1:1", "--token", "atoll_x"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "bomb.yaml") || !strings.Contains(err.Error(), "aliases expand it") {
		t.Fatalf("want apply to refuse %s naming the file and the aliases; got %v (output %q)", path, err, out.String())
	}
}

// TestConfigIsReadWithBoundedAliases: the CLI's own config file goes
// through the same reader.
func TestConfigIsReadWithBoundedAliases(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ATOLL_CONFIG", filepath.Join(dir, "config.yaml"))
	good := "current-context: dev\ncontexts:\n- name: dev\n  server: &s http://127.0.0.1:8080\n- name: again\n  server: *s\n"
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig()
	if err != nil || len(c.Contexts) != 2 || c.Contexts[1].Server != "http://127.0.0.1:8080" {
		t.Fatalf("want two contexts read with the alias resolved; got %+v, %v", c, err)
	}
	bomb := "current-context: &s \"" + strings.Repeat("x", 100<<10) + "\"\ncontexts: [" + strings.Repeat("{name: *s}, ", 500) + "]\n"
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(bomb), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), "aliases expand it") {
		t.Fatalf("want the config refused for its aliases; got %v", err)
	}
}
