package runtime

import (
	"context"
	"fmt"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

func simSpecs(n int, gen int64, sim api.SimSpec) []ReplicaSpec {
	out := make([]ReplicaSpec, n)
	for i := range out {
		out[i] = ReplicaSpec{ID: fmt.Sprintf("sim-%04d", i), Workload: "sim", Generation: gen,
			Template: api.ReplicaTemplate{Driver: "sim", Sim: &sim}}
	}
	return out
}

func TestThousandsOfSimReplicas(t *testing.T) {
	t.Parallel()
	const n = 2000
	h := start(t, nil)
	goroutines := goruntime.NumGoroutine()
	h.rt.Apply(simSpecs(n, 1, api.SimSpec{StartLatency: "30ms"}))
	h.waitFor("2000 ready", func(m map[string]ReplicaStatus) bool {
		if len(m) != n {
			return false
		}
		for _, s := range m {
			if !s.Ready || s.Phase != PhaseRunning {
				return false
			}
		}
		return true
	})
	// No goroutine per simulated replica (the count may move a little
	// with other parallel tests).
	if g := goruntime.NumGoroutine(); g > goroutines+200 {
		t.Fatalf("%d goroutines with %d sim replicas (%d before)", g, n, goroutines)
	}

	// Every start fails: they back off and retry, never Ready.
	h.rt.Apply(simSpecs(n, 2, api.SimSpec{StartLatency: "5ms", FailureRate: 1}))
	st := h.waitFor("every replica failing twice", func(m map[string]ReplicaStatus) bool {
		if len(m) != n {
			return false
		}
		for _, s := range m {
			if s.Generation != 2 || s.Restarts < 2 {
				return false
			}
		}
		return true
	})
	for _, s := range st {
		if s.Ready || s.Message != "simulated start failure" && s.Phase != PhaseStarting {
			t.Fatalf("%s: ready=%v phase=%s message=%q", s.ID, s.Ready, s.Phase, s.Message)
		}
		// Backoff 50ms then 100ms before the second restart.
		if s.Phase == PhaseStarting && s.StartedAt.Sub(s.FinishedAt) < 100*time.Millisecond {
			t.Fatalf("%s restarted %v after failing, want the backoff", s.ID, s.StartedAt.Sub(s.FinishedAt))
		}
	}
	h.rt.Apply(nil)
	h.waitFor("all removed", func(m map[string]ReplicaStatus) bool { return len(m) == 0 })
}

func TestSimFailuresAreDeterministicPerReplica(t *testing.T) {
	t.Parallel()
	run := func() []ReplicaStatus {
		h := start(t, func(c *Config) { c.Backoff.Initial = time.Hour })
		h.rt.Apply(simSpecs(200, 1, api.SimSpec{FailureRate: 0.5}))
		h.waitFor("all settled", func(m map[string]ReplicaStatus) bool {
			for _, s := range m {
				if s.Phase == PhaseStarting || s.Phase == PhasePending {
					return false
				}
			}
			return len(m) == 200
		})
		return h.rt.Status()
	}
	a, b := run(), run()
	failed := 0
	for i := range a {
		if a[i].Phase != b[i].Phase {
			t.Fatalf("%s: %s in one run, %s in the other", a[i].ID, a[i].Phase, b[i].Phase)
		}
		if a[i].Phase == PhaseBackoff {
			failed++
		}
	}
	if failed < 60 || failed > 140 {
		t.Fatalf("%d of 200 failed at failureRate 0.5", failed)
	}
}

// manualRuntime is a runtime whose supervisor does not run: the test
// drives it with runOnce and its own clock.
func manualRuntime(t *testing.T, now *time.Time) *Runtime {
	t.Helper()
	rt, err := New(Config{DataDir: t.TempDir(), Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	rt.ctx, rt.cancel = context.WithCancel(t.Context())
	rt.state = stateRunning
	t.Cleanup(rt.cancel)
	return rt
}

func TestDefaultBackoffScheduleOnAManualClock(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rt := manualRuntime(t, &now)
	rt.Apply(simSpecs(1, 1, api.SimSpec{StartLatency: "1s", FailureRate: 1}))
	next := rt.runOnce(t.Context())
	if st := rt.Status()[0]; st.Phase != PhaseStarting || !next.Equal(now.Add(time.Second)) {
		t.Fatalf("after the first pass: phase %s, next pass at %v; want Starting and %v", st.Phase, next, now.Add(time.Second))
	}
	// Defaults: 10s, doubling, at most 5m.
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second} {
		now = next
		next = rt.runOnce(t.Context())
		st := rt.Status()[0]
		if st.Phase != PhaseBackoff || st.Restarts != i || st.Message != "simulated start failure" {
			t.Fatalf("failure %d: phase %s restarts %d message %q", i+1, st.Phase, st.Restarts, st.Message)
		}
		if got := next.Sub(now); got != want {
			t.Fatalf("backoff after failure %d = %v, want %v", i+1, got, want)
		}
		now = next
		next = rt.runOnce(t.Context())
		if st := rt.Status()[0]; st.Phase != PhaseStarting || st.Restarts != i+1 {
			t.Fatalf("restart %d: phase %s restarts %d", i+1, st.Phase, st.Restarts)
		}
	}
}
