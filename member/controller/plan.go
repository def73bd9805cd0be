package controller

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/member/scheduler"
	"github.com/atollhq/atoll/protocol"
)

// Snapshot is everything a pass decides from.
type Snapshot struct {
	Desired  map[string]protocol.DesiredWorkload
	Bindings []protocol.Binding
	Nodes    map[string]NodeView
	// Stalled workloads passed their progress deadline in a rolling
	// update: no more old replicas are removed until they progress.
	Stalled map[string]bool
	// Now is when the snapshot was taken.
	Now time.Time
	// Keys remembers templates' canonical forms between passes (nil: none
	// remembered).
	Keys *TemplateKeys
	// Only limits the pass to these workloads (nil: every workload);
	// Desired may then hold just them. Bindings and Nodes are always
	// the whole region's: new replicas are scheduled around everything.
	Only map[string]bool
}

// TemplateKeys remembers the canonical form of each workload's template
// per generation: a template never changes within a generation, so a pass
// over a thousand workloads encodes only the ones that changed.
type TemplateKeys struct {
	keys map[string]map[genData]string // workload -> generation and data versions -> key
}

// genData is a template's generation and the data versions the member
// stamped on it (api.AnnotationData), which change within a generation.
type genData struct {
	generation int64
	data       string
}

// NewTemplateKeys makes an empty memory.
func NewTemplateKeys() *TemplateKeys { return &TemplateKeys{keys: map[string]map[genData]string{}} }

// key is the canonical form of workload's template at generation.
func (k *TemplateKeys) key(workload string, generation int64, t api.ReplicaTemplate) string {
	if k == nil {
		return templateKey(t)
	}
	byGen := k.keys[workload]
	gd := genData{generation, t.Annotations[api.AnnotationData]}
	if key, ok := byGen[gd]; ok {
		return key
	}
	if byGen == nil {
		byGen = map[genData]string{}
		k.keys[workload] = byGen
	}
	key := templateKey(t)
	byGen[gd] = key
	return key
}

// keep forgets the workloads not in desired, and generations below the
// oldest any binding of a workload still runs.
func (k *TemplateKeys) keep(desired map[string]protocol.DesiredWorkload, bindings []protocol.Binding) {
	if k == nil {
		return
	}
	oldest := map[string]int64{}
	for _, b := range bindings {
		if g, ok := oldest[b.Workload]; !ok || b.Generation < g {
			oldest[b.Workload] = b.Generation
		}
	}
	for w, byGen := range k.keys {
		d, ok := desired[w]
		if !ok {
			delete(k.keys, w)
			continue
		}
		low := d.Generation
		if g, ok := oldest[w]; ok && g < low {
			low = g
		}
		for g := range byGen {
			if g.generation < low {
				delete(byGen, g)
			}
		}
	}
}

// Changes is what a pass decided.
type Changes struct {
	Put    []protocol.Binding
	Delete []protocol.Binding
	Status []protocol.WorkloadStatus

	present map[string]int32 // workload -> replicas that may still run on a node
}

// present counts, per workload, the replicas on the region's nodes that
// may still have a process: bound or being stopped, not yet gone.
func present(snap Snapshot) map[string]int32 {
	out := map[string]int32{}
	for _, n := range snap.Nodes {
		if n.Lost {
			continue // its agent is gone, and its replicas died with it
		}
		for _, r := range n.Replicas {
			if snap.Only != nil && !snap.Only[r.Workload] {
				continue
			}
			if r.Phase != runtime.PhaseSucceeded && r.Phase != runtime.PhaseFailed { // no process runs
				out[r.Workload]++
			}
		}
	}
	return out
}

// plan decides the bindings to add and remove. newID names new replicas.
func plan(snap Snapshot, newID func(workload string) string) Changes {
	var ch Changes
	byWorkload := map[string][]protocol.Binding{}
	for _, b := range snap.Bindings {
		byWorkload[b.Workload] = append(byWorkload[b.Workload], b)
	}
	names := make([]string, 0, len(byWorkload)+len(snap.Desired))
	seen := map[string]bool{}
	for w := range byWorkload {
		if snap.Only == nil || snap.Only[w] {
			names, seen[w] = append(names, w), true
		}
	}
	for w := range snap.Desired {
		if !seen[w] && (snap.Only == nil || snap.Only[w]) {
			names = append(names, w)
		}
	}
	sort.Strings(names)
	// The scheduler's view of the whole region is built only when some
	// workload needs replicas placed (most passes place none).
	var s *scheduler.Scheduler
	sched := func() *scheduler.Scheduler {
		if s == nil {
			s = scheduler.New(schedulerSnapshot(snap))
		}
		return s
	}
	ch.present = present(snap)
	for _, w := range names {
		d, ok := snap.Desired[w]
		bs := byWorkload[w]
		switch {
		case !ok:
			continue // no desired state at all: leave what runs; only a tombstone removes work
		case d.Deleted:
			ch.Delete = append(ch.Delete, bs...)
			continue
		}
		ch.plan(sched, snap, d, bs, newID)
	}
	return ch
}

func (ch *Changes) plan(sched func() *scheduler.Scheduler, snap Snapshot, d protocol.DesiredWorkload, bs []protocol.Binding, newID func(string) string) {
	wantN := int(d.Replicas)
	ready := func(b protocol.Binding) bool { return snap.Nodes[b.Node].Replicas[b.Replica].Ready }
	var cur, old []protocol.Binding
	// Bindings made at one generation share its template: one encoding per
	// generation, not per replica, remembered between passes.
	wantT := snap.Keys.key(d.Workload, d.Generation, d.Template)
	keyOf := func(b protocol.Binding) string { return snap.Keys.key(d.Workload, b.Generation, b.Template) }
	for _, b := range bs {
		switch {
		case nodeLost(snap, b.Node):
			ch.Delete = append(ch.Delete, b) // its node is lost: place it again elsewhere
		case keyOf(b) != wantT:
			// Only a template change rolls replicas; a new generation that
			// changed only the count (or placement) keeps them.
			old = append(old, b)
		default:
			cur = append(cur, b)
		}
	}
	// Not-ready replicas go first when some must go, then the newest names.
	order := func(list []protocol.Binding) {
		sort.Slice(list, func(i, j int) bool {
			ri, rj := ready(list[i]), ready(list[j])
			if ri != rj {
				return !ri
			}
			return list[i].Replica > list[j].Replica
		})
	}
	order(cur)
	order(old)
	add := 0
	var removed []protocol.Binding
	if len(old) == 0 {
		add = wantN - len(cur)
		if add < 0 {
			removed, cur = cur[:-add], cur[-add:]
			add = 0
		}
	} else {
		surge, unavailable := updateBudget(d.Update, wantN)
		add = min(wantN-len(cur), wantN+surge-len(cur)-len(old))
		readyNow := count(cur, ready) + count(old, ready)
		minAvailable := wantN - unavailable
		for len(old) > 0 && !snap.Stalled[d.Workload] {
			b := old[0]
			if ready(b) {
				if readyNow-1 < minAvailable {
					break
				}
				readyNow--
			}
			removed, old = append(removed, b), old[1:]
		}
	}
	ch.Delete = append(ch.Delete, removed...)
	// A workload that became exclusive (or stopped being) keeps its
	// replicas; their bindings learn it, so node agents fence them.
	for _, list := range [][]protocol.Binding{cur, old} {
		for i, b := range list {
			if b.Exclusive != d.Exclusive {
				list[i].Exclusive = d.Exclusive
				ch.Put = append(ch.Put, list[i])
			}
		}
	}
	pending := ""
	if add > 0 {
		req := scheduler.Request{Workload: d.Workload, Policy: scheduler.Policy{Strategy: d.Scheduling.Strategy, ZoneSpread: d.Scheduling.ZoneSpread, AntiAffinity: d.Scheduling.AntiAffinity}}
		for range add {
			req.Replicas = append(req.Replicas, schedulerReplica(newID(d.Workload), d.Workload, d.Template))
		}
		p := sched().Schedule(req)
		for _, b := range p.Bindings {
			nb := protocol.Binding{Replica: b.Replica, Workload: d.Workload, Node: b.Node, Epoch: d.Epoch, Generation: d.Generation, Template: d.Template, Exclusive: d.Exclusive}
			ch.Put = append(ch.Put, nb)
			cur = append(cur, nb)
		}
		if len(p.Pending) > 0 {
			pending = fmt.Sprintf("%d pending: %s", len(p.Pending), p.Pending[0].Reason)
		}
	}
	st := protocol.WorkloadStatus{Workload: d.Workload, Epoch: d.Epoch, Generation: d.Generation, Desired: d.Replicas, Data: d.Template.Annotations[api.AnnotationData],
		Scheduled: int32(len(cur) + len(old)), Updated: int32(len(cur)), Pending: pending, Present: ch.present[d.Workload]}
	limits := ""
	var reps summary
	for i, b := range append(cur, old...) {
		rs := snap.Nodes[b.Node].Replicas[b.Replica]
		if i < len(cur) {
			if rs.Ready {
				st.UpdatedReady++
			}
			// A replica waiting out its backoff after a failure counts its
			// coming restart already: a crash shows at once, not after
			// the first backoff. One that waits for the configs or secrets
			// its template pins (the hub sends them beside the template)
			// has not failed: it is not ready, and a rollout's gates wait
			// for it (up to their progress deadline).
			st.UpdatedRestarts += int32(rs.Restarts)
			if (rs.Phase == runtime.PhaseBackoff || rs.Phase == runtime.PhaseFailed) && rs.Reason != runtime.ReasonMissingData {
				st.UpdatedRestarts++
			}
		}
		if rs.ID == "" {
			rs.ID, rs.Workload = b.Replica, b.Workload
		}
		reps.add(observed{Node: b.Node, Lost: nodeLost(snap, b.Node), ReplicaState: rs})
		if rs.Limits != "" {
			limits = fmt.Sprintf("replica %s on node %s: %s", b.Replica, b.Node, rs.Limits)
		}
		if rs.Phase == runtime.PhaseRunning {
			st.Running++
		}
		if rs.Ready {
			st.Ready++
		}
		st.Restarts += int32(rs.Restarts)
	}
	st.States, st.Examples, st.Problems = reps.result()
	if limits != "" {
		st.Conditions = append(st.Conditions, api.Condition{Type: "LimitsEnforced", Status: "False", Reason: "NoCgroup", Message: limits})
	}
	if len(old) > 0 && snap.Stalled[d.Workload] {
		now := snap.Now.UTC()
		st.Conditions = append(st.Conditions, api.Condition{Type: "Progressing", Status: "False", Reason: "ProgressDeadlineExceeded",
			Message: fmt.Sprintf("the rolling update to generation %d made no progress within its deadline; %d old replicas kept", d.Generation, len(old)), LastTransitionTime: &now})
	}
	ch.Status = append(ch.Status, st)
}

// templateKey is a replica template's canonical form: replicas whose
// template differs from the desired one are replaced by a rolling update.
func templateKey(t api.ReplicaTemplate) string {
	b, _ := json.Marshal(t)
	return string(b)
}

// nodeLost: the node is unknown or silent beyond its grace.
func nodeLost(snap Snapshot, node string) bool {
	v, ok := snap.Nodes[node]
	return !ok || v.Lost
}

// updateBudget resolves maxSurge and maxUnavailable (defaults 25% each,
// surge rounded up, unavailability down, as Kubernetes does); when both
// come to 0 the surge is 1 so the update can progress.
func updateBudget(u *api.UpdateStrategy, want int) (surge, unavailable int) {
	var s, un api.IntOrPercent
	if u != nil {
		s, un = u.MaxSurge, u.MaxUnavailable
	}
	if !s.Set() {
		s = api.IntOrPercentOf("25%")
	}
	if !un.Set() {
		un = api.IntOrPercentOf("25%")
	}
	surge, unavailable = s.Resolve(want, true, 1), un.Resolve(want, false, 0)
	if surge == 0 && unavailable == 0 {
		surge = 1
	}
	return surge, unavailable
}

func count(list []protocol.Binding, f func(protocol.Binding) bool) int {
	n := 0
	for _, b := range list {
		if f(b) {
			n++
		}
	}
	return n
}

func requests(t api.ReplicaTemplate) scheduler.Resources {
	var r scheduler.Resources
	r.MilliCPU, r.Memory = t.Resources.Quantities()
	return r
}

func hostPorts(t api.ReplicaTemplate) []scheduler.Port {
	var out []scheduler.Port
	for _, p := range t.Ports {
		if p.HostPort > 0 {
			out = append(out, scheduler.Port{Port: p.HostPort, Protocol: p.Protocol})
		}
	}
	return out
}

func schedulerReplica(id, workload string, t api.ReplicaTemplate) scheduler.Replica {
	return scheduler.Replica{ID: id, Workload: workload, Requests: requests(t), NodeSelector: t.NodeSelector,
		Tolerations: t.Tolerations, HostPorts: hostPorts(t)}
}

// schedulerSnapshot is the scheduler's view: ready nodes and every binding
// that stays.
func schedulerSnapshot(snap Snapshot) scheduler.Snapshot {
	var s scheduler.Snapshot
	names := make([]string, 0, len(snap.Nodes))
	for n := range snap.Nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := snap.Nodes[n]
		s.Nodes = append(s.Nodes, scheduler.Node{Name: n, Labels: v.Record.Labels, Zone: v.Record.Zone, Ready: v.Ready, Taints: v.Record.Taints,
			Allocatable: scheduler.Resources{MilliCPU: v.Record.Allocatable.MilliCPU, Memory: v.Record.Allocatable.Memory}})
	}
	for _, b := range snap.Bindings {
		if !nodeLost(snap, b.Node) {
			s.Bindings = append(s.Bindings, scheduler.Binding{Replica: b.Replica, Workload: b.Workload, Node: b.Node,
				Requests: requests(b.Template), HostPorts: hostPorts(b.Template)})
		}
	}
	return s
}
