package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/internal/natstest"
)

// The flags and the command that docker-compose.yml's one-shot services
// and healthchecks use, in an image without a shell.

func TestJoinTokenSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("join-token", "atollj_secret\n")
	empty := write("empty", " \n")
	cases := []struct {
		name             string
		flag, env, file  string
		want             string
		wantErrSubstring string
	}{
		{"flag first", "atollj_flag", "atollj_env", good, "atollj_flag", ""},
		{"then the environment", "", "atollj_env", good, "atollj_env", ""},
		{"then the file, trimmed", "", "", good, "atollj_secret", ""},
		{"none at all", "", "", "", "", ""},
		{"a missing file is no token (the member joined before)", "", "", filepath.Join(dir, "gone"), "", ""},
		{"an empty file is a mistake", "", "", empty, "", "is empty"},
		{"an unreadable file is a mistake", "", "", dir, "", "--join-token-file"},
	}
	for _, c := range cases {
		got, err := joinToken(c.flag, c.env, c.file)
		switch {
		case c.wantErrSubstring != "" && (err == nil || !strings.Contains(err.Error(), c.wantErrSubstring)):
			t.Errorf("%s: want an error with %q; got %q, %v", c.name, c.wantErrSubstring, got, err)
		case c.wantErrSubstring == "" && (err != nil || got != c.want):
			t.Errorf("%s: want %q; got %q, %v", c.name, c.want, got, err)
		}
	}
}

func TestWriteFileAtomicReplacesAndLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	for _, content := range []string{"first\n", "second\n"} {
		if err := writeFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatalf("want %q written; got %v", content, err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("want %s to hold %q; got %q, %v", p, content, got, err)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("want mode 0600; got %v, %v", fi.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("want only %s in %s; got %d entries", filepath.Base(p), dir, len(entries))
	}
	if err := writeFileAtomic(filepath.Join(dir, "no-such-dir", "x"), nil, 0o600); err == nil {
		t.Error("want an error writing into a missing folder; got none")
	}
}

// runAtoll runs the command tree in-process with args, as main would.
func runAtoll(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRoot()
	var stdout, stderr bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return stdout.String(), stderr.String(), err
}

func TestProbe(t *testing.T) {
	t.Parallel()
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(ready.Close)
	nats, _ := natstest.JetStream(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	// Something that greets, but not as NATS does.
	ssh, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ssh.Close() })
	go func() {
		for {
			c, err := ssh.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			c.Close()
		}
	}()

	cases := []struct {
		url     string
		wantErr string // "" for success
	}{
		{ready.URL + "/readyz", ""},
		{ready.URL + "/other", "503"},
		{nats.ClientURL(), ""},
		{"nats://" + ssh.Addr().String(), "not a NATS server"},
		{"http://" + closedAddr + "/readyz", "refused"},
		{"nats://" + closedAddr, "refused"},
		{"ftp://" + closedAddr, "use http, https or nats"},
		{"127.0.0.1:8080", "want a URL"},
	}
	for _, c := range cases {
		stdout, _, err := runAtoll(t, "probe", "--timeout=5s", c.url)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("probe %s: want success; got %v", c.url, err)
		case c.wantErr == "" && stdout == "":
			t.Errorf("probe %s: want a line saying what answered; got nothing", c.url)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("probe %s: want an error with %q; got %v", c.url, c.wantErr, err)
		}
	}
}

// TestNATSConfigOutput runs `atoll hub nats-config --output` twice on one
// database, as the compose file's one-shot does at every start: the file
// is written, readable by the NATS servers, and the same both times (the
// signing keys are made once and kept in PostgreSQL).
func TestNATSConfigOutput(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	key, _ := genKey(t, t.TempDir(), "atoll.key")
	out := filepath.Join(t.TempDir(), "atoll-nats.conf")
	var first []byte
	for i := range 2 {
		if _, _, err := runAtoll(t, "hub", "nats-config", "--database-url", r.Hub, "--migrate-database-url", r.Owner, "--key-file", key, "--output", out); err != nil {
			t.Fatalf("run %d: want the configuration written; got %v", i+1, err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("run %d: want %s; got %v", i+1, out, err)
		}
		for _, want := range []string{"operator: ", "system_account: ", "resolver_preload", "leafnodes"} {
			if !bytes.Contains(got, []byte(want)) {
				t.Errorf("run %d: want %q in the configuration; got:\n%s", i+1, want, got)
			}
		}
		// A JWT is signed afresh at each run (its issue time, in seconds,
		// may differ); what must not change are the keys it is about.
		if got = jwtSubjects(t, got); !bytes.Contains(got, []byte("operator: JWT(O")) {
			t.Errorf("run %d: want the operator JWT read as its subject; got:\n%s", i+1, got)
		}
		if i == 0 {
			first = got
		} else if !bytes.Equal(first, got) {
			t.Errorf("want the same configuration from both runs (keys kept in the database), JWTs read as their subjects; got\n%s\nthen\n%s", first, got)
		}
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("want %s with mode 0644 (no secrets; the NATS servers' user reads it); got %v, %v", out, fi.Mode().Perm(), err)
	}
}

var jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+`)

// jwtSubjects replaces every JWT in b by the subject it is about.
func jwtSubjects(t *testing.T, b []byte) []byte {
	t.Helper()
	return jwtRE.ReplaceAllFunc(b, func(tok []byte) []byte {
		payload, err := base64.RawURLEncoding.DecodeString(string(jwtRE.FindSubmatch(tok)[1]))
		var claims struct {
			Sub string `json:"sub"`
		}
		if err == nil {
			err = json.Unmarshal(payload, &claims)
		}
		if err != nil || claims.Sub == "" {
			t.Errorf("want a JWT with a subject; got %s (%v)", tok, err)
		}
		return []byte("JWT(" + claims.Sub + ")")
	})
}
