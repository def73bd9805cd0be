package placer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/loop"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// StatusFolder folds the members' per-workload status reports into
// Workload.status: a per-cluster breakdown, the totals, observedGeneration
// (the oldest generation any cluster runs) and an Available condition. It
// keeps the latest report per (workload, cluster) in memory and writes
// only workloads whose folded status changed, in batches every FlushEvery.
type StatusFolder struct {
	store   *pgstore.Store
	log     *slog.Logger
	now     func() time.Time
	every   time.Duration
	dropped metric.Int64Counter
	warned  metric.Int64Counter
	leader  leader.Leadership

	// health is a cluster's live health (the monitor's); nil: all Ready.
	health func(cluster string) string

	mu      sync.Mutex
	reports map[string]map[string]protocol.WorkloadStatus // workload -> cluster -> status
	// reported is what each cluster's last report held: cluster ->
	// workloads (those of reports, by cluster).
	reported map[string]map[string]bool
	dirty    map[string]bool
	judged   map[string]string // cluster -> the health its reports were last folded under
	// seen is each problem's restarts when last turned into an event
	// (workload/cluster/reason): an event's count grows by what they grew.
	seen  map[problemKey]int32
	heard map[string]time.Time // cluster -> when its last report arrived
	// images is each workload's warm standby per cluster (workload ->
	// cluster -> presence), and imageEvents the transitions to record.
	images      map[string]map[string]protocol.ImagePresence
	imageEvents map[string][]imageEvent
	// streams is where each cluster's status deltas stand; asked when
	// this hub last asked a cluster for its whole status.
	streams map[string]*statusStream
	asked   map[string]time.Time
	// sharedStates and sharedStrings are the reports' shared parts
	// (shareLocked).
	sharedStates  map[string]map[string]int32
	sharedStrings map[string]string

	nc   *nats.Conn // to ask members for their whole status
	subs []*nats.Subscription
	loop loop.Loop
}

// NewStatusFolder makes a folder; every <= 0 means 1s. health is a
// cluster's live health (nil: all Ready); a nil lead leads alone.
func NewStatusFolder(store *pgstore.Store, health func(cluster string) string, lead leader.Leadership, log *slog.Logger, now func() time.Time, meter metric.Meter, every time.Duration) *StatusFolder {
	if every <= 0 {
		every = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	if lead == nil {
		lead = leader.Sole{}
	}
	f := &StatusFolder{store: store, health: health, log: log, now: now, every: every, reports: map[string]map[string]protocol.WorkloadStatus{}, reported: map[string]map[string]bool{},
		dirty: map[string]bool{}, judged: map[string]string{}, seen: map[problemKey]int32{}, heard: map[string]time.Time{}, leader: lead,
		images: map[string]map[string]protocol.ImagePresence{}, imageEvents: map[string][]imageEvent{},
		streams: map[string]*statusStream{}, asked: map[string]time.Time{},
		sharedStates: map[string]map[string]int32{}, sharedStrings: map[string]string{}}
	f.warned, _ = meter.Int64Counter("status.replica_warnings", metric.WithUnit("{occurrence}"),
		metric.WithDescription("Replica problems members reported, as counted into deduplicated Warning events, by reason."))
	f.dropped, _ = meter.Int64Counter("status.reports.dropped", metric.WithUnit("{report}"), metric.WithDescription("Member status reports dropped, by reason."))
	return f
}

// Observe takes one member's report (called from the NATS handler).
func (f *StatusFolder) Observe(subject string, data []byte) {
	r, err := protocol.DecodeStatusReport(subject, data)
	if err != nil {
		f.dropped.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", protocol.DropReason(err))))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heard[r.Cluster] = f.now().UTC().Truncate(time.Millisecond)
	delete(f.streams, r.Cluster) // a whole report: deltas resume after a resend
	seen := make(map[string]bool, len(r.Workloads))
	for _, ws := range r.Workloads {
		seen[ws.Workload] = true
		f.putLocked(r.Cluster, ws)
	}
	// A workload the cluster no longer reports has left it. Only the
	// cluster's own last report is looked at: going over every workload
	// for every report made each report cost the whole fleet's workloads.
	f.dropUnseenLocked(r.Cluster, seen)
	f.observeImagesLocked(r.Cluster, r.Images)
}

// statusStream is where a member's status deltas stand: its session, the
// last delta applied, and during a resend the workloads it named so far.
type statusStream struct {
	session   string
	seq       uint64
	resending map[string]bool // nil: no resend under way
}

// ObserveDelta takes one member's StatusDelta (called from the NATS
// handler). A delta that does not follow the last one applied from the
// same session (a hub that started, missed one, or a member that
// restarted) is dropped and the member asked for its whole status, at
// most once a second per cluster; the resend begins with Reset and
// applies whatever came before.
func (f *StatusFolder) ObserveDelta(subject string, data []byte) {
	d, err := protocol.DecodeStatusDelta(subject, data)
	if err != nil {
		f.dropped.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", protocol.DropReason(err))))
		return
	}
	f.mu.Lock()
	st := f.streams[d.Cluster]
	if !d.Reset && (st == nil || st.session != d.Session || d.Seq != st.seq+1) {
		ask := f.now().Sub(f.asked[d.Cluster]) >= time.Second
		if ask {
			f.asked[d.Cluster] = f.now()
		}
		f.mu.Unlock()
		f.dropped.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", "gap")))
		if ask {
			f.askWhole(d.Cluster)
		}
		return
	}
	defer f.mu.Unlock()
	if d.Reset {
		st = &statusStream{session: d.Session, resending: map[string]bool{}}
		f.streams[d.Cluster] = st
	}
	st.seq = d.Seq
	f.heard[d.Cluster] = f.now().UTC().Truncate(time.Millisecond)
	reported := f.reported[d.Cluster]
	if reported == nil {
		reported = map[string]bool{}
		f.reported[d.Cluster] = reported
	}
	for _, ws := range d.Workloads {
		f.putLocked(d.Cluster, ws)
		reported[ws.Workload] = true
		if st.resending != nil {
			st.resending[ws.Workload] = true
		}
	}
	for _, w := range d.Removed {
		if reported[w] {
			f.removeLocked(d.Cluster, w)
			delete(reported, w)
		}
	}
	if st.resending != nil && !d.More {
		f.dropUnseenLocked(d.Cluster, st.resending)
		st.resending = nil
	}
	if d.ImagesSet {
		f.observeImagesLocked(d.Cluster, d.Images)
	}
}

// askWhole asks a cluster's member for its whole status (no answer: the
// resend comes as deltas).
func (f *StatusFolder) askWhole(cluster string) {
	if f.nc == nil {
		return
	}
	data, _ := json.Marshal(protocol.StatusFullRequest{Version: protocol.Version})
	if err := f.nc.Publish(protocol.StatusFullSubject(cluster), data); err != nil {
		f.log.Warn("asking a member for its whole status failed", "cluster", cluster, "err", err)
	}
}

// Shared parts of the reports the folder keeps: one per workload and
// cluster, a million at the full scale, most of them alike ({Ready: 1},
// the same nodes and states). Each table stops growing at its bound.
const (
	maxSharedStates  = 10000
	maxSharedStrings = 200000
)

// shareLocked makes ws use the folder's copy of its replica counts by
// state and of its examples' node and state names when it has one (the
// reports are never written to: fold copies what it changes).
func (f *StatusFolder) shareLocked(ws *protocol.WorkloadStatus) {
	if len(ws.States) > 0 {
		key := statesKey(ws.States)
		if m, ok := f.sharedStates[key]; ok {
			ws.States = m
		} else if len(f.sharedStates) < maxSharedStates {
			f.sharedStates[key] = ws.States
		}
	}
	for i := range ws.Examples {
		e := &ws.Examples[i]
		e.Node, e.State = f.sharedLocked(e.Node), f.sharedLocked(e.State)
	}
}

func (f *StatusFolder) sharedLocked(s string) string {
	if c, ok := f.sharedStrings[s]; ok {
		return c
	}
	if len(f.sharedStrings) < maxSharedStrings {
		f.sharedStrings[s] = s
	}
	return s
}

// statesKey is a canonical text of replica counts by state.
func statesKey(states map[string]int32) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(states)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(int(states[k])))
		b.WriteByte(',')
	}
	return b.String()
}

// forget drops every cluster's report of a workload the store does not
// hold (deleted meanwhile, or named by a member that made it up: a delta
// adds workloads without replacing the rest, so names no write finds
// must not pile up).
func (f *StatusFolder) forget(w string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.reports[w] {
		delete(f.reported[c], w)
	}
	delete(f.reports, w)
	delete(f.images, w)
	delete(f.dirty, w)
}

// putLocked takes one workload's status from cluster.
func (f *StatusFolder) putLocked(cluster string, ws protocol.WorkloadStatus) {
	f.shareLocked(&ws)
	byCluster := f.reports[ws.Workload]
	if byCluster == nil {
		byCluster = map[string]protocol.WorkloadStatus{}
		f.reports[ws.Workload] = byCluster
	}
	if old, ok := byCluster[cluster]; !ok || !old.Equal(ws) {
		byCluster[cluster] = ws
		f.dirty[ws.Workload] = true
	}
}

// removeLocked forgets a workload's status from cluster: it left.
func (f *StatusFolder) removeLocked(cluster, w string) {
	delete(f.reports[w], cluster)
	if len(f.reports[w]) == 0 {
		delete(f.reports, w)
	}
	f.dirty[w] = true
}

// dropUnseenLocked forgets the workloads cluster reported before and not
// in seen, which becomes what it reports.
func (f *StatusFolder) dropUnseenLocked(cluster string, seen map[string]bool) {
	for w := range f.reported[cluster] {
		if !seen[w] {
			f.removeLocked(cluster, w)
		}
	}
	f.reported[cluster] = seen
}

var foldActor = pgstore.Actor{Name: "system:status"}

// RunOnce writes the folded status of every changed workload (on the
// leader only; the others keep their reports until they lead).
func (f *StatusFolder) RunOnce(ctx context.Context) (int, error) {
	if !f.leader.IsLeader() {
		return 0, nil
	}
	health := map[string]string{}
	healthOf := func(c string) string {
		h, ok := health[c]
		if !ok {
			h = api.HealthReady
			if f.health != nil {
				h = f.health(c)
			}
			health[c] = h
		}
		return h
	}
	f.mu.Lock()
	// A cluster that turned Unreachable (or came back) changes what its
	// reports count for: fold its workloads again.
	for c, ws := range f.reported {
		if len(ws) == 0 {
			continue
		}
		if h := healthOf(c); refold(f.judged[c], h) {
			for w := range ws {
				f.dirty[w] = true
			}
		}
	}
	for c, h := range health {
		f.judged[c] = h
	}
	work := map[string][]protocol.WorkloadStatus{}
	clusters := map[string][]string{}
	for w := range f.dirty {
		for c, st := range f.reports[w] {
			work[w] = append(work[w], st)
			clusters[w] = append(clusters[w], c)
		}
		if _, ok := work[w]; !ok {
			work[w] = nil
		}
	}
	images := map[string][]api.ClusterImage{}
	imageEvents := f.imageEvents
	f.imageEvents = map[string][]imageEvent{}
	for w := range work {
		images[w] = f.imageRowsLocked(w)
	}
	f.dirty = map[string]bool{}
	heard := maps.Clone(f.heard)
	warnings := map[string][]warning{}
	for w, reports := range work {
		for i, st := range reports {
			if healthOf(clusters[w][i]) == api.HealthUnreachable {
				continue // history: nothing happens there the hub could know of
			}
			warnings[w] = append(warnings[w], f.newWarningsLocked(w, clusters[w][i], st.Problems)...)
		}
	}
	for k := range f.seen {
		if _, ok := f.reports[k.workload][k.cluster]; !ok {
			delete(f.seen, k)
		}
	}
	f.mu.Unlock()

	regions := f.regions(ctx)
	write := func(tx *pgstore.Tx, w string) error {
		_, err := tx.Mutate(ctx, "status", "Workload", w, func(cur *pgstore.Record) error {
			var st api.WorkloadStatus
			_ = json.Unmarshal(cur.Status, &st)
			folded := fold(work[w], clusters[w], regions, healthOf, cur.Meta.Generation, st.Placement, st.Conditions, f.now())
			folded.Placement, folded.Rollout = st.Placement, st.Rollout // the placer's parts stay
			folded.Images = images[w]
			stampClusters(folded.Clusters, st.Clusters, heard, healthOf)
			b, err := json.Marshal(folded)
			cur.Status = b
			return err
		})
		if err != nil {
			return err
		}
		for _, wn := range warnings[w] {
			msg := fmt.Sprintf("%d replica(s) in %s: %s", wn.Replicas, wn.cluster, wn.Message)
			if wn.Replica != "" {
				msg = fmt.Sprintf("%s (replica %s on node %s; %d replica(s) in %s)", wn.Message, wn.Replica, wn.Node, wn.Replicas, wn.cluster)
			}
			if err := events.Dedup(ctx, tx, f.now(), api.ObjectReference{Kind: "Workload", Name: w}, api.EventWarning, wn.Reason, wn.cluster, msg, "member/"+wn.cluster, wn.add); err != nil {
				return err
			}
			f.warned.Add(ctx, int64(wn.add), metric.WithAttributes(attribute.String("reason", wn.Reason)))
		}
		return f.recordImageEvents(ctx, tx, w, imageEvents[w])
	}
	inTx := func(names []string) error {
		return f.store.InTx(ctx, foldActor, func(tx *pgstore.Tx) error {
			if err := f.leader.Fence(ctx, tx); err != nil {
				return err
			}
			for _, w := range names {
				if err := write(tx, w); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// Batches of 20 workloads per transaction: one commit per batch, not
	// per workload, and the rows' locks (and the watch horizon) not held
	// long.
	var errs []error
	written := 0
	names := slices.Sorted(maps.Keys(work))
	for len(names) > 0 {
		batch := names[:min(len(names), 20)]
		names = names[len(batch):]
		if inTx(batch) == nil {
			written += len(batch)
			continue
		}
		// One bad workload (deleted meanwhile) must not hold the others.
		for _, w := range batch {
			switch err := inTx([]string{w}); {
			case err == nil:
				written++
			case api.ErrorCode(err) == api.CodeNotFound:
				f.forget(w) // deleted, or never was: no member's report of it is kept
			default:
				errs = append(errs, err)
				f.mu.Lock()
				f.dirty[w] = true // try again next time
				f.mu.Unlock()
			}
		}
	}
	return written, errors.Join(errs...)
}

// refold says whether a cluster's reports must be folded again after its
// health went from was to is: Unreachable changes what they count for,
// and any change between Ready and not Ready changes how they are
// labelled (live or last known).
func refold(was, is string) bool {
	if was == "" {
		was = api.HealthReady
	}
	return was != is && (api.Stale(was) || api.Stale(is))
}

// stampClusters says, for each cluster row, when its cluster last
// reported (what this hub heard, else what the stored rows old say) and,
// when it is not Ready, its health: the row's figures are then last known.
func stampClusters(rows, old []api.ClusterReplicas, heard map[string]time.Time, health func(string) string) {
	for i := range rows {
		if t, ok := heard[rows[i].Cluster]; ok {
			rows[i].ReportedAt = &t
		} else {
			for _, o := range old {
				if o.Cluster == rows[i].Cluster {
					rows[i].ReportedAt = o.ReportedAt
				}
			}
		}
		if h := health(rows[i].Cluster); api.Stale(h) {
			rows[i].ClusterHealth = h
		}
	}
}

// regions maps cluster names to their region label.
func (f *StatusFolder) regions(ctx context.Context) map[string]string {
	out := map[string]string{}
	res, err := f.store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return out
	}
	for _, c := range res.Items {
		out[c.Meta.Name] = c.Meta.Labels[api.LabelRegion]
	}
	return out
}

// fold computes a workload's status from its clusters' reports.
// A report from an Unreachable (or deregistered) cluster is history: the
// cluster is listed with a Reporting=False condition and counts for
// nothing, neither ready (the hub cannot know they are) nor desired (the
// placement has moved them, or will), so a lost cluster never shows as
// serving, and a workload whose replicas failed over is Available again.
//
// Available compares the ready replicas with what the placement wants
// (every cluster's share, and whatever it could not place), not with
// what the reports say: replicas of a lost cluster are still wanted until
// they run elsewhere.
func fold(reports []protocol.WorkloadStatus, clusters []string, regions map[string]string, health func(string) string, generation int64,
	placed *api.PlacementStatus, conds []api.Condition, now time.Time) api.WorkloadStatus {
	var st api.WorkloadStatus
	var desired int32
	observed := int64(-1)
	t := now.UTC().Truncate(time.Millisecond)
	for i, r := range reports {
		cr := api.ClusterReplicas{Cluster: clusters[i], Region: regions[clusters[i]], Epoch: r.Epoch, Generation: r.Generation,
			Desired: r.Desired, Scheduled: r.Scheduled, Ready: r.Ready, Updated: r.Updated, Restarts: r.Restarts, UpdatedReady: r.UpdatedReady, UpdatedRestarts: r.UpdatedRestarts, Present: r.Present, Pending: r.Pending, Conditions: r.Conditions, Data: r.Data,
			States: r.States, Examples: replicaInfos(clusters[i], r.Examples), Problems: replicaProblems(r.Problems)}
		if health(clusters[i]) == api.HealthUnreachable {
			cr.Conditions = append(slices.Clone(cr.Conditions), api.Condition{Type: "Reporting", Status: "False", Reason: "ClusterUnreachable",
				Message: fmt.Sprintf("the cluster is Unreachable (or gone); it last reported %d ready of %d desired", r.Ready, r.Desired), LastTransitionTime: &t})
			cr.Ready, cr.Updated = 0, 0
			cr.States, cr.Examples, cr.Problems = staleReplicas(cr.States), staleExamples(cr.Examples), nil
			st.Clusters = append(st.Clusters, cr)
			continue // counts for nothing: neither ready nor desired
		}
		st.Clusters = append(st.Clusters, cr)
		desired += r.Desired
		st.Replicas += r.Scheduled
		st.ReadyReplicas += r.Ready
		st.AvailableReplicas += r.Ready
		if r.Generation == generation {
			st.UpdatedReplicas += r.Updated
		}
		if observed < 0 || r.Generation < observed {
			observed = r.Generation
		}
	}
	sort.Slice(st.Clusters, func(i, j int) bool { return st.Clusters[i].Cluster < st.Clusters[j].Cluster })
	if observed > 0 {
		st.ObservedGeneration = observed
	}
	avail := api.Condition{Type: "Available", Status: "False", Reason: "ReplicasNotReady", LastTransitionTime: &t}
	var wanted int32
	if placed != nil {
		wanted = placedTotal(placed)
	}
	switch {
	case len(reports) == 0:
		avail.Status, avail.Reason, avail.Message = "Unknown", "NoReports", "no cluster reports this workload"
	case placed != nil && st.ReadyReplicas < wanted:
		avail.Message = fmt.Sprintf("%d of %d placed replicas ready", st.ReadyReplicas, wanted)
	case st.ReadyReplicas >= desired:
		avail.Status, avail.Reason, avail.Message = "True", "ReplicasReady", "every desired replica is ready"
	default:
		avail.Message = "ready replicas below desired"
	}
	st.Conditions = api.SetCondition(append([]api.Condition(nil), conds...), avail)
	return st
}

// Start subscribes to the members' reports and writes every period until
// Stop.
func (f *StatusFolder) Start(ctx context.Context, nc *nats.Conn) error {
	f.nc = nc
	for subject, observe := range map[string]func(string, []byte){
		protocol.StatusSubject("*"):      f.Observe,
		protocol.StatusDeltaSubject("*"): f.ObserveDelta,
	} {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) { observe(m.Subject, m.Data) })
		if err != nil {
			f.Stop()
			return err
		}
		f.subs = append(f.subs, sub)
	}
	f.loop.Start(ctx, f.log, "folding workload status failed", f.every, nil, func(ctx context.Context) error {
		_, err := f.RunOnce(ctx)
		return err
	})
	return nil
}

// Stop ends the folder; safe to call twice and before Start.
func (f *StatusFolder) Stop() {
	for _, sub := range f.subs {
		_ = sub.Unsubscribe()
	}
	f.subs = nil
	f.loop.Stop()
}

// placedTotal is every replica a placement wants: its clusters' shares
// and the ones it could not place.
func placedTotal(p *api.PlacementStatus) int32 {
	n := p.Unplaced
	for _, c := range p.Clusters {
		n += c
	}
	return n
}

type problemKey struct{ workload, cluster, reason string }

// warning is a problem to record as an event, add times more.
type warning struct {
	protocol.ReplicaProblem
	cluster string
	add     int32
}

// newWarningsLocked turns a report's problems into the events to write:
// a problem not seen before counts once, one seen before counts as many
// times as its replicas restarted since (a crash loop is one event whose
// count grows), and one that did not recur writes nothing.
func (f *StatusFolder) newWarningsLocked(workload, cluster string, problems []protocol.ReplicaProblem) []warning {
	var out []warning
	// A problem that went away and comes back is a new occurrence.
	for _, reason := range []string{protocol.ProblemReplicaFailed, protocol.ProblemBackOff, protocol.ProblemProbeFailed, protocol.ProblemFenced, protocol.ProblemPullFailed} {
		if !slices.ContainsFunc(problems, func(p protocol.ReplicaProblem) bool { return p.Reason == reason }) {
			delete(f.seen, problemKey{workload, cluster, reason})
		}
	}
	for _, p := range problems {
		k := problemKey{workload, cluster, p.Reason}
		prev, ok := f.seen[k]
		f.seen[k] = p.Restarts
		if add := warningCount(prev, ok, p.Restarts); add > 0 {
			out = append(out, warning{ReplicaProblem: p, cluster: cluster, add: add})
		}
	}
	return out
}

// warningCount is how many more times a problem happened: once when new,
// then by its restarts' growth (restarts that fell, as replicas were
// replaced, count once).
func warningCount(prev int32, seen bool, restarts int32) int32 {
	switch {
	case !seen:
		return 1
	case restarts > prev:
		return restarts - prev
	case restarts < prev:
		return 1
	}
	return 0
}

// replicaInfos converts a member's examples for the API.
func replicaInfos(cluster string, in []protocol.ReplicaSummary) []api.ReplicaInfo {
	if len(in) == 0 {
		return nil
	}
	out := make([]api.ReplicaInfo, 0, len(in))
	for _, r := range in {
		ri := api.ReplicaInfo{Replica: r.Replica, Cluster: cluster, Node: r.Node, State: r.State, Restarts: r.Restarts, ExitCode: r.ExitCode,
			Reason: r.Reason, Message: r.Message}
		if !r.StartedAt.IsZero() {
			t := r.StartedAt.UTC()
			ri.StartedAt = &t
		}
		if !r.NextStartAt.IsZero() {
			t := r.NextStartAt.UTC()
			ri.NextStartAt = &t
		}
		out = append(out, ri)
	}
	return out
}

func replicaProblems(in []protocol.ReplicaProblem) []api.ReplicaProblem {
	if len(in) == 0 {
		return nil
	}
	out := make([]api.ReplicaProblem, 0, len(in))
	for _, p := range in {
		out = append(out, api.ReplicaProblem(p))
	}
	return out
}

// staleReplicas counts an Unreachable cluster's replicas as Unknown: what
// it reported last is no longer known to hold.
func staleReplicas(states map[string]int32) map[string]int32 {
	var n int32
	for _, c := range states {
		n += c
	}
	if n == 0 {
		return nil
	}
	return map[string]int32{protocol.StateUnknown: n}
}

// staleExamples marks an Unreachable cluster's example replicas Unknown,
// keeping what they last said as history.
func staleExamples(in []api.ReplicaInfo) []api.ReplicaInfo {
	out := slices.Clone(in)
	for i := range out {
		last := out[i].State
		if out[i].Message != "" {
			last += ": " + out[i].Message
		}
		out[i].State, out[i].Message, out[i].NextStartAt = protocol.StateUnknown, "the cluster is Unreachable; last known "+last, nil
	}
	return out
}

// ReadyReported is, for the given workloads, their ready replicas per
// cluster as the clusters last reported them, from the clusters whose
// last report fresh accepts by when it came (drill.Reports).
func (f *StatusFolder) ReadyReported(workloads map[string]bool, fresh func(cluster string, at time.Time) bool) map[string]map[string]int32 {
	type heardReady struct {
		workload, cluster string
		ready             int32
	}
	var found []heardReady
	heard := map[string]time.Time{}
	f.mu.Lock()
	for w := range workloads {
		for c, st := range f.reports[w] {
			if st.Ready > 0 {
				found = append(found, heardReady{w, c, st.Ready})
				heard[c] = f.heard[c]
			}
		}
	}
	f.mu.Unlock()
	ok := make(map[string]bool, len(heard))
	for c, at := range heard {
		ok[c] = fresh(c, at) // outside f.mu: it may ask the monitor
	}
	out := map[string]map[string]int32{}
	for _, h := range found {
		if !ok[h.cluster] {
			continue
		}
		if out[h.workload] == nil {
			out[h.workload] = map[string]int32{}
		}
		out[h.workload][h.cluster] = h.ready
	}
	return out
}
