package api

import (
	"slices"
	"testing"
)

// TestProgressiveRolloutValidation: spec.rollout's shape errors each
// carry their field path; a sound rollout passes.
func TestProgressiveRolloutValidation(t *testing.T) {
	t.Parallel()
	canary := func() *ProgressiveRollout {
		return &ProgressiveRollout{Waves: []RolloutWave{{Name: "canary", Clusters: []string{"us-east"}, BakeTime: "1m"},
			{Name: "eu", Selector: &LabelSelector{MatchLabels: map[string]string{LabelRegion: "eu-west"}}, Count: IntOrPercentOf("50%"), Manual: true}},
			MaxParallelClusters: 2, OnDeferred: "skip", Gates: &RolloutGates{MinReady: IntOrPercentOf("90%"),
				Traffic: &TrafficGates{MaxErrorRatio: ptrTo(0.02), MaxLatencyRatio: ptrTo(1.5), MaxLatencyIncrease: "20ms", MinRequests: 50, Window: "1m"}}}
	}
	w := validWorkload()
	w.Spec.Rollout = canary()
	if fe := w.Validate(); fe != nil {
		t.Fatalf("a sound rollout: want valid; got %v", fe)
	}
	neg := int32(-1)
	for _, c := range []struct {
		name   string
		mutate func(r *ProgressiveRollout)
		want   string
	}{
		{"no waves", func(r *ProgressiveRollout) { r.Waves = nil }, "spec.rollout.waves"},
		{"unnamed wave", func(r *ProgressiveRollout) { r.Waves[1].Name = "" }, "spec.rollout.waves[1].name"},
		{"repeated name", func(r *ProgressiveRollout) { r.Waves[1].Name = "canary" }, "spec.rollout.waves[1].name"},
		{"wave choosing nothing", func(r *ProgressiveRollout) { r.Waves[0].Clusters = nil }, "spec.rollout.waves[0]"},
		{"cluster named twice", func(r *ProgressiveRollout) { r.Waves[0].Clusters = []string{"a", "a"} }, "spec.rollout.waves[0].clusters[1]"},
		{"bad cluster name", func(r *ProgressiveRollout) { r.Waves[0].Clusters = []string{"no way"} }, "spec.rollout.waves[0].clusters[0]"},
		{"count of zero", func(r *ProgressiveRollout) { r.Waves[1].Count = IntOrPercentOf("0") }, "spec.rollout.waves[1].count"},
		{"count not a count", func(r *ProgressiveRollout) { r.Waves[1].Count = IntOrPercentOf("half") }, "spec.rollout.waves[1].count"},
		{"bake time", func(r *ProgressiveRollout) { r.Waves[0].BakeTime = "a while" }, "spec.rollout.waves[0].bakeTime"},
		{"pause", func(r *ProgressiveRollout) { r.Waves[0].Pause = "-1s" }, "spec.rollout.waves[0].pause"},
		{"bad selector", func(r *ProgressiveRollout) { r.Waves[1].Selector.MatchLabels = map[string]string{"-x": "y"} }, "spec.rollout.waves[1].selector.matchLabels"},
		{"negative parallel", func(r *ProgressiveRollout) { r.MaxParallelClusters = -1 }, "spec.rollout.maxParallelClusters"},
		{"onDeferred", func(r *ProgressiveRollout) { r.OnDeferred = "ignore" }, "spec.rollout.onDeferred"},
		{"minReady", func(r *ProgressiveRollout) { r.Gates.MinReady = IntOrPercentOf("120%") }, "spec.rollout.gates.minReady"},
		{"maxRestarts", func(r *ProgressiveRollout) { r.Gates.MaxRestarts = &neg }, "spec.rollout.gates.maxRestarts"},
		{"progressDeadline", func(r *ProgressiveRollout) { r.Gates.ProgressDeadline = "soon" }, "spec.rollout.gates.progressDeadline"},
		{"error ratio above 1", func(r *ProgressiveRollout) { r.Gates.Traffic.MaxErrorRatio = ptrTo(1.5) }, "spec.rollout.gates.traffic.maxErrorRatio"},
		{"latency ratio below 1", func(r *ProgressiveRollout) { r.Gates.Traffic.MaxLatencyRatio = ptrTo(0.5) }, "spec.rollout.gates.traffic.maxLatencyRatio"},
		{"latency increase", func(r *ProgressiveRollout) { r.Gates.Traffic.MaxLatencyIncrease = "fast" }, "spec.rollout.gates.traffic.maxLatencyIncrease"},
		{"negative min requests", func(r *ProgressiveRollout) { r.Gates.Traffic.MinRequests = -1 }, "spec.rollout.gates.traffic.minRequests"},
		{"window too long", func(r *ProgressiveRollout) { r.Gates.Traffic.Window = "1h" }, "spec.rollout.gates.traffic.window"},
		{"window too short", func(r *ProgressiveRollout) { r.Gates.Traffic.Window = "100ms" }, "spec.rollout.gates.traffic.window"},
	} {
		w := validWorkload()
		w.Spec.Rollout = canary()
		c.mutate(w.Spec.Rollout)
		fe := w.Validate()
		var fields []string
		for _, e := range fe {
			fields = append(fields, e.Field)
		}
		if !slices.ContainsFunc(fields, func(f string) bool { return f == c.want || len(f) > len(c.want) && f[:len(c.want)+1] == c.want+"." }) {
			t.Errorf("%s: want an error at %s; got %v", c.name, c.want, fe)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
