package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// complete asks the command tree for completions as a shell script does
// (cobra's hidden __complete command) and returns the candidates, one a
// line, and the directive line.
func complete(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := runAtoll(t, append([]string{"__complete"}, args...)...)
	if err != nil {
		t.Fatalf("atoll __complete %s: %v (stderr %q)", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// TestCompletion: kinds, object names read from a real hub, KIND/NAME,
// -o values and --context names complete; a hub that cannot be reached
// gives no names and no error.
func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ATOLL_CONFIG", filepath.Join(dir, "config.yaml"))
	hubFlags := startCLIHub(t)
	if _, _, err := runAtoll(t, append([]string{"apply", "-f", "testdata/get/objects.yaml"}, hubFlags...)...); err != nil {
		t.Fatalf("apply: %v", err)
	}
	// Names come from the current context, as a shell asks without flags.
	if _, _, err := runAtoll(t, "config", "set-context", "test", "--server", hubFlags[1], "--token", testAdminSecret); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runAtoll(t, "config", "set-context", "down", "--server", "http://127.0.0.1:1", "--token", "atoll_x"); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, args := range [][]string{
		{"get", ""},
		{"get", "workloads", ""},
		{"get", "workloads", "web", ""},
		{"get", "wl/"},
		{"get", "workload/web", ""},
		{"describe", "workload", ""},
		{"describe", "workload", "web", ""},
		{"get", "--context", "down", "tokens", ""},
		{"get", "-o", ""},
		{"get", "-o", "js"},
		{"get", "-o", "custom"},
		{"get", "--context", ""},
		{"config", "delete-context", ""},
		{"completion", ""},
	} {
		got.WriteString("$ atoll __complete " + strings.Join(args, " ") + "\n" + complete(t, args...))
	}
	golden(t, "completion/complete.txt", strings.ReplaceAll(got.String(), hubFlags[1], "http://HUB"))

	for _, shell := range []string{"bash", "zsh", "fish"} {
		stdout, _, err := runAtoll(t, "completion", shell)
		if err != nil || !strings.Contains(stdout, "__complete") {
			t.Errorf("completion %s: want a script that calls atoll __complete; got %v, %d bytes", shell, err, len(stdout))
		}
	}
	if _, _, err := runAtoll(t, "completion", "powershell"); err == nil || !strings.Contains(err.Error(), "use bash, zsh or fish") {
		t.Errorf("completion powershell: want an error naming the shells; got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.yaml")); err != nil {
		t.Fatal(err)
	}
}
