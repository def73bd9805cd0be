package progressive

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

// fleet is a simulated set of members: each cluster given the new
// revision reports it ready a second later (or crashing, or answering
// errors, as a test sets), and the decision is taken again every second.
type fleet struct {
	t        *testing.T
	spec     *api.ProgressiveRollout
	clusters map[string]*Cluster
	given    map[string]time.Time // cluster -> when it was given the new revision
	status   *api.RolloutStatus
	cmds     Commands
	now      time.Time
	events   []Event
	// crash makes the new revision crash (restarts) on a cluster once it
	// runs it; notReady keeps its replicas from ever getting ready.
	crash, notReady bool
	// everGiven is every cluster that was ever given the new revision.
	everGiven map[string]bool
	// traffic, when set, measures a cluster's traffic to the new
	// revision and the stable one's, given the cluster ran the new
	// revision for so long.
	traffic func(cluster string, running time.Duration) (revision, stable *Traffic)
}

func newFleet(t *testing.T, spec *api.ProgressiveRollout, regions map[string]string) *fleet {
	f := &fleet{t: t, spec: spec, clusters: map[string]*Cluster{}, given: map[string]time.Time{}, now: t0, everGiven: map[string]bool{}}
	for name, region := range regions {
		f.clusters[name] = &Cluster{Name: name, Labels: map[string]string{api.LabelRegion: region}, Health: api.HealthReady}
	}
	return f
}

// step decides once at f.now with the members' reports, and checks what
// every decision must keep.
func (f *fleet) step() Result {
	f.t.Helper()
	var cs []Cluster
	for _, name := range slices.Sorted(mapKeys(f.clusters)) {
		c := *f.clusters[name]
		if at, ok := f.given[name]; ok && c.Health == api.HealthReady && !f.now.Before(at.Add(time.Second)) {
			r := &Report{Desired: 2, Ready: 2}
			if f.crash {
				r.Ready, r.Restarts = 0, 3
			}
			if f.notReady {
				r.Ready = 0
			}
			c.Report = r
		}
		if at, ok := f.given[name]; ok && f.traffic != nil {
			c.Traffic, c.Baseline = f.traffic(name, f.now.Sub(at))
		}
		cs = append(cs, c)
	}
	res := Decide(Input{Spec: f.spec, Revision: 2, Stable: 1, Clusters: cs, Status: f.status, Commands: f.cmds, Now: f.now})
	st := res.Status
	f.status = &st
	f.events = append(f.events, res.Events...)
	for _, c := range st.Clusters {
		switch {
		case c.Revision == 2:
			if _, ok := f.given[c.Cluster]; !ok {
				f.given[c.Cluster] = f.now
			}
			f.everGiven[c.Cluster] = true
		default:
			delete(f.given, c.Cluster)
		}
	}
	if st.Phase == api.RolloutRolledBack {
		for _, c := range st.Clusters {
			if c.Revision != 1 {
				f.t.Fatalf("rolled back, but %s is given revision %d", c.Cluster, c.Revision)
			}
		}
	}
	return res
}

// run steps a second at a time until the rollout ends or limit passes.
func (f *fleet) run(limit time.Duration) Result {
	f.t.Helper()
	end := f.now.Add(limit)
	var res Result
	for ; !f.now.After(end); f.now = f.now.Add(time.Second) {
		res = f.step()
		if p := res.Status.Phase; p == api.RolloutCompleted || p == api.RolloutRolledBack {
			return res
		}
	}
	return res
}

func (f *fleet) reasons() []string {
	var out []string
	for _, e := range f.events {
		out = append(out, e.Reason)
	}
	return out
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// threeWaves: a canary cluster, then the eu region, then the rest (the
// clusters no wave names, in the implicit last wave).
func threeWaves(bake string) *api.ProgressiveRollout {
	return &api.ProgressiveRollout{Waves: []api.RolloutWave{
		{Name: "canary", Clusters: []string{"us-1"}, BakeTime: api.Duration(bake)},
		{Name: "eu", Selector: &api.LabelSelector{MatchLabels: map[string]string{api.LabelRegion: "eu"}}, BakeTime: api.Duration(bake)},
	}}
}

var regions = map[string]string{"us-1": "us", "us-2": "us", "eu-1": "eu", "eu-2": "eu", "ap-1": "ap"}

// TestGoodRevisionGoesWaveByWave: each wave starts only once the one
// before baked; the rollout ends within the sum of the bake times plus a
// few seconds of readiness; the events tell its story.
func TestGoodRevisionGoesWaveByWave(t *testing.T) {
	t.Parallel()
	f := newFleet(t, threeWaves("10s"), regions)
	order := map[string]time.Time{}
	var res Result
	for f.now = t0; f.now.Before(t0.Add(time.Minute)); f.now = f.now.Add(time.Second) {
		res = f.step()
		for c := range f.given {
			if _, seen := order[c]; !seen {
				order[c] = f.now
			}
		}
		if res.Status.Phase == api.RolloutCompleted {
			break
		}
	}
	if res.Status.Phase != api.RolloutCompleted || res.Status.StableRevision != 2 {
		t.Fatalf("want Completed with revision 2 stable within a minute; got %+v", res.Status)
	}
	// canary at once; eu once the canary baked (1 s ready + 10 s); the
	// rest once eu baked.
	if !order["us-1"].Equal(t0) || order["eu-1"].Before(t0.Add(11*time.Second)) || !order["eu-1"].Equal(order["eu-2"]) ||
		order["ap-1"].Before(order["eu-1"].Add(11*time.Second)) || !order["ap-1"].Equal(order["us-2"]) {
		t.Errorf("want us-1 first, eu-1 and eu-2 after its bake, ap-1 and us-2 after theirs; got %v", order)
	}
	if took := f.now.Sub(t0); took > 3*10*time.Second+5*time.Second {
		t.Errorf("3 waves of 10 s bake took %s, want at most the bakes plus 5 s", took)
	}
	if got, want := f.reasons(), []string{"RolloutStarted", "WaveStarted", "WaveStarted", "RolloutCompleted"}; !slices.Equal(got, want) {
		t.Errorf("events: want %v; got %v", want, got)
	}
	for _, c := range res.Status.Clusters {
		if c.Revision != 2 {
			t.Errorf("completed, yet %s is given revision %d", c.Cluster, c.Revision)
		}
	}
}

// TestBadRevisionNeverLeavesTheFirstWave: a crashing revision is rolled
// back from the canary, and no later cluster is ever given it.
func TestBadRevisionNeverLeavesTheFirstWave(t *testing.T) {
	t.Parallel()
	f := newFleet(t, threeWaves("10s"), regions)
	f.crash = true
	res := f.run(time.Minute)
	if want := "us-1: 3 restarts of revision 2's replicas (at most 0)"; res.Status.Phase != api.RolloutRolledBack || !strings.Contains(res.Status.Message, want) {
		t.Errorf("want RolledBack saying %q; got %s %q", want, res.Status.Phase, res.Status.Message)
	}
	if took := f.now.Sub(t0); took > 10*time.Second {
		t.Errorf("rolled back %s after it started, want within 10 s", took)
	}
	if len(f.everGiven) != 1 || !f.everGiven["us-1"] {
		t.Errorf("want only the canary ever given the bad revision; got %v", f.everGiven)
	}
	if rb := f.events[len(f.events)-1]; rb.Type != api.EventWarning || rb.Reason != "RolloutRolledBack" {
		t.Errorf("want a RolloutRolledBack warning last; got %+v", f.events)
	}
	// Stays rolled back.
	f.crash = false
	f.now = f.now.Add(time.Minute)
	if res := f.step(); res.Status.Phase != api.RolloutRolledBack || len(f.given) != 0 {
		t.Errorf("want the rollout to stay rolled back; got %s, given %v", res.Status.Phase, f.given)
	}
}

// TestProgressDeadline: a revision whose replicas never get ready (and
// never crash) fails its wave at the progress deadline, not before.
func TestProgressDeadline(t *testing.T) {
	t.Parallel()
	spec := threeWaves("10s")
	spec.Gates = &api.RolloutGates{ProgressDeadline: "30s"}
	f := newFleet(t, spec, regions)
	f.notReady = true
	res := f.run(29 * time.Second)
	if res.Status.Phase != api.RolloutProgressing || len(f.everGiven) != 1 {
		t.Fatalf("before the deadline: want the canary waiting; got %s %q, given %v", res.Status.Phase, res.Status.Message, f.everGiven)
	}
	f.now = f.now.Add(time.Second)
	res = f.run(5 * time.Second)
	if res.Status.Phase != api.RolloutRolledBack || !strings.Contains(res.Status.Message, "after the progress deadline (30s)") {
		t.Errorf("at the deadline: want RolledBack naming it; got %s %q", res.Status.Phase, res.Status.Message)
	}
}

// TestPartitionHoldsTheWave: while a cluster of the current wave is
// Unreachable nothing new starts; once it is back the rollout goes on.
func TestPartitionHoldsTheWave(t *testing.T) {
	t.Parallel()
	f := newFleet(t, threeWaves("5s"), regions)
	// The canary bakes, eu starts; then eu-2 is cut off.
	for f.now = t0; len(f.given) < 3; f.now = f.now.Add(time.Second) {
		f.step()
		if f.now.After(t0.Add(time.Minute)) {
			t.Fatalf("eu never started: %+v", f.status)
		}
	}
	f.clusters["eu-2"].Health = api.HealthUnreachable
	for range 60 {
		f.now = f.now.Add(time.Second)
		res := f.step()
		if f.everGiven["ap-1"] || f.everGiven["us-2"] {
			t.Fatalf("a wave started while eu-2 was Unreachable: %+v", res.Status)
		}
		if res.Status.Phase != api.RolloutWaiting || !strings.Contains(res.Status.Message, "eu-2 is Unreachable") {
			t.Fatalf("want the rollout waiting on eu-2; got %s %q", res.Status.Phase, res.Status.Message)
		}
	}
	f.clusters["eu-2"].Health = api.HealthReady
	if res := f.run(time.Minute); res.Status.Phase != api.RolloutCompleted {
		t.Errorf("after the heal: want Completed; got %s %q", res.Status.Phase, res.Status.Message)
	}
}

// TestManualWaveAndOperators: a manual wave waits for its promote (a
// promote of another wave does nothing); pause holds; abort rolls back.
func TestManualWaveAndOperators(t *testing.T) {
	t.Parallel()
	spec := threeWaves("2s")
	spec.Waves[0].Manual = true
	f := newFleet(t, spec, regions)
	res := f.run(30 * time.Second)
	if res.Status.Phase != api.RolloutWaiting || !strings.Contains(res.Status.Message, "promote") || len(f.everGiven) != 1 {
		t.Fatalf("want the canary done and waiting for a promote; got %s %q, given %v", res.Status.Phase, res.Status.Message, f.everGiven)
	}
	f.cmds.Promote = "eu"
	if res = f.step(); res.Status.Phase != api.RolloutWaiting {
		t.Fatalf("a promote of another wave went on: %s", res.Status.Phase)
	}
	f.cmds.Promote = "canary"
	f.now = f.now.Add(time.Second)
	if res = f.step(); !f.everGiven["eu-1"] || !slices.Contains(f.reasons(), "RolloutPromoted") {
		t.Fatalf("promoted: want eu started and a RolloutPromoted event; got %s %q %v", res.Status.Phase, res.Status.Message, f.reasons())
	}
	f.cmds.Paused = true
	res = f.run(time.Minute)
	if res.Status.Phase != api.RolloutPaused || f.everGiven["ap-1"] {
		t.Fatalf("paused: want it held before the rest; got %s, given %v", res.Status.Phase, f.everGiven)
	}
	f.cmds.Abort = true
	f.now = f.now.Add(time.Second)
	if res = f.step(); res.Status.Phase != api.RolloutRolledBack || !strings.Contains(res.Status.Message, "aborted") || len(f.given) != 0 {
		t.Errorf("abort: want RolledBack, every cluster on revision 1; got %s %q, given %v", res.Status.Phase, res.Status.Message, f.given)
	}
}

// TestDeferredClusters: with onDeferred wait a frozen cluster holds its
// wave (and a fleet all frozen waits without a wake-up); with skip the
// rollout goes on and the frozen cluster is caught up in the late wave
// once it thaws.
func TestDeferredClusters(t *testing.T) {
	t.Parallel()
	f := newFleet(t, threeWaves("2s"), regions)
	for _, c := range f.clusters {
		c.Deferred = "frozen"
	}
	res := f.run(time.Minute)
	if res.Status.Phase != api.RolloutWaiting || !strings.Contains(res.Status.Message, "defer") || !res.Wake.IsZero() || len(f.everGiven) != 0 {
		t.Fatalf("all frozen: want Waiting, saying so, no wake-up, nothing given; got %s %q wake %v given %v", res.Status.Phase, res.Status.Message, res.Wake, f.everGiven)
	}

	spec := threeWaves("2s")
	spec.OnDeferred = "skip"
	f = newFleet(t, spec, regions)
	f.clusters["eu-2"].Deferred = "maintenance window"
	res = f.run(time.Minute)
	if res.Status.Phase != api.RolloutWaiting || f.everGiven["eu-2"] || !f.everGiven["ap-1"] || res.Status.WaveName != lateWave {
		t.Fatalf("skip: want every other cluster done and eu-2 waiting in the late wave; got %s %q wave %s, given %v", res.Status.Phase, res.Status.Message, res.Status.WaveName, f.everGiven)
	}
	f.clusters["eu-2"].Deferred = ""
	if res = f.run(time.Minute); res.Status.Phase != api.RolloutCompleted || !f.everGiven["eu-2"] {
		t.Errorf("thawed: want eu-2 caught up and the rollout Completed; got %s %q", res.Status.Phase, res.Status.Message)
	}
}

// TestMaxParallelClusters: a wave of two with maxParallelClusters 1
// starts them one after the other.
func TestMaxParallelClusters(t *testing.T) {
	t.Parallel()
	spec := threeWaves("2s")
	spec.MaxParallelClusters = 1
	f := newFleet(t, spec, regions)
	for f.now = t0; f.now.Before(t0.Add(time.Minute)); f.now = f.now.Add(time.Second) {
		f.step()
		eu := 0
		for c := range f.given {
			if strings.HasPrefix(c, "eu") {
				eu++
			}
		}
		if eu == 1 {
			break
		}
		if eu > 1 {
			t.Fatalf("both eu clusters started at once with maxParallelClusters 1")
		}
	}
	f.step()
	if len(f.given) != 2 {
		t.Fatalf("want one eu cluster started besides the canary; got %v", f.given)
	}
	if res := f.run(time.Minute); res.Status.Phase != api.RolloutCompleted {
		t.Errorf("want Completed; got %s %q", res.Status.Phase, res.Status.Message)
	}
}

// TestNewRevisionMidRollout: a new revision while one rolls out sends
// every cluster back to the stable revision and starts again from the
// first wave; the first revision of a workload goes everywhere at once.
func TestNewRevisionMidRollout(t *testing.T) {
	t.Parallel()
	f := newFleet(t, threeWaves("5s"), regions)
	f.run(8 * time.Second)
	if len(f.given) < 1 {
		t.Fatalf("nothing started: %+v", f.status)
	}
	var cs []Cluster
	for _, c := range f.clusters {
		cs = append(cs, *c)
	}
	res := Decide(Input{Spec: f.spec, Revision: 3, Stable: 1, Clusters: cs, Status: f.status, Now: f.now})
	if res.Status.Revision != 3 || res.Status.StableRevision != 1 || res.Status.Phase != api.RolloutProgressing {
		t.Fatalf("want revision 3 rolling out from 1; got %+v", res.Status)
	}
	for _, c := range res.Status.Clusters {
		if want := map[bool]int64{true: 3, false: 1}[c.Cluster == "us-1"]; c.Revision != want {
			t.Errorf("%s: want revision %d (the canary anew, the rest stable); got %d", c.Cluster, want, c.Revision)
		}
	}
	first := Decide(Input{Spec: f.spec, Revision: 1, Clusters: cs, Now: t0})
	if first.Status.Phase != api.RolloutCompleted || first.RevisionOf("ap-1") != 1 || len(first.Events) != 0 {
		t.Errorf("first revision: want Completed at once everywhere, no events; got %+v %v", first.Status, first.Events)
	}
}
