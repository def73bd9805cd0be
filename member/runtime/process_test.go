package runtime

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

func TestProcessGetsPortEnvAndOwnProcessGroup(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	spec := shSpec("env-1", `echo "port=$PORT replica=$ATOLL_REPLICA workload=$ATOLL_WORKLOAD greeting=$GREETING"; echo oops >&2; exec sleep 300`,
		api.EnvVar{Name: "GREETING", Value: "hello"})
	h.rt.Apply([]ReplicaSpec{spec})
	st := h.waitFor("env-1 running", running("env-1"))["env-1"]
	lo, hi := h.cfg.PortRange[0], h.cfg.PortRange[1]
	if st.Port < lo || st.Port > hi {
		t.Fatalf("port %d is outside the configured range %d-%d", st.Port, lo, hi)
	}
	if _, pgid, _, err := procStat(st.Pid); err != nil || pgid != st.Pid {
		t.Fatalf("replica pid %d: process group %d (err %v), want its own group", st.Pid, pgid, err)
	}
	want := fmt.Sprintf("port=%d replica=env-1 workload=web greeting=hello", st.Port)
	if got := firstLine(t, h.rt, "env-1", "stdout"); got != want {
		t.Fatalf("stdout first line = %q, want %q", got, want)
	}
	if got := firstLine(t, h.rt, "env-1", "stderr"); got != "oops" {
		t.Fatalf("stderr first line = %q, want %q", got, "oops")
	}
	if st.Phase != PhaseRunning || !st.Ready {
		t.Fatalf("a process without probes is Running and Ready; got %s ready=%v", st.Phase, st.Ready)
	}
}

// firstLine follows a replica's stream until its first line.
func firstLine(t *testing.T, rt *Runtime, id, stream string) string {
	t.Helper()
	sc := bufio.NewScanner(follow(t, rt, id, stream))
	if !sc.Scan() {
		t.Fatalf("Logs(%s, %s) ended without a line: %v", id, stream, sc.Err())
	}
	return sc.Text()
}

func TestLogsRotateAtTheCap(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) { c.LogMaxBytes, c.LogMaxFiles = 1000, 3 })
	h.rt.Apply([]ReplicaSpec{shSpec("rot-1", `i=0; while [ $i -lt 300 ]; do echo "line $i ......................"; i=$((i+1)); done; echo done; exec sleep 300`)})
	h.waitFor("rot-1 running", running("rot-1"))
	sc := bufio.NewScanner(follow(t, h.rt, "rot-1", "stdout"))
	for sc.Scan() && sc.Text() != "done" {
	}

	base := filepath.Join(h.cfg.DataDir, "logs", "rot-1", "stdout.log")
	var all string
	for _, p := range []string{base + ".2", base + ".1", base} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("log file %s: %v", p, err)
		}
		if fi.Size() > 1000 {
			t.Fatalf("log file %s has %d bytes, above the 1000-byte cap", p, fi.Size())
		}
		if p != base && fi.Size() != 1000 {
			t.Fatalf("rotated file %s has %d bytes, want exactly the 1000-byte cap", p, fi.Size())
		}
		b, _ := os.ReadFile(p)
		all += string(b)
	}
	if _, err := os.Stat(base + ".3"); !os.IsNotExist(err) {
		t.Fatalf("%s.3 exists (err %v): LogMaxFiles=3 keeps stdout.log, .1 and .2", base, err)
	}
	// The kept files hold a contiguous tail of the output, each line
	// stamped with its time.
	lines := strings.Split(strings.TrimSpace(all), "\n")
	var texts []string
	for i, l := range lines {
		rec := parseLogLine([]byte(l))
		if i > 0 && rec.at.IsZero() {
			t.Fatalf("line %q has no time stamp", l)
		}
		if !rec.run {
			texts = append(texts, string(rec.text))
		}
	}
	lines = texts
	if lines[len(lines)-1] != "done" {
		t.Fatalf("last line %q, want done", lines[len(lines)-1])
	}
	lines = lines[1 : len(lines)-1] // the first may be cut by a rotation
	first := -1
	for i, l := range lines {
		var n int
		if _, err := fmt.Sscanf(l, "line %d", &n); err != nil {
			t.Fatalf("unexpected line %q", l)
		}
		if i == 0 {
			first = n
		} else if n != first+i {
			t.Fatalf("line %d is %q, want line %d: output lost or reordered", i, l, first+i)
		}
	}
	if first+len(lines) != 300 {
		t.Fatalf("kept lines end at %d, want 299", first+len(lines)-1)
	}
}

func TestLogsFollowStreamsNewLinesAcrossRotations(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) { c.LogMaxBytes, c.LogMaxFiles = 200, 2 })
	h.rt.Apply([]ReplicaSpec{shSpec("tick-1", `i=1; while [ $i -le 40 ]; do echo "tick $i"; i=$((i+1)); sleep 0.02; done; exec sleep 300`)})
	h.waitFor("tick-1 running", running("tick-1"))
	sc := bufio.NewScanner(follow(t, h.rt, "tick-1", "stdout"))
	prev := 0
	for prev < 40 && sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "tick %d", &n); err != nil {
			t.Fatalf("unexpected line %q", sc.Text())
		}
		if prev != 0 && n != prev+1 {
			t.Fatalf("after tick %d came tick %d: follow lost or repeated lines across a rotation", prev, n)
		}
		prev = n
	}
	if prev != 40 {
		t.Fatalf("follow stopped at tick %d (%v), want 40", prev, sc.Err())
	}
	if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "logs", "tick-1", "stdout.log.1")); err != nil {
		t.Fatalf("1600 bytes of stamped output at a 200-byte cap must have rotated: %v", err)
	}
}

func TestFullDiskDropsLogsAndKeepsTheReplica(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	// stdout.log points at /dev/full: every write fails with ENOSPC.
	dir := filepath.Join(h.cfg.DataDir, "logs", "full-1")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", filepath.Join(dir, "stdout.log")); err != nil {
		t.Fatal(err)
	}
	h.rt.Apply([]ReplicaSpec{shSpec("full-1", `echo started >&2; while true; do echo spam; sleep 0.01; done`)})
	st := h.waitFor("full-1 running", running("full-1"))["full-1"]
	poll(t, "dropped log bytes to be counted", func() bool { return statusMap(h.rt)["full-1"].LogBytesDropped > 0 })
	if got := firstLine(t, h.rt, "full-1", "stderr"); got != "started" {
		t.Fatalf("stderr = %q, want started", got)
	}
	now := statusMap(h.rt)["full-1"]
	if now.Phase != PhaseRunning || now.Pid != st.Pid || now.Restarts != 0 {
		t.Fatalf("replica must keep running through failed log writes: %s", describe(map[string]ReplicaStatus{"": now}))
	}
	if len(h.logs.lines("replica log writes failing")) == 0 {
		t.Fatal("the runtime did not log that log writes fail")
	}
}

func TestKilledReplicaRestartsWithGrowingBackoff(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) {
		c.Backoff = BackoffConfig{Initial: 100 * time.Millisecond, Max: time.Second, ResetAfter: time.Minute}
	})
	h.rt.Apply([]ReplicaSpec{{ID: "k9-1", Workload: "web", Generation: 1, Template: api.ReplicaTemplate{Driver: "process", Command: "sleep", Args: []string{"300"}}}})
	st := h.waitFor("k9-1 running", running("k9-1"))["k9-1"]
	var delays []time.Duration
	for n := 1; n <= 2; n++ {
		if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		old := st.Pid
		st = h.waitFor(fmt.Sprintf("restart %d", n), func(m map[string]ReplicaStatus) bool {
			s := m["k9-1"]
			return s.Restarts == n && s.Phase == PhaseRunning && s.Pid != old
		})["k9-1"]
		if st.ExitCode != 137 {
			t.Fatalf("exit code after kill -9 = %d, want 137", st.ExitCode)
		}
		if st.Reason != ReasonSignaled && st.Reason != ReasonOOMKilled || st.LastError != "killed by signal SIGKILL" {
			t.Fatalf("after kill -9: reason %q last error %q, want %s and the signal", st.Reason, st.LastError, ReasonSignaled)
		}
		if !st.NextStartAt.IsZero() {
			t.Fatalf("a running replica has a next start %v", st.NextStartAt)
		}
		delays = append(delays, st.StartedAt.Sub(st.FinishedAt))
	}
	if delays[0] < 100*time.Millisecond {
		t.Fatalf("first restart came %v after the exit, want at least the initial backoff 100ms", delays[0])
	}
	if delays[1] < 200*time.Millisecond || delays[1] <= delays[0] {
		t.Fatalf("second restart came %v after the exit (first: %v), want at least 200ms and longer than the first", delays[1], delays[0])
	}
}

func TestMissingCommandBacksOffWithTheExecError(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) {
		c.Backoff = BackoffConfig{Initial: 20 * time.Millisecond, Max: 80 * time.Millisecond, ResetAfter: time.Minute}
	})
	spec := ReplicaSpec{ID: "nope-1", Workload: "web", Generation: 1, Template: api.ReplicaTemplate{Driver: "process", Command: "nope-does-not-exist"}}
	h.rt.Apply([]ReplicaSpec{spec})
	first := h.waitFor("a failed start", func(m map[string]ReplicaStatus) bool { return m["nope-1"].Phase == PhaseBackoff })["nope-1"]
	wantMsg := `exec: "nope-does-not-exist": executable file not found in $PATH`
	if first.Message != wantMsg || first.ExitCode != 127 {
		t.Fatalf("message %q exit %d, want %q and 127", first.Message, first.ExitCode, wantMsg)
	}
	if first.Reason != ReasonExecFailed || first.LastError != wantMsg || !first.NextStartAt.After(first.FinishedAt) {
		t.Fatalf("reason %q last error %q next start %v (finished %v), want %s, the exec error and a next start after the failure",
			first.Reason, first.LastError, first.NextStartAt, first.FinishedAt, ReasonExecFailed)
	}
	last := h.waitFor("6 restarts", func(m map[string]ReplicaStatus) bool { return m["nope-1"].Restarts >= 6 })["nope-1"]
	if last.Message != wantMsg || (last.Phase != PhaseBackoff && last.Phase != PhasePending) {
		t.Fatalf("after restarts: phase %s message %q", last.Phase, last.Message)
	}
	// Between the attempts we saw, the backoff must have been served:
	// 20ms, 40ms, 80ms, 80ms...
	var minGap time.Duration
	for i := first.Restarts; i < last.Restarts; i++ {
		minGap += min(20*time.Millisecond<<i, 80*time.Millisecond)
	}
	if gap := last.StartedAt.Sub(first.StartedAt); gap < minGap {
		t.Fatalf("attempts %d..%d took %v, less than the backoff %v: the runtime hot-loops", first.Restarts, last.Restarts, gap, minGap)
	}
	h.rt.mu.Lock()
	attempts := h.rt.startFailures
	h.rt.mu.Unlock()
	if attempts > last.Restarts+2 {
		t.Fatalf("%d start attempts for %d restarts", attempts, last.Restarts)
	}
}

func TestBackoffResetsAfterAHealthyRun(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) {
		c.Backoff = BackoffConfig{Initial: 100 * time.Millisecond, Max: time.Second, ResetAfter: 200 * time.Millisecond}
	})
	// Each run lasts longer than ResetAfter, so each restart waits only
	// the initial backoff, and the next would wait twice that.
	h.rt.Apply([]ReplicaSpec{shSpec("reset-1", "sleep 0.3; exit 1")})
	h.waitFor("2 restarts", func(m map[string]ReplicaStatus) bool {
		return m["reset-1"].Restarts >= 2 && m["reset-1"].Phase == PhaseRunning
	})
	h.rt.mu.Lock()
	next := h.rt.reps["reset-1"].backoff
	h.rt.mu.Unlock()
	if next != 200*time.Millisecond {
		t.Fatalf("after healthy runs the next backoff is %v, want 200ms (reset to 100ms, then doubled)", next)
	}
}

func TestRestartPolicies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, policy, script string
		wantPhase            string // a phase it stays in; "" when it must keep restarting
		wantExit             int
	}{
		{"never-ok", "Never", "exit 0", PhaseSucceeded, 0},
		{"never-fail", "Never", "exit 3", PhaseFailed, 3},
		{"never-missing", "Never", "", PhaseFailed, 127},
		{"onfailure-ok", "OnFailure", "exit 0", PhaseSucceeded, 0},
		{"onfailure-fail", "OnFailure", "exit 3", "", 3},
		{"always-ok", "Always", "exit 0", "", 0},
		{"default-ok", "", "exit 0", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, nil)
			spec := shSpec(c.name, c.script)
			spec.Template.RestartPolicy = c.policy
			if c.script == "" {
				spec.Template.Command = "/no/such/command"
			}
			h.rt.Apply([]ReplicaSpec{spec})
			if c.wantPhase != "" {
				st := h.waitFor("phase "+c.wantPhase, func(m map[string]ReplicaStatus) bool { return m[c.name].Phase == c.wantPhase })[c.name]
				if st.ExitCode != c.wantExit || st.Restarts != 0 {
					t.Fatalf("exit %d restarts %d, want exit %d and no restart", st.ExitCode, st.Restarts, c.wantExit)
				}
				h.rt.mu.Lock()
				queued := h.rt.reps[c.name].qidx >= 0
				h.rt.mu.Unlock()
				if queued {
					t.Fatalf("a %s replica is still scheduled for something", c.wantPhase)
				}
				return
			}
			st := h.waitFor("2 restarts", func(m map[string]ReplicaStatus) bool { return m[c.name].Restarts >= 2 })[c.name]
			if st.ExitCode != c.wantExit {
				t.Fatalf("exit code %d, want %d", st.ExitCode, c.wantExit)
			}
		})
	}
}

func TestGracefulStop(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *Config) { c.StopGrace = 300 * time.Millisecond })
	dir := t.TempDir()
	env := func(id string) []api.EnvVar {
		return []api.EnvVar{{Name: "MARK", Value: filepath.Join(dir, id+".mark")}, {Name: "CHILD", Value: filepath.Join(dir, id+".child")}}
	}
	// Both start a child in their process group. One traps SIGTERM and
	// exits; the other (and its child) ignores it.
	trap := shSpec("trap-1", `trap 'echo got-term > "$MARK"; exit 0' TERM; sleep 300 & echo $! > "$CHILD"; wait`, env("trap-1")...)
	deaf := shSpec("deaf-1", `trap '' TERM; sleep 300 & echo $! > "$CHILD"; wait`, env("deaf-1")...)
	h.rt.Apply([]ReplicaSpec{trap, deaf})
	h.waitFor("both running", func(m map[string]ReplicaStatus) bool { return running("trap-1")(m) && running("deaf-1")(m) })
	children := map[string]int{}
	for _, id := range []string{"trap-1", "deaf-1"} {
		poll(t, id+" child pid file", func() bool { _, err := strconv.Atoi(readFile(filepath.Join(dir, id+".child"))); return err == nil })
		children[id], _ = strconv.Atoi(readFile(filepath.Join(dir, id+".child")))
	}
	h.rt.Apply(nil)
	h.waitFor("both stopped", func(m map[string]ReplicaStatus) bool { return len(m) == 0 })

	if got := readFile(filepath.Join(dir, "trap-1.mark")); got != "got-term" {
		t.Fatalf("trap-1 did not get SIGTERM: mark %q", got)
	}
	if l := h.logs.lines(`msg="replica stopped"`, "replica=trap-1"); len(l) != 1 || !strings.Contains(l[0], `exit="exited with code 0"`) {
		t.Fatalf("trap-1 must exit by itself on SIGTERM; runtime logs: %q", l)
	}
	if l := h.logs.lines(`msg="replica stopped"`, "replica=deaf-1"); len(l) != 1 || !strings.Contains(l[0], `exit="killed by signal SIGKILL"`) {
		t.Fatalf("deaf-1 must be SIGKILLed after the grace; runtime logs: %q", l)
	}
	for id, pid := range children {
		poll(t, fmt.Sprintf("%s's child %d to die", id, pid), func() bool { return processGone(pid) })
	}
	if entries, _ := os.ReadDir(filepath.Join(h.cfg.DataDir, "replicas")); len(entries) != 0 {
		t.Fatalf("records left after the replicas were removed: %v", entries)
	}
}

func TestNewGenerationReplacesAndRemovalStops(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	spec := shSpec("gen-1", `echo "gen $GEN"; exec sleep 300`, api.EnvVar{Name: "GEN", Value: "1"})
	h.rt.Apply([]ReplicaSpec{spec})
	st1 := h.waitFor("generation 1 running", running("gen-1"))["gen-1"]
	if got := firstLine(t, h.rt, "gen-1", "stdout"); got != "gen 1" {
		t.Fatalf("generation 1 printed %q", got)
	}

	spec.Generation = 2
	spec.Template.Env = []api.EnvVar{{Name: "GEN", Value: "2"}} // the runtime keeps the old slice
	h.rt.Apply([]ReplicaSpec{spec})
	st2 := h.waitFor("generation 2 running", func(m map[string]ReplicaStatus) bool {
		return running("gen-1")(m) && m["gen-1"].Generation == 2
	})["gen-1"]
	if st2.Pid == st1.Pid || !processGone(st1.Pid) {
		t.Fatalf("generation 1 (pid %d) must be stopped and replaced; generation 2 runs as %d", st1.Pid, st2.Pid)
	}
	if st2.Restarts != 0 {
		t.Fatalf("a replacement is a new replica: restarts %d, want 0", st2.Restarts)
	}
	// The logs are kept across the replacement: the current run is
	// generation 2's, the previous one generation 1's.
	got := readLines(t, follow(t, h.rt, "gen-1", "stdout"), 1)
	if strings.Join(got, ",") != "gen 2" {
		t.Fatalf("logs after the replacement = %q, want gen 2", got)
	}
	if prev, err := readAll(t, h.rt, "gen-1", LogOptions{Tail: -1, Previous: true}); err != nil || prev != "gen 1\n" {
		t.Fatalf("previous run after the replacement = %q (%v), want gen 1", prev, err)
	}

	h.rt.Apply(nil)
	h.waitFor("gen-1 removed", gone("gen-1"))
	if !processGone(st2.Pid) {
		t.Fatalf("pid %d still runs after its replica was removed", st2.Pid)
	}
	poll(t, "the removed replica's logs to be deleted", func() bool {
		_, err := os.Stat(filepath.Join(h.cfg.DataDir, "logs", "gen-1"))
		return os.IsNotExist(err)
	})
}

func TestStopAllStopsEverything(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.rt.Apply([]ReplicaSpec{shSpec("all-1", "exec sleep 300"), shSpec("all-2", "exec sleep 300")})
	st := h.waitFor("both running", func(m map[string]ReplicaStatus) bool { return running("all-1")(m) && running("all-2")(m) })
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	if err := h.rt.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(h.rt.Status()); n != 0 {
		t.Fatalf("%d replicas left after StopAll", n)
	}
	for _, s := range st {
		if !processGone(s.Pid) {
			t.Fatalf("pid %d of %s still runs after StopAll", s.Pid, s.ID)
		}
	}
	h.rt.Stop()
	h.rt.Stop() // safe twice
}

func TestStopBeforeStartAndInvalidSpecs(t *testing.T) {
	t.Parallel()
	rt, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rt.Stop()
	rt.Stop()
	if err := rt.Start(t.Context()); err == nil {
		t.Fatal("Start after Stop must fail")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without DataDir must fail")
	}

	h := start(t, nil)
	h.rt.Apply([]ReplicaSpec{
		{ID: "bad-driver", Generation: 1, Template: api.ReplicaTemplate{Driver: "vm"}},
		{ID: "no-command", Generation: 1, Template: api.ReplicaTemplate{Driver: "process"}},
	})
	st := h.waitFor("both failed", func(m map[string]ReplicaStatus) bool {
		return m["bad-driver"].Phase == PhaseFailed && m["no-command"].Phase == PhaseFailed
	})
	if !strings.Contains(st["bad-driver"].Message, "unknown driver") || !strings.Contains(st["no-command"].Message, "needs a command") {
		t.Fatalf("messages: %q, %q", st["bad-driver"].Message, st["no-command"].Message)
	}
	if _, err := h.rt.Logs("bad-driver", "stdin", LogOptions{Tail: -1}); err == nil {
		t.Fatal("Logs with stream stdin must fail")
	}
}

// TestCommandsAreLookedUpInTheConfiguredPath: with Config.Path, a bare
// command name (and an exec probe's) is found in its folders, which the
// replica's PATH also lists; a relative entry never chooses the binary,
// and a name found nowhere fails as os/exec words it.
func TestCommandsAreLookedUpInTheConfiguredPath(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	script := "#!/bin/sh\necho \"found me with PATH=$PATH\"\nexec sleep 300\n"
	if err := os.WriteFile(filepath.Join(bin, "atoll-path-probe"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// A decoy in a relative entry, which must be skipped.
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "rel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "rel", "atoll-path-probe"), []byte("#!/bin/sh\necho decoy\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := "rel:" + bin + ":/usr/bin:/bin"
	h := start(t, func(c *Config) { c.Path = path })
	found := ReplicaSpec{ID: "path-1", Workload: "web", Generation: 1, Template: api.ReplicaTemplate{
		Driver: "process", Command: "atoll-path-probe", WorkingDir: work,
		Readiness: &api.Probe{Exec: &api.ExecProbe{Command: []string{"atoll-path-probe-ready"}}, PeriodSeconds: 1},
	}}
	// The exec probe's command is looked up the same way: not ready until
	// it exists in bin.
	h.rt.Apply([]ReplicaSpec{found, {ID: "path-2", Workload: "web", Generation: 1, Template: api.ReplicaTemplate{
		Driver: "process", Command: "atoll-no-such-command"}}})
	h.waitFor("path-1 running", running("path-1"))
	if got, want := firstLine(t, h.rt, "path-1", "stdout"), "found me with PATH="+path; got != want {
		t.Fatalf("stdout first line = %q, want %q", got, want)
	}
	if err := os.WriteFile(filepath.Join(bin, "atoll-path-probe-ready"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.waitFor("path-1 ready", func(m map[string]ReplicaStatus) bool { return m["path-1"].Ready })
	st := h.waitFor("path-2 not found", func(m map[string]ReplicaStatus) bool { return m["path-2"].ExitCode == 127 })["path-2"]
	if want := `exec: "atoll-no-such-command": executable file not found in $PATH`; !strings.Contains(st.Message, want) {
		t.Fatalf("path-2's message = %q, want it to contain %q", st.Message, want)
	}
}
