package progressive

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/atollhq/atoll/api"
)

// TestPropertyWavesInOrder drives random rollouts (waves by name, label
// and count, manual gates, pauses, parallel limits, deferrals, health
// flips, crashing and failing replicas, operators' commands) step by step
// and checks, at every step: a cluster given the new revision belongs to
// a wave no later than the current one; nothing new starts while a
// cluster of the current wave is not Ready; rolled back means every
// cluster on the stable revision, completed every cluster on the new
// one; a cluster is taken off the new revision only by a rollback; and
// the same input decides the same.
func TestPropertyWavesInOrder(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		names := []string{"a", "b", "c", "d", "e", "f"}[:rapid.IntRange(1, 6).Draw(t, "clusters")]
		regionOf := map[string]string{}
		for _, n := range names {
			regionOf[n] = rapid.SampledFrom([]string{"us", "eu", "ap"}).Draw(t, "region")
		}
		spec := &api.ProgressiveRollout{MaxParallelClusters: int32(rapid.IntRange(0, 2).Draw(t, "parallel")),
			OnDeferred: rapid.SampledFrom([]string{"", "wait", "skip"}).Draw(t, "onDeferred"),
			Gates:      &api.RolloutGates{ProgressDeadline: "20s"}}
		for i := range rapid.IntRange(1, 3).Draw(t, "waves") {
			w := api.RolloutWave{Name: fmt.Sprintf("w%d", i), BakeTime: api.Duration(rapid.SampledFrom([]string{"0s", "3s", "10s"}).Draw(t, "bake")),
				Manual: rapid.IntRange(0, 3).Draw(t, "manual") == 0, Pause: api.Duration(rapid.SampledFrom([]string{"", "2s"}).Draw(t, "pause"))}
			if rapid.Bool().Draw(t, "byName") {
				w.Clusters = []string{rapid.SampledFrom(names).Draw(t, "name")}
			} else {
				w.Selector = &api.LabelSelector{MatchLabels: map[string]string{api.LabelRegion: rapid.SampledFrom([]string{"us", "eu", "ap"}).Draw(t, "sel")}}
			}
			if rapid.Bool().Draw(t, "hasCount") {
				w.Count = api.IntOrPercentOf(rapid.SampledFrom([]string{"1", "50%"}).Draw(t, "count"))
			}
			spec.Waves = append(spec.Waves, w)
		}
		order := map[string]int{restWave: len(spec.Waves), lateWave: len(spec.Waves) + 1}
		for i, w := range spec.Waves {
			order[w.Name] = i
		}
		clusters := map[string]*Cluster{}
		for _, n := range names {
			clusters[n] = &Cluster{Name: n, Labels: map[string]string{api.LabelRegion: regionOf[n]}, Health: api.HealthReady}
		}
		given := map[string]time.Time{}
		var status *api.RolloutStatus
		now := t0
		for step := range rapid.IntRange(1, 60).Draw(t, "steps") {
			// The world moves: health, deferrals, replicas' behaviour, commands.
			c := clusters[rapid.SampledFrom(names).Draw(t, "touched")]
			switch rapid.IntRange(0, 6).Draw(t, "event") {
			case 0:
				c.Health = api.HealthUnreachable
			case 1:
				c.Health = api.HealthReady
			case 2:
				c.Deferred = map[bool]string{true: "frozen", false: ""}[c.Deferred == ""]
			}
			var cmds Commands
			switch rapid.IntRange(0, 12).Draw(t, "command") {
			case 0:
				cmds.Paused = true
			case 1:
				cmds.Abort = true
			case 2, 3:
				cmds.Promote = rapid.SampledFrom(slices.Collect(func(yield func(string) bool) {
					for _, w := range spec.Waves {
						yield(w.Name)
					}
				})).Draw(t, "promote")
			}
			var cs []Cluster
			for _, n := range names {
				cl := *clusters[n]
				if at, ok := given[n]; ok && now.Sub(at) >= time.Second {
					r := &Report{Desired: 2, Ready: int32(rapid.IntRange(0, 2).Draw(t, "ready"))}
					if rapid.IntRange(0, 15).Draw(t, "crash") == 0 {
						r.Restarts = 1
					}
					cl.Report = r
				}
				cs = append(cs, cl)
			}
			in := Input{Spec: spec, Revision: 2, Stable: 1, Clusters: cs, Status: status, Commands: cmds, Now: now}
			res := Decide(in)
			if again := Decide(in); !reflect.DeepEqual(res, again) {
				t.Fatalf("step %d: the same input decided differently:\n%+v\n%+v", step, res, again)
			}
			st := res.Status
			cur := order[st.WaveName]
			// A cluster of the wave that was current, and still is its wave
			// now (one skipped for deferring has moved to the late wave), that
			// is not Ready holds every start.
			holding := false
			if status != nil && st.Phase != api.RolloutRolledBack && status.Phase != api.RolloutCompleted {
				for _, rc := range st.Clusters {
					if rc.Wave == status.WaveName && clusters[rc.Cluster].Health != api.HealthReady {
						holding = true
					}
				}
			}
			for _, rc := range st.Clusters {
				_, was := given[rc.Cluster]
				switch {
				case st.Phase == api.RolloutRolledBack && rc.Revision != 1:
					t.Fatalf("step %d: rolled back, yet %s is on revision %d", step, rc.Cluster, rc.Revision)
				case st.Phase == api.RolloutCompleted && rc.Revision != 2:
					t.Fatalf("step %d: completed, yet %s is on revision %d", step, rc.Cluster, rc.Revision)
				case st.Phase != api.RolloutCompleted && rc.Revision == 2 && order[rc.Wave] > cur:
					t.Fatalf("step %d: %s of wave %s is on the new revision while wave %s is current", step, rc.Cluster, rc.Wave, st.WaveName)
				case rc.Revision == 2 && !was && holding && st.Phase != api.RolloutCompleted:
					t.Fatalf("step %d: %s started while a cluster of the current wave was not Ready: %+v", step, rc.Cluster, status)
				case rc.Revision == 1 && was && st.Phase != api.RolloutRolledBack:
					t.Fatalf("step %d: %s was taken off the new revision without a rollback (%s)", step, rc.Cluster, st.Phase)
				}
			}
			clear(given)
			for _, rc := range st.Clusters {
				if rc.Revision == 2 {
					at := now
					if rc.StartedAt != nil {
						at = *rc.StartedAt
					}
					given[rc.Cluster] = at
				}
			}
			status = &st
			now = now.Add(time.Duration(rapid.IntRange(1, 5).Draw(t, "tick")) * time.Second)
		}
	})
}
