package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// feedSize is how many recent events the console keeps for its feed.
const feedSize = 100

// fleet is the console's in-memory picture of clusters, workload
// summaries, drill summaries and recent events. It follows the store's change log (woken
// by the notifier), so pages and live updates never scan the database,
// and samples the hub's live cluster health, which changes without
// store writes. Summaries are immutable once made: readers hold them
// without locks.
type fleet struct {
	store    *pgstore.Store
	notifier *pgstore.Notifier
	overlay  func(*api.Cluster)
	now      func() time.Time
	log      *slog.Logger
	every    time.Duration

	mu        sync.RWMutex
	loaded    bool
	clusters  map[string]*api.Cluster // as stored
	workloads map[string]*workloadSummary
	sorted    []*workloadSummary // by name; nil when it must be rebuilt
	drills    map[string]*drillSummary
	events    []api.Event       // newest last
	liveSig   map[string]string // per cluster, what was last shown live
	changed   chan struct{}     // closed and replaced on every change
	seq       uint64            // bumped on every change
	applied   map[string]int64  // per kind, the last resourceVersion read

	wg sync.WaitGroup
}

// workloadSummary is what lists, counts and the overview need of a
// workload.
type workloadSummary struct {
	Name       string
	Labels     map[string]string
	Created    time.Time
	Driver     string
	Desired    int32
	Ready      int32
	Health     api.WorkloadHealth
	Regions    []api.RegionReplicas
	Placed     map[string]int32         // replicas per cluster, as placed
	PerCluster map[string]clusterCounts // as reported
	search     string                   // lower-case name and labels
}

// clusterCounts is what the console's lists show of a cluster's report of
// a workload (the whole row, with its examples, stays in the store: the
// summaries of every workload live in memory).
type clusterCounts struct{ Desired, Ready int32 }

func summarize(w *api.Workload) *workloadSummary {
	s := &workloadSummary{
		Name: w.Metadata.Name, Labels: w.Metadata.Labels, Driver: w.Spec.Template.Driver,
		Desired: w.DesiredReplicas(), Ready: w.Status.ReadyReplicas, Health: w.Health(),
		Regions: api.RegionSplit(w.Status.Clusters), PerCluster: make(map[string]clusterCounts, len(w.Status.Clusters)),
	}
	if w.Metadata.CreationTimestamp != nil {
		s.Created = *w.Metadata.CreationTimestamp
	}
	if p := w.Status.Placement; p != nil {
		s.Placed = p.Clusters
	}
	for _, c := range w.Status.Clusters {
		s.PerCluster[c.Cluster] = clusterCounts{Desired: c.Desired, Ready: c.Ready}
	}
	var b strings.Builder
	b.WriteString(w.Metadata.Name)
	for k, v := range w.Metadata.Labels {
		b.WriteString(" " + k + "=" + v)
	}
	s.search = strings.ToLower(b.String())
	return s
}

// summaryFields is what summarize reads of a workload. A change is
// decoded into it, not into a whole Workload: the template, most of a
// workload's document, is skipped without being built.
type summaryFields struct {
	Metadata api.ObjectMeta `json:"metadata"`
	Spec     struct {
		Replicas  int32                `json:"replicas"`
		Placement *api.PlacementPolicy `json:"placement"`
		Template  struct {
			Driver string `json:"driver"`
		} `json:"template"`
	} `json:"spec"`
	Status api.WorkloadStatus `json:"status"`
}

// workloadOfChange decodes a workload change's object with what
// summarize reads of it filled in (summaryFields).
func workloadOfChange(obj []byte) (*api.Workload, error) {
	var v summaryFields
	if err := json.Unmarshal(obj, &v); err != nil {
		return nil, err
	}
	w := &api.Workload{Metadata: v.Metadata, Status: v.Status}
	w.Spec.Replicas, w.Spec.Placement, w.Spec.Template.Driver = v.Spec.Replicas, v.Spec.Placement, v.Spec.Template.Driver
	return w, nil
}

func newFleet(store *pgstore.Store, n *pgstore.Notifier, overlay func(*api.Cluster), now func() time.Time, log *slog.Logger, every time.Duration) *fleet {
	return &fleet{store: store, notifier: n, overlay: overlay, now: now, log: log, every: every,
		clusters: map[string]*api.Cluster{}, workloads: map[string]*workloadSummary{}, drills: map[string]*drillSummary{}, liveSig: map[string]string{},
		changed: make(chan struct{}), applied: map[string]int64{}}
}

// start follows the change log of each kind and samples live health,
// until done closes or ctx ends.
func (f *fleet) start(ctx context.Context, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		<-done
		cancel()
	}()
	first := make(chan struct{}, len(followedKinds))
	for _, kind := range followedKinds {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.follow(ctx, kind, first)
		}()
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.sampleLive(ctx)
	}()
	// The cache is loaded once every kind has had its first load, however
	// long that takes (the database may be slow or down at the start).
	loaded := make(chan struct{})
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for range followedKinds {
			select {
			case <-first:
			case <-ctx.Done():
				return
			}
		}
		f.mu.Lock()
		f.loaded = true
		f.bumpLocked()
		f.mu.Unlock()
		close(loaded)
	}()
	// Wait for it, briefly: pages show "loading" until then.
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case <-loaded:
	case <-timeout.C:
	case <-ctx.Done():
	}
}

func (f *fleet) wait() { f.wg.Wait() }

// followedKinds are the kinds the cache keeps.
var followedKinds = []string{"Cluster", "Workload", "Drill", "Event"}

// follow keeps one kind current: a full read, then the change log from
// its version on. When the log was compacted past it, it reads again.
func (f *fleet) follow(ctx context.Context, kind string, first chan<- struct{}) {
	sub := f.notifier.SubscribeChanges(kind)
	defer sub.Close()
	resync := time.NewTicker(5 * time.Second) // a lost notification costs at most this
	defer resync.Stop()
	backoff := 250 * time.Millisecond
	signalled := false
	for ctx.Err() == nil {
		after, err := f.load(ctx, kind)
		if err != nil {
			if ctx.Err() == nil {
				f.log.WarnContext(ctx, "console: loading failed; retrying", "kind", kind, "err", err, "retry_in", backoff)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 250 * time.Millisecond
		if !signalled {
			first <- struct{}{}
			signalled = true
		}
		// Woken, it needs only the changes below the horizon its
		// wake-up passed, which one read shared with every reader woken
		// with it brings (Store.ChangesBelow); after a resync, all that
		// committed before.
		passed := int64(0)
		for ctx.Err() == nil {
			changes, err := f.store.ChangesBelow(ctx, kind, after, 500, passed)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, pgstore.ErrGone) {
					f.log.WarnContext(ctx, "console: reading changes failed", "kind", kind, "err", err)
				}
				break // read everything again
			}
			if len(changes) > 0 {
				f.apply(kind, changes)
				after = changes[len(changes)-1].ResourceVersion
				if len(changes) == 500 {
					continue
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-sub.C:
				passed = sub.Passed()
			case <-resync.C:
				passed = 0
			}
		}
	}
}

// load reads every object of kind and replaces the cache's copy.
func (f *fleet) load(ctx context.Context, kind string) (int64, error) {
	res, err := f.store.List(ctx, kind, pgstore.ListOptions{Limit: -1})
	if err != nil {
		return 0, err
	}
	var rv int64
	if err := json.Unmarshal([]byte(res.ResourceVersion), &rv); err != nil {
		return 0, err
	}
	defer func() {
		f.mu.Lock()
		f.applied[kind] = rv
		f.bumpLocked()
		f.mu.Unlock()
	}()
	switch kind {
	case "Cluster":
		m := map[string]*api.Cluster{}
		for _, rec := range res.Items {
			c := &api.Cluster{}
			if rec.Decode(c) == nil && c.Metadata.DeletionTimestamp == nil {
				m[c.Metadata.Name] = c
			}
		}
		f.mu.Lock()
		f.clusters = m
		f.bumpLocked()
		f.mu.Unlock()
	case "Workload":
		m := map[string]*workloadSummary{}
		for _, rec := range res.Items {
			w := &api.Workload{}
			if rec.Decode(w) == nil {
				m[w.Metadata.Name] = summarize(w)
			}
		}
		f.mu.Lock()
		f.workloads, f.sorted = m, nil
		f.bumpLocked()
		f.mu.Unlock()
	case "Drill":
		m := map[string]*drillSummary{}
		for _, rec := range res.Items {
			d := &api.Drill{}
			if rec.Decode(d) == nil {
				m[d.Metadata.Name] = summarizeDrill(d)
			}
		}
		f.mu.Lock()
		f.drills = m
		f.bumpLocked()
		f.mu.Unlock()
	case "Event":
		evs := make([]api.Event, 0, len(res.Items))
		for _, rec := range res.Items {
			var e api.Event
			if rec.Decode(&e) == nil {
				evs = append(evs, e)
			}
		}
		sortEvents(evs)
		if len(evs) > feedSize {
			evs = evs[len(evs)-feedSize:]
		}
		f.mu.Lock()
		f.events = evs
		f.bumpLocked()
		f.mu.Unlock()
	}
	return rv, nil
}

func sortEvents(evs []api.Event) {
	slices.SortStableFunc(evs, func(a, b api.Event) int { return eventTime(a).Compare(eventTime(b)) })
}

func eventTime(e api.Event) time.Time {
	if e.EventTime != nil {
		return *e.EventTime
	}
	if e.Metadata.CreationTimestamp != nil {
		return *e.Metadata.CreationTimestamp
	}
	return time.Time{}
}

func (f *fleet) apply(kind string, changes []pgstore.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range changes {
		// Read up to here, whatever the change turns out to be (the
		// branches below may skip it).
		f.applied[kind] = ch.ResourceVersion
		switch kind {
		case "Cluster":
			var c api.Cluster
			if json.Unmarshal(ch.Object, &c) != nil {
				continue
			}
			if ch.Type == api.Deleted || c.Metadata.DeletionTimestamp != nil {
				delete(f.clusters, ch.Name)
				delete(f.liveSig, ch.Name)
			} else {
				f.clusters[ch.Name] = &c
			}
		case "Workload":
			if ch.Type == api.Deleted {
				delete(f.workloads, ch.Name)
				f.sorted = nil
				continue
			}
			w, err := workloadOfChange(ch.Object)
			if err != nil {
				continue
			}
			if _, ok := f.workloads[ch.Name]; !ok {
				f.sorted = nil
			} else if f.sorted != nil {
				i, _ := slices.BinarySearchFunc(f.sorted, ch.Name, func(s *workloadSummary, name string) int { return strings.Compare(s.Name, name) })
				f.sorted = slices.Clone(f.sorted) // readers may hold the old slice
				f.sorted[i] = summarize(w)
				f.workloads[ch.Name] = f.sorted[i]
				continue
			}
			f.workloads[ch.Name] = summarize(w)
		case "Drill":
			var d api.Drill
			if ch.Type == api.Deleted {
				delete(f.drills, ch.Name)
			} else if json.Unmarshal(ch.Object, &d) == nil {
				f.drills[ch.Name] = summarizeDrill(&d)
			}
		case "Event":
			if ch.Type != api.Added {
				continue
			}
			var e api.Event
			if json.Unmarshal(ch.Object, &e) != nil {
				continue
			}
			evs := append(slices.Clone(f.events), e)
			sortEvents(evs)
			if len(evs) > feedSize {
				evs = evs[len(evs)-feedSize:]
			}
			f.events = evs
		}
	}
	f.bumpLocked()
}

// caughtUp waits until the cache has read kind up to resourceVersion rv,
// or ctx ends: a page drawn after a change then shows the change.
func (f *fleet) caughtUp(ctx context.Context, kind string, rv int64) bool {
	for {
		f.mu.RLock()
		done, changed := f.applied[kind] >= rv, f.changed
		f.mu.RUnlock()
		if done {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
	}
}

// bumpLocked announces a change to everyone waiting.
func (f *fleet) bumpLocked() {
	f.seq++
	close(f.changed)
	f.changed = make(chan struct{})
}

// sampleLive compares each cluster's live health (which the hub's
// monitor changes in memory between store writes) with what was last
// shown, and announces a change when it moved: a cluster going
// Unreachable shows within one sample of the monitor noticing.
func (f *fleet) sampleLive(ctx context.Context) {
	tick := time.NewTicker(f.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		f.mu.RLock()
		names := make([]string, 0, len(f.clusters))
		stored := make([]*api.Cluster, 0, len(f.clusters))
		for n, c := range f.clusters {
			names = append(names, n)
			stored = append(stored, c)
		}
		f.mu.RUnlock()
		sigs := make(map[string]string, len(names))
		for i, c := range stored {
			sigs[names[i]] = liveSignature(f.live(c))
		}
		f.mu.Lock()
		moved := false
		for n, s := range sigs {
			if f.liveSig[n] != s {
				f.liveSig[n], moved = s, true
			}
		}
		if moved {
			f.bumpLocked()
		}
		f.mu.Unlock()
	}
}

// live is a stored cluster with the hub's live view laid over it.
func (f *fleet) live(stored *api.Cluster) *api.Cluster {
	c := *stored
	f.overlay(&c)
	return &c
}

// liveSignature is what a page shows of a cluster's live state; the
// heartbeat age counts in whole seconds once the cluster is not Ready.
func liveSignature(c *api.Cluster) string {
	var b strings.Builder
	b.WriteString(c.HealthOrUnknown())
	if cp := c.Status.Capacity; cp != nil {
		b.WriteString(strings.Join([]string{"", itoa(cp.NodesReady), itoa(cp.NodesTotal), itoa(int(cp.CPUAllocated / 10)), itoa(int(cp.MemoryAllocated >> 20)), itoa(cp.Replicas), itoa(cp.ReplicasReady)}, "/"))
	}
	if c.Status.Health != api.HealthReady && c.Status.HeartbeatAgeSeconds != nil {
		b.WriteString("/" + itoa(int(*c.Status.HeartbeatAgeSeconds)))
	}
	return b.String()
}

// snapshot is one consistent view of the fleet for a page.
type snapshot struct {
	Seq       uint64
	Loaded    bool
	At        time.Time
	Clusters  []*api.Cluster // live, by region then name
	Workloads []*workloadSummary
	Drills    []*drillSummary // newest first
	Events    []api.Event     // newest first
}

// snapshot reads the fleet as it is now, with live cluster health.
func (f *fleet) snapshot() snapshot {
	f.mu.Lock()
	if f.sorted == nil {
		f.sorted = make([]*workloadSummary, 0, len(f.workloads))
		for _, w := range f.workloads {
			f.sorted = append(f.sorted, w)
		}
		slices.SortFunc(f.sorted, func(a, b *workloadSummary) int { return strings.Compare(a.Name, b.Name) })
	}
	s := snapshot{Seq: f.seq, Loaded: f.loaded, At: f.now(), Workloads: f.sorted}
	stored := make([]*api.Cluster, 0, len(f.clusters))
	for _, c := range f.clusters {
		stored = append(stored, c)
	}
	evs := f.events
	s.Drills = make([]*drillSummary, 0, len(f.drills))
	for _, d := range f.drills {
		s.Drills = append(s.Drills, d)
	}
	f.mu.Unlock()
	slices.SortFunc(s.Drills, func(a, b *drillSummary) int {
		return cmp.Or(b.Created.Compare(a.Created), strings.Compare(a.Name, b.Name))
	})
	for _, c := range stored {
		s.Clusters = append(s.Clusters, f.live(c))
	}
	slices.SortFunc(s.Clusters, func(a, b *api.Cluster) int {
		return cmp.Or(strings.Compare(regionOf(a), regionOf(b)), strings.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	s.Events = make([]api.Event, len(evs))
	for i := range evs {
		s.Events[i] = evs[len(evs)-1-i]
	}
	return s
}

// changes is closed at the next change.
func (f *fleet) changes() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

func regionOf(c *api.Cluster) string {
	if r := c.Metadata.Labels[api.LabelRegion]; r != "" {
		return r
	}
	return "(no region)"
}
