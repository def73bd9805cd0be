package progressive

import (
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// trafficWaves are threeWaves with traffic gates.
func trafficWaves(g api.TrafficGates) *api.ProgressiveRollout {
	spec := threeWaves("10s")
	spec.Gates = &api.RolloutGates{Traffic: &g}
	return spec
}

// steady is traffic of 10 requests a second since the cluster took the
// new revision, with the given error ratio and p99, against a stable
// revision answering 1% errors at 20 ms.
func steady(ratio float64, p99 time.Duration) func(string, time.Duration) (*Traffic, *Traffic) {
	return func(_ string, running time.Duration) (*Traffic, *Traffic) {
		n := uint64(running.Seconds()) * 10
		return &Traffic{Requests: n, Errors: uint64(float64(n) * ratio), P99: p99, Span: running},
			&Traffic{Requests: 3000, Errors: 30, P99: 20 * time.Millisecond, Span: running}
	}
}

// TestTrafficGateRollsBackAnErroringRevision: a revision answering 5xx
// (not crashing: its replicas are ready) is rolled back from the canary
// once it has its minimum of requests, the measurement as the reason, and
// no later wave ever gets it.
func TestTrafficGateRollsBackAnErroringRevision(t *testing.T) {
	t.Parallel()
	f := newFleet(t, trafficWaves(api.TrafficGates{MinRequests: 20}), regions)
	f.traffic = steady(1, 5*time.Millisecond)
	res := f.run(time.Minute)
	want := "us-1: error ratio 100.0% of revision 2 (20 errors in 20 requests over 2s) against 1.0% of revision 1 (3000 requests over 2s); at most 1.0% points more"
	if res.Status.Phase != api.RolloutRolledBack || res.Status.Message != want {
		t.Fatalf("want RolledBack saying %q; got %s %q", want, res.Status.Phase, res.Status.Message)
	}
	if took := f.now.Sub(t0); took > 5*time.Second {
		t.Errorf("rolled back %s after the start, want within the 2 s its 20 requests take (and a step)", took)
	}
	if len(f.everGiven) != 1 || !f.everGiven["us-1"] {
		t.Errorf("want only the canary ever given the bad revision; got %v", f.everGiven)
	}
	if rb := f.events[len(f.events)-1]; rb.Reason != "RolloutRolledBack" || !strings.Contains(rb.Message, "error ratio 100.0%") {
		t.Errorf("want a RolloutRolledBack event naming the measurement; got %+v", rb)
	}
}

// TestTrafficGateWaitsWithoutTraffic: a revision nobody sends requests to
// never passes its traffic gate (and never fails it): the wave waits, and
// says why.
func TestTrafficGateWaitsWithoutTraffic(t *testing.T) {
	t.Parallel()
	f := newFleet(t, trafficWaves(api.TrafficGates{}), regions)
	f.traffic = func(string, time.Duration) (*Traffic, *Traffic) { return &Traffic{}, nil }
	res := f.run(2 * time.Minute)
	if res.Status.Phase != api.RolloutProgressing || res.Status.WaveName != "canary" {
		t.Fatalf("want the canary wave still Progressing; got %s in %s", res.Status.Phase, res.Status.WaveName)
	}
	if want := "us-1: 0/20 requests to revision 2 through the gateways in the last 30s (the traffic gate waits for them)"; !strings.Contains(res.Status.Message, want) {
		t.Errorf("want the status to say %q; got %q", want, res.Status.Message)
	}
	if len(f.everGiven) != 1 {
		t.Errorf("want only the canary given the revision; got %v", f.everGiven)
	}
	if res.Wake.IsZero() || res.Wake.After(f.now.Add(TrafficRecheck)) {
		t.Errorf("want a decision again within %s (the counts move without a change); wake %v at %v", TrafficRecheck, res.Wake, f.now)
	}
}

// TestTrafficGatePassesAGoodRevision: with the new revision as good as the
// stable one, the rollout completes wave by wave, and a passing cluster's
// gate says what was measured.
func TestTrafficGatePassesAGoodRevision(t *testing.T) {
	t.Parallel()
	f := newFleet(t, trafficWaves(api.TrafficGates{MaxLatencyRatio: ptr(1.5)}), regions)
	f.traffic = steady(0.01, 22*time.Millisecond)
	var gate string
	for f.now = t0; f.now.Before(t0.Add(2 * time.Minute)); f.now = f.now.Add(time.Second) {
		res := f.step()
		for _, c := range res.Status.Clusters {
			if c.Cluster == "us-1" && res.Status.Phase == api.RolloutBaking {
				gate = c.Gate
			}
		}
		if res.Status.Phase == api.RolloutCompleted {
			break
		}
	}
	if f.status.Phase != api.RolloutCompleted {
		t.Fatalf("want Completed; got %s %q", f.status.Phase, f.status.Message)
	}
	if want := "errors (stable 1.0%), p99 22ms (stable 20ms)"; !strings.Contains(gate, want) {
		t.Errorf("want the canary's gate to say %q while baking; got %q", want, gate)
	}
}

// TestTrafficGateLatency: a slower revision fails the latency gate only
// past both limits when both are set.
func TestTrafficGateLatency(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		g        api.TrafficGates
		p99      time.Duration
		rollback bool
	}{
		{"ratio exceeded", api.TrafficGates{MaxLatencyRatio: ptr(1.5)}, 40 * time.Millisecond, true},
		{"ratio held", api.TrafficGates{MaxLatencyRatio: ptr(1.5)}, 25 * time.Millisecond, false},
		{"increase exceeded", api.TrafficGates{MaxLatencyIncrease: "10ms"}, 40 * time.Millisecond, true},
		{"both set, only the ratio exceeded", api.TrafficGates{MaxLatencyRatio: ptr(1.5), MaxLatencyIncrease: "50ms"}, 40 * time.Millisecond, false},
		{"both set, both exceeded", api.TrafficGates{MaxLatencyRatio: ptr(1.5), MaxLatencyIncrease: "10ms"}, 40 * time.Millisecond, true},
	} {
		f := newFleet(t, trafficWaves(c.g), regions)
		f.traffic = steady(0, c.p99)
		res := f.run(2 * time.Minute)
		if got := res.Status.Phase == api.RolloutRolledBack; got != c.rollback {
			t.Errorf("%s: want rolled back %v; got %s %q", c.name, c.rollback, res.Status.Phase, res.Status.Message)
		}
		if c.rollback && !strings.Contains(res.Status.Message, "p99 latency 40ms of revision 2 against 20ms of revision 1") {
			t.Errorf("%s: want the latencies in the reason; got %q", c.name, res.Status.Message)
		}
	}
}

// TestTrafficGateLatencyWaitsForABaseline: without the stable revision's
// requests to compare with, the latency gate waits.
func TestTrafficGateLatencyWaitsForABaseline(t *testing.T) {
	t.Parallel()
	f := newFleet(t, trafficWaves(api.TrafficGates{MaxLatencyRatio: ptr(2.0)}), regions)
	f.traffic = func(_ string, running time.Duration) (*Traffic, *Traffic) {
		return &Traffic{Requests: 500, P99: time.Millisecond, Span: running}, &Traffic{Requests: 3, Widened: true}
	}
	res := f.run(time.Minute)
	if want := "the latency gate waits for a baseline: revision 1 (stable) had 3/20 requests"; res.Status.Phase != api.RolloutProgressing || !strings.Contains(res.Status.Message, want) {
		t.Errorf("want Progressing saying %q; got %s %q", want, res.Status.Phase, res.Status.Message)
	}
}

func ptr[T any](v T) *T { return &v }
