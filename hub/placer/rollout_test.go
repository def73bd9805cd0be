package placer

import (
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/traffic"
)

// TestRolloutWindowDefersAndWakes: a cluster outside its rollout window
// defers its wave (it keeps the stable revision, and says when the window
// opens), and the decision asks to be taken again when it opens; inside
// the window it takes the new revision.
func TestRolloutWindowDefersAndWakes(t *testing.T) {
	t.Parallel()
	// Saturday 2026-12-05 10:00 UTC; the window opens Monday 09:00.
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	w := &api.Workload{Metadata: api.ObjectMeta{Name: "web", Generation: 2}, Spec: api.WorkloadSpec{Replicas: 2,
		Template: api.ReplicaTemplate{Driver: "sim"},
		Rollout:  &api.ProgressiveRollout{Waves: []api.RolloutWave{{Name: "canary", Clusters: []string{"eu"}}}}}}
	w.Status.Rollout = &api.RolloutStatus{Revision: 1, StableRevision: 1, Phase: api.RolloutCompleted, Promoted: -1}
	revs := []revision{{number: 1, generation: 1}, {number: 2, generation: 2}}
	cluster := func(window string) []failover.Cluster {
		c := failover.Cluster{Known: true, Live: failover.Live{Health: api.HealthReady}}
		c.Metadata.Name, c.Metadata.Annotations = "eu", map[string]string{api.AnnotationRolloutWindow: window}
		return []failover.Cluster{c}
	}
	res, gens, ok := rolloutStep(w, revs, map[string]int32{"eu": 2}, cluster("Mon-Fri 09:00-17:00"), nil, now)
	if !ok || res.Status.Phase != api.RolloutWaiting || gens["eu"] != 1 || !strings.Contains(res.Status.Message, "outside its rollout window") {
		t.Fatalf("outside the window: want eu waiting on the stable revision (generation 1); got %s %q, generations %v", res.Status.Phase, res.Status.Message, gens)
	}
	if want := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC); !res.Wake.Equal(want) {
		t.Errorf("want the decision taken again when the window opens, %s; got %s", want, res.Wake)
	}
	res, gens, _ = rolloutStep(w, revs, map[string]int32{"eu": 2}, cluster("Sat 09:00-11:00"), nil, now)
	if gens["eu"] != 2 || res.Status.Phase != api.RolloutProgressing {
		t.Errorf("inside the window: want eu given revision 2 (generation 2); got %s %q, generations %v", res.Status.Phase, res.Status.Message, gens)
	}
}

// fakeTraffic answers the samples it holds whose second lies in the span
// asked (a project-owned interface).
type fakeTraffic struct {
	samples map[time.Time][]traffic.Sample
	asked   [][2]time.Time
}

func (f *fakeTraffic) Keep() time.Duration { return 15 * time.Minute }

func (f *fakeTraffic) Workload(_ string, from, to time.Time) []traffic.Sample {
	f.asked = append(f.asked, [2]time.Time{from, to})
	var out []traffic.Sample
	for at, ss := range f.samples {
		if !at.Before(from) && !at.After(to) {
			out = append(out, ss...)
		}
	}
	return out
}

func sample(cluster string, gen int64, n, errs uint64) traffic.Sample {
	s := traffic.Sample{Service: "web", Cluster: cluster, Generation: gen}
	s.Requests, s.Errors = n, errs
	s.Latency[3] = n
	return s
}

// TestMeasureTrafficPerRevision: a cluster given the new revision is
// measured from when it took it (not the window's whole length), its
// generations mapped to revisions; the stable revision everywhere over
// the same span, widened when that span holds too few of its requests;
// a failing error ratio rolls back with the measurement.
func TestMeasureTrafficPerRevision(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	started := now.Add(-5 * time.Second)
	w := &api.Workload{Metadata: api.ObjectMeta{Name: "web", Generation: 4}, Spec: api.WorkloadSpec{Replicas: 2,
		Template: api.ReplicaTemplate{Driver: "sim"},
		Rollout: &api.ProgressiveRollout{Waves: []api.RolloutWave{{Name: "canary", Clusters: []string{"eu"}}},
			Gates: &api.RolloutGates{Traffic: &api.TrafficGates{Window: "30s"}}}}}
	w.Status.Rollout = &api.RolloutStatus{Revision: 2, StableRevision: 1, Phase: api.RolloutBaking, Promoted: -1,
		Clusters: []api.RolloutCluster{{Cluster: "eu", Wave: "canary", Revision: 2, StartedAt: &started}, {Cluster: "us", Wave: "rest", Revision: 1}}}
	w.Status.Clusters = []api.ClusterReplicas{{Cluster: "eu", Generation: 4, Desired: 1, Ready: 1, Scheduled: 1, Updated: 1, UpdatedReady: 1}}
	// Revision 1 from generation 1, revision 2 from generation 3: a
	// replica at generation 4 (a scale since) runs revision 2.
	revs := []revision{{number: 1, generation: 1}, {number: 2, generation: 3}}
	tr := &fakeTraffic{samples: map[time.Time][]traffic.Sample{
		now.Add(-time.Minute):     {sample("us", 2, 500, 0)},                        // before eu took it: the widened baseline only
		now.Add(-2 * time.Second): {sample("eu", 4, 40, 40), sample("us", 2, 5, 0)}, // the span
	}}
	cs := []failover.Cluster{}
	for _, n := range []string{"eu", "us"} {
		c := failover.Cluster{Known: true, Live: failover.Live{Health: api.HealthReady}}
		c.Metadata.Name = n
		cs = append(cs, c)
	}
	res, _, ok := rolloutStep(w, revs, map[string]int32{"eu": 1, "us": 1}, cs, tr, now)
	if !ok {
		t.Fatal("want a rollout step")
	}
	if len(tr.asked) != 2 || !tr.asked[0][0].Equal(started) || tr.asked[1][0].After(now.Add(-time.Minute)) {
		t.Errorf("want the span from when eu took the revision, then a widened one for the baseline; asked %v", tr.asked)
	}
	want := "eu: error ratio 100.0% of revision 2 (40 errors in 40 requests over 5s) against 0.0% of revision 1 (505 requests over"
	if res.Status.Phase != api.RolloutRolledBack || !strings.Contains(res.Status.Message, want) {
		t.Errorf("want RolledBack saying %q; got %s %q", want, res.Status.Phase, res.Status.Message)
	}
}

// TestSameRolloutButWords: statuses differing in words alone (message,
// gates) are the same but for words; a phase, a wave or a cluster's
// revision is not.
func TestSameRolloutButWords(t *testing.T) {
	t.Parallel()
	base := func() *api.RolloutStatus {
		return &api.RolloutStatus{Revision: 2, StableRevision: 1, Phase: api.RolloutBaking, Message: "bakes", Promoted: -1,
			Clusters: []api.RolloutCluster{{Cluster: "eu", Revision: 2, Gate: "1/1 ready; 20 requests"}}}
	}
	words := base()
	words.Message, words.Clusters[0].Gate = "bakes still", "1/1 ready; 40 requests"
	a := base()
	if !sameRolloutButWords(a, words) {
		t.Error("want a status differing in message and gate words the same but for words")
	}
	if a.Clusters[0].Gate != "1/1 ready; 20 requests" || a.Message != "bakes" {
		t.Error("the comparison must not change what it compares")
	}
	phase := base()
	phase.Phase = api.RolloutCompleted
	rev := base()
	rev.Clusters[0].Revision = 1
	if sameRolloutButWords(base(), phase) || sameRolloutButWords(base(), rev) {
		t.Error("want a phase or a revision change to count")
	}
}
