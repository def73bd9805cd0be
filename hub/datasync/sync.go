package datasync

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
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/loop"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// Store is what a pass reads.
type Store interface {
	List(ctx context.Context, kind string, opts pgstore.ListOptions) (*pgstore.ListResult, error)
	Changes(ctx context.Context, kind string, after int64, limit int) ([]pgstore.Change, error)
	PlacementsFor(ctx context.Context, workloads []string) ([]pgstore.Placement, error)
	RevisionsOf(ctx context.Context, workloads []string) (map[string][]pgstore.RevisionRow, error)
	NewestDataVersions(ctx context.Context) (map[string]int64, error)
	ConfigValueAt(ctx context.Context, uid string, version int64) (json.RawMessage, int64, error)
	PruneDataVersions(ctx context.Context) (int64, error)
}

// Values reads a Secret's values at a version by the object's uid
// (secrets.Reader has it).
type Values interface {
	ReadAt(ctx context.Context, uid string, version int64) (api.DataSpec, error)
}

// Bus sends requests to members (*natsbus.Bus has it).
type Bus interface {
	Request(ctx context.Context, cluster, subject string, data []byte) ([]byte, error)
}

// Health is the live cluster health (*members.Monitor has it).
type Health interface {
	Live(cluster string) (failover.Live, bool)
}

// Syncer is the controller.
type Syncer struct {
	store  Store
	values Values
	bus    Bus
	health Health
	lead   leader.Leadership
	log    *slog.Logger
	every  time.Duration
	wake   chan struct{}
	loop   loop.Loop

	// revisions are the pins of each workload's revisions, read again
	// only when its uid or generation changes.
	revisions map[string]revisionsOf
	// workloads follows every workload (read whole at first and every
	// relistEvery, else only what changed since the last pass: a pass is
	// woken by every status write); specs is what each one's spec says
	// as last decoded, kept while its uid and generation hold, and data
	// the workloads that use configs or secrets, with the status parts
	// Need reads. pass holds one RunOnce at a time.
	pass      sync.Mutex
	workloads *pgstore.Follow
	specs     map[string]cachedSpec
	data      map[string]api.Workload
	// passes counts passes, for pruning every pruneEvery of them.
	passes int

	mu   sync.Mutex
	sent map[string]int64 // items sent by the last pass, for tests and metrics
	// empty are the clusters last known to hold nothing: while they need
	// nothing either, a pass does not ask them.
	empty map[string]bool
}

// New returns a syncer; every is the resync period (default 2 s).
func New(store Store, values Values, bus Bus, health Health, lead leader.Leadership, log *slog.Logger, every time.Duration) *Syncer {
	if every <= 0 {
		every = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if lead == nil {
		lead = leader.Sole{}
	}
	return &Syncer{store: store, values: values, bus: bus, health: health, lead: lead, log: log, every: every, wake: make(chan struct{}, 1), empty: map[string]bool{}, revisions: map[string]revisionsOf{},
		workloads: pgstore.NewFollow(store, "Workload", relistEvery, nil), specs: map[string]cachedSpec{}, data: map[string]api.Workload{}}
}

// Start runs passes until Stop or ctx ends.
func (s *Syncer) Start(ctx context.Context) {
	s.Wake()
	s.loop.Start(ctx, s.log, "configuration delivery pass failed", s.every, s.wake, s.RunOnce)
}

// Stop ends the controller; safe to call twice and before Start.
func (s *Syncer) Stop() { s.loop.Stop() }

// Wake asks for a pass soon.
func (s *Syncer) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// relistEvery is how often a pass reads every workload whole anyway.
const relistEvery = time.Minute

// cachedSpec is what a workload's spec says at one uid and generation
// (the generation moves with every change of the spec): whether it refers
// to configs or secrets, and then the spec.
type cachedSpec struct {
	uid        string
	generation int64
	data       bool
	spec       *api.WorkloadSpec // only with data (a spec is large: one per workload is not kept)
}

// dataStatus is the part of a workload's status delivery reads: which
// revision each cluster is given during a rollout, and whether a
// cluster has settled on its generation.
type dataStatus struct {
	Rollout  *api.RolloutStatus    `json:"rollout"`
	Clusters []api.ClusterReplicas `json:"clusters"`
}

// item is one Config or Secret as the hub holds it.
type item struct {
	kind, name, uid string
	residency       *api.LabelSelector
}

// Revision is one of a workload's template revisions as Need uses it:
// its number, the generation that introduced it and the data versions
// its template pins (api.AnnotationData).
type Revision struct {
	Number, Generation int64
	Pins               map[string]int64
}

// revisionsOf are a workload's revisions as last read.
type revisionsOf struct {
	uid  string
	gen  int64
	revs []Revision
}

// Need is which versions of which items (protocol.DataID -> versions)
// each cluster needs: for each workload it runs (placement rows that are
// not tombstones, with replicas or not: a workload scaled to 0 keeps
// them), the versions pinned by the revision the cluster is given (under
// a progressive rollout, status.rollout names it; else the current
// template); while the cluster is not settled on it (its report is of
// another generation, or not every replica is updated), those of the
// revision before, which its old replicas may still run; and while a
// rollout is under way, those of its stable revision, which a rollback
// returns to. A cluster of a later wave is not sent the new values before
// its wave starts. newest stands in for a reference the template does not
// pin (a workload written before the hub pinned versions).
func Need(placements []pgstore.Placement, workloads map[string]api.Workload, revisions map[string][]Revision, newest map[string]int64) map[string]map[string]map[int64]bool {
	out := map[string]map[string]map[int64]bool{}
	for _, p := range placements {
		if p.Deleted {
			continue
		}
		w, ok := workloads[p.Workload]
		if !ok {
			continue
		}
		refs := w.Spec.DataRefs()
		if len(refs) == 0 {
			continue
		}
		need := out[p.Cluster]
		if need == nil {
			need = map[string]map[int64]bool{}
			out[p.Cluster] = need
		}
		put := func(id string, v int64) {
			if need[id] == nil {
				need[id] = map[int64]bool{}
			}
			need[id][v] = true
		}
		// add puts what a revision pins (an older one may name items the
		// template no longer does).
		add := func(pins map[string]int64) {
			for id, v := range pins {
				put(id, v)
			}
		}
		revs := revisions[p.Workload]
		byNumber := func(n int64) (Revision, bool) {
			for _, r := range revs {
				if r.Number == n {
					return r, true
				}
			}
			return Revision{}, false
		}
		given, givenGen := Revision{Pins: api.ParseDataPins(w.Spec.Template.Annotations[api.AnnotationData])}, w.Metadata.Generation
		if len(revs) > 0 {
			given = revs[len(revs)-1]
		}
		ro := w.Status.Rollout
		if ro != nil && w.Spec.Rollout != nil {
			for _, rc := range ro.Clusters {
				if r, ok := byNumber(rc.Revision); ok && rc.Cluster == p.Cluster {
					given, givenGen = r, r.Generation
					if rc.Generation != 0 {
						givenGen = rc.Generation
					}
				}
			}
		}
		add(given.Pins)
		for _, r := range refs {
			id := protocol.DataID(r.Kind, r.Name)
			if _, pinned := given.Pins[id]; !pinned {
				if v, ok := newest[id]; ok {
					put(id, v)
				}
			}
		}
		settled := false
		for _, cr := range w.Status.Clusters {
			if cr.Cluster == p.Cluster {
				settled = cr.Generation == givenGen && cr.Updated >= cr.Desired && cr.Present <= cr.Desired
			}
		}
		if r, ok := byNumber(given.Number - 1); ok && !settled {
			add(r.Pins)
		}
		underWay := ro != nil && w.Spec.Rollout != nil && ro.Phase != api.RolloutCompleted && ro.Phase != api.RolloutRolledBack
		if underWay {
			if r, ok := byNumber(ro.StableRevision); ok {
				add(r.Pins)
			}
		}
	}
	return out
}

// readRevisions brings s.revisions up to date for the workloads that use
// configs or secrets (oldest revision first), reading the store only for
// a workload whose uid or generation changed since.
func (s *Syncer) readRevisions(ctx context.Context, workloads map[string]api.Workload) (map[string][]Revision, error) {
	out := map[string][]Revision{}
	var stale []string
	for name, w := range workloads {
		if len(w.Spec.DataRefs()) == 0 {
			continue
		}
		if have, ok := s.revisions[name]; ok && have.uid == w.Metadata.UID && have.gen == w.Metadata.Generation {
			out[name] = have.revs
			continue
		}
		stale = append(stale, name)
	}
	if len(stale) > 0 {
		// One statement for all (a secret's write rolls a hundred
		// workloads at once).
		byName, err := s.store.RevisionsOf(ctx, stale)
		if err != nil {
			return nil, err
		}
		for _, name := range stale {
			rows, ok := byName[name]
			if !ok {
				continue // deleted meanwhile
			}
			revs := make([]Revision, 0, len(rows))
			for _, r := range rows {
				var t api.ReplicaTemplate
				if json.Unmarshal(r.Template, &t) == nil {
					revs = append(revs, Revision{Number: r.Number, Generation: r.Generation, Pins: api.ParseDataPins(t.Annotations[api.AnnotationData])})
				}
			}
			w := workloads[name]
			s.revisions[name] = revisionsOf{uid: w.Metadata.UID, gen: w.Metadata.Generation, revs: revs}
			out[name] = revs
		}
	}
	for name := range s.revisions {
		if _, ok := workloads[name]; !ok {
			delete(s.revisions, name)
		}
	}
	return out, nil
}

// RunOnce delivers once (on the leader only), then lets the hub forget
// the older values no kept revision pins any more.
func (s *Syncer) RunOnce(ctx context.Context) error {
	if !s.lead.IsLeader() {
		return nil
	}
	s.pass.Lock()
	defer s.pass.Unlock()
	// The pass's reads go at once (each waits on its own round trips),
	// the workloads' in this goroutine.
	var (
		newest map[string]int64
		items  = map[string]item{}
		labels = map[string]map[string]string{}
		reads  [3]error
		wg     sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if newest, reads[0] = s.store.NewestDataVersions(ctx); reads[0] != nil {
			return
		}
		for _, kind := range []string{"Config", "Secret"} {
			if reads[0] = s.each(ctx, kind, func(rec *pgstore.Record) error {
				it := item{kind: kind, name: rec.Meta.Name, uid: rec.Meta.UID}
				var spec api.DataSpec
				if err := json.Unmarshal(rec.Spec, &spec); err != nil {
					return err
				}
				it.residency = spec.Residency
				items[protocol.DataID(kind, it.name)] = it
				return nil
			}); reads[0] != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		reads[1] = s.each(ctx, "Cluster", func(rec *pgstore.Record) error {
			labels[rec.Meta.Name] = rec.Meta.Labels
			return nil
		})
	}()
	reads[2] = s.followWorkloads(ctx)
	wg.Wait()
	if err := errors.Join(reads[:]...); err != nil {
		return err
	}
	workloads := s.data
	// Only the workloads that use configs or secrets are placed anywhere
	// that needs them.
	placements, err := s.store.PlacementsFor(ctx, slices.Sorted(maps.Keys(workloads)))
	if err != nil {
		return err
	}
	revs, err := s.readRevisions(ctx, workloads)
	if err != nil {
		return err
	}
	need := Need(placements, workloads, revs, newest)
	// Residency: an item never goes to a cluster it may not be in (the
	// placer keeps its workloads out; this holds even if one got there).
	for c, ids := range need {
		for id := range ids {
			if it, ok := items[id]; ok && !api.Resident(it.residency, labels[c]) {
				delete(ids, id)
				s.log.WarnContext(ctx, "configuration kept out of a cluster by its residency", "item", id, "cluster", c)
			}
		}
	}
	// The clusters to bring in line: those that need something, and every
	// other registered one not known to hold nothing (a member that
	// holds what nothing needs any more is emptied).
	clusters := map[string]bool{}
	for _, p := range placements {
		clusters[p.Cluster] = true
	}
	for c := range labels {
		clusters[c] = true
	}
	// The members are brought in line at once, not one after the other:
	// each waits on its own round trips; the values each version sent are
	// read (and a secret's opened) once for them all.
	var mu sync.Mutex
	var errs []error
	sent := map[string]int64{}
	payloads := &payloadCache{s: s, read: map[string]payloadRead{}}
	for c := range clusters {
		if live, ok := s.health.Live(c); !ok || live.Health != api.HealthReady {
			continue // a member cut off keeps what it has
		}
		if len(need[c]) == 0 && s.isEmpty(c) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.syncCluster(ctx, c, need[c], items, payloads)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("cluster %s: %w", c, err))
			}
			for id, v := range n {
				sent[c+":"+id] = v
			}
		}()
	}
	wg.Wait()
	s.mu.Lock()
	s.sent = sent
	s.mu.Unlock()
	// Pruning is housekeeping: not on every pass (status writes wake
	// passes all the time, and a pass delivering a new value must not wait
	// behind the last one's pruning).
	if s.passes%pruneEvery == 0 {
		if _, err := s.store.PruneDataVersions(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.passes++
	return errors.Join(errs...)
}

// pruneEvery: a pass in so many prunes the versions no kept revision pins.
const pruneEvery = 10

// payloadCache reads each item's values at a version once per pass, for
// the members synced at once.
type payloadCache struct {
	s    *Syncer
	mu   sync.Mutex
	read map[string]payloadRead
}

type payloadRead struct {
	item *protocol.DataItem
	err  error
}

// get is s.payload(it, version), read once.
func (c *payloadCache) get(ctx context.Context, it item, version int64) (*protocol.DataItem, error) {
	key := protocol.DataID(it.kind, it.name) + "=" + strconv.FormatInt(version, 10)
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.read[key]; ok {
		return r.item, r.err
	}
	item, err := c.s.payload(ctx, it, version)
	c.read[key] = payloadRead{item: item, err: err}
	return item, err
}

// syncCluster brings one member's items in line: the versions it lacks
// are sent (oldest first), those it no longer needs taken back. A member
// that keeps one version per item (it answers no Versions) is sent only
// the newest version it needs, as before versions were kept apart.
func (s *Syncer) syncCluster(ctx context.Context, cluster string, need map[string]map[int64]bool, items map[string]item, payloads *payloadCache) (map[string]int64, error) {
	held, err := s.request(ctx, cluster, protocol.DataRequest{})
	if err != nil {
		return nil, err
	}
	sent := map[string]int64{}
	ids := make([]string, 0, len(need))
	for id := range need {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		it, ok := items[id]
		if !ok {
			continue // gone from the hub (replicas say so): what the member holds of it stays while used
		}
		versions := slices.Sorted(maps.Keys(need[id]))
		if !held.versioned() {
			versions = versions[len(versions)-1:]
		}
		for _, v := range versions {
			if held.has(id, v) {
				continue
			}
			put, err := payloads.get(ctx, it, v)
			if err != nil {
				s.log.WarnContext(ctx, "cannot read a configuration to send", "item", id, "version", v, "cluster", cluster, "err", err)
				continue
			}
			if held, err = s.request(ctx, cluster, protocol.DataRequest{Put: put}); err != nil {
				return sent, err
			}
			sent[id] = v
		}
	}
	for id, versions := range held.all() {
		switch {
		case len(need[id]) == 0:
			if held, err = s.request(ctx, cluster, protocol.DataRequest{Delete: id}); err != nil {
				return sent, err
			}
		case held.versioned():
			for _, v := range versions {
				if !need[id][v] {
					if held, err = s.request(ctx, cluster, protocol.DataRequest{Delete: id, DeleteVersion: v}); err != nil {
						return sent, err
					}
				}
			}
		}
	}
	s.mu.Lock()
	s.empty[cluster] = len(held.Held) == 0
	s.mu.Unlock()
	return sent, nil
}

// heldData is a member's answer: what it holds.
type heldData protocol.DataHeld

// versioned says whether the member keeps several versions of an item
// (one that holds nothing is taken as such: what it is sent first, it
// holds).
func (h heldData) versioned() bool { return h.Versions != nil || len(h.Held) == 0 }

// has says whether the member holds version v of id.
func (h heldData) has(id string, v int64) bool {
	if h.Versions != nil {
		return slices.Contains(h.Versions[id], v)
	}
	return h.Held[id] == v
}

// all is every version held, by DataID.
func (h heldData) all() map[string][]int64 {
	if h.Versions != nil {
		return h.Versions
	}
	out := make(map[string][]int64, len(h.Held))
	for id, v := range h.Held {
		out[id] = []int64{v}
	}
	return out
}

// isEmpty says whether the cluster held nothing when last asked.
func (s *Syncer) isEmpty(cluster string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.empty[cluster]
}

// payload is an item with its values at version.
func (s *Syncer) payload(ctx context.Context, it item, version int64) (*protocol.DataItem, error) {
	var data api.DataSpec
	if it.kind == "Secret" {
		var err error
		if data, err = s.values.ReadAt(ctx, it.uid, version); err != nil {
			return nil, err
		}
	} else {
		spec, _, err := s.store.ConfigValueAt(ctx, it.uid, version)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(spec, &data); err != nil {
			return nil, err
		}
	}
	return &protocol.DataItem{Kind: it.kind, Name: it.name, Version: version, Values: data.Bytes()}, nil
}

// request sends one data request and returns what the member holds.
func (s *Syncer) request(ctx context.Context, cluster string, req protocol.DataRequest) (heldData, error) {
	req.Version = protocol.Version
	data, _ := json.Marshal(req)
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	reply, err := s.bus.Request(rctx, cluster, protocol.DataSubject(cluster), data)
	if err != nil {
		return heldData{}, err
	}
	var ans protocol.DataHeld
	if err := json.Unmarshal(reply, &ans); err != nil {
		return heldData{}, err
	}
	if ans.Error != "" {
		return heldData(ans), errors.New("member: " + ans.Error)
	}
	return heldData(ans), nil
}

// Sent is what the last pass sent, "cluster:Kind/name" -> version.
func (s *Syncer) Sent() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

func (s *Syncer) each(ctx context.Context, kind string, fn func(*pgstore.Record) error) error {
	return pgstore.Each(ctx, s.store, kind, fn)
}

// followWorkloads brings s.data up to date: the workloads that use
// configs or secrets, their specs and the status parts Need reads.
func (s *Syncer) followWorkloads(ctx context.Context) error {
	upd, err := s.workloads.Read(ctx)
	if err != nil {
		return err
	}
	if upd.More {
		s.Wake() // the log holds more: the next pass reads on
	}
	specs, data := s.specs, s.data
	if upd.Full {
		specs, data = make(map[string]cachedSpec, len(s.specs)), map[string]api.Workload{}
	}
	put := func(rec *pgstore.Record) error {
		c, err := s.specOf(rec.Meta, rec.Spec)
		if err != nil {
			return err
		}
		specs[rec.Meta.Name] = c
		if !c.data {
			delete(data, rec.Meta.Name)
			return nil
		}
		data[rec.Meta.Name], err = dataWorkload(rec.Meta, c, rec.Status)
		return err
	}
	gone := func(name string) {
		delete(specs, name)
		delete(data, name)
	}
	if err := s.workloads.Apply(ctx, upd, put, gone); err != nil {
		return err
	}
	s.specs, s.data = specs, data
	return nil
}

// specOf is what a workload's spec says, decoded again only when its uid
// or generation moved.
func (s *Syncer) specOf(meta api.ObjectMeta, raw json.RawMessage) (cachedSpec, error) {
	if c, ok := s.specs[meta.Name]; ok && c.uid == meta.UID && c.generation == meta.Generation {
		return c, nil
	}
	var spec api.WorkloadSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return cachedSpec{}, fmt.Errorf("workload %s: %w", meta.Name, err)
	}
	c := cachedSpec{uid: meta.UID, generation: meta.Generation, data: len(spec.DataRefs()) > 0}
	if c.data {
		c.spec = &spec
	}
	return c, nil
}

// dataWorkload is a workload that uses configs or secrets as Need reads
// it: its spec, and of its status the rollout and the clusters' rows.
func dataWorkload(meta api.ObjectMeta, c cachedSpec, status json.RawMessage) (api.Workload, error) {
	w := api.Workload{Metadata: api.ObjectMeta{Name: meta.Name, UID: meta.UID, Generation: meta.Generation}, Spec: *c.spec}
	if len(status) > 0 && string(status) != "null" {
		var st dataStatus
		if err := json.Unmarshal(status, &st); err != nil {
			return w, fmt.Errorf("workload %s status: %w", meta.Name, err)
		}
		w.Status.Rollout, w.Status.Clusters = st.Rollout, st.Clusters
	}
	return w, nil
}
