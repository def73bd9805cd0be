// Package standby keeps workloads' images warm where they may fail over:
// each member is sent the images of the workloads its cluster could take
// in a failover (their placement allows the cluster) while it runs none
// of their replicas, so a failover starts its replicas from the nodes'
// caches instead of adding a pull to the RTO.
//
// Lists (pure) decides which images each cluster should hold: for every
// oci workload with replicas, the clusters that placement's filters
// accept (the workload's own choice of clusters, taints and cordons,
// health short of Unreachable; room and spread limits do not count: a
// failover changes both) and that have no replica of it now. Each entry
// is the current revision's image pinned to its digest (package
// imagepin): a tag not resolved yet is not pulled ahead. The controller
// (the leader's, every few seconds, when a cluster changes and when an
// image is pinned) sends every Ready member whose list changed its new
// list, with an epoch and a digest, and checks the others' digest now
// and then, as desired state and endpoint tables are delivered. The
// member picks the nodes (those its scheduler would pick for the
// replicas a failover could bring) and reports what they hold; package
// placer folds that into Workload.status.images.
//
// It must not place replicas, nor pull anything itself.
package standby

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/loop"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/placement"
	"github.com/atollhq/atoll/protocol"
)

// Input is what Lists decides from.
type Input struct {
	// Workloads with their template at the current generation, its image
	// pinned (Pinned[name]: the pinned reference, "" while unresolved).
	Workloads []api.Workload
	Pinned    map[string]string
	Clusters  []failover.Cluster
	// Placed is workload -> cluster -> replicas placed now.
	Placed map[string]map[string]int32
	Now    time.Time
}

// Lists is, per cluster, the images it should hold ahead of need
// (sorted by workload, at most protocol.MaxStandbyImages per cluster).
// A workload with no replica placed yet has no standby: its first
// placement is still to come.
func Lists(in Input) map[string][]protocol.StandbyImage {
	out := map[string][]protocol.StandbyImage{}
	workloads := slices.Clone(in.Workloads)
	slices.SortFunc(workloads, func(a, b api.Workload) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	for _, w := range workloads {
		ref := in.Pinned[w.Metadata.Name]
		if w.Metadata.DeletionTimestamp != nil || w.Spec.Template.Driver != "oci" || ref == "" || w.Spec.Replicas <= 0 {
			continue
		}
		if len(in.Placed[w.Metadata.Name]) == 0 {
			continue // not placed yet (or nowhere): nothing to fail over from, and any cluster may be its home
		}
		for _, c := range Candidates(w, in.Clusters, in.Placed[w.Metadata.Name], in.Now) {
			if len(out[c.Metadata.Name]) >= protocol.MaxStandbyImages {
				continue
			}
			tmpl, _, _ := w.Spec.Effective(api.Target{Name: c.Metadata.Name, Labels: c.Metadata.Labels}, w.Spec.Replicas)
			tmpl.Image = ref
			out[c.Metadata.Name] = append(out[c.Metadata.Name], protocol.StandbyImage{Workload: w.Metadata.Name, Generation: w.Metadata.Generation,
				Image: ref, Replicas: w.Spec.Replicas, Template: tmpl})
		}
	}
	return out
}

// Candidates are the clusters a workload could fail over to that run
// none of its replicas now (placed: cluster -> replicas): those
// placement's filters accept but for room and spread limits, and not
// Unreachable.
func Candidates(w api.Workload, clusters []failover.Cluster, placed map[string]int32, now time.Time) []failover.Cluster {
	snap, _ := failover.Snapshot(clusters, &w, now)
	d := placement.Decide(placement.Input{Workload: w.Metadata.Name, Replicas: w.Spec.Replicas, Policy: failover.PlacementPolicy(&w), Clusters: snap, Current: placed})
	var out []failover.Cluster
	for _, c := range clusters {
		name := c.Metadata.Name
		if placed[name] > 0 || c.Metadata.DeletionTimestamp != nil {
			continue
		}
		// Spread limits (an exclusive workload's one cluster at a time
		// among them) and room change in a failover: they do not count.
		by, evicted := d.Evicted[name]
		spread := evicted && by == placement.ReasonBeyondMaxGroups
		if evicted && !spread {
			continue
		}
		if why, filtered := d.Filtered[name]; filtered && !spread && why != placement.ReasonNoRoom {
			continue
		}
		out = append(out, c)
	}
	return out
}

// Store is what a pass reads.
type Store interface {
	List(ctx context.Context, kind string, opts pgstore.ListOptions) (*pgstore.ListResult, error)
	Changes(ctx context.Context, kind string, after int64, limit int) ([]pgstore.Change, error)
	PlacementsFor(ctx context.Context, workloads []string) ([]pgstore.Placement, error)
}

// Pins pins a template's image (*imagepin.Pins has it).
type Pins interface {
	Pin(ctx context.Context, w api.Workload, generation int64, t api.ReplicaTemplate) (api.ReplicaTemplate, bool, error)
}

// Bus sends requests to members (*natsbus.Bus has it).
type Bus interface {
	Request(ctx context.Context, cluster, subject string, data []byte) ([]byte, error)
}

// Health is the live cluster health (*members.Monitor has it).
type Health interface {
	Live(cluster string) (failover.Live, bool)
}

// Config tunes the controller. Zero values mean the defaults.
type Config struct {
	Every      time.Duration // pass period (default 5 s)
	CheckEvery time.Duration // how often a member's digest is checked (default 10 s)
	MinGap     time.Duration // shortest time between two passes' starts when woken (default 1 s)
	Logger     *slog.Logger
	Now        func() time.Time
	Meter      metric.MeterProvider
}

// Controller sends members their standby lists.
type Controller struct {
	store  Store
	pins   Pins
	bus    Bus
	health Health
	lead   leader.Leadership
	cfg    Config
	log    *slog.Logger
	wake   chan struct{}
	loop   loop.Loop
	// lastPass is when the loop's last pass began (paced's own).
	lastPass time.Time

	mu      sync.Mutex
	lists   map[string]protocol.StandbyList // cluster -> the list as last built
	held    map[string]string               // cluster -> digest the member acked
	checked map[string]time.Time            // cluster -> last digest check
	failed  map[string]time.Time            // cluster -> last failed request (asked again after CheckEvery)

	// workloads follows every workload (whole at first and every
	// relistEvery, else what changed since the last pass); drivers is
	// each one's template driver by spec, and oci the oci workloads
	// decoded. pass holds one RunOnce at a time.
	pass      sync.Mutex
	workloads *pgstore.Follow
	drivers   map[string]specDriver
	oci       map[string]api.Workload

	sent   metric.Int64Counter
	images metric.Int64Gauge
}

// specDriver is a workload's template driver at one spec.
type specDriver struct {
	uid        string
	generation int64
	driver     string
}

// New makes the controller; a nil lead leads alone.
func New(store Store, pins Pins, bus Bus, health Health, lead leader.Leadership, cfg Config) *Controller {
	if cfg.Every <= 0 {
		cfg.Every = 5 * time.Second
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 10 * time.Second
	}
	if cfg.MinGap <= 0 {
		cfg.MinGap = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Meter == nil {
		cfg.Meter = otel.GetMeterProvider()
	}
	if lead == nil {
		lead = leader.Sole{}
	}
	c := &Controller{store: store, pins: pins, bus: bus, health: health, lead: lead, cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1),
		lists: map[string]protocol.StandbyList{}, held: map[string]string{}, checked: map[string]time.Time{}, failed: map[string]time.Time{},
		workloads: pgstore.NewFollow(store, "Workload", relistEvery, cfg.Now), drivers: map[string]specDriver{}, oci: map[string]api.Workload{}}
	m := cfg.Meter.Meter("github.com/atollhq/atoll/hub/standby")
	c.sent, _ = m.Int64Counter("standby.lists.sent", metric.WithUnit("{list}"), metric.WithDescription("Standby lists sent to members (new lists and repairs)."))
	c.images, _ = m.Int64Gauge("standby.images", metric.WithUnit("{image}"), metric.WithDescription("Images clusters are asked to hold ahead of a failover, over all clusters."))
	return c
}

// Start runs passes until Stop or ctx ends.
func (c *Controller) Start(ctx context.Context) {
	c.Wake()
	c.loop.Start(ctx, c.log, "standby pass failed", c.cfg.Every, c.wake, c.paced)
}

// paced is the loop's pass: it begins no sooner than MinGap after the
// last one began. Every busy cluster's capacity is written every few
// seconds and each write wakes the controller, whose pass lists every
// cluster and checks each member's list: unpaced, a hundred clusters
// would have it do so many times a second (at 16 clusters, when a pass
// also listed every workload, its lists tripled PostgreSQL's CPU under
// the scale benchmark's creates).
func (c *Controller) paced(ctx context.Context) error {
	if wait := c.cfg.MinGap - time.Since(c.lastPass); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	c.lastPass = time.Now()
	return c.RunOnce(ctx)
}

// Stop ends the controller; safe to call twice and before Start.
func (c *Controller) Stop() { c.loop.Stop() }

// Wake asks for a pass soon.
func (c *Controller) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// RunOnce builds every cluster's list and delivers the changed ones (on
// the leader only).
func (c *Controller) RunOnce(ctx context.Context) error {
	if !c.lead.IsLeader() {
		return nil
	}
	c.pass.Lock()
	defer c.pass.Unlock()
	in := Input{Pinned: map[string]string{}, Placed: map[string]map[string]int32{}, Now: c.cfg.Now()}
	if err := c.followWorkloads(ctx); err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(c.oci))
	for _, name := range names {
		w := c.oci[name]
		in.Workloads = append(in.Workloads, w)
		t, ok, err := c.pins.Pin(ctx, w, w.Metadata.Generation, w.Spec.Template)
		if err != nil {
			return err
		}
		if ok {
			in.Pinned[w.Metadata.Name] = t.Image
		}
	}
	if err := pgstore.Each(ctx, c.store, "Cluster", func(rec *pgstore.Record) error {
		var cl api.Cluster
		if err := rec.Decode(&cl); err != nil {
			return err
		}
		fc := failover.Cluster{Cluster: cl}
		if live, ok := c.health.Live(cl.Metadata.Name); ok {
			fc.Live, fc.Known = live, true
		}
		in.Clusters = append(in.Clusters, fc)
		return nil
	}); err != nil {
		return err
	}
	rows, err := c.store.PlacementsFor(ctx, names)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r.Deleted || r.Replicas <= 0 {
			continue
		}
		if in.Placed[r.Workload] == nil {
			in.Placed[r.Workload] = map[string]int32{}
		}
		in.Placed[r.Workload][r.Cluster] = r.Replicas
	}
	c.forgetGone(in.Clusters)
	lists := Lists(in)
	total := 0
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, deliveriesInFlight)
	for _, cl := range in.Clusters {
		name := cl.Metadata.Name
		images := lists[name]
		total += len(images)
		digest := protocol.StandbyDigest(images)
		c.mu.Lock()
		cur := c.lists[name]
		if cur.Digest != digest || cur.Epoch == 0 {
			cur = protocol.StandbyList{Version: protocol.Version, Epoch: max(cur.Epoch+1, in.Now.UnixNano()), Digest: digest, Images: images}
			c.lists[name] = cur
		}
		held, due := c.held[name], in.Now.Sub(c.checked[name]) >= c.cfg.CheckEvery
		resting := in.Now.Sub(c.failed[name]) < c.cfg.CheckEvery
		c.mu.Unlock()
		if live, ok := c.health.Live(name); !ok || live.Health != api.HealthReady {
			continue // sent when it is back
		}
		if (held == digest && !due) || resting {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.deliver(ctx, name, cur, held == digest); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("standby list for %s: %w", name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	c.images.Record(ctx, int64(total))
	return errors.Join(errs...)
}

// forgetGone drops what the controller kept of clusters that no longer
// exist.
func (c *Controller) forgetGone(clusters []failover.Cluster) {
	exists := make(map[string]bool, len(clusters))
	for _, cl := range clusters {
		exists[cl.Metadata.Name] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.lists {
		if !exists[name] {
			delete(c.lists, name)
			delete(c.held, name)
			delete(c.checked, name)
			delete(c.failed, name)
		}
	}
}

// deliveriesInFlight bounds the members asked at once.
const deliveriesInFlight = 16

// deliver sends a cluster its list, or only checks its digest when the
// member held it at the last answer (check).
func (c *Controller) deliver(ctx context.Context, cluster string, l protocol.StandbyList, check bool) error {
	msg := l
	if check {
		msg = protocol.StandbyList{Version: l.Version, Epoch: l.Epoch, Digest: l.Digest, Check: true}
	}
	ack, err := c.request(ctx, cluster, msg)
	if err == nil && check && ack.Digest != l.Digest {
		ack, err = c.request(ctx, cluster, l) // the member lost it (restarted): send it again
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	c.checked[cluster] = now
	if err != nil {
		// Asked again after CheckEvery: a member that does not answer
		// (one before warm standby, or a slow one) must not hold every
		// pass for the request's timeout.
		delete(c.held, cluster)
		c.failed[cluster] = now
		return err
	}
	delete(c.failed, cluster)
	c.held[cluster] = ack.Digest
	if !ack.Accepted {
		return fmt.Errorf("refused: %s", ack.Reason)
	}
	return nil
}

func (c *Controller) request(ctx context.Context, cluster string, l protocol.StandbyList) (protocol.StandbyAck, error) {
	data, _ := json.Marshal(l)
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	reply, err := c.bus.Request(rctx, cluster, protocol.StandbySubject(cluster), data)
	if err != nil {
		return protocol.StandbyAck{}, err
	}
	if !l.Check {
		c.sent.Add(ctx, 1)
		c.log.DebugContext(ctx, "standby list sent", "cluster", cluster, "images", len(l.Images), "epoch", l.Epoch)
	}
	var ack protocol.StandbyAck
	if err := json.Unmarshal(reply, &ack); err != nil {
		return ack, err
	}
	return ack, nil
}

// relistEvery is how often a pass reads every workload whole anyway.
const relistEvery = time.Minute

// followWorkloads brings c.oci up to date: the oci workloads, decoded.
// Which workloads are oci is read once per spec (uid and generation),
// not decoded whole on every pass: the pass runs on every cluster write,
// and decoding every workload each time made it the hub's largest
// controller at 32 clusters.
func (c *Controller) followWorkloads(ctx context.Context) error {
	upd, err := c.workloads.Read(ctx)
	if err != nil {
		return err
	}
	if upd.More {
		c.Wake() // the log holds more: the next pass reads on
	}
	prev := c.drivers
	if upd.Full {
		c.drivers, c.oci = make(map[string]specDriver, len(prev)), map[string]api.Workload{}
	}
	put := func(rec *pgstore.Record) error {
		name := rec.Meta.Name
		d, ok := prev[name]
		if !ok || d.uid != rec.Meta.UID || d.generation != rec.Meta.Generation {
			var spec struct {
				Template struct {
					Driver string `json:"driver"`
				} `json:"template"`
			}
			if err := rec.DecodeSpec(&spec); err != nil {
				return fmt.Errorf("workload %s: %w", name, err)
			}
			d = specDriver{uid: rec.Meta.UID, generation: rec.Meta.Generation, driver: spec.Template.Driver}
		}
		c.drivers[name] = d
		if d.driver != "oci" {
			delete(c.oci, name)
			return nil
		}
		var w api.Workload
		if err := rec.DecodeObject(&w); err != nil {
			return fmt.Errorf("workload %s: %w", name, err)
		}
		c.oci[name] = w
		return nil
	}
	gone := func(name string) {
		delete(c.drivers, name)
		delete(c.oci, name)
	}
	return c.workloads.Apply(ctx, upd, put, gone)
}
