package placer

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/traffic"
	"github.com/atollhq/atoll/progressive"
)

// revision is one of a workload's template revisions as the rollout
// step and delivery need it.
type revision struct {
	number, generation int64
	template           api.ReplicaTemplate
}

// revisionsOf is a workload's revisions as last read, and the
// workload's uid and generation then: revisions change only with a new
// generation (a template change adds one, a trim follows a spec change).
type revisionsOf struct {
	uid  string
	gen  int64
	revs []revision
}

// readRevisions brings p.revisions up to date for the workloads that roll
// out progressively among names (oldest revision first), reading the
// store only for a workload whose uid or generation changed since.
func (p *Placer) readRevisions(ctx context.Context, names []string) error {
	var stale []string
	for _, name := range names {
		w, ok := p.cache[name]
		if !ok || w.Spec.Rollout == nil || w.Metadata.DeletionTimestamp != nil {
			delete(p.revisions, name)
			continue
		}
		if have, ok := p.revisions[name]; ok && have.uid == w.Metadata.UID && have.gen == w.Metadata.Generation {
			continue
		}
		stale = append(stale, name)
	}
	if len(stale) == 0 {
		return nil
	}
	// One statement for all of them (a secret's write moves a hundred
	// workloads to a new revision at once).
	byName, err := p.db.RevisionsOf(ctx, stale)
	if err != nil {
		return err
	}
	for _, name := range stale {
		rows, ok := byName[name]
		if !ok {
			delete(p.revisions, name)
			continue // deleted meanwhile
		}
		w := p.cache[name]
		revs := make([]revision, 0, len(rows))
		for _, r := range rows {
			var t api.ReplicaTemplate
			if json.Unmarshal(r.Template, &t) == nil {
				revs = append(revs, revision{number: r.Number, generation: r.Generation, template: t})
			}
		}
		p.revisions[name] = revisionsOf{uid: w.Metadata.UID, gen: w.Metadata.Generation, revs: revs}
	}
	return nil
}

// rolloutStep decides a workload's progressive rollout over the clusters
// its decision places it on (package progressive decides): the status to
// store, with each cluster's revision and the generation it is delivered
// at, and the events. gens holds those generations (a cluster missing
// from it is given the workload's). ok is false when the workload does
// not roll out progressively or its revisions are not known.
func rolloutStep(w *api.Workload, revs []revision, assignment map[string]int32, clusters []failover.Cluster, tr Traffic, now time.Time) (res progressive.Result, gens map[string]int64, ok bool) {
	if w.Spec.Rollout == nil || len(revs) == 0 {
		return res, nil, false
	}
	target := revs[len(revs)-1]
	byNumber := map[int64]revision{}
	for _, r := range revs {
		byNumber[r.number] = r
	}
	live := failover.ByName(clusters)
	var cs []progressive.Cluster
	var opens time.Time // the next rollout window to open on a deferring cluster
	for _, name := range slices.Sorted(maps.Keys(assignment)) {
		if assignment[name] <= 0 {
			continue
		}
		lc := live[name]
		c := progressive.Cluster{Name: name, Labels: lc.Metadata.Labels, Health: lc.Status.Health}
		if lc.Known {
			c.Health = lc.Live.Health
		}
		if v, frozen := lc.Metadata.Labels[api.LabelRolloutFreeze]; frozen {
			c.Deferred = "frozen: " + api.LabelRolloutFreeze + "=" + v
		}
		for _, t := range lc.Spec.Taints {
			if t.Key == api.DrillTaintKey {
				c.Deferred = "drill " + t.Value + " runs on it" // a rollout waits out a drill (outages and partitions hold it as unhealthy)
			}
		}
		if v, ok := lc.Metadata.Annotations[api.AnnotationRolloutWindow]; ok && c.Deferred == "" {
			if ws, err := api.ParseRolloutWindows(v); err == nil {
				if open, next := ws.Open(now); !open {
					c.Deferred = fmt.Sprintf("outside its rollout window (%s); the next opens at %s", v, next.Format(time.RFC3339))
					if opens = earliestTime(opens, next); opens.IsZero() {
						opens = next
					}
				}
			}
		}
		for _, cr := range w.Status.Clusters {
			if cr.Cluster != name || cr.Generation != w.Metadata.Generation {
				continue
			}
			r := &progressive.Report{Desired: cr.Desired, Ready: cr.UpdatedReady, Restarts: cr.UpdatedRestarts}
			if r.Ready == 0 && r.Restarts == 0 && cr.Scheduled == cr.Updated {
				// A member that does not count its updated replicas apart
				// (before this protocol): with no old replica left, all
				// of them are.
				r.Ready, r.Restarts = cr.Ready, cr.Restarts
			}
			c.Report = r
		}
		cs = append(cs, c)
	}
	measureTraffic(w, revs, cs, tr, now)
	stable := target.number // no rollout stored: what runs is taken as done
	res = progressive.Decide(progressive.Input{Spec: w.Spec.Rollout, Revision: target.number, Stable: stable, Clusters: cs,
		Status: w.Status.Rollout, Commands: rolloutCommands(w, target.number), Now: now})
	// A window opening changes what the rollout may do: decide again then.
	if r := res.Status.Phase; !opens.IsZero() && r != api.RolloutCompleted && r != api.RolloutRolledBack {
		res.Wake = earliestTime(res.Wake, opens)
	}
	gens = map[string]int64{}
	var missing []string
	for i, rc := range res.Status.Clusters {
		g := w.Metadata.Generation
		if rc.Revision != target.number {
			if r, found := byNumber[rc.Revision]; found {
				g = r.generation
			} else {
				// The stable template is no longer kept (revisionHistoryLimit):
				// nothing else can be delivered.
				missing = append(missing, rc.Cluster)
				res.Status.Clusters[i].Revision = target.number
			}
		}
		res.Status.Clusters[i].Generation = g
		gens[rc.Cluster] = g
	}
	if len(missing) > 0 {
		res.Status.Message += fmt.Sprintf("; revision %d is no longer kept (spec.revisionHistoryLimit), so %s run revision %d",
			res.Status.StableRevision, strings.Join(missing, ", "), target.number)
	}
	return res, gens, true
}

// Traffic is the gateways' traffic to a workload's services
// (*traffic.Window has it).
type Traffic interface {
	Workload(workload string, from, to time.Time) []traffic.Sample
	Keep() time.Duration
}

// measureTraffic fills in, for the clusters given the new revision of a
// workload with traffic gates, the new revision's requests there and the
// stable revision's everywhere over the same span (from when the cluster
// was given the revision, at most the gates' window); when the stable
// revision had too few requests in it, over the longest span kept.
func measureTraffic(w *api.Workload, revs []revision, cs []progressive.Cluster, tr Traffic, now time.Time) {
	st := w.Status.Rollout
	g := w.Spec.Rollout.Gates
	if tr == nil || st == nil || g == nil || g.Traffic == nil || len(revs) == 0 || st.Revision != revs[len(revs)-1].number {
		return
	}
	window := g.Traffic.Window.Get(api.DefaultTrafficWindow)
	minReq := uint64(cmp.Or(g.Traffic.MinRequests, api.DefaultTrafficMinRequests))
	numbered := make([]traffic.Revision, len(revs))
	for i, r := range revs {
		numbered[i] = traffic.Revision{Number: r.number, Generation: r.generation}
	}
	revisionAt := traffic.RevisionAt(numbered)
	sum := func(samples []traffic.Sample, rev int64, cluster string) traffic.Counts {
		var c traffic.Counts
		for _, s := range samples {
			if revisionAt(s.Generation) == rev && (cluster == "" || s.Cluster == cluster) {
				c.Add(s.Counts)
			}
		}
		return c
	}
	of := func(c traffic.Counts, span time.Duration) *progressive.Traffic {
		return &progressive.Traffic{Requests: c.Requests, Errors: c.Errors, P99: c.Quantile(0.99), Span: span}
	}
	for i := range cs {
		var started *time.Time
		for _, rc := range st.Clusters {
			if rc.Cluster == cs[i].Name && rc.Revision == st.Revision && rc.StartedAt != nil {
				started = rc.StartedAt
			}
		}
		if started == nil {
			continue
		}
		from := now.Add(-window)
		if started.After(from) {
			from = *started
		}
		samples := tr.Workload(w.Metadata.Name, from, now)
		span := now.Sub(from)
		nc := sum(samples, st.Revision, cs[i].Name)
		cs[i].Traffic = of(nc, span)
		bc := sum(samples, st.StableRevision, "")
		cs[i].Baseline = of(bc, span)
		if bc.Requests < minReq {
			wide := now.Add(-min(tr.Keep(), api.MaxTrafficWindow+window))
			bc = sum(tr.Workload(w.Metadata.Name, wide, now), st.StableRevision, "")
			cs[i].Baseline = of(bc, now.Sub(wide))
			cs[i].Baseline.Widened = true
		}
	}
}

// rolloutCommands reads an operator's commands from the workload's
// annotations: a pause, a promote of the given revision's wave, an abort
// of that revision.
func rolloutCommands(w *api.Workload, revision int64) progressive.Commands {
	a := w.Metadata.Annotations
	var c progressive.Commands
	c.Paused = a[api.AnnotationRolloutPaused] == "true"
	if rev, wave, ok := strings.Cut(a[api.AnnotationRolloutPromote], ":"); ok && rev == strconv.FormatInt(revision, 10) {
		c.Promote = wave
	}
	c.Abort = a[api.AnnotationRolloutAbort] == strconv.FormatInt(revision, 10)
	return c
}

// gateWordsEvery is how often a rollout's status is written when only
// its words changed: the message and the clusters' gates.
const gateWordsEvery = 5 * time.Second

// sameRolloutButWords says whether two rollout statuses say the same but
// for their words (the message, the clusters' gates): the same phase,
// wave and clusters' revisions.
func sameRolloutButWords(a, b *api.RolloutStatus) bool {
	strip := func(r *api.RolloutStatus) *api.RolloutStatus {
		c := *r
		c.Message = ""
		c.Clusters = slices.Clone(r.Clusters)
		for i := range c.Clusters {
			c.Clusters[i].Gate = ""
		}
		return &c
	}
	return sameRollout(strip(a), strip(b))
}

// sameRollout says whether two rollout statuses say the same.
func sameRollout(a, b *api.RolloutStatus) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// templates remembers the template of a workload at a generation: it
// never changes, so a cluster given an older revision is delivered it
// without reading the store each time.
type templates struct {
	mu sync.Mutex
	m  map[string]api.ReplicaTemplate // uid/generation -> template
}

// at is the template of workload w at generation gen: the revision in
// force then (the newest introduced at or before it). ok is false when
// no kept revision covers it.
func (t *templates) at(ctx context.Context, db Store, w api.Workload, gen int64) (api.ReplicaTemplate, bool) {
	key := w.Metadata.UID + "/" + strconv.FormatInt(gen, 10)
	t.mu.Lock()
	tmpl, ok := t.m[key]
	t.mu.Unlock()
	if ok {
		return tmpl, true
	}
	rows, err := db.Revisions(ctx, w.Metadata.Name)
	if err != nil {
		return api.ReplicaTemplate{}, false
	}
	var best *pgstore.RevisionRow
	for i := range rows {
		if rows[i].Generation <= gen && (best == nil || rows[i].Generation > best.Generation) {
			best = &rows[i]
		}
	}
	if best == nil || json.Unmarshal(best.Template, &tmpl) != nil {
		return api.ReplicaTemplate{}, false
	}
	t.mu.Lock()
	if t.m == nil || len(t.m) > 10000 {
		t.m = map[string]api.ReplicaTemplate{}
	}
	t.m[key] = tmpl
	t.mu.Unlock()
	return tmpl, true
}

// earliestTime is the earlier of two times, zero meaning none.
func earliestTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
