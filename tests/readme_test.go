//go:build linux

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// TestReadmeQuickStart does what the README tells a new user, as printed:
// `go run ./cmd/atoll dev` from the repository, then the quick start's
// command block, the demo's and the drill's, line by line, checking what
// each says; then it stops dev, starts it again the same way and checks
// that the demo and example workloads are all Ready again (the demo runs
// the copy of atoll that dev keeps, not go run's deleted build).
//
// Two things differ from a user's machine, and only those: dev listens on
// a free port instead of 8080 and keeps its data in a temporary folder, so
// the commands run with that address and folder put in for
// http://127.0.0.1:8080 and ~/.cache/atoll/dev. `./atoll` is built into
// the repository's root, as the README does (it is in .gitignore).
func TestReadmeQuickStart(t *testing.T) {
	t.Parallel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(string(readme))
	quick := blockWith(t, blocks, "./atoll apply -f deploy/examples/")
	demo := blockWith(t, blocks, "./atoll logs demo-web -f")
	drill := blockWith(t, blocks, "./atoll drill run")

	dir, err := os.MkdirTemp("", "atoll-readme-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres user traverses it
		t.Fatal(err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	goRunDev := func(listen string) *devStack {
		t.Helper()
		cmd := exec.Command(goTool, "run", "./cmd/atoll", "dev", "--data-dir", dir, "--listen", listen)
		cmd.Dir = repo
		d, err := startDevCmd(cmd, dir)
		if err != nil {
			t.Fatalf("want `go run ./cmd/atoll dev` ready; got: %v", err)
		}
		d.stopSignal, d.goRun = syscall.SIGINT, true // Ctrl-C
		return d
	}
	d := goRunDev("127.0.0.1:0")
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			if err := d.stop(); err != nil {
				t.Errorf("want atoll dev to stop cleanly; got: %v", err)
			}
		}
	})
	d.checkReady(t)
	sh := &readmeShell{t: t, repo: repo, url: d.url, dataDir: dir}

	// What each command must show, by its first words.
	expect := map[string][]string{
		"./atoll apply -f deploy/examples/":        {"workload/web created", "workload/ledger created"},
		"./atoll get workloads -o wide":            {"NAME", "web", "ledger", "demo-web", "demo-ledger"},
		"./atoll describe workload web":            {"web"},
		"./atoll get workloads -w":                 {"web"},
		"./atoll token create ci":                  {"atoll_"},
		"./atoll get clusters":                     {"us-east", "eu-west", "ap-south"},
		"./atoll describe workload demo-web":       {"demo-web"},
		"./atoll logs demo-web -f":                 {"demo-http serving on"},
		"./atoll get replicas --workload demo-web": {"demo-web"},
		"./atoll get nodes --cluster eu-west":      {"eu-west-node-1"},
		"./atoll describe node eu-west-node-1":     {"eu-west-node-1"},
		"./atoll get events":                       {"ClusterReady"},
		"./atoll get services -o wide":             {"demo-web", "demo-web.svc.atoll"},
		"./atoll describe service demo-web":        {"demo-web", "Service"},
		"./atoll drill plan":                       {"ap-south"},
		"./atoll drill run":                        {"ap-south-outage", "Failed requests:"},
		"./atoll drill status ap-south-outage":     {"Completed", "Passed", "Failed requests:"},
		"./atoll drill report ap-south-outage -o":  {"ap-south-outage", "| Failed requests |"},
		"./atoll get drills -o wide":               {"ap-south-outage", "FAILED REQUESTS"},
	}
	run := func(block []string) {
		t.Helper()
		for _, line := range block {
			var want []string
			for prefix, w := range expect {
				if strings.HasPrefix(line, prefix) {
					want = w
				}
			}
			sh.run(line, want)
		}
	}
	run(quick)
	// The demo's commands read replicas and their logs: the quick start's
	// workloads and the demo's run first.
	readmeWorkloadsReady(t, d, 3*time.Minute)
	// A start that went well says nothing alarming (nats-server's banner
	// and a node's first, refused, connection used to).
	if line := d.stderr.find(`"level":"ERROR"`); line != "" {
		t.Errorf("atoll dev logged an error during the quick start: %s", line)
	}
	run(demo)
	run(drill)

	// A restart, as a user would do it: Ctrl-C, then the same command.
	if err := d.stop(); err != nil {
		t.Fatalf("want atoll dev to stop cleanly; got: %v", err)
	}
	stopped = true
	d = goRunDev(strings.TrimPrefix(d.url, "http://"))
	stopped = false
	readmeWorkloadsReady(t, d, 3*time.Minute)
}

// readmeWorkloadsReady waits until the demo's and the examples' workloads
// have every replica they want ready.
func readmeWorkloadsReady(t *testing.T, d *devStack, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []string
	for {
		last = last[:0]
		for _, name := range []string{"web", "ledger", "demo-web", "demo-ledger"} {
			status, body, err := d.request(http.MethodGet, "/api/v1/workloads/"+name, d.token, nil)
			var w api.Workload
			if err != nil || status != http.StatusOK || json.Unmarshal(body, &w) != nil {
				last = append(last, fmt.Sprintf("%s: %d %v", name, status, err))
				continue
			}
			if w.Status.ReadyReplicas < w.Spec.Replicas || w.Status.ObservedGeneration < w.Metadata.Generation {
				last = append(last, fmt.Sprintf("%s: %d/%d ready (generation %d, observed %d)", name,
					w.Status.ReadyReplicas, w.Spec.Replicas, w.Metadata.Generation, w.Status.ObservedGeneration))
			}
		}
		if len(last) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the demo and example workloads all Ready within %s; still: %s\natoll dev's standard error:\n%s", timeout, strings.Join(last, "; "), d.stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// shellBlocks returns the lines of every ```sh block of a Markdown text,
// without comments and with continued lines joined.
func shellBlocks(md string) [][]string {
	var blocks [][]string
	var cur []string
	in := false
	pending := ""
	for _, line := range strings.Split(md, "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```sh":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, cur)
		case in:
			if i := strings.Index(line, " #"); i >= 0 {
				line = line[:i]
			}
			line = strings.TrimSpace(line)
			if rest, ok := strings.CutSuffix(line, "\\"); ok {
				pending += rest
				continue
			}
			if line = pending + line; line != "" {
				cur = append(cur, line)
			}
			pending = ""
		}
	}
	return blocks
}

// blockWith is the one block that has a line starting with prefix.
func blockWith(t *testing.T, blocks [][]string, prefix string) []string {
	t.Helper()
	for _, b := range blocks {
		for _, l := range b {
			if strings.HasPrefix(l, prefix) {
				return b
			}
		}
	}
	t.Fatalf("the README has no command block with a line %q", prefix)
	return nil
}

// readmeShell runs README lines one by one with bash in the repository's
// root, keeping the exports of earlier lines.
type readmeShell struct {
	t       *testing.T
	repo    string
	url     string
	dataDir string
	exports []string
}

// run runs one line and checks that it exits 0 having printed each of
// want. A line that follows (-w, -f) is interrupted, as a user would with
// Ctrl-C, once it printed them all.
func (s *readmeShell) run(line string, want []string) {
	t := s.t
	t.Helper()
	cmdline := strings.NewReplacer("http://127.0.0.1:8080", s.url, "~/.cache/atoll/dev", s.dataDir).Replace(line)
	if strings.HasPrefix(cmdline, "export ") {
		s.exports = append(s.exports, cmdline)
		return
	}
	script := strings.Join(append(append([]string{"set -e"}, s.exports...), "exec "+cmdline), "\n")
	follows := strings.HasSuffix(line, " -w") || strings.HasSuffix(line, " -f")
	timeout := 3 * time.Minute // a drill run follows its drill to the report
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = s.repo
	cmd.Env = append(os.Environ(), "ATOLL_CONFIG="+filepath.Join(s.dataDir, "no-such-config.yaml"), "ATOLL_SERVER=", "ATOLL_TOKEN=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out := &watchedBuffer{}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	if follows {
		if !out.waitFor(want, time.Minute) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Fatalf("README line %q: want %q within a minute; got stdout:\n%s\nstderr:\n%s", line, want, out, &stderr)
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("README line %q: did not end within 20 s of Ctrl-C", line)
		}
	} else {
		err = <-done
	}
	if err != nil {
		var exit *exec.ExitError
		if !(follows && errors.As(err, &exit) && exit.ExitCode() == 0) {
			t.Fatalf("README line %q: want exit 0; got %v\nstdout:\n%s\nstderr:\n%s", line, err, out, &stderr)
		}
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("README line %q: want %q in its output; got:\n%s", line, w, out)
		}
	}
	t.Logf("README: %s: ok", line)
}

// watchedBuffer is a stdout that can be waited on.
type watchedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *watchedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *watchedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until every one of want was written.
func (b *watchedBuffer) waitFor(want []string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s, all := b.String(), true
		for _, w := range want {
			all = all && strings.Contains(s, w)
		}
		if all {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}
