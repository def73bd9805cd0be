package runtime

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

func TestReadinessProbeFlipsReady(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	readyFile := filepath.Join(t.TempDir(), "ready")
	spec := helperSpec(t, "ready-1", api.EnvVar{Name: "READY_FILE", Value: readyFile})
	spec.Template.Readiness = &api.Probe{HTTP: &api.HTTPProbe{Path: "/ready"}, PeriodSeconds: 1, FailureThreshold: 1}
	h.rt.Apply([]ReplicaSpec{spec})
	st := h.waitFor("not ready with a probe failure", func(m map[string]ReplicaStatus) bool {
		s := m["ready-1"]
		return s.Phase == PhaseRunning && strings.HasPrefix(s.Message, "readiness probe failed: ")
	})["ready-1"]
	if st.Ready {
		t.Fatal("Ready before the readiness probe passed")
	}
	if err := os.WriteFile(readyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st = h.waitFor("ready", func(m map[string]ReplicaStatus) bool { return m["ready-1"].Ready })["ready-1"]
	if st.Message != "" {
		t.Fatalf("message %q once ready, want none", st.Message)
	}
	if err := os.Remove(readyFile); err != nil {
		t.Fatal(err)
	}
	st = h.waitFor("not ready again", func(m map[string]ReplicaStatus) bool { return !m["ready-1"].Ready })["ready-1"]
	if !strings.Contains(st.Message, "HTTP 503") || st.Restarts != 0 {
		t.Fatalf("message %q restarts %d: readiness failures only clear Ready", st.Message, st.Restarts)
	}
}

func TestLivenessFailureRestarts(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	// Nothing listens on the replica's port: the tcp probe fails.
	spec := shSpec("live-1", "exec sleep 300")
	spec.Template.Liveness = &api.Probe{TCP: &api.TCPProbe{}, PeriodSeconds: 1, FailureThreshold: 2}
	h.rt.Apply([]ReplicaSpec{spec})
	first := h.waitFor("live-1 running", running("live-1"))["live-1"]
	st := h.waitFor("a restart", func(m map[string]ReplicaStatus) bool { return m["live-1"].Restarts >= 1 })["live-1"]
	if !strings.HasPrefix(st.Message, "liveness probe failed: connect 127.0.0.1:") && st.Message != "" {
		t.Fatalf("message %q, want the liveness failure", st.Message)
	}
	if st.Reason != ReasonProbeFailed || !strings.HasPrefix(st.LastError, "liveness probe failed: connect 127.0.0.1:") {
		t.Fatalf("reason %q last error %q, want %s and the probe's output", st.Reason, st.LastError, ReasonProbeFailed)
	}
	if l := h.logs.lines("replica unhealthy", "replica=live-1", "liveness probe failed"); len(l) == 0 {
		t.Fatal("the runtime did not log the liveness failure")
	}
	if st.ExitCode != 128+15 {
		t.Fatalf("exit code %d, want 143: the process was stopped with SIGTERM", st.ExitCode)
	}
	if !processGone(first.Pid) {
		t.Fatalf("the unhealthy process %d still runs", first.Pid)
	}
}

func TestHangingProbesAreBoundedByTheirTimeout(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	// An HTTP liveness probe whose server never answers, and an exec
	// readiness probe that never ends: both fail at their 1s timeout.
	httpSpec := helperSpec(t, "hang-http", api.EnvVar{Name: "READY_FILE", Value: "/nonexistent"})
	// (Threshold 2: the first check may come before the server listens.)
	httpSpec.Template.Liveness = &api.Probe{HTTP: &api.HTTPProbe{Path: "/hang"}, TimeoutSeconds: 1, PeriodSeconds: 1, FailureThreshold: 2}
	execSpec := shSpec("hang-exec", "exec sleep 300")
	execSpec.Template.Readiness = &api.Probe{Exec: &api.ExecProbe{Command: []string{"sh", "-c", "sleep 300"}}, TimeoutSeconds: 1, PeriodSeconds: 1, FailureThreshold: 1}
	h.rt.Apply([]ReplicaSpec{httpSpec, execSpec})
	st := h.waitFor("the hanging probes to fail", func(m map[string]ReplicaStatus) bool {
		return m["hang-http"].Restarts >= 1 && strings.HasPrefix(m["hang-exec"].Message, "readiness probe failed")
	})
	if l := h.logs.lines("replica unhealthy", "replica=hang-http", "timed out after 1s"); len(l) == 0 {
		t.Fatalf("hang-http must be restarted for a probe timeout; status %s", describe(st))
	}
	if m := st["hang-exec"].Message; m != "readiness probe failed: sh: timed out after 1s" {
		t.Fatalf("hang-exec message %q", m)
	}
	if st["hang-exec"].Ready || st["hang-exec"].Restarts != 0 {
		t.Fatalf("hang-exec: ready %v restarts %d", st["hang-exec"].Ready, st["hang-exec"].Restarts)
	}
}

func TestStartupProbeGatesTheOthers(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	started := filepath.Join(t.TempDir(), "started")
	spec := shSpec("startup-1", "exec sleep 300", api.EnvVar{Name: "STARTED", Value: started})
	spec.Template.Startup = &api.Probe{Exec: &api.ExecProbe{Command: []string{"sh", "-c", `test -f "$STARTED"`}}, PeriodSeconds: 1, FailureThreshold: 30}
	// A liveness probe that would fail at once: it must not run before
	// the startup probe passed.
	spec.Template.Liveness = &api.Probe{Exec: &api.ExecProbe{Command: []string{"sh", "-c", `test -f "$STARTED"`}}, PeriodSeconds: 1, FailureThreshold: 1}
	h.rt.Apply([]ReplicaSpec{spec})
	st := h.waitFor("Starting", func(m map[string]ReplicaStatus) bool { return m["startup-1"].Phase == PhaseStarting })["startup-1"]
	if st.Ready {
		t.Fatal("Ready while Starting")
	}
	if err := os.WriteFile(started, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st = h.waitFor("Running and Ready", func(m map[string]ReplicaStatus) bool {
		return m["startup-1"].Phase == PhaseRunning && m["startup-1"].Ready
	})["startup-1"]
	if st.Restarts != 0 {
		t.Fatalf("restarts %d: liveness ran before the startup probe passed", st.Restarts)
	}
}

func TestQuickRetriesBeforeAProbeFirstPasses(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ps := &probeState{kind: "readiness", p: &api.Probe{HTTP: &api.HTTPProbe{}, PeriodSeconds: 1}, next: t0, quickUntil: t0.Add(quickWindow)}
	if !ps.checked(t0, false, true) {
		t.Fatal("a failed periodic check is not counted")
	}
	// Retries at 50, 150, 350, 600 and 850 ms; the next (1,100 ms) would
	// pass the periodic check at 1 s, so none is scheduled.
	var at []time.Duration
	for now := t0; ; {
		if ps.due() == ps.next {
			break
		}
		now = ps.due()
		at = append(at, now.Sub(t0))
		if ps.checked(now, false, false) {
			t.Fatalf("a failed retry at %v was counted", now.Sub(t0))
		}
	}
	if want := []time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 350 * time.Millisecond, 600 * time.Millisecond, 850 * time.Millisecond}; !slices.Equal(at, want) {
		t.Fatalf("retries at %v, want %v", at, want)
	}
	if !ps.next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next periodic check at %v, want a period after the first", ps.next.Sub(t0))
	}
	// After the window, a replica that never answered is checked on its
	// period only.
	late := &probeState{kind: "readiness", p: &api.Probe{TCP: &api.TCPProbe{}, PeriodSeconds: 1}, next: t0, quickUntil: t0.Add(quickWindow)}
	late.checked(t0.Add(quickWindow), false, true)
	if !late.retry.IsZero() {
		t.Fatal("a quick retry after the window")
	}
	// A retry that passes counts; from then on only periodic checks run.
	ps.retry = t0.Add(800 * time.Millisecond)
	if !ps.checked(ps.retry, true, false) || !ps.passed {
		t.Fatal("a passing retry is not counted")
	}
	if ps.checked(t0.Add(time.Second), false, true); ps.due() != ps.next {
		t.Fatal("a probe that passed once retried a failure quickly")
	}
	for _, p := range []*probeState{
		{kind: "liveness", p: &api.Probe{TCP: &api.TCPProbe{}}, quickUntil: t0.Add(quickWindow)},
		{kind: "readiness", p: &api.Probe{Exec: &api.ExecProbe{Command: []string{"true"}}}, quickUntil: t0.Add(quickWindow)},
		{kind: "startup", p: &api.Probe{TCP: &api.TCPProbe{}}, passed: true, quickUntil: t0.Add(quickWindow)},
	} {
		p.checked(t0, false, true)
		if !p.retry.IsZero() {
			t.Fatalf("%s probe %+v retried quickly", p.kind, p.p)
		}
	}
	if st := (&probeState{kind: "startup", p: &api.Probe{TCP: &api.TCPProbe{}}, quickUntil: t0.Add(quickWindow)}); st.checked(t0, false, true) && st.retry.IsZero() {
		t.Fatal("a startup probe that has not passed is not retried quickly")
	}
}

func TestReadyWithinMillisecondsOfAnsweringNotAPeriodLater(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	readyFile := filepath.Join(t.TempDir(), "ready")
	spec := helperSpec(t, "quick-1", api.EnvVar{Name: "READY_FILE", Value: readyFile})
	// A minute's period: without the quick retries the replica would be
	// ready a minute after its first (failed) check.
	spec.Template.Readiness = &api.Probe{HTTP: &api.HTTPProbe{Path: "/ready"}, PeriodSeconds: 60}
	h.rt.Apply([]ReplicaSpec{spec})
	h.waitFor("quick-1 running", running("quick-1"))
	if err := os.WriteFile(readyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// waitFor gives up after 20 s, a third of the period: the retries,
	// doubling from 50 ms, find the replica ready about as long after the
	// file appeared as the replica had run before it.
	h.waitFor("ready", func(m map[string]ReplicaStatus) bool { return m["quick-1"].Ready })
}

func TestContainerProbesBeginWhenItsProcessRuns(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	port, _ := strconv.Atoi(srv.URL[strings.LastIndex(srv.URL, ":")+1:])
	run := &procRun{initDone: make(chan struct{})}
	rep := &replica{run: run}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.rt.wg.Add(1)
	go h.rt.probeLoop(ctx, rep, run, api.ReplicaTemplate{Readiness: &api.Probe{HTTP: &api.HTTPProbe{}, PeriodSeconds: 1}}, port)
	// While runc builds the container nothing is probed (a check then
	// could only fail, and put the next a whole retry later).
	time.Sleep(300 * time.Millisecond)
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d checks before the container's process ran", n)
	}
	close(run.initDone)
	deadline := time.Now().Add(20 * time.Second)
	for hits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no check after the container's process ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
