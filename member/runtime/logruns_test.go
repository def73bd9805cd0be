package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readAll reads a replica's stream (without follow) as opts say.
func readAll(t *testing.T, rt *Runtime, id string, opts LogOptions) (string, error) {
	t.Helper()
	rc, err := rt.Logs(id, "stdout", opts)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// TestLogsKeepRunsApart: a process that exits and restarts leaves its
// runs apart: the default read is the last run, Previous the one before;
// Tail, Since and Timestamps apply.
func TestLogsKeepRunsApart(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) { c.Backoff.Initial, c.Backoff.Max = 200*time.Millisecond, 200*time.Millisecond })
	count := filepath.Join(t.TempDir(), "count")
	h.rt.Apply([]ReplicaSpec{shSpec("runs-1", fmt.Sprintf(`n=$(cat %[1]s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %[1]s; echo "run $n a"; echo "run $n b"; exec sleep 1`, count))})
	h.waitFor("two restarts", func(m map[string]ReplicaStatus) bool { return m["runs-1"].Restarts >= 2 })

	// Read the current and the previous run between two restarts: the
	// current one's number is the previous one's plus one.
	poll(t, "a stable pair of runs", func() bool {
		cur, err := readAll(t, h.rt, "runs-1", LogOptions{Tail: -1})
		if err != nil {
			t.Fatal(err)
		}
		prev, err := readAll(t, h.rt, "runs-1", LogOptions{Tail: -1, Previous: true})
		if err != nil {
			t.Fatal(err)
		}
		again, _ := readAll(t, h.rt, "runs-1", LogOptions{Tail: -1})
		var n, p int
		if cur != again || !strings.HasSuffix(cur, " b\n") || !strings.HasSuffix(prev, " b\n") {
			return false // a restart in between, or a run not done writing
		}
		if _, err := fmt.Sscanf(cur, "run %d a\n", &n); err != nil {
			t.Fatalf("current run %q", cur)
		}
		if _, err := fmt.Sscanf(prev, "run %d a\n", &p); err != nil {
			t.Fatalf("previous run %q", prev)
		}
		if want := fmt.Sprintf("run %d a\nrun %d b\n", n, n); cur != want {
			t.Fatalf("current run %q, want %q", cur, want)
		}
		if p != n-1 {
			t.Fatalf("previous run is run %d, current run %d", p, n)
		}
		return true
	})

	tail, _ := readAll(t, h.rt, "runs-1", LogOptions{Tail: 1})
	if strings.Count(tail, "\n") > 1 || (tail != "" && !strings.HasSuffix(tail, " b\n")) {
		t.Errorf("tail 1: %q", tail)
	}
	stamped, _ := readAll(t, h.rt, "runs-1", LogOptions{Tail: -1, Timestamps: true})
	for _, l := range strings.Split(strings.TrimSpace(stamped), "\n") {
		ts, _, _ := strings.Cut(l, " ")
		if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(at) > time.Minute {
			t.Errorf("timestamped line %q: %v", l, err)
		}
	}
	if s, _ := readAll(t, h.rt, "runs-1", LogOptions{Tail: -1, Since: time.Now().Add(time.Hour)}); s != "" {
		t.Errorf("since an hour from now: %q", s)
	}
}

// TestLogsOfAReplicaThatNeverRan: no previous run, and the reason there
// is no output.
func TestLogsOfAReplicaThatNeverRan(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	missing := shSpec("missing-1", "")
	missing.Template.Command = "/no/such/command"
	h.rt.Apply([]ReplicaSpec{missing, shSpec("once-1", `echo hi; exec sleep 300`)})
	h.waitFor("once-1 running", running("once-1"))
	if _, err := readAll(t, h.rt, "once-1", LogOptions{Tail: -1, Previous: true}); !errors.Is(err, ErrNoPreviousRun) {
		t.Errorf("previous of a replica that never restarted: %v", err)
	}
	poll(t, "a reason for no output", func() bool {
		why := h.rt.NoOutputReason("missing-1")
		return strings.Contains(why, "missing-1 never started") && strings.Contains(why, "no/such/command")
	})
	if got := h.rt.NoOutputReason("nobody"); got != "" {
		t.Errorf("reason for an unknown replica: %q", got)
	}
}

// TestFollowingNothingSaysWhy: a follower of a replica with no output
// yet is told why, then gets the lines as they come.
func TestFollowingNothingSaysWhy(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	flag := filepath.Join(t.TempDir(), "go")
	h.rt.Apply([]ReplicaSpec{shSpec("quiet-1", fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.05; done; echo finally; exec sleep 300`, flag))})
	h.waitFor("quiet-1 running", running("quiet-1"))
	rc, err := h.rt.Logs("quiet-1", "stdout", LogOptions{Follow: true, Tail: -1, SayWhy: true})
	if err != nil {
		t.Fatal(err)
	}
	stop := time.AfterFunc(20*time.Second, func() { rc.Close() })
	t.Cleanup(func() { stop.Stop(); rc.Close() })
	sc := bufio.NewScanner(rc)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "# replica quiet-1 has written nothing yet in this run") {
		t.Fatalf("following a quiet replica: %q (%v)", sc.Text(), sc.Err())
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !sc.Scan() || sc.Text() != "finally" {
		t.Fatalf("after the note: %q (%v)", sc.Text(), sc.Err())
	}
}
