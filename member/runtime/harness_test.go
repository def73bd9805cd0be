package runtime

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atollhq/atoll/internal/syncbuf"

	"github.com/atollhq/atoll/api"
)

// helperEnv makes the test binary, re-executed as a replica, run a helper
// instead of the tests (see TestMain).
const helperEnv = "ATOLL_RUNTIME_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if len(os.Args) > 1 && os.Args[1] == "probe-ok" { // an exec probe that passes
			os.Exit(0)
		}
		runHelper(mode)
		return
	}
	os.Exit(m.Run())
}

// runHelper is a tiny replica: "http" serves on $PORT
//
//	/ready   200 when $READY_FILE exists, else 503; prints "request N"
//	/hang    never answers
//	/healthz 200
func runHelper(mode string) {
	switch mode {
	case "agent":
		// A node agent that dies with its replicas (see TestDieWithAgent):
		// it starts one sleeping replica, prints its pid, and waits to be
		// killed.
		r, err := New(Config{DataDir: os.Getenv("AGENT_DIR"), DieWithAgent: true, Backoff: BackoffConfig{Initial: 10 * time.Millisecond}})
		if err != nil {
			panic(err)
		}
		if err := r.Start(context.Background()); err != nil {
			panic(err)
		}
		r.Apply([]ReplicaSpec{{ID: "s", Workload: "w", Generation: 1, Template: api.ReplicaTemplate{Driver: "process", Command: "/bin/sleep", Args: []string{"3600"}}}})
		for range r.Changes() {
			for _, st := range r.Status() {
				if st.Pid != 0 {
					fmt.Printf("pid %d\n", st.Pid)
					select {}
				}
			}
		}
	case "oom":
		// Grows until the memory limit's OOM killer ends it (1 GiB at
		// most: without a limit it exits 3).
		var hold [][]byte
		for range 1024 {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			hold = append(hold, b)
		}
		fmt.Println("not killed after", len(hold), "MiB")
		os.Exit(3)
	case "http":
		var n atomic.Int64
		http.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
			fmt.Printf("request %d\n", n.Add(1))
			if _, err := os.Stat(os.Getenv("READY_FILE")); err != nil {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		http.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
		http.HandleFunc("/data", func(w http.ResponseWriter, r *http.Request) {
			// The variable ?env= and the file ?file= under $ATOLL_FILES.
			b, err := os.ReadFile(filepath.Join(os.Getenv("ATOLL_FILES"), r.URL.Query().Get("file")))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "%s %s %s", os.Getenv(r.URL.Query().Get("env")), os.Getenv("ATOLL_FILES"), b)
		})
		fmt.Println("listening on", os.Getenv("PORT"))
		err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", mode)
		os.Exit(2)
	}
}

// syncBuffer collects the runtime's own logs for assertions.
type syncBuffer struct{ syncbuf.Buffer }

// lines returns the log lines that contain every one of parts.
func (s *syncBuffer) lines(parts ...string) []string {
	var out []string
	for _, l := range strings.Split(s.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// portBlock hands each test a port range of its own (tests run in
// parallel); the base is random so that concurrent test binaries rarely
// meet.
var (
	portBlock atomic.Int32
	portBase  = 10000 + 100*rand.IntN(150)
)

// testConfig is a config with small durations and a port range of this
// test's own.
func testConfig(t *testing.T, logs *syncBuffer) Config {
	k := int(portBlock.Add(1))
	lo := portBase + 50*k
	return Config{
		DataDir:   t.TempDir(),
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backoff:   BackoffConfig{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, ResetAfter: time.Minute},
		StopGrace: time.Second,
		PortRange: [2]int{lo, lo + 49},
	}
}

type harness struct {
	t    *testing.T
	rt   *Runtime
	logs *syncBuffer
	cfg  Config
}

// start makes and starts a runtime; edit adjusts the test config. The
// runtime stops every replica when the test ends.
func start(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	logs := &syncBuffer{}
	cfg := testConfig(t, logs)
	if edit != nil {
		edit(&cfg)
	}
	h := &harness{t: t, logs: logs, cfg: cfg}
	h.rt = h.newRuntime()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("runtime logs:\n%s", logs.lines(""))
		}
	})
	return h
}

func (h *harness) newRuntime() *Runtime {
	h.t.Helper()
	rt, err := New(h.cfg)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	if err := rt.Start(context.Background()); err != nil {
		h.t.Fatalf("Start: %v", err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rt.StopAll(ctx)
		rt.Stop()
	})
	return rt
}

// waitFor waits, on the Changes signal, until cond holds for the status
// and returns that status.
func (h *harness) waitFor(what string, cond func(map[string]ReplicaStatus) bool) map[string]ReplicaStatus {
	h.t.Helper()
	return waitStatus(h.t, h.rt, what, cond)
}

func waitStatus(t *testing.T, rt *Runtime, what string, cond func(map[string]ReplicaStatus) bool) map[string]ReplicaStatus {
	t.Helper()
	return waitStatusWithin(t, rt, what, cond, 20*time.Second)
}

// waitStatusWithin waits, on the Changes signal, at most d until cond
// holds for the status.
func waitStatusWithin(t testing.TB, rt *Runtime, what string, cond func(map[string]ReplicaStatus) bool, d time.Duration) map[string]ReplicaStatus {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		st := statusMap(rt)
		if cond(st) {
			return st
		}
		select {
		case <-rt.Changes():
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; status now: %s", what, describe(st))
		}
	}
}

func statusMap(rt *Runtime) map[string]ReplicaStatus {
	m := map[string]ReplicaStatus{}
	for _, s := range rt.Status() {
		m[s.ID] = s
	}
	return m
}

func describe(st map[string]ReplicaStatus) string {
	if len(st) > 5 {
		return fmt.Sprintf("%d replicas", len(st))
	}
	var b strings.Builder
	for _, s := range st {
		fmt.Fprintf(&b, "\n  %s gen=%d phase=%s ready=%v restarts=%d pid=%d port=%d exit=%d msg=%q",
			s.ID, s.Generation, s.Phase, s.Ready, s.Restarts, s.Pid, s.Port, s.ExitCode, s.Message)
	}
	return b.String()
}

// poll waits for something that announces nothing (a file, /proc),
// checking often, for a bounded time.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running reports whether replica id runs a process (Running phase).
func running(id string) func(map[string]ReplicaStatus) bool {
	return func(st map[string]ReplicaStatus) bool {
		s, ok := st[id]
		return ok && s.Phase == PhaseRunning && s.Pid > 0
	}
}

func gone(id string) func(map[string]ReplicaStatus) bool {
	return func(st map[string]ReplicaStatus) bool { _, ok := st[id]; return !ok }
}

// processGone reports whether pid has exited (a zombie has: its parent
// may be an init that does not reap).
func processGone(pid int) bool {
	state, _, _, err := procStat(pid)
	return err != nil || state == 'Z' || state == 'X'
}

func shSpec(id, script string, env ...api.EnvVar) ReplicaSpec {
	return ReplicaSpec{ID: id, Workload: "web", Generation: 1, Template: api.ReplicaTemplate{
		Driver: "process", Command: "/bin/sh", Args: []string{"-c", script}, Env: env,
	}}
}

// helperSpec runs the test binary as an HTTP helper replica.
func helperSpec(t *testing.T, id string, env ...api.EnvVar) ReplicaSpec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return ReplicaSpec{ID: id, Workload: "web", Generation: 1, Template: api.ReplicaTemplate{
		Driver: "process", Command: exe,
		Env: append([]api.EnvVar{{Name: helperEnv, Value: "http"}}, env...),
	}}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// readLines reads n lines from rc, giving up (and closing rc) after a
// while so that a follow that never ends cannot hang the test.
func readLines(t *testing.T, rc io.ReadCloser, n int) []string {
	t.Helper()
	stop := time.AfterFunc(20*time.Second, func() { rc.Close() })
	defer stop.Stop()
	defer rc.Close()
	var out []string
	sc := bufio.NewScanner(rc)
	for len(out) < n && sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// follow opens a replica's stream with follow, closed after a while (or
// at the end of the test) so that a reader waiting for a line that never
// comes cannot hang the test.
func follow(t *testing.T, rt *Runtime, id, stream string) io.ReadCloser {
	t.Helper()
	rc, err := rt.Logs(id, stream, LogOptions{Follow: true, Tail: -1})
	if err != nil {
		t.Fatalf("Logs(%s, %s, follow): %v", id, stream, err)
	}
	stop := time.AfterFunc(20*time.Second, func() { rc.Close() })
	t.Cleanup(func() { stop.Stop(); rc.Close() })
	return rc
}
