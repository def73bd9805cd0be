package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCommands: set-context (with --token-file), view redacted and
// raw, current-context and delete-context, on a config file of the test's.
func TestConfigCommands(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ATOLL_CONFIG", filepath.Join(dir, "config.yaml"))
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("atoll_fromthefile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(args ...string) string {
		t.Helper()
		stdout, stderr, err := runAtoll(t, args...)
		if err != nil {
			t.Fatalf("atoll %s: %v (stderr %q)", strings.Join(args, " "), err, stderr)
		}
		return stdout
	}
	if _, _, err := runAtoll(t, "config", "current-context"); err == nil || !strings.Contains(err.Error(), "no context is in use") {
		t.Errorf("current-context without one: want an error saying none is in use; got %v", err)
	}
	must("config", "set-context", "dev", "--server", "http://127.0.0.1:8080", "--token-file", tokenFile)
	must("config", "set-context", "prod", "--server", "https://hub.example", "--token", "atoll_typed")
	must("config", "set-context", "bare", "--server", "https://other.example")
	var got strings.Builder
	got.WriteString("$ atoll config current-context\n" + must("config", "current-context"))
	got.WriteString("$ atoll config view\n" + must("config", "view"))
	got.WriteString("$ atoll config view --raw -o json\n" + must("config", "view", "--raw", "-o", "json"))
	got.WriteString("$ atoll config delete-context dev\n" + strings.ReplaceAll(must("config", "delete-context", "dev"), dir, "DIR"))
	got.WriteString("$ atoll config view\n" + must("config", "view"))
	golden(t, "config/commands.txt", got.String())

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"config", "set-context", "x", "--server", "http://a", "--token-file", filepath.Join(dir, "missing")}, "--token-file: open "},
		{[]string{"config", "set-context", "x", "--server", "http://a", "--token", "t", "--token-file", tokenFile}, "--token and --token-file do not go together"},
		{[]string{"config", "delete-context", "dev"}, `context "dev" is not in `},
		{[]string{"config", "view", "-o", "toml"}, "-o toml: use yaml or json"},
	} {
		if _, _, err := runAtoll(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("atoll %s: want an error with %q; got %v", strings.Join(c.args, " "), c.want, err)
		}
	}
	if strings.Contains(must("config", "view"), `name: x`) {
		t.Error("a refused set-context saved its context")
	}
}
