package datasync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	Placements(ctx context.Context) ([]pgstore.Placement, error)
}

// Values reads a Secret's values by the object's uid (*secrets.Vault
// with the store has it).
type Values interface {
	Read(ctx context.Context, uid string) (api.DataSpec, error)
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

	// specs are the workloads' specs as last decoded, by name, kept
	// while their uid and generation hold: a pass (woken by every status
	// write) decodes only the workloads created or changed since the last.
	// pass holds one RunOnce at a time.
	pass  sync.Mutex
	specs map[string]cachedSpec

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
	return &Syncer{store: store, values: values, bus: bus, health: health, lead: lead, log: log, every: every, wake: make(chan struct{}, 1), empty: map[string]bool{}}
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

// cachedSpec is a workload's spec decoded at one uid and generation
// (the generation moves with every change of the spec).
type cachedSpec struct {
	uid        string
	generation int64
	spec       api.WorkloadSpec
}

// item is one Config or Secret as the hub holds it.
type item struct {
	kind, name, uid string
	version         int64
	config          api.DataSpec // a config's values (a secret's are read when sent)
	residency       *api.LabelSelector
}

// Need is which items (protocol.DataID) each cluster needs: those named
// by the templates of the workloads it runs (placement rows that are not
// tombstones, with replicas or not: a workload scaled to 0 keeps them).
func Need(placements []pgstore.Placement, workloads map[string]api.Workload) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, p := range placements {
		if p.Deleted {
			continue
		}
		w, ok := workloads[p.Workload]
		if !ok {
			continue
		}
		for _, r := range w.Spec.DataRefs() {
			if out[p.Cluster] == nil {
				out[p.Cluster] = map[string]bool{}
			}
			out[p.Cluster][protocol.DataID(r.Kind, r.Name)] = true
		}
	}
	return out
}

// RunOnce delivers once (on the leader only).
func (s *Syncer) RunOnce(ctx context.Context) error {
	if !s.lead.IsLeader() {
		return nil
	}
	s.pass.Lock()
	defer s.pass.Unlock()
	placements, err := s.store.Placements(ctx)
	if err != nil {
		return err
	}
	workloads := map[string]api.Workload{}
	specs := make(map[string]cachedSpec, len(s.specs))
	if err := s.each(ctx, "Workload", func(rec *pgstore.Record) error {
		c, ok := s.specs[rec.Meta.Name]
		if !ok || c.uid != rec.Meta.UID || c.generation != rec.Meta.Generation {
			c = cachedSpec{uid: rec.Meta.UID, generation: rec.Meta.Generation}
			if err := json.Unmarshal(rec.Spec, &c.spec); err != nil {
				return fmt.Errorf("workload %s: %w", rec.Meta.Name, err)
			}
		}
		specs[rec.Meta.Name] = c
		workloads[rec.Meta.Name] = api.Workload{Metadata: api.ObjectMeta{Name: rec.Meta.Name, UID: rec.Meta.UID, Generation: rec.Meta.Generation}, Spec: c.spec}
		return nil
	}); err != nil {
		return err
	}
	s.specs = specs
	items := map[string]item{}
	for _, kind := range []string{"Config", "Secret"} {
		if err := s.each(ctx, kind, func(rec *pgstore.Record) error {
			rv, _ := strconv.ParseInt(rec.Meta.ResourceVersion, 10, 64)
			it := item{kind: kind, name: rec.Meta.Name, uid: rec.Meta.UID, version: rv}
			var spec api.DataSpec
			if err := json.Unmarshal(rec.Spec, &spec); err != nil {
				return err
			}
			it.residency = spec.Residency
			if kind == "Config" {
				it.config = spec
			}
			items[protocol.DataID(kind, it.name)] = it
			return nil
		}); err != nil {
			return err
		}
	}
	labels := map[string]map[string]string{}
	if err := s.each(ctx, "Cluster", func(rec *pgstore.Record) error {
		labels[rec.Meta.Name] = rec.Meta.Labels
		return nil
	}); err != nil {
		return err
	}
	need := Need(placements, workloads)
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
	clusters := map[string]bool{}
	for _, p := range placements {
		clusters[p.Cluster] = true
	}
	var errs []error
	sent := map[string]int64{}
	names := make([]string, 0, len(clusters))
	for c := range clusters {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		if live, ok := s.health.Live(c); !ok || live.Health != api.HealthReady {
			continue // a member cut off keeps what it has
		}
		if len(need[c]) == 0 && s.isEmpty(c) {
			continue
		}
		n, err := s.syncCluster(ctx, c, need[c], items)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", c, err))
		}
		for id, v := range n {
			sent[c+":"+id] = v
		}
	}
	s.mu.Lock()
	s.sent = sent
	s.mu.Unlock()
	return errors.Join(errs...)
}

// syncCluster brings one member's items in line: what it lacks or holds
// older is sent, what it no longer needs is taken back.
func (s *Syncer) syncCluster(ctx context.Context, cluster string, need map[string]bool, items map[string]item) (map[string]int64, error) {
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
		if !ok || held[id] == it.version {
			continue // gone from the hub (replicas say so), or up to date
		}
		put, err := s.payload(ctx, it)
		if err != nil {
			s.log.WarnContext(ctx, "cannot read a configuration to send", "item", id, "cluster", cluster, "err", err)
			continue
		}
		if held, err = s.request(ctx, cluster, protocol.DataRequest{Put: put}); err != nil {
			return sent, err
		}
		sent[id] = it.version
	}
	for id := range held {
		if !need[id] {
			if held, err = s.request(ctx, cluster, protocol.DataRequest{Delete: id}); err != nil {
				return sent, err
			}
		}
	}
	s.mu.Lock()
	s.empty[cluster] = len(held) == 0
	s.mu.Unlock()
	return sent, nil
}

// isEmpty says whether the cluster held nothing when last asked.
func (s *Syncer) isEmpty(cluster string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.empty[cluster]
}

// payload is an item with its values.
func (s *Syncer) payload(ctx context.Context, it item) (*protocol.DataItem, error) {
	data := it.config
	if it.kind == "Secret" {
		var err error
		if data, err = s.values.Read(ctx, it.uid); err != nil {
			return nil, err
		}
	}
	return &protocol.DataItem{Kind: it.kind, Name: it.name, Version: it.version, Values: data.Bytes()}, nil
}

// request sends one data request and returns what the member holds.
func (s *Syncer) request(ctx context.Context, cluster string, req protocol.DataRequest) (map[string]int64, error) {
	req.Version = protocol.Version
	data, _ := json.Marshal(req)
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	reply, err := s.bus.Request(rctx, cluster, protocol.DataSubject(cluster), data)
	if err != nil {
		return nil, err
	}
	var ans protocol.DataHeld
	if err := json.Unmarshal(reply, &ans); err != nil {
		return nil, err
	}
	if ans.Error != "" {
		return ans.Held, errors.New("member: " + ans.Error)
	}
	return ans.Held, nil
}

// Sent is what the last pass sent, "cluster:Kind/name" -> version.
func (s *Syncer) Sent() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

func (s *Syncer) each(ctx context.Context, kind string, fn func(*pgstore.Record) error) error {
	cont := ""
	for {
		res, err := s.store.List(ctx, kind, pgstore.ListOptions{Limit: 1000, Continue: cont})
		if err != nil {
			return err
		}
		for _, rec := range res.Items {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if res.Continue == "" {
			return nil
		}
		cont = res.Continue
	}
}
