package clusterevents

import (
	"reflect"
	"testing"

	"github.com/atollhq/atoll/api"
)

func TestChanges(t *testing.T) {
	t.Parallel()
	drain := api.Taint{Key: api.DrainTaintKey, Effect: "NoExecute"}
	drill := api.Taint{Key: api.DrillTaintKey, Value: "d1", Effect: "NoExecute"}
	gpu := api.Taint{Key: "gpu", Value: "yes", Effect: "NoSchedule"}
	gpuExec := api.Taint{Key: "gpu", Value: "yes", Effect: "NoExecute"}
	zone := api.Taint{Key: "zone", Effect: "NoSchedule"}
	reasons := func(cs []Change) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Reason)
		}
		return out
	}
	for _, c := range []struct {
		name      string
		old, next api.ClusterSpec
		want      []string
	}{
		{"nothing", api.ClusterSpec{}, api.ClusterSpec{}, nil},
		{"cordon", api.ClusterSpec{}, api.ClusterSpec{Unschedulable: true}, []string{ReasonCordoned}},
		{"uncordon", api.ClusterSpec{Unschedulable: true}, api.ClusterSpec{}, []string{ReasonUncordoned}},
		{"drain (cordon and the drain taint)", api.ClusterSpec{}, api.ClusterSpec{Unschedulable: true, Taints: []api.Taint{drain}}, []string{ReasonCordoned, ReasonDrainStarted}},
		{"uncordon ends the drain", api.ClusterSpec{Unschedulable: true, Taints: []api.Taint{drain, gpu}}, api.ClusterSpec{Taints: []api.Taint{gpu}}, []string{ReasonUncordoned, ReasonDrainEnded}},
		{"taints added, changed, removed, in key order", api.ClusterSpec{Taints: []api.Taint{zone, gpu}}, api.ClusterSpec{Taints: []api.Taint{gpuExec}}, []string{ReasonTainted, ReasonUntainted}},
		{"a drill's taint is the drill's to tell", api.ClusterSpec{}, api.ClusterSpec{Taints: []api.Taint{drill}}, nil},
		{"the same taints in another order", api.ClusterSpec{Taints: []api.Taint{gpu, zone}}, api.ClusterSpec{Taints: []api.Taint{zone, gpu}}, nil},
	} {
		if got := reasons(Changes(c.old, c.next)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Changes = %v, want %v", c.name, got, c.want)
		}
	}
	got := Changes(api.ClusterSpec{Taints: []api.Taint{gpu}}, api.ClusterSpec{Taints: []api.Taint{gpuExec}})
	if len(got) != 1 || got[0].Message != "taint changed: gpu=yes:NoExecute (was gpu=yes:NoSchedule)" {
		t.Errorf("a changed taint: got %+v", got)
	}
}
