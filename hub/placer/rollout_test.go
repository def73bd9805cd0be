package placer

import (
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
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
