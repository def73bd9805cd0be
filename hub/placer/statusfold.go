package placer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"sort"
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
// (the oldest generation any cluster runs) and an Available condition.
//
// The stored status is the folder's memory of what each cluster last
// said: a report that changed is kept only until it is folded (pending),
// then written into its cluster's row of status.clusters, and a fold
// reads the other clusters' rows from the stored status it rewrites (a
// report a workload and cluster, a million at the full scale, held by
// the hub as decoded reports was most of its memory). Of each cluster's
// last report of a workload the folder keeps a mark: its ready replicas
// (drills read them) and a fingerprint, so that a report that says what
// the last one said (a member's whole status every minute) folds nothing.
// Stored rows lose what a cluster said while it is Unreachable (they
// become history: nothing ready, replicas Unknown); when it is back the
// folder forgets its fingerprints and asks it for its whole status, and
// until that comes its rows stay history. A hub that begins to lead does
// the same for every cluster: what the last leader heard and did not
// write is asked again. A hub that does not lead keeps marks only.
// A removal (a workload that left a cluster) heard and not written (the
// leader stopped first, or the hub restarted) leaves a stored row no
// report replaces: once a cluster's whole status has come, its stored
// rows of workloads it has no mark of are dropped (read, sweep, when it
// first comes and when a hub begins to lead). A deregistered cluster is
// forgotten and its rows dropped. Names no workload has are forgotten on
// every hub.
//
// Writes go in batches of 20 workloads every FlushEvery, only for
// workloads whose folded status changed.
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

	mu sync.Mutex
	// pending are the reports taken and not folded yet: workload ->
	// cluster -> report (nil: the workload left the cluster).
	pending map[string]map[string]*protocol.WorkloadStatus
	// reported is what each cluster reports: cluster -> workload -> the
	// mark of its last report.
	reported map[string]map[string]mark
	dirty    map[string]bool
	judged   map[string]string // cluster -> the health its reports were last folded under
	led      bool              // whether this hub led at its last RunOnce
	term     int64             // the leader term it led in then
	// whole are the clusters whose whole status this hub has heard: its
	// marks name every workload they report, so a stored row of one
	// without a mark is of a workload it left (a removal heard and never
	// written: the last leader stopped first, or this hub restarted).
	// sweep are those whose stored rows are to be checked for such rows.
	whole, sweep map[string]bool
	seed         maphash.Seed // of the reports' fingerprints
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
	f := &StatusFolder{store: store, health: health, log: log, now: now, every: every, pending: map[string]map[string]*protocol.WorkloadStatus{}, reported: map[string]map[string]mark{},
		seed: maphash.MakeSeed(), whole: map[string]bool{}, sweep: map[string]bool{},
		dirty: map[string]bool{}, judged: map[string]string{}, seen: map[problemKey]int32{}, heard: map[string]time.Time{}, leader: lead,
		images: map[string]map[string]protocol.ImagePresence{}, imageEvents: map[string][]imageEvent{},
		streams: map[string]*statusStream{}, asked: map[string]time.Time{}}
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
	sums := f.fingerprints(r.Workloads)
	lost := f.lost(r.Cluster)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heard[r.Cluster] = f.now().UTC().Truncate(time.Millisecond)
	delete(f.streams, r.Cluster) // a whole report: deltas resume after a resend
	seen := make(map[string]bool, len(r.Workloads))
	for i, ws := range r.Workloads {
		seen[ws.Workload] = true
		f.putLocked(r.Cluster, ws, sums[i], lost)
	}
	// A workload the cluster no longer reports has left it. Only the
	// cluster's own last report is looked at: going over every workload
	// for every report made each report cost the whole fleet's workloads.
	f.dropUnseenLocked(r.Cluster, seen)
	f.heardWholeLocked(r.Cluster)
	f.observeImagesLocked(r.Cluster, r.Images)
}

// heardWholeLocked notes that a cluster's whole status came: the first
// time, its stored rows are checked against its marks.
func (f *StatusFolder) heardWholeLocked(cluster string) {
	if !f.whole[cluster] {
		f.whole[cluster] = true
		f.sweep[cluster] = true
	}
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
	sums := f.fingerprints(d.Workloads)
	lost := f.lost(d.Cluster)
	f.mu.Lock()
	st := f.streams[d.Cluster]
	if !d.Reset && (st == nil || st.session != d.Session || d.Seq != st.seq+1) {
		ask := f.askDueLocked(d.Cluster)
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
	for i, ws := range d.Workloads {
		f.putLocked(d.Cluster, ws, sums[i], lost)
		if st.resending != nil {
			st.resending[ws.Workload] = true
		}
	}
	for _, w := range d.Removed {
		if _, ok := f.reported[d.Cluster][w]; ok {
			f.removeLocked(d.Cluster, w)
		}
	}
	if st.resending != nil && !d.More {
		f.dropUnseenLocked(d.Cluster, st.resending)
		st.resending = nil
		f.heardWholeLocked(d.Cluster)
	}
	if d.ImagesSet {
		f.observeImagesLocked(d.Cluster, d.Images)
	}
}

// askDueLocked says whether a cluster may be asked for its whole status
// now (at most once a second), and notes that it is.
func (f *StatusFolder) askDueLocked(cluster string) bool {
	if f.now().Sub(f.asked[cluster]) < time.Second {
		return false
	}
	f.asked[cluster] = f.now()
	return true
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

// mark is what the folder keeps of a cluster's last report of a
// workload: its ready replicas and its fingerprint (0: fold the next
// report whatever it says), and whether its row is history (the report
// came, or its row was folded, while the cluster was Unreachable): a
// report that says the same once the cluster is back is folded, live.
type mark struct {
	sum     uint64
	ready   int32
	history bool
}

// lost says whether cluster is Unreachable now (the monitor's live
// health, asked outside f.mu).
func (f *StatusFolder) lost(cluster string) bool {
	return f.health != nil && f.health(cluster) == api.HealthUnreachable
}

// fingerprints are the reports' fingerprints (WorkloadStatus.Hash).
// Outside f.mu: a whole status is thousands of them.
func (f *StatusFolder) fingerprints(reports []protocol.WorkloadStatus) []uint64 {
	out := make([]uint64, len(reports))
	var h maphash.Hash
	h.SetSeed(f.seed)
	for i := range reports {
		h.Reset()
		reports[i].Hash(&h)
		out[i] = h.Sum64()
	}
	return out
}

// forget drops every cluster's report of a workload the store does not
// hold (deleted meanwhile, or named by a member that made it up: a delta
// adds workloads without replacing the rest, so names no write finds
// must not pile up).
func (f *StatusFolder) forget(w string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ws := range f.reported {
		delete(ws, w)
	}
	delete(f.pending, w)
	delete(f.images, w)
	delete(f.dirty, w)
	for _, st := range f.streams {
		delete(st.resending, w)
	}
}

// existing keeps of names (workloads some report named since the last
// pass) those the store holds, and forgets the others: on every hub, so
// that a member naming ever new workloads grows no hub's memory. A read
// that fails keeps them all (the leader's writes then find them gone).
func (f *StatusFolder) existing(ctx context.Context, names []string) ([]string, error) {
	found, err := f.store.WorkloadsAmong(ctx, names)
	if err != nil {
		return names, fmt.Errorf("fold status: %w", err)
	}
	return slices.DeleteFunc(names, func(w string) bool {
		if !found[w] {
			f.forget(w)
		}
		return !found[w]
	}), nil
}

// putLocked takes one workload's status from cluster (sum: its
// fingerprint; lost: the cluster is Unreachable): pending until folded,
// unless it says what the cluster's last report of the workload said
// and its row is history, or live, as the last one's.
func (f *StatusFolder) putLocked(cluster string, ws protocol.WorkloadStatus, sum uint64, lost bool) {
	byWorkload := f.reported[cluster]
	if byWorkload == nil {
		byWorkload = map[string]mark{}
		f.reported[cluster] = byWorkload
	}
	if m, ok := byWorkload[ws.Workload]; ok && m.sum != 0 && m.sum == sum && m.history == lost {
		return
	}
	byWorkload[ws.Workload] = mark{sum: sum, ready: ws.Ready, history: lost}
	f.pendLocked(ws.Workload, cluster, &ws)
}

// pendLocked keeps a report (nil: the workload left the cluster) until
// folded.
func (f *StatusFolder) pendLocked(w, cluster string, ws *protocol.WorkloadStatus) {
	byCluster := f.pending[w]
	if byCluster == nil {
		byCluster = map[string]*protocol.WorkloadStatus{}
		f.pending[w] = byCluster
	}
	byCluster[cluster] = ws
	f.dirty[w] = true
}

// removeLocked forgets a workload's status from cluster: it left.
func (f *StatusFolder) removeLocked(cluster, w string) {
	delete(f.reported[cluster], w)
	f.pendLocked(w, cluster, nil)
}

// dropUnseenLocked forgets the workloads cluster reported before and not
// in seen.
func (f *StatusFolder) dropUnseenLocked(cluster string, seen map[string]bool) {
	for w := range f.reported[cluster] {
		if !seen[w] {
			f.removeLocked(cluster, w)
		}
	}
}

var foldActor = pgstore.Actor{Name: "system:status"}

// RunOnce writes the folded status of every changed workload (on the
// leader only; the others keep their marks, and drop the reports they
// take: the leader folds them).
func (f *StatusFolder) RunOnce(ctx context.Context) (int, error) {
	if !f.leader.IsLeader() {
		f.mu.Lock()
		f.led = false
		names := slices.Collect(maps.Keys(f.dirty))
		clear(f.pending)
		clear(f.dirty)
		clear(f.imageEvents)
		f.mu.Unlock()
		_, err := f.existing(ctx, names)
		return 0, err
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
	var ask []string
	term := f.leader.Epoch()
	// The clusters (their regions): a cluster the list does not hold and
	// that has not reported since it was read is deregistered.
	listedAt := f.now().UTC().Truncate(time.Millisecond)
	regions, listed := f.regions(ctx)
	f.mu.Lock()
	if !f.led || term != f.term {
		// Leading now (a term lost and another won between two passes
		// too): what the last leader heard and did not write, this hub
		// took and dropped, and what it wrote is not what the marks say.
		// Every cluster's next report is folded, and each is asked for
		// its whole status.
		f.led, f.term = true, term
		clear(f.judged)
		for c := range f.reported {
			f.unmarkLocked(c)
			ask = append(ask, c)
		}
		// The last leader may have heard a cluster leave a workload and
		// not written it: each cluster's rows are checked against its
		// marks when its whole status, asked for now, comes (not before:
		// a report this hub missed would take a row away meanwhile).
		clear(f.whole)
	}
	// A cluster that turned Unreachable (or came back) changes what its
	// reports count for: fold its workloads again. One back from
	// Unreachable has history in its stored rows: its next reports are
	// folded, and it is asked for its whole status.
	for c, ws := range f.reported {
		if len(ws) == 0 {
			continue
		}
		h := healthOf(c)
		if !refold(f.judged[c], h) {
			continue
		}
		for w, m := range ws {
			f.dirty[w] = true
			if h == api.HealthUnreachable {
				m.history = true // folded into history now
				ws[w] = m
			}
		}
		if f.judged[c] == api.HealthUnreachable {
			f.unmarkLocked(c)
			ask = append(ask, c)
		}
	}
	for c, h := range health {
		f.judged[c] = h
	}
	if listed {
		for c := range f.reported {
			if _, ok := regions[c]; !ok && f.heard[c].Before(listedAt) {
				f.forgetClusterLocked(c) // its rows go with the sweep's folds
			}
		}
	}
	ask = slices.DeleteFunc(ask, func(c string) bool { return !f.askDueLocked(c) })
	names := slices.Sorted(maps.Keys(f.dirty))
	clear(f.dirty)
	heard := maps.Clone(f.heard)
	sweep := slices.Sorted(maps.Keys(f.sweep))
	clear(f.sweep)
	for k := range f.seen {
		if _, ok := f.reported[k.cluster][k.workload]; !ok {
			delete(f.seen, k)
		}
	}
	f.mu.Unlock()
	for _, c := range ask {
		f.askWhole(c)
	}
	var errs []error
	if more, err := f.swept(ctx, sweep); err != nil {
		errs = append(errs, err)
	} else if len(more) > 0 {
		names = slices.Compact(slices.Sorted(slices.Values(append(names, more...))))
	}
	names, err := f.existing(ctx, names)
	if err != nil {
		errs = append(errs, err)
	}

	// Batches of 20 workloads per transaction: one commit per batch, not
	// per workload, and the rows' locks (and the watch horizon) not held
	// long; each batch's reports are taken from pending as it begins.
	written := 0
	for len(names) > 0 {
		b := f.take(names[:min(len(names), 20)], healthOf)
		names = names[len(b.names):]
		if f.writeBatch(ctx, b, b.names, regions, listed, heard, healthOf) == nil {
			written += len(b.names)
			continue
		}
		// One bad workload (deleted meanwhile) must not hold the others.
		for _, w := range b.names {
			switch err := f.writeBatch(ctx, b, []string{w}, regions, listed, heard, healthOf); {
			case err == nil:
				written++
			case api.ErrorCode(err) == api.CodeNotFound:
				f.forget(w) // deleted, or never was: no member's report of it is kept
			default:
				errs = append(errs, err)
				f.putBack(b, w) // try again next time
			}
		}
	}
	return written, errors.Join(errs...)
}

// swept names the workloads with a stored row of one of clusters (whose
// whole status this hub has heard, or deregistered) that the cluster does
// not report: the fold drops those rows. Clusters whose rows could not be
// read are swept next time.
func (f *StatusFolder) swept(ctx context.Context, clusters []string) ([]string, error) {
	byCluster, err := f.store.WorkloadsWithClusterRow(ctx, clusters)
	if err != nil {
		f.mu.Lock()
		for _, c := range clusters {
			f.sweep[c] = true
		}
		f.mu.Unlock()
		return nil, fmt.Errorf("fold status: %w", err)
	}
	var out []string
	f.mu.Lock()
	defer f.mu.Unlock()
	for c, names := range byCluster {
		for _, w := range names {
			if _, ok := f.reported[c][w]; !ok {
				out = append(out, w)
			}
		}
	}
	return out, nil
}

// unmarkLocked forgets the fingerprints of a cluster's reports: its next
// report of each workload is folded whatever it says.
func (f *StatusFolder) unmarkLocked(cluster string) {
	for w, m := range f.reported[cluster] {
		m.sum = 0
		f.reported[cluster][w] = m
	}
}

// foldBatch is what one batch of workloads folds: each one's reports
// taken from pending (by cluster; nil: left it), its image rows, the
// warnings and image events to record.
type foldBatch struct {
	names       []string
	reports     map[string]map[string]*protocol.WorkloadStatus
	left        map[string]map[string]bool // workload -> the clusters whose whole status does not report it
	images      map[string][]api.ClusterImage
	imageEvents map[string][]imageEvent
	warnings    map[string][]warning
}

// take takes the batch's workloads' pending reports, and turns their
// problems into warnings.
func (f *StatusFolder) take(names []string, healthOf func(string) string) *foldBatch {
	b := &foldBatch{names: names, reports: map[string]map[string]*protocol.WorkloadStatus{}, left: map[string]map[string]bool{}, images: map[string][]api.ClusterImage{},
		imageEvents: map[string][]imageEvent{}, warnings: map[string][]warning{}}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range names {
		b.reports[w] = f.pending[w]
		delete(f.pending, w)
		for c := range f.whole {
			if _, ok := f.reported[c][w]; !ok {
				if b.left[w] == nil {
					b.left[w] = map[string]bool{}
				}
				b.left[w][c] = true
			}
		}
		b.images[w] = f.imageRowsLocked(w)
		if evs, ok := f.imageEvents[w]; ok {
			b.imageEvents[w] = evs
			delete(f.imageEvents, w)
		}
		for c, st := range b.reports[w] {
			if st == nil || healthOf(c) == api.HealthUnreachable {
				continue // history: nothing happens there the hub could know of
			}
			b.warnings[w] = append(b.warnings[w], f.newWarningsLocked(w, c, st.Problems)...)
		}
	}
	return b
}

// putBack returns a workload's taken reports to pending where no newer
// one came meanwhile, to be folded next time.
func (f *StatusFolder) putBack(b *foldBatch, w string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c, st := range b.reports[w] {
		if _, newer := f.pending[w][c]; !newer {
			f.pendLocked(w, c, st)
		}
	}
	f.imageEvents[w] = append(b.imageEvents[w], f.imageEvents[w]...)
	f.dirty[w] = true
}

// writeBatch folds and writes names (of b) in one fenced transaction.
// A stored row of a cluster regions does not hold (listed: the clusters
// were read) is dropped: the cluster was deregistered.
func (f *StatusFolder) writeBatch(ctx context.Context, b *foldBatch, names []string, regions map[string]string, listed bool, heard map[string]time.Time, healthOf func(string) string) error {
	write := func(tx *pgstore.Tx, w string) error {
		_, err := tx.Mutate(ctx, "status", "Workload", w, func(cur *pgstore.Record) error {
			var st api.WorkloadStatus
			_ = json.Unmarshal(cur.Status, &st)
			rows := mergeRows(st.Clusters, b.reports[w], func(c string) bool {
				_, ok := regions[c]
				return b.left[w][c] || (listed && !ok)
			})
			folded := fold(rows, regions, healthOf, cur.Meta.Generation, st.Placement, st.Conditions, f.now())
			folded.Placement, folded.Rollout = st.Placement, st.Rollout // the placer's parts stay
			folded.Images = b.images[w]
			stampClusters(folded.Clusters, st.Clusters, heard, healthOf)
			out, err := json.Marshal(folded)
			cur.Status = out
			return err
		})
		if err != nil {
			return err
		}
		for _, wn := range b.warnings[w] {
			msg := fmt.Sprintf("%d replica(s) in %s: %s", wn.Replicas, wn.cluster, wn.Message)
			if wn.Replica != "" {
				msg = fmt.Sprintf("%s (replica %s on node %s; %d replica(s) in %s)", wn.Message, wn.Replica, wn.Node, wn.Replicas, wn.cluster)
			}
			if err := events.Dedup(ctx, tx, f.now(), api.ObjectReference{Kind: "Workload", Name: w}, api.EventWarning, wn.Reason, wn.cluster, msg, "member/"+wn.cluster, wn.add); err != nil {
				return err
			}
			f.warned.Add(ctx, int64(wn.add), metric.WithAttributes(attribute.String("reason", wn.Reason)))
		}
		return f.recordImageEvents(ctx, tx, w, b.imageEvents[w])
	}
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

// mergeRows is a workload's cluster rows: the stored ones, with the
// clusters that reported since replaced (or gone, where it left them),
// and without those of the clusters drop says (their whole status does
// not report the workload, or they were deregistered).
func mergeRows(stored []api.ClusterReplicas, reports map[string]*protocol.WorkloadStatus, drop func(cluster string) bool) []api.ClusterReplicas {
	rows := make([]api.ClusterReplicas, 0, len(stored)+len(reports))
	for _, r := range stored {
		if _, ok := reports[r.Cluster]; !ok && !drop(r.Cluster) {
			rows = append(rows, r)
		}
	}
	for c, r := range reports {
		if r != nil {
			rows = append(rows, reportRow(c, r))
		}
	}
	return rows
}

// reportRow is a cluster's report as its row of status.clusters.
func reportRow(cluster string, r *protocol.WorkloadStatus) api.ClusterReplicas {
	return api.ClusterReplicas{Cluster: cluster, Epoch: r.Epoch, Generation: r.Generation,
		Desired: r.Desired, Scheduled: r.Scheduled, Ready: r.Ready, Updated: r.Updated, Restarts: r.Restarts, UpdatedReady: r.UpdatedReady,
		UpdatedRestarts: r.UpdatedRestarts, Present: r.Present, Pending: r.Pending, Conditions: r.Conditions, Data: r.Data,
		States: r.States, Examples: replicaInfos(cluster, r.Examples), Problems: replicaProblems(r.Problems)}
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

// regions maps cluster names to their region label (listed: they were
// read; a failed read lists none).
func (f *StatusFolder) regions(ctx context.Context) (out map[string]string, listed bool) {
	out = map[string]string{}
	res, err := f.store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return out, false
	}
	for _, c := range res.Items {
		out[c.Meta.Name] = c.Meta.Labels[api.LabelRegion]
	}
	return out, true
}

// forgetClusterLocked forgets everything of a deregistered cluster, and
// has its stored rows swept (their workloads folded without them).
func (f *StatusFolder) forgetClusterLocked(c string) {
	delete(f.reported, c)
	delete(f.judged, c)
	delete(f.heard, c)
	delete(f.streams, c)
	delete(f.asked, c)
	delete(f.whole, c)
	for _, byCluster := range f.images {
		delete(byCluster, c)
	}
	for _, byCluster := range f.pending {
		delete(byCluster, c)
	}
	f.sweep[c] = true
}

// fold computes a workload's status from its clusters' rows (mergeRows).
// A row of an Unreachable (or deregistered) cluster is history: the
// cluster is listed with a Reporting=False condition and counts for
// nothing, neither ready (the hub cannot know they are) nor desired (the
// placement has moved them, or will), so a lost cluster never shows as
// serving, and a workload whose replicas failed over is Available again.
// A history row stays one until its cluster reports the workload again.
//
// Available compares the ready replicas with what the placement wants
// (every cluster's share, and whatever it could not place), not with
// what the reports say: replicas of a lost cluster are still wanted until
// they run elsewhere.
func fold(rows []api.ClusterReplicas, regions map[string]string, health func(string) string, generation int64,
	placed *api.PlacementStatus, conds []api.Condition, now time.Time) api.WorkloadStatus {
	var st api.WorkloadStatus
	var desired int32
	observed := int64(-1)
	t := now.UTC().Truncate(time.Millisecond)
	for _, cr := range rows {
		cr.Region, cr.ClusterHealth = regions[cr.Cluster], ""
		history := isHistory(cr)
		if health(cr.Cluster) == api.HealthUnreachable && !history {
			cr.Conditions = append(slices.Clone(cr.Conditions), api.Condition{Type: "Reporting", Status: "False", Reason: reasonClusterUnreachable,
				Message: fmt.Sprintf("the cluster is Unreachable (or gone); it last reported %d ready of %d desired", cr.Ready, cr.Desired), LastTransitionTime: &t})
			cr.Ready, cr.Updated = 0, 0
			cr.States, cr.Examples, cr.Problems = staleReplicas(cr.States), staleExamples(cr.Examples), nil
			history = true
		}
		st.Clusters = append(st.Clusters, cr)
		if history {
			continue // counts for nothing: neither ready nor desired
		}
		desired += cr.Desired
		st.Replicas += cr.Scheduled
		st.ReadyReplicas += cr.Ready
		st.AvailableReplicas += cr.Ready
		if cr.Generation == generation {
			st.UpdatedReplicas += cr.Updated
		}
		if observed < 0 || cr.Generation < observed {
			observed = cr.Generation
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
	case len(rows) == 0:
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

// reasonClusterUnreachable marks a history row (fold).
const reasonClusterUnreachable = "ClusterUnreachable"

// isHistory says whether a cluster row is history: folded while its
// cluster was Unreachable, and not reported since.
func isHistory(cr api.ClusterReplicas) bool {
	return slices.ContainsFunc(cr.Conditions, func(c api.Condition) bool {
		return c.Type == "Reporting" && c.Status == "False" && c.Reason == reasonClusterUnreachable
	})
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
	for c, byWorkload := range f.reported {
		add := func(w string, m mark) {
			if m.ready > 0 {
				found = append(found, heardReady{w, c, m.ready})
				heard[c] = f.heard[c]
			}
		}
		if len(workloads) < len(byWorkload) {
			for w := range workloads {
				if m, ok := byWorkload[w]; ok {
					add(w, m)
				}
			}
			continue
		}
		for w, m := range byWorkload {
			if workloads[w] {
				add(w, m)
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
