package progressive

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// Defaults of spec.rollout.
const (
	DefaultBakeTime         = 30 * time.Second
	DefaultProgressDeadline = 5 * time.Minute
	// restWave and lateWave name the implicit waves: the clusters no
	// wave selects, and those that missed their wave (skipped because
	// they deferred, or placed after it was done).
	restWave = "rest"
	lateWave = "late"
)

// Cluster is one cluster the workload is placed on, as the hub sees it.
type Cluster struct {
	Name   string
	Labels map[string]string
	// Health is the hub's view of it (api.HealthReady, ...).
	Health string
	// Deferred says why it defers rollouts ("" when it does not).
	Deferred string
	// Report is its member's last report of the workload's replicas on
	// the new revision; nil: none yet.
	Report *Report
	// Traffic is what the gateways sent the new revision's endpoints in
	// this cluster over the traffic gates' window (from when the cluster
	// was given it at the earliest); Baseline the stable revision's, in
	// every cluster, over the same span (or, when that holds too few
	// requests to compare with, the longest span known: Widened). nil:
	// nothing measured.
	Traffic, Baseline *Traffic
}

// Traffic is what the gateways sent one revision over a span.
type Traffic struct {
	Requests, Errors uint64
	// P99 is the latency below which 99% of the requests answered.
	P99 time.Duration
	// Span is how long the requests were counted over.
	Span    time.Duration
	Widened bool
}

// ErrorRatio is errors over requests (0 without requests).
func (t *Traffic) ErrorRatio() float64 {
	if t == nil || t.Requests == 0 {
		return 0
	}
	return float64(t.Errors) / float64(t.Requests)
}

// TrafficRecheck is how often a rollout with traffic gates is decided
// again while a wave runs: the gateways' counts move without any other
// change.
const TrafficRecheck = time.Second

// Report is what a member says of the new revision's replicas.
type Report struct {
	Desired, Ready int32
	// Restarts counts restarts of the new revision's replicas since the
	// cluster was given it.
	Restarts int32
}

// Commands are an operator's, as the workload's annotations hold them.
type Commands struct {
	Paused  bool   // hold progress
	Promote string // the wave promoted past its manual gate
	Abort   bool   // roll the current revision back
}

// Input is everything one decision reads.
type Input struct {
	Spec *api.ProgressiveRollout
	// Revision is the workload's current template revision; Stable the
	// one its clusters ran before it (used when there is no stored
	// status yet; 0: none, as for a new workload).
	Revision, Stable int64
	// Clusters are those the workload is placed on, in any order.
	Clusters []Cluster
	// Status is the stored progress (nil: none yet).
	Status   *api.RolloutStatus
	Commands Commands
	Now      time.Time
}

// Event is something users should read on the workload.
type Event struct {
	Type, Reason, Message string
}

// Result is the decision: the status to store (each cluster's revision
// in it), when to decide again if nothing changes (zero: never), and the
// events it makes.
type Result struct {
	Status api.RolloutStatus
	Wake   time.Time
	Events []Event
}

// RevisionOf is the revision the decision gives a cluster (the stable
// one for a cluster it does not list).
func (r Result) RevisionOf(cluster string) int64 {
	for _, c := range r.Status.Clusters {
		if c.Cluster == cluster {
			return c.Revision
		}
	}
	return r.Status.StableRevision
}

// wave is one step as Decide walks it: spec waves, then the clusters no
// wave took, then those skipped for deferring.
type wave struct {
	name     string
	spec     api.RolloutWave
	clusters []string
}

// Decide takes one step of a workload's progressive rollout.
func Decide(in Input) Result {
	d := decider{in: in, now: in.Now.UTC()}
	return d.decide()
}

type decider struct {
	in      Input
	now     time.Time
	st      api.RolloutStatus
	byName  map[string]Cluster
	started map[string]time.Time // clusters on the new revision, and since when
	events  []Event
	wake    time.Time
}

func (d *decider) decide() Result {
	in := d.in
	d.byName = map[string]Cluster{}
	for _, c := range in.Clusters {
		if _, dup := d.byName[c.Name]; !dup {
			d.byName[c.Name] = c
		}
	}
	d.started = map[string]time.Time{}
	if in.Status != nil {
		d.st = *in.Status
		for _, c := range in.Status.Clusters {
			if c.Revision == in.Status.Revision && c.StartedAt != nil && in.Status.Revision == in.Revision {
				d.started[c.Cluster] = *c.StartedAt
			}
		}
	}
	if in.Status == nil || d.st.Revision != in.Revision {
		stable := in.Stable
		if in.Status != nil {
			stable = d.st.StableRevision
			if d.st.Phase == api.RolloutCompleted {
				stable = d.st.Revision
			}
		}
		d.st = api.RolloutStatus{Revision: in.Revision, StableRevision: stable, Phase: api.RolloutProgressing, Since: &d.now, Promoted: -1}
		if stable == 0 || stable == in.Revision {
			d.finish("revision " + strconv.FormatInt(in.Revision, 10) + " is the first: every cluster runs it")
		} else {
			d.event(api.EventNormal, "RolloutStarted", fmt.Sprintf("rolling out revision %d (from %d) in %s", in.Revision, stable, d.plan()))
		}
	}
	waves := d.waves()
	switch d.st.Phase {
	case api.RolloutCompleted, api.RolloutRolledBack:
		return d.result(waves)
	}
	if in.Commands.Abort {
		d.rollback("aborted by an operator")
		return d.result(waves)
	}
	if why := d.failing(); why != "" {
		d.rollback(why)
		return d.result(waves)
	}
	if in.Commands.Paused {
		d.setPhase(api.RolloutPaused, "paused by an operator (atoll rollout resume goes on)")
		return d.result(waves)
	}
	d.progress(waves)
	return d.result(waves)
}

// plan says the waves in words for the start event.
func (d *decider) plan() string {
	var parts []string
	for _, w := range d.waves() {
		if len(w.clusters) > 0 {
			parts = append(parts, fmt.Sprintf("%s (%s)", w.name, strings.Join(w.clusters, ", ")))
		}
	}
	if len(parts) == 0 {
		return "no wave: no cluster is placed"
	}
	return strconv.Itoa(len(parts)) + " waves: " + strings.Join(parts, ", then ")
}

// waves assigns every placed cluster to the first wave that selects it
// and has room; clusters none takes form the rest wave. Clusters that
// missed their wave (one with onDeferred: skip passed them over while
// they deferred, or they were placed once it was done) are caught up in
// the late wave, after every other, gates and all.
func (d *decider) waves() []wave {
	names := make([]string, 0, len(d.byName))
	for n := range d.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	taken := map[string]bool{}
	var out []wave
	skip := d.in.Spec.OnDeferred == "skip"
	var late []string
	missed := func(n string, i int) bool {
		_, on := d.started[n]
		return !on && ((skip && d.byName[n].Deferred != "") || i < d.st.Wave)
	}
	for i, ws := range d.in.Spec.Waves {
		sel := api.Selector{}
		if ws.Selector != nil {
			sel = ws.Selector.Selector()
		}
		var chosen []string
		for _, n := range names {
			if taken[n] {
				continue
			}
			if slices.Contains(ws.Clusters, n) || (ws.Selector != nil && sel.Matches(d.byName[n].Labels)) {
				chosen = append(chosen, n)
			}
		}
		if ws.Count.Set() {
			chosen = chosen[:min(len(chosen), ws.Count.Resolve(len(chosen), true, len(chosen)))]
		}
		w := wave{name: cmp.Or(ws.Name, "wave "+strconv.Itoa(i+1)), spec: ws}
		for _, n := range chosen {
			taken[n] = true
			if missed(n, i) {
				late = append(late, n)
				continue
			}
			w.clusters = append(w.clusters, n)
		}
		out = append(out, w)
	}
	// The implicit waves bake as long as the last wave does.
	var lastSpec api.RolloutWave
	if n := len(d.in.Spec.Waves); n > 0 {
		lastSpec = api.RolloutWave{BakeTime: d.in.Spec.Waves[n-1].BakeTime}
	}
	rest := wave{name: restWave, spec: lastSpec}
	for _, n := range names {
		if taken[n] {
			continue
		}
		if missed(n, len(out)) {
			late = append(late, n)
			continue
		}
		rest.clusters = append(rest.clusters, n)
	}
	slices.Sort(late)
	return append(out, rest, wave{name: lateWave, spec: lastSpec, clusters: late})
}

// failing names the first cluster on the new revision whose gates fail
// for good ("" when none does).
func (d *decider) failing() string {
	for _, n := range slices.Sorted(maps.Keys(d.started)) {
		if _, fail, _ := d.gate(n); fail != "" {
			return fail
		}
	}
	return ""
}

// gate judges one cluster on the new revision: it passes, fails (the
// rollout rolls back) or waits (why, in words).
func (d *decider) gate(name string) (pass bool, fail, wait string) {
	c, ok := d.byName[name]
	if !ok {
		return false, "", name + " is no longer placed"
	}
	g := d.in.Spec.Gates
	if g == nil {
		g = &api.RolloutGates{}
	}
	r := c.Report
	if r != nil {
		maxRestarts := int32(0)
		if g.MaxRestarts != nil {
			maxRestarts = *g.MaxRestarts
		}
		if r.Restarts > maxRestarts {
			return false, fmt.Sprintf("%s: %d restarts of revision %d's replicas (at most %d)", name, r.Restarts, d.st.Revision, maxRestarts), ""
		}
	}
	tfail, twait := d.trafficGate(name, c, g.Traffic)
	if tfail != "" {
		return false, tfail, ""
	}
	if c.Health != api.HealthReady {
		return false, "", fmt.Sprintf("%s is %s", name, cmp.Or(c.Health, "Unknown"))
	}
	deadline := d.started[name].Add(g.ProgressDeadline.Get(DefaultProgressDeadline))
	notReady := func(why string) (bool, string, string) {
		if !d.now.Before(deadline) {
			return false, fmt.Sprintf("%s: %s after the progress deadline (%s)", name, why, g.ProgressDeadline.Get(DefaultProgressDeadline)), ""
		}
		d.wakeAt(deadline)
		return false, "", name + ": " + why
	}
	if r == nil {
		return notReady("no report of revision " + strconv.FormatInt(d.st.Revision, 10) + " yet")
	}
	if want := int32(g.MinReady.Resolve(int(r.Desired), true, int(r.Desired))); r.Ready < want {
		return notReady(fmt.Sprintf("%d/%d ready on revision %d (%d needed)", r.Ready, r.Desired, d.st.Revision, want))
	}
	if twait != "" {
		// No deadline: too little traffic is no evidence against the
		// revision, and none for it either.
		return false, "", twait
	}
	return true, "", ""
}

// trafficGate judges a cluster's requests to the new revision against
// the stable revision's: fail (the rollout rolls back) or wait (too few
// requests to judge, in words); both "" when the gate holds or there is
// none.
func (d *decider) trafficGate(name string, c Cluster, tg *api.TrafficGates) (fail, wait string) {
	if tg == nil {
		return "", ""
	}
	minReq := uint64(cmp.Or(tg.MinRequests, api.DefaultTrafficMinRequests))
	window := tg.Window.Get(api.DefaultTrafficWindow)
	t, b := c.Traffic, c.Baseline
	if t == nil || t.Requests < minReq {
		var n uint64
		if t != nil {
			n = t.Requests
		}
		return "", fmt.Sprintf("%s: %d/%d requests to revision %d through the gateways in the last %s (the traffic gate waits for them)", name, n, minReq, d.st.Revision, window)
	}
	maxRatio := api.DefaultTrafficMaxErrorRatio
	if tg.MaxErrorRatio != nil {
		maxRatio = *tg.MaxErrorRatio
	}
	if nr, sr := t.ErrorRatio(), b.ErrorRatio(); nr > sr+maxRatio+1e-9 {
		return fmt.Sprintf("%s: error ratio %s of revision %d (%d errors in %d requests over %s) against %s of revision %d (%s); at most %s points more",
			name, percent(nr), d.st.Revision, t.Errors, t.Requests, roundSpan(t.Span), percent(sr), d.st.StableRevision, baselineWords(b), percent(maxRatio)), ""
	}
	if tg.MaxLatencyRatio == nil && tg.MaxLatencyIncrease == "" {
		return "", ""
	}
	if b == nil || b.Requests < minReq {
		var n uint64
		if b != nil {
			n = b.Requests
		}
		return "", fmt.Sprintf("%s: the latency gate waits for a baseline: revision %d (stable) had %d/%d requests", name, d.st.StableRevision, n, minReq)
	}
	overRatio := tg.MaxLatencyRatio == nil || float64(t.P99) > float64(b.P99)**tg.MaxLatencyRatio
	overIncrease := tg.MaxLatencyIncrease == "" || t.P99-b.P99 > tg.MaxLatencyIncrease.Get(0)
	if overRatio && overIncrease {
		return fmt.Sprintf("%s: p99 latency %s of revision %d against %s of revision %d (%s)%s", name, roundLatency(t.P99), d.st.Revision,
			roundLatency(b.P99), d.st.StableRevision, baselineWords(b), latencyLimits(tg)), ""
	}
	return "", ""
}

func percent(r float64) string { return strconv.FormatFloat(r*100, 'f', 1, 64) + "%" }

func roundSpan(d time.Duration) time.Duration { return d.Round(time.Second) }

func roundLatency(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}

func baselineWords(b *Traffic) string {
	if b == nil || b.Requests == 0 {
		return "no requests: taken as none failed"
	}
	w := fmt.Sprintf("%d requests over %s", b.Requests, roundSpan(b.Span))
	if b.Widened {
		w += ", a longer span for want of requests in the same one"
	}
	return w
}

func latencyLimits(tg *api.TrafficGates) string {
	var parts []string
	if tg.MaxLatencyRatio != nil {
		parts = append(parts, "at most "+strconv.FormatFloat(*tg.MaxLatencyRatio, 'f', -1, 64)+" times")
	}
	if tg.MaxLatencyIncrease != "" {
		parts = append(parts, "at most "+string(tg.MaxLatencyIncrease)+" more")
	}
	return "; " + strings.Join(parts, " or ")
}

// progress starts clusters, bakes and moves through the waves as far as
// the gates, holds and the clock allow.
func (d *decider) progress(waves []wave) {
	for d.st.Wave < len(waves) {
		w := waves[d.st.Wave]
		d.st.WaveName = w.name
		if done := d.runWave(w); !done {
			return
		}
		last := d.st.Wave == len(waves)-1
		if !last && w.spec.Manual && d.st.Promoted < d.st.Wave {
			if d.in.Commands.Promote != w.name {
				d.setPhase(api.RolloutWaiting, fmt.Sprintf("wave %s is done: promote to go on (atoll rollout promote, wave %s)", w.name, w.name))
				return
			}
			d.st.Promoted = d.st.Wave
			d.event(api.EventNormal, "RolloutPromoted", "wave "+w.name+" promoted by an operator")
		}
		if pause := w.spec.Pause.Get(0); !last && pause > 0 && len(w.clusters) > 0 {
			if d.st.NextWaveAt == nil {
				at := d.now.Add(pause)
				d.st.NextWaveAt = &at
			}
			if d.now.Before(*d.st.NextWaveAt) {
				d.wakeAt(*d.st.NextWaveAt)
				d.setPhase(api.RolloutPaused, fmt.Sprintf("wave %s is done; the next starts at %s (its pause)", w.name, d.st.NextWaveAt.Format(time.TimeOnly)))
				return
			}
		}
		d.st.Wave++
		d.st.GatesSince, d.st.NextWaveAt = nil, nil
		if d.st.Wave < len(waves) && len(waves[d.st.Wave].clusters) > 0 {
			d.event(api.EventNormal, "WaveStarted", fmt.Sprintf("wave %s of revision %d: %s", waves[d.st.Wave].name, d.st.Revision, strings.Join(waves[d.st.Wave].clusters, ", ")))
		}
	}
	d.finish("every cluster runs revision " + strconv.FormatInt(d.st.Revision, 10))
}

// runWave starts the wave's clusters, a batch at a time, and bakes it;
// it reports whether the wave is done.
func (d *decider) runWave(w wave) bool {
	if len(w.clusters) == 0 {
		return true
	}
	// Nothing new starts while a cluster of the wave is not Ready: a
	// partition holds the rollout where it is.
	for _, n := range w.clusters {
		if h := d.byName[n].Health; h != api.HealthReady {
			d.st.GatesSince = nil
			d.setPhase(api.RolloutWaiting, fmt.Sprintf("wave %s holds: %s is %s", w.name, n, cmp.Or(h, "Unknown")))
			return false
		}
	}
	var waiting []string
	var pending []string // not started yet
	for _, n := range w.clusters {
		if _, on := d.started[n]; !on {
			pending = append(pending, n)
			continue
		}
		if pass, _, wait := d.gate(n); !pass {
			waiting = append(waiting, wait)
		}
	}
	if len(waiting) > 0 {
		d.st.GatesSince = nil
		d.setPhase(api.RolloutProgressing, "wave "+w.name+" waits for its gates: "+strings.Join(waiting, "; "))
		return false
	}
	if len(pending) > 0 {
		var startable, deferring []string
		for _, n := range pending {
			if why := d.byName[n].Deferred; why != "" {
				deferring = append(deferring, n+" ("+why+")")
				continue
			}
			startable = append(startable, n)
		}
		if len(startable) == 0 {
			d.setPhase(api.RolloutWaiting, "wave "+w.name+" waits for clusters that defer rollouts: "+strings.Join(deferring, ", "))
			return false
		}
		if p := int(d.in.Spec.MaxParallelClusters); p > 0 && len(startable) > p {
			startable = startable[:p]
		}
		for _, n := range startable {
			d.started[n] = d.now
		}
		d.st.GatesSince = nil
		d.setPhase(api.RolloutProgressing, fmt.Sprintf("wave %s: %s given revision %d", w.name, strings.Join(startable, ", "), d.st.Revision))
		// Their gates cannot hold yet (no report of the new revision):
		// the members' reports decide again.
		return false
	}
	if d.st.GatesSince == nil {
		d.st.GatesSince = &d.now
	}
	bake := w.spec.BakeTime.Get(DefaultBakeTime)
	if end := d.st.GatesSince.Add(bake); d.now.Before(end) {
		d.wakeAt(end)
		d.setPhase(api.RolloutBaking, fmt.Sprintf("wave %s bakes: its gates hold on every cluster; done at %s", w.name, end.Format(time.TimeOnly)))
		return false
	}
	return true
}

// rollback gives every cluster the stable revision.
func (d *decider) rollback(why string) {
	clear(d.started)
	d.st.GatesSince, d.st.NextWaveAt = nil, nil
	d.setPhase(api.RolloutRolledBack, why)
	d.event(api.EventWarning, "RolloutRolledBack", fmt.Sprintf("revision %d rolled back to %d: %s", d.st.Revision, d.st.StableRevision, why))
}

// finish makes the new revision the stable one.
func (d *decider) finish(why string) {
	for n := range d.byName {
		if _, on := d.started[n]; !on {
			d.started[n] = d.now
		}
	}
	d.st.GatesSince, d.st.NextWaveAt = nil, nil
	d.st.StableRevision = d.st.Revision
	if d.st.Phase != api.RolloutCompleted && d.in.Status != nil && d.in.Status.Revision == d.st.Revision {
		d.event(api.EventNormal, "RolloutCompleted", fmt.Sprintf("revision %d: %s", d.st.Revision, why))
	}
	d.setPhase(api.RolloutCompleted, why)
}

func (d *decider) setPhase(phase, msg string) {
	if d.st.Phase != phase {
		d.st.Since = &d.now
	}
	d.st.Phase, d.st.Message = phase, msg
}

func (d *decider) event(typ, reason, msg string) {
	d.events = append(d.events, Event{Type: typ, Reason: reason, Message: msg})
}

func (d *decider) wakeAt(t time.Time) {
	if d.wake.IsZero() || t.Before(d.wake) {
		d.wake = t
	}
}

// result lists every placed cluster with the revision it is given, by
// wave then name.
func (d *decider) result(waves []wave) Result {
	if g := d.in.Spec.Gates; g != nil && g.Traffic != nil && len(d.started) > 0 && d.st.Phase != api.RolloutCompleted && d.st.Phase != api.RolloutRolledBack {
		d.wakeAt(d.now.Add(TrafficRecheck))
	}
	st := d.st
	st.WaveName = waves[min(st.Wave, len(waves)-1)].name
	st.Clusters = nil
	for _, w := range waves {
		for _, n := range w.clusters {
			rc := api.RolloutCluster{Cluster: n, Wave: w.name, Revision: st.StableRevision, Deferred: d.byName[n].Deferred}
			if at, on := d.started[n]; on || st.Phase == api.RolloutCompleted {
				rc.Revision = st.Revision
				if on {
					at := at
					rc.StartedAt = &at
				}
				if st.Phase != api.RolloutCompleted {
					if pass, fail, wait := d.gate(n); pass {
						rc.Gate = gateText(d.byName[n], d.in.Spec.Gates)
					} else {
						rc.Gate = cmp.Or(fail, wait)
					}
				}
			}
			st.Clusters = append(st.Clusters, rc)
		}
	}
	return Result{Status: st, Wake: d.wake, Events: d.events}
}

// gateText is a passing cluster's measurements in words.
func gateText(c Cluster, g *api.RolloutGates) string {
	r := c.Report
	if r == nil {
		return ""
	}
	text := fmt.Sprintf("%d/%d ready, %d restarts", r.Ready, r.Desired, r.Restarts)
	if t := c.Traffic; g != nil && g.Traffic != nil && t != nil {
		text += fmt.Sprintf("; %d requests over %s, %s errors (stable %s), p99 %s", t.Requests, roundSpan(t.Span), percent(t.ErrorRatio()),
			percent(c.Baseline.ErrorRatio()), roundLatency(t.P99))
		if b := c.Baseline; b != nil && b.Requests > 0 {
			text += " (stable " + roundLatency(b.P99).String() + ")"
		}
	}
	return text
}
