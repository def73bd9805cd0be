package controller

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

func nodes(ready map[string]bool, replicas map[string]protocol.ReplicaState) map[string]NodeView {
	out := map[string]NodeView{}
	for n, r := range ready {
		rs := map[string]protocol.ReplicaState{}
		for id, s := range replicas {
			rs[id] = s
		}
		out[n] = NodeView{Ready: r, Lost: !r, Replicas: rs, Record: state.NodeRecord{Name: n, Zone: "z-" + n,
			Allocatable: protocol.Resources{MilliCPU: 4000, Memory: 8 << 30}}}
	}
	return out
}

// tmpl is a template that differs per revision (as a template change
// would); generations in these tests stand for template revisions.
func tmpl(rev int64) api.ReplicaTemplate {
	return api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "500m", Memory: "256Mi"},
		Env: []api.EnvVar{{Name: "REVISION", Value: fmt.Sprint(rev)}}}
}

func desired(name string, replicas int32, gen int64) protocol.DesiredWorkload {
	return protocol.DesiredWorkload{Version: protocol.Version, Workload: name, Epoch: 1, Generation: gen, Replicas: replicas, Template: tmpl(gen)}
}

func binding(w, id, node string, gen int64) protocol.Binding {
	return protocol.Binding{Replica: id, Workload: w, Node: node, Generation: gen, Epoch: 1, Template: tmpl(gen)}
}

func ids() func(string) string {
	n := 0
	return func(w string) string { n++; return fmt.Sprintf("%s-new%d", w, n) }
}

func names(bs []protocol.Binding) string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Replica+"@"+b.Node)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestPlanScalesAndHeals(t *testing.T) {
	t.Parallel()
	all := map[string]bool{"n1": true, "n2": true, "n3": true}
	cases := []struct {
		name       string
		desired    []protocol.DesiredWorkload
		bindings   []protocol.Binding
		ready      map[string]bool
		puts, dels int
		delNames   string
	}{
		{"scale from zero", []protocol.DesiredWorkload{desired("w", 3, 1)}, nil, all, 3, 0, ""},
		{"steady", []protocol.DesiredWorkload{desired("w", 2, 1)}, []protocol.Binding{binding("w", "a", "n1", 1), binding("w", "b", "n2", 1)}, all, 0, 0, ""},
		{"scale down removes the newest names", []protocol.DesiredWorkload{desired("w", 1, 1)}, []protocol.Binding{binding("w", "a", "n1", 1), binding("w", "b", "n2", 1)}, all, 0, 1, "b@n2"},
		{"lost node: replaced elsewhere", []protocol.DesiredWorkload{desired("w", 2, 1)}, []protocol.Binding{binding("w", "a", "n1", 1), binding("w", "b", "n2", 1)},
			map[string]bool{"n1": true, "n2": false, "n3": true}, 1, 1, "b@n2"},
		{"tombstone removes everything", []protocol.DesiredWorkload{{Version: 1, Workload: "w", Epoch: 2, Deleted: true}}, []protocol.Binding{binding("w", "a", "n1", 1), binding("w", "b", "n2", 1)}, all, 0, 2, "a@n1 b@n2"},
		{"no desired state: leave it running", nil, []protocol.Binding{binding("w", "a", "n1", 1)}, all, 0, 0, ""},
		{"no room: pending", []protocol.DesiredWorkload{desired("w", 30, 1)}, nil, map[string]bool{"n1": true}, 8, 0, ""},
	}
	for _, c := range cases {
		snap := Snapshot{Desired: map[string]protocol.DesiredWorkload{}, Bindings: c.bindings, Nodes: nodes(c.ready, nil)}
		for _, d := range c.desired {
			snap.Desired[d.Workload] = d
		}
		ch := plan(snap, ids())
		if len(ch.Put) != c.puts || len(ch.Delete) != c.dels || (c.delNames != "" && names(ch.Delete) != c.delNames) {
			t.Errorf("%s: want %d puts and %d deletes (%s), got puts [%s] deletes [%s]", c.name, c.puts, c.dels, c.delNames, names(ch.Put), names(ch.Delete))
		}
		for _, b := range ch.Put {
			if !c.ready[b.Node] {
				t.Errorf("%s: bound %s to not-ready node %s", c.name, b.Replica, b.Node)
			}
		}
	}
	// The pending reason is readable.
	snap := Snapshot{Desired: map[string]protocol.DesiredWorkload{"w": desired("w", 30, 1)}, Nodes: nodes(map[string]bool{"n1": true}, nil)}
	ch := plan(snap, ids())
	if len(ch.Status) != 1 || !strings.Contains(ch.Status[0].Pending, "22 pending: 0/1 nodes: 1 insufficient") {
		t.Errorf("pending status: %+v", ch.Status)
	}
}

// TestPlanRollingUpdate walks a 4-replica update with maxSurge 1 and
// maxUnavailable 0: never fewer than 4 ready, never more than 5 bound.
func TestPlanRollingUpdate(t *testing.T) {
	t.Parallel()
	d := desired("w", 4, 2)
	d.Update = &api.UpdateStrategy{MaxSurge: api.IntOrPercentOf("1"), MaxUnavailable: api.IntOrPercentOf("0")}
	bound := []protocol.Binding{binding("w", "o1", "n1", 1), binding("w", "o2", "n2", 1), binding("w", "o3", "n3", 1), binding("w", "o4", "n1", 1)}
	readyIDs := map[string]bool{"o1": true, "o2": true, "o3": true, "o4": true}
	next := ids()
	for pass := 0; pass < 20; pass++ {
		states := map[string]protocol.ReplicaState{}
		for id := range readyIDs {
			states[id] = protocol.ReplicaState{ID: id, Ready: true, Phase: "Running"}
		}
		snap := Snapshot{Desired: map[string]protocol.DesiredWorkload{"w": d}, Bindings: bound, Nodes: nodes(map[string]bool{"n1": true, "n2": true, "n3": true}, states)}
		ch := plan(snap, next)
		gone := map[string]bool{}
		for _, b := range ch.Delete {
			gone[b.Replica] = true
		}
		var kept []protocol.Binding
		ready := 0
		for _, b := range bound {
			if !gone[b.Replica] {
				kept = append(kept, b)
				if readyIDs[b.Replica] {
					ready++
				}
			}
		}
		bound = append(kept, ch.Put...)
		if ready < 4 {
			t.Fatalf("pass %d: only %d ready replicas left, maxUnavailable 0 allows none missing", pass, ready)
		}
		if len(bound) > 5 {
			t.Fatalf("pass %d: %d replicas bound, maxSurge 1 allows 5", pass, len(bound))
		}
		for _, b := range ch.Put {
			readyIDs[b.Replica] = true // the new replica becomes ready before the next pass
		}
		updated := 0
		for _, b := range bound {
			if b.Generation == 2 {
				updated++
			}
		}
		if updated == 4 && len(bound) == 4 {
			return
		}
	}
	t.Fatalf("the update did not finish in 20 passes: %s", names(bound))
}

// TestPlanStalledUpdateKeepsOldReplicas: past the progress deadline no old
// replica is removed and the status says why.
func TestPlanStalledUpdateKeepsOldReplicas(t *testing.T) {
	t.Parallel()
	d := desired("w", 2, 2)
	bound := []protocol.Binding{binding("w", "o1", "n1", 1), binding("w", "o2", "n2", 1), binding("w", "new1", "n3", 2)}
	states := map[string]protocol.ReplicaState{"o1": {Ready: true}, "o2": {Ready: true}}
	snap := Snapshot{Desired: map[string]protocol.DesiredWorkload{"w": d}, Bindings: bound, Nodes: nodes(map[string]bool{"n1": true, "n2": true, "n3": true}, states),
		Stalled: map[string]bool{"w": true}}
	ch := plan(snap, ids())
	if len(ch.Delete) != 0 {
		t.Errorf("a stalled update removed %s", names(ch.Delete))
	}
	if len(ch.Status) != 1 || len(ch.Status[0].Conditions) != 1 || ch.Status[0].Conditions[0].Reason != "ProgressDeadlineExceeded" {
		t.Errorf("status of a stalled update: %+v", ch.Status)
	}
}

// TestPlanReportsUnenforcedLimits: a replica whose node cannot enforce its
// limits gives the workload a LimitsEnforced=False condition.
func TestPlanReportsUnenforcedLimits(t *testing.T) {
	t.Parallel()
	states := map[string]protocol.ReplicaState{"a": {Ready: true, Phase: "Running", Limits: "limits not enforced: no cgroup v2 cpu controller"}}
	snap := Snapshot{Desired: map[string]protocol.DesiredWorkload{"w": desired("w", 1, 1)}, Bindings: []protocol.Binding{binding("w", "a", "n1", 1)},
		Nodes: nodes(map[string]bool{"n1": true}, states)}
	ch := plan(snap, ids())
	if len(ch.Status) != 1 || len(ch.Status[0].Conditions) != 1 || ch.Status[0].Conditions[0].Type != "LimitsEnforced" ||
		!strings.Contains(ch.Status[0].Conditions[0].Message, "no cgroup v2") {
		t.Errorf("status: %+v", ch.Status)
	}
}

// TestPlanUnheardNodes: after a member restart, nodes not heard yet keep
// their replicas (within the grace) but take no new ones.
func TestPlanUnheardNodes(t *testing.T) {
	t.Parallel()
	views := map[string]NodeView{
		"old": {Ready: false, Lost: false, Record: state.NodeRecord{Name: "old", Allocatable: protocol.Resources{MilliCPU: 4000, Memory: 8 << 30}}},
		"new": {Ready: true, Record: state.NodeRecord{Name: "new", Allocatable: protocol.Resources{MilliCPU: 4000, Memory: 8 << 30}}},
	}
	snap := Snapshot{Desired: map[string]protocol.DesiredWorkload{"w": desired("w", 3, 1)}, Bindings: []protocol.Binding{binding("w", "a", "old", 1)}, Nodes: views}
	ch := plan(snap, ids())
	if len(ch.Delete) != 0 {
		t.Errorf("a binding on a node within its grace was removed: %s", names(ch.Delete))
	}
	for _, b := range ch.Put {
		if b.Node != "new" {
			t.Errorf("new replica %s bound to a node not heard since the restart", b.Replica)
		}
	}
	if len(ch.Put) != 2 {
		t.Errorf("want 2 new replicas on the heard node, got %s", names(ch.Put))
	}
}

// TestPlanStallWithSurplusNew: the update counts as in progress (and can
// stall) while old replicas remain, even when enough new ones are bound.
func TestPlanStallWithSurplusNew(t *testing.T) {
	t.Parallel()
	c := New(Config{Nodes: NewNodes(nil, time.Now(), time.Second)})
	now := time.Now()
	c.progress["w"] = progress{generation: 2, scheduled: 3, updated: 2, ready: 1, since: now.Add(-time.Hour)}
	d := desired("w", 2, 2)
	d.Update = &api.UpdateStrategy{ProgressDeadline: "1m"}
	if !c.stalled(map[string]protocol.DesiredWorkload{"w": d}, now)["w"] {
		t.Error("an update with old replicas left and no progress for an hour is not stalled")
	}
}

// TestPlanScaleKeepsReplicas: a new generation that only changed the count
// keeps every replica (no rolling replace).
func TestPlanScaleKeepsReplicas(t *testing.T) {
	t.Parallel()
	d := desired("w", 3, 1)
	d.Generation = 2 // the spec changed (replicas), the template did not
	snap := Snapshot{Desired: map[string]protocol.DesiredWorkload{"w": d},
		Bindings: []protocol.Binding{binding("w", "a", "n1", 1), binding("w", "b", "n2", 1)}, Nodes: nodes(map[string]bool{"n1": true, "n2": true, "n3": true}, nil)}
	ch := plan(snap, ids())
	if len(ch.Delete) != 0 || len(ch.Put) != 1 {
		t.Errorf("scale 2 -> 3 at a new generation: want 1 put, 0 deletes; got puts [%s] deletes [%s]", names(ch.Put), names(ch.Delete))
	}
}

func TestTemplateKeys(t *testing.T) {
	k := NewTemplateKeys()
	v1 := api.ReplicaTemplate{Driver: "sim", Env: []api.EnvVar{{Name: "V", Value: "1"}}}
	v2 := api.ReplicaTemplate{Driver: "sim", Env: []api.EnvVar{{Name: "V", Value: "2"}}}
	a := k.key("web", 1, v1)
	if a != templateKey(v1) || k.key("web", 1, v2) != a {
		t.Errorf("want generation 1's key remembered (a template never changes within a generation)")
	}
	if k.key("web", 2, v2) != templateKey(v2) {
		t.Errorf("want generation 2 encoded on its own")
	}
	// Generation 1 still runs: kept; once no binding runs it: forgotten.
	desired := map[string]protocol.DesiredWorkload{"web": {Workload: "web", Generation: 2}}
	k.keep(desired, []protocol.Binding{{Workload: "web", Generation: 1}})
	if len(k.keys["web"]) != 2 {
		t.Errorf("want both generations kept while generation 1 runs; got %v", k.keys["web"])
	}
	k.keep(desired, nil)
	if _, ok := k.keys["web"][genData{generation: 1}]; ok || len(k.keys["web"]) != 1 {
		t.Errorf("want generation 1 forgotten once nothing runs it; got %v", k.keys["web"])
	}
	k.keep(nil, nil)
	if len(k.keys) != 0 {
		t.Errorf("want a workload no longer desired forgotten")
	}
}

// TestPlanExclusiveFlag: replicas of a workload that became exclusive are
// kept, and their bindings rewritten to say so.
func TestPlanExclusiveFlag(t *testing.T) {
	tmpl := api.ReplicaTemplate{Driver: "sim"}
	snap := Snapshot{
		Desired:  map[string]protocol.DesiredWorkload{"db": {Workload: "db", Epoch: 2, Generation: 2, Replicas: 1, Template: tmpl, Exclusive: true}},
		Bindings: []protocol.Binding{{Replica: "db-1", Workload: "db", Node: "a", Epoch: 1, Generation: 1, Template: tmpl}},
		Nodes:    map[string]NodeView{"a": {Ready: true}},
	}
	ch := plan(snap, func(string) string { return "new" })
	if len(ch.Delete) != 0 || len(ch.Put) != 1 || ch.Put[0].Replica != "db-1" || !ch.Put[0].Exclusive {
		t.Errorf("want db-1 kept and rewritten as exclusive; got put %+v, delete %+v", ch.Put, ch.Delete)
	}
}

// TestPlanWaitingForDataIsNoRestart: a replica held for the configs or
// secrets its template pins (they travel beside the template) has not
// failed, so a progressive rollout's gates do not count a restart for
// it; one waiting out a crash does.
func TestPlanWaitingForDataIsNoRestart(t *testing.T) {
	t.Parallel()
	for reason, want := range map[string]int32{"MissingData": 0, "Exited": 1} {
		states := map[string]protocol.ReplicaState{"a": {Phase: "Backoff", Reason: reason}}
		snap := Snapshot{Desired: map[string]protocol.DesiredWorkload{"w": desired("w", 1, 1)}, Bindings: []protocol.Binding{binding("w", "a", "n1", 1)},
			Nodes: nodes(map[string]bool{"n1": true}, states)}
		ch := plan(snap, ids())
		if len(ch.Status) != 1 || ch.Status[0].UpdatedRestarts != want {
			t.Errorf("a replica in backoff for %s: want %d updated restarts; got %+v", reason, want, ch.Status)
		}
	}
}
