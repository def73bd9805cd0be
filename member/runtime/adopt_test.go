package runtime

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/atollhq/atoll/api"
)

func TestRestartedAgentAdoptsRunningReplicas(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	readyFile := filepath.Join(t.TempDir(), "ready")
	if err := os.WriteFile(readyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := helperSpec(t, "adopt-1", api.EnvVar{Name: "READY_FILE", Value: readyFile})
	spec.Template.Readiness = &api.Probe{HTTP: &api.HTTPProbe{Path: "/ready"}, PeriodSeconds: 1, FailureThreshold: 1}
	h.rt.Apply([]ReplicaSpec{spec})
	before := h.waitFor("adopt-1 ready", func(m map[string]ReplicaStatus) bool { return m["adopt-1"].Ready })["adopt-1"]
	lastRequest := lastRequestLogged(t, h.rt, "adopt-1")

	// The agent goes away: its replicas do not.
	h.rt.Stop()
	if !sameProcessAlive(before.Pid, mustTicks(t, before.Pid)) {
		t.Fatalf("pid %d died with the runtime", before.Pid)
	}

	rt2 := h.newRuntime()
	st := statusMap(rt2)["adopt-1"]
	if st.Pid != before.Pid || !st.Adopted || st.Restarts != 0 || st.Port != before.Port {
		t.Fatalf("after the agent restart: %s; want pid %d adopted on port %d, not restarted", describe(map[string]ReplicaStatus{"": st}), before.Pid, before.Port)
	}
	waitStatus(t, rt2, "adopt-1 ready again", func(m map[string]ReplicaStatus) bool { return m["adopt-1"].Ready })

	// Output written after the adoption reaches the log through the same
	// pipe.
	sc := bufio.NewScanner(follow(t, rt2, "adopt-1", "stdout"))
	found := false
	for !found && sc.Scan() {
		var n int
		_, err := fmt.Sscanf(sc.Text(), "request %d", &n)
		found = err == nil && n > lastRequest
	}
	if !found {
		t.Fatalf("no request logged after the adoption (last before: %d): %v", lastRequest, sc.Err())
	}

	// Apply is level-triggered: the same spec keeps it as it is.
	rt2.Apply([]ReplicaSpec{spec})
	rt2.Apply(nil)
	waitStatus(t, rt2, "adopt-1 stopped", gone("adopt-1"))
	if !processGone(before.Pid) {
		t.Fatalf("adopted pid %d still runs after Apply without it", before.Pid)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "replicas", "adopt-1.json")); !os.IsNotExist(err) {
		t.Fatalf("record of the stopped replica: %v", err)
	}
}

// lastRequestLogged reads a helper's log without following and returns
// the number of its last "request N" line.
func lastRequestLogged(t *testing.T, rt *Runtime, id string) int {
	t.Helper()
	rc, err := rt.Logs(id, "stdout", LogOptions{Tail: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	last := 0
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "request %d", &n); err == nil {
			last = n
		}
	}
	return last
}

func mustTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	_, _, ticks, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return ticks
}

func TestStaleRecordIsCleanedUp(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	childFile := filepath.Join(t.TempDir(), "child")
	h.rt.Apply([]ReplicaSpec{shSpec("stale-1", `sleep 300 & echo $! > "$CHILD"; wait`, api.EnvVar{Name: "CHILD", Value: childFile})})
	st := h.waitFor("stale-1 running", running("stale-1"))["stale-1"]
	poll(t, "the child pid file", func() bool { _, err := strconv.Atoi(readFile(childFile)); return err == nil })
	child, _ := strconv.Atoi(readFile(childFile))

	// The agent goes away, then the replica's leader dies: the record is
	// stale and the child an orphan of its process group.
	h.rt.Stop()
	if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll(t, "the leader to die", func() bool { return processGone(st.Pid) })

	rt2 := h.newRuntime()
	if n := len(rt2.Status()); n != 0 {
		t.Fatalf("%d replicas adopted from a stale record", n)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "replicas", "stale-1.json")); !os.IsNotExist(err) {
		t.Fatalf("stale record still there: %v", err)
	}
	poll(t, "the orphaned child to be killed", func() bool { return processGone(child) })

	// Desired again, it starts afresh.
	rt2.Apply([]ReplicaSpec{shSpec("stale-1", "exec sleep 300")})
	again := waitStatus(t, rt2, "stale-1 running again", running("stale-1"))["stale-1"]
	if again.Pid == st.Pid || again.Adopted || again.Restarts != 0 {
		t.Fatalf("restarted replica: %s", describe(map[string]ReplicaStatus{"": again}))
	}
}

func TestAdoptedReplicaExitIsNoticed(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.rt.Apply([]ReplicaSpec{shSpec("exit-1", "exec sleep 300")})
	st := h.waitFor("exit-1 running", running("exit-1"))["exit-1"]
	h.rt.Stop()
	rt2 := h.newRuntime()
	rt2.Apply([]ReplicaSpec{shSpec("exit-1", "exec sleep 300")})
	if got := statusMap(rt2)["exit-1"]; got.Pid != st.Pid {
		t.Fatalf("pid %d, want %d adopted", got.Pid, st.Pid)
	}
	// Not our child: its end comes through the pidfd, with an unknown code,
	// and the restart policy starts a new process.
	if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	again := waitStatus(t, rt2, "a restart", func(m map[string]ReplicaStatus) bool {
		s := m["exit-1"]
		return s.Restarts == 1 && s.Phase == PhaseRunning
	})["exit-1"]
	if again.ExitCode != -1 || again.Pid == st.Pid || again.Adopted {
		t.Fatalf("after the adopted process died: %s", describe(map[string]ReplicaStatus{"": again}))
	}
}

func TestAdoptionPollsProcWithoutPidfd(t *testing.T) {
	t.Parallel()
	// The /proc fallback, driven directly.
	h := start(t, nil)
	h.rt.Apply([]ReplicaSpec{shSpec("poll-1", "exec sleep 300")})
	st := h.waitFor("poll-1 running", running("poll-1"))["poll-1"]
	h.rt.mu.Lock()
	rep := h.rt.reps["poll-1"]
	run := &procRun{pid: st.Pid, pgid: st.Pid, ticks: mustTicks(t, st.Pid)}
	h.rt.mu.Unlock()
	h.rt.pollDur /= 50 // read only by watchProc
	done := make(chan struct{})
	h.rt.wg.Add(1)
	go func() {
		h.rt.watchProc(t.Context(), rep, run)
		close(done)
	}()
	if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
}
