// Package endpoints keeps the global endpoint table: which replica, in
// which cluster and at which address, serves each Service. Members
// publish their ready replicas' addresses (protocol.EndpointReport) on
// their own subject; the table takes the cluster from the subject alone,
// so a member can only ever speak for itself. The table lives in memory,
// away from the heartbeat path and the database's write path: it is
// rebuilt from the members' next reports (every 2 s) after a hub starts.
//
// The leader sends each member the part of the table its gateway serves
// (protocol.EndpointTable): the services whose spec.gateways selects the
// member's cluster (every service that has none). Each member's part has
// its own digest and an epoch taken when that part last changed, as the
// placer sends desired state: on each change, and a digest check every
// RepairEvery that resends the part to a member whose digest differs. A
// member is never sent a service its gateway does not serve, so its
// gateway and DNS do not know it. A cluster the health monitor declares
// Unreachable has its endpoints withdrawn from the table at once (the next
// pass, within PassEvery), so every gateway stops routing to it without
// waiting for the member. A service whose endpoints all go, or come back,
// gets an event.
//
// Reports are rate-bound per member (a token bucket: ReportBurst, then
// ReportRate a second): a member flapping its reports would otherwise
// make the hub rebuild and resend tables without end. A report over the
// bound is not dropped for good: the member's newest is kept pending and
// taken on the first pass after the bucket refills (a newer one replaces
// it, counted superseded); deferrals are counted, logged once a minute
// and recorded as a deduplicated Warning event on the cluster.
//
// It must not decide where replicas run, nor write cluster health.
package endpoints

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/loop"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// Store is what the table reads and writes (*pgstore.Store has it).
type Store interface {
	Get(ctx context.Context, kind, name string) (*pgstore.Record, error)
	List(ctx context.Context, kind string, opts pgstore.ListOptions) (*pgstore.ListResult, error)
	InTx(ctx context.Context, actor pgstore.Actor, fn func(tx *pgstore.Tx) error) error
}

// Health is the live cluster health (*members.Monitor has it).
type Health interface {
	Live(cluster string) (failover.Live, bool)
}

// Bus sends requests to members (*natsbus.Bus has it).
type Bus interface {
	Request(ctx context.Context, cluster, subject string, data []byte) ([]byte, error)
}

// Leadership says whether this hub leads (only the leader sends tables
// and writes events).
type Leadership interface {
	IsLeader() bool
}

// Config tunes the table. Zero values mean the defaults.
type Config struct {
	// PassEvery is how often a pass runs without a wake; default 100ms
	// (a pass costs nothing when nothing changed: Unreachable clusters
	// are withdrawn within it).
	PassEvery time.Duration
	// RepairEvery is how often each member's digest is checked; default 5s.
	RepairEvery time.Duration
	// RefreshEvery is how often services, workloads and clusters are read
	// again without a change notice; default 10s.
	RefreshEvery time.Duration
	// SendTimeout bounds one delivery; default 2s.
	SendTimeout time.Duration
	// ReportBurst is how many reports a member may send at once before
	// the rate bound applies; default 20.
	ReportBurst int
	// ReportRate is how many reports a second a member earns back;
	// default 10 (an honest member reports every 2s and on each change of
	// its ready replicas: past the burst, a deferred report waits at most
	// 1/ReportRate plus a pass).
	ReportRate float64
	Logger     *slog.Logger
	Now        func() time.Time
	Meter      metric.Meter
	Tracer     trace.Tracer
}

// Table is the hub's endpoint table and its delivery: a service with
// Start, Stop and RunOnce.
type Table struct {
	cfg    Config
	store  Store
	health Health
	bus    Bus
	lead   Leadership
	log    *slog.Logger
	now    func() time.Time

	mu        sync.Mutex
	reports   map[string]report // cluster -> its last report taken
	pending   map[string]report // cluster -> its newest report over the rate bound
	buckets   map[string]*bucket
	throttled map[string]*throttling // cluster -> deferred reports not evented yet
	services  []api.Service          // as last read
	workloads map[string]*api.Workload
	regions   map[string]string            // cluster -> region label
	labels    map[string]map[string]string // cluster -> its labels
	parts     map[string]part              // cluster -> what its gateway serves, as of current
	readAt    time.Time
	dirty     bool
	// reportsGen counts changes of reports; built* are the inputs the
	// current table was built from, so a pass with nothing new skips
	// building and hashing it again.
	reportsGen    uint64
	built         bool
	builtGen      uint64
	builtUnusable string
	current       protocol.EndpointTable // every service's endpoints
	lastEpoch     int64                  // the highest epoch a member's part got
	members       map[string]*delivery
	counts        map[string]int       // service -> endpoints, as last evented
	refusedAt     map[string]time.Time // cluster -> when a refused report was last logged
	started       time.Time

	wake chan struct{}
	lp   loop.Loop
	sub  *nats.Subscription

	received metric.Int64Counter
	sent     metric.Int64Counter
	changes  metric.Int64Counter
}

type report struct {
	run       string
	seq       uint64
	at        time.Time
	workloads map[string][]protocol.ReplicaAddress
}

// part is the services one member's gateway serves and their digest.
type part struct {
	digest   string
	services []protocol.ServiceEndpoints
}

// bucket is a member's token bucket of reports.
type bucket struct {
	tokens float64
	at     time.Time
}

// throttling is what a member's deferred reports await to be told.
type throttling struct {
	deferred int32
	logged   time.Time
	evented  time.Time
}

// delivery is one member's side of the table: what it acked and when.
type delivery struct {
	want     protocol.EndpointTable // its part, with the epoch it got when it last changed
	digest   string
	checked  time.Time
	retryAt  time.Time // after failed deliveries: 1s, doubling up to 30s
	failures int
	health   string // as last seen: a change retries at once
	inflight bool
}

var actor = pgstore.Actor{Name: "system:endpoints"}

// New makes a table; Start subscribes to reports and begins passes.
func New(store Store, health Health, bus Bus, lead Leadership, cfg Config) *Table {
	if cfg.PassEvery <= 0 {
		cfg.PassEvery = 100 * time.Millisecond
	}
	if cfg.RepairEvery <= 0 {
		cfg.RepairEvery = 5 * time.Second
	}
	if cfg.RefreshEvery <= 0 {
		cfg.RefreshEvery = 10 * time.Second
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 2 * time.Second
	}
	if cfg.ReportBurst <= 0 {
		cfg.ReportBurst = 20
	}
	if cfg.ReportRate <= 0 {
		cfg.ReportRate = 10
	}
	if cfg.Tracer == nil {
		cfg.Tracer = tnoop.NewTracerProvider().Tracer("")
	}
	t := &Table{cfg: cfg, store: store, health: health, bus: bus, lead: lead, log: cfg.Logger, now: cfg.Now,
		reports: map[string]report{}, pending: map[string]report{}, buckets: map[string]*bucket{}, throttled: map[string]*throttling{},
		workloads: map[string]*api.Workload{}, regions: map[string]string{}, labels: map[string]map[string]string{}, parts: map[string]part{},
		members: map[string]*delivery{}, counts: map[string]int{}, refusedAt: map[string]time.Time{}, dirty: true, wake: make(chan struct{}, 1)}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.started = t.now()
	if cfg.Meter != nil {
		t.received, _ = cfg.Meter.Int64Counter("endpoints.reports", metric.WithUnit("{report}"), metric.WithDescription("Endpoint reports from members, by result (taken, stale, refused; deferred: over the member's rate bound, kept pending; superseded: a pending one replaced by a newer)."))
		t.sent, _ = cfg.Meter.Int64Counter("endpoints.deliveries", metric.WithUnit("{request}"), metric.WithDescription("Endpoint tables and digest checks sent to members, by kind and result."))
		t.changes, _ = cfg.Meter.Int64Counter("endpoints.table.changes", metric.WithUnit("{change}"), metric.WithDescription("New epochs of the endpoint table."))
	}
	return t
}

// refusedLogEvery is how often a member's refused reports are logged.
const refusedLogEvery = time.Minute

// Observe takes one member's report (a NATS message on its endpoints
// subject).
func (t *Table) Observe(msg *nats.Msg) {
	r, err := protocol.DecodeEndpointReport(msg.Subject, msg.Data)
	if err != nil {
		t.count(t.received, "refused")
		// Logged once a minute per member: one that sends refused
		// reports without end must not fill the hub's log.
		cluster, now := protocol.ClusterOf(msg.Subject), t.now()
		t.mu.Lock()
		quiet := now.Sub(t.refusedAt[cluster]) < refusedLogEvery
		if !quiet {
			t.refusedAt[cluster] = now
		}
		t.mu.Unlock()
		if !quiet {
			t.log.Warn("endpoint report refused (more from this member are counted, logged again in a minute)", "subject", msg.Subject, "err", err)
		}
		return
	}
	now := t.now()
	t.mu.Lock()
	old, ok := t.pending[r.Cluster]
	if !ok {
		old, ok = t.reports[r.Cluster]
	}
	if ok && old.run == r.Run && r.Seq <= old.seq {
		t.mu.Unlock()
		t.count(t.received, "stale")
		return
	}
	rep := report{run: r.Run, seq: r.Seq, at: now, workloads: r.Workloads}
	if !t.spend(r.Cluster, now) {
		_, superseded := t.pending[r.Cluster]
		t.pending[r.Cluster] = rep
		th := t.throttled[r.Cluster]
		if th == nil {
			th = &throttling{}
			t.throttled[r.Cluster] = th
		}
		th.deferred++
		logNow := now.Sub(th.logged) >= refusedLogEvery
		if logNow {
			th.logged = now
		}
		t.mu.Unlock()
		t.count(t.received, "deferred")
		if superseded {
			t.count(t.received, "superseded")
		}
		if logNow {
			t.log.Warn("endpoint reports over the member's rate bound: its newest is kept and taken when the bound allows (more are counted, logged again in a minute)",
				"cluster", r.Cluster, "burst", t.cfg.ReportBurst, "perSecond", t.cfg.ReportRate)
		}
		return
	}
	delete(t.pending, r.Cluster) // older than this one
	t.reports[r.Cluster] = rep
	t.reportsGen++
	t.mu.Unlock()
	t.count(t.received, "taken")
	t.Wake()
}

// spend takes a token from cluster's bucket if it has one (under t.mu).
func (t *Table) spend(cluster string, now time.Time) bool {
	b := t.buckets[cluster]
	if b == nil {
		b = &bucket{tokens: float64(t.cfg.ReportBurst), at: now}
		t.buckets[cluster] = b
	}
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(float64(t.cfg.ReportBurst), b.tokens+el.Seconds()*t.cfg.ReportRate)
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// takePending takes the pending reports whose members' buckets refilled
// (under t.mu); it says whether any was taken.
func (t *Table) takePending(now time.Time) bool {
	took := false
	for c, r := range t.pending {
		if t.spend(c, now) {
			t.reports[c] = r
			delete(t.pending, c)
			took = true
			t.reportsGen++
			t.count(t.received, "taken")
		}
	}
	return took
}

func (t *Table) count(c metric.Int64Counter, result string, kv ...attribute.KeyValue) {
	if c != nil {
		c.Add(context.Background(), 1, metric.WithAttributes(append(kv, attribute.String("result", result))...))
	}
}

// Changed marks services, workloads or clusters as changed: the next
// pass reads them again.
func (t *Table) Changed() {
	t.mu.Lock()
	t.dirty = true
	t.mu.Unlock()
	t.Wake()
}

// Wake asks for a pass now.
func (t *Table) Wake() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Start subscribes to the members' reports on conn and runs passes until
// Stop.
func (t *Table) Start(ctx context.Context, conn *nats.Conn) error {
	sub, err := conn.Subscribe(protocol.EndpointsWildcard, t.Observe)
	if err != nil {
		return fmt.Errorf("subscribe to endpoint reports: %w", err)
	}
	t.sub = sub
	t.lp.Start(ctx, t.log, "endpoint table pass failed", t.cfg.PassEvery, t.wake, t.RunOnce)
	return nil
}

// Stop ends the passes; safe twice and before Start.
func (t *Table) Stop() {
	if t.sub != nil {
		_ = t.sub.Unsubscribe()
	}
	t.lp.Stop()
}

// RunOnce reads what changed, rebuilds the table and, on the leader,
// delivers it where it is not held.
func (t *Table) RunOnce(ctx context.Context) error {
	now := t.now()
	t.mu.Lock()
	refresh := t.dirty || now.Sub(t.readAt) > t.cfg.RefreshEvery
	t.dirty = false
	t.mu.Unlock()
	if refresh {
		if err := t.read(ctx, now); err != nil {
			t.Changed()
			return err
		}
	}
	t.mu.Lock()
	t.takePending(now)
	changed := false
	// The table is built again when its inputs may have moved: services,
	// workloads or clusters read, a report taken, a cluster's health
	// turned (Unreachable ones are left out).
	if unusable := t.unusableKey(); refresh || !t.built || t.reportsGen != t.builtGen || unusable != t.builtUnusable {
		t.built, t.builtGen, t.builtUnusable = true, t.reportsGen, unusable
		services := build(t.services, t.workloads, t.regions, t.reports, t.usable)
		digest := protocol.EndpointDigest(services)
		changed = digest != t.current.Digest
		if changed {
			epoch := max(t.current.Epoch+1, now.UnixNano())
			t.current = protocol.EndpointTable{Version: protocol.Version, Epoch: epoch, Digest: digest, Services: services}
			if t.changes != nil {
				t.changes.Add(ctx, 1)
			}
		}
	}
	if changed || refresh {
		t.parts = split(t.current.Services, t.labels)
	}
	noted := t.noteCounts(t.current.Services)
	throttled := t.throttledDue(now)
	warm := t.warm(now)
	t.mu.Unlock()
	if !t.lead.IsLeader() || !warm {
		return nil
	}
	t.deliver(ctx, now)
	return t.event(ctx, noted, throttled, now)
}

// throttleEventEvery is how often a member's deferred reports are
// recorded in its event (the event's count holds them all).
const throttleEventEvery = 10 * time.Second

// throttledDue returns the members whose deferred reports are due an
// event, and forgets them (under t.mu).
func (t *Table) throttledDue(now time.Time) map[string]int32 {
	var due map[string]int32
	for c, th := range t.throttled {
		if th.deferred == 0 {
			if now.Sub(th.logged) > refusedLogEvery && now.Sub(th.evented) > throttleEventEvery {
				delete(t.throttled, c)
			}
			continue
		}
		if now.Sub(th.evented) < throttleEventEvery {
			continue
		}
		if due == nil {
			due = map[string]int32{}
		}
		due[c], th.deferred, th.evented = th.deferred, 0, now
	}
	return due
}

// split is each cluster's part of the table: the services its gateway
// serves (spec.gateways against the cluster's labels), pure. Clusters
// whose labels select the same services share their part's slice.
func split(services []protocol.ServiceEndpoints, labels map[string]map[string]string) map[string]part {
	out := make(map[string]part, len(labels))
	byKey := map[string]part{}
	for c, l := range labels {
		var key []byte
		for i := range services {
			if services[i].Spec.ServedBy(l) {
				key = append(key, '1')
			} else {
				key = append(key, '0')
			}
		}
		p, ok := byKey[string(key)]
		if !ok {
			p.services = make([]protocol.ServiceEndpoints, 0, len(services))
			for i, k := range key {
				if k == '1' {
					p.services = append(p.services, services[i])
				}
			}
			p.digest = protocol.EndpointDigest(p.services)
			byKey[string(key)] = p
		}
		out[c] = p
	}
	return out
}

// Warmup is how long a hub that just started waits for every usable
// cluster's first report before it sends a table: a table without them
// would empty the gateways of the clusters not heard from yet.
const Warmup = 5 * time.Second

// warm says whether tables may be sent (under t.mu).
func (t *Table) warm(now time.Time) bool {
	if now.Sub(t.started) >= Warmup {
		return true
	}
	for c := range t.regions {
		if _, ok := t.reports[c]; !ok && t.usable(c) {
			return false
		}
	}
	return true
}

// unusableKey names the reporting clusters whose endpoints build leaves
// out now (not usable), in order (under t.mu).
func (t *Table) unusableKey() string {
	var out []string
	for c := range t.reports {
		if !t.usable(c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// usable says whether a cluster's endpoints belong in the table: it is
// registered and not Unreachable (Suspect clusters keep theirs; the
// gateways' outlier detection judges them).
func (t *Table) usable(cluster string) bool {
	l, ok := t.health.Live(cluster)
	return ok && l.Health != api.HealthUnreachable
}

// read loads services, workloads and clusters.
func (t *Table) read(ctx context.Context, now time.Time) error {
	svcs, err := t.store.List(ctx, "Service", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return fmt.Errorf("read services: %w", err)
	}
	services := make([]api.Service, 0, len(svcs.Items))
	wanted := map[string]bool{}
	for _, rec := range svcs.Items {
		var s api.Service
		if err := rec.Decode(&s); err != nil || s.Metadata.DeletionTimestamp != nil {
			continue
		}
		services = append(services, s)
		wanted[s.Spec.Workload] = true
	}
	// Only the workloads services select (a hub may hold thousands).
	workloads := map[string]*api.Workload{}
	for name := range wanted {
		rec, err := t.store.Get(ctx, "Workload", name)
		var ae *api.Error
		switch {
		case errors.As(err, &ae) && ae.Code == api.CodeNotFound:
			continue
		case err != nil:
			return fmt.Errorf("read workload %s: %w", name, err)
		}
		var w api.Workload
		if rec.Decode(&w) == nil {
			workloads[w.Metadata.Name] = &w
		}
	}
	cls, err := t.store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return fmt.Errorf("read clusters: %w", err)
	}
	regions, labels := map[string]string{}, map[string]map[string]string{}
	for _, rec := range cls.Items {
		regions[rec.Meta.Name] = rec.Meta.Labels[api.LabelRegion]
		labels[rec.Meta.Name] = rec.Meta.Labels
	}
	t.mu.Lock()
	t.services, t.workloads, t.regions, t.labels, t.readAt = services, workloads, regions, labels, now
	for c := range t.reports {
		if _, ok := regions[c]; !ok {
			delete(t.reports, c) // deregistered
			delete(t.pending, c)
			delete(t.buckets, c)
		}
	}
	for c := range t.members {
		if _, ok := regions[c]; !ok {
			delete(t.members, c)
		}
	}
	t.mu.Unlock()
	return nil
}

// build is the table's services from what is known: pure. A replica
// serves a service when its workload is the service's and its cluster is
// usable; its port per service port is resolved from the template.
func build(services []api.Service, workloads map[string]*api.Workload, regions map[string]string, reports map[string]report, usable func(string) bool) []protocol.ServiceEndpoints {
	clusters := make([]string, 0, len(reports))
	for c := range reports {
		if _, ok := regions[c]; ok && usable(c) {
			clusters = append(clusters, c)
		}
	}
	slices.Sort(clusters)
	out := make([]protocol.ServiceEndpoints, 0, len(services))
	for _, s := range services {
		se := protocol.ServiceEndpoints{Name: s.Metadata.Name, Spec: s.Spec, Endpoints: []protocol.Endpoint{}}
		w := workloads[s.Spec.Workload]
		if w != nil {
			for _, c := range clusters {
				if !placedOn(w, c) {
					continue // a member may only serve what the hub placed on it
				}
				for _, a := range reports[c].workloads[s.Spec.Workload] {
					ports := map[string]int{}
					for _, p := range s.Spec.Ports {
						if port, ok := api.ResolveTargetPort(&w.Spec.Template, p, a.Port); ok && port > 0 {
							ports[p.Name] = port
						}
					}
					se.Endpoints = append(se.Endpoints, protocol.Endpoint{Cluster: c, Region: regions[c], Zone: a.Zone, Replica: a.Replica, Host: a.Host, Ports: ports, Generation: a.Generation})
				}
			}
		}
		out = append(out, se)
	}
	return out
}

// placedOn says whether the hub placed replicas of w on cluster c, as its
// status says (a workload not placed yet, whose status has no placement,
// takes every cluster's; one placed nowhere, scaled to zero or
// unschedulable, takes none). Endpoints a member reports for a workload
// placed elsewhere are not routed to: a member cannot draw another
// cluster's traffic by claiming replicas it was never given.
func placedOn(w *api.Workload, c string) bool {
	p := w.Status.Placement
	return p == nil || p.Clusters[c] > 0
}

// deliver sends each usable cluster its part of the table when it does
// not hold it, and a digest check to those due one; one request per
// member in flight. A part that changed gets a new epoch (one per pass,
// higher than any sent before), so epochs only grow for every member,
// even one whose labels moved it to another part.
func (t *Table) deliver(ctx context.Context, now time.Time) {
	t.mu.Lock()
	var full, check []string
	var epoch int64
	for c := range t.regions {
		l, ok := t.health.Live(c)
		if !ok || l.Health == api.HealthUnreachable || l.Version < protocol.EndpointsSince {
			continue // gone, or a member that takes no tables
		}
		d := t.members[c]
		if d == nil {
			d = &delivery{}
			t.members[c] = d
		}
		if d.health != l.Health {
			d.health, d.retryAt, d.failures = l.Health, time.Time{}, 0
		}
		p, ok := t.parts[c]
		if !ok {
			continue // registered since the last read: its labels are not known yet
		}
		if d.want.Epoch == 0 || d.want.Digest != p.digest {
			if epoch == 0 {
				epoch = max(t.lastEpoch+1, now.UnixNano())
				t.lastEpoch = epoch
			}
			d.want = protocol.EndpointTable{Version: protocol.Version, Epoch: epoch, Digest: p.digest, Services: p.services}
		}
		if d.inflight || now.Before(d.retryAt) {
			continue
		}
		switch {
		case d.digest != d.want.Digest:
			full = append(full, c)
		case now.Sub(d.checked) >= t.cfg.RepairEvery:
			check = append(check, c)
		default:
			continue
		}
		d.inflight = true
	}
	tables := make([]protocol.EndpointTable, 0, len(full)+len(check))
	for _, c := range full {
		tables = append(tables, t.members[c].want)
	}
	for _, c := range check {
		w := t.members[c].want
		tables = append(tables, protocol.EndpointTable{Version: w.Version, Epoch: w.Epoch, Digest: w.Digest, Check: true})
	}
	t.mu.Unlock()
	// Members of one part share its encoding.
	encoded := map[string][]byte{}
	encode := func(tb protocol.EndpointTable) []byte {
		k := fmt.Sprint(tb.Epoch, tb.Digest, tb.Check)
		if b, ok := encoded[k]; ok {
			return b
		}
		b, _ := json.Marshal(tb)
		encoded[k] = b
		return b
	}
	sends := make([][]byte, len(tables))
	for i, tb := range tables {
		sends[i] = encode(tb)
	}
	for i, c := range full {
		go t.send(ctx, c, "table", sends[i])
	}
	for i, c := range check {
		go t.send(ctx, c, "check", sends[len(full)+i])
	}
}

// epochAhead bounds how far past the hub's clock a member's epoch may be
// for its part to follow it (epochs are clock readings: a later one comes
// from another hub's clock, a far later one from no hub).
const epochAhead = time.Hour

func (t *Table) send(ctx context.Context, cluster, kind string, data []byte) {
	ctx, span := t.cfg.Tracer.Start(ctx, "endpoints.deliver", trace.WithAttributes(attribute.String("atoll.cluster", cluster), attribute.String("atoll.kind", kind)))
	defer span.End()
	rctx, cancel := context.WithTimeout(ctx, t.cfg.SendTimeout)
	defer cancel()
	reply, err := t.bus.Request(rctx, cluster, protocol.EndpointTableSubject(cluster), data)
	var ack protocol.EndpointAck
	if err == nil {
		err = json.Unmarshal(reply, &ack)
	}
	t.mu.Lock()
	d := t.members[cluster]
	if d != nil {
		d.inflight = false
		d.checked = t.now()
		if err == nil {
			d.digest, d.failures = ack.Digest, 0
			if ack.Digest != d.want.Digest && ack.Epoch >= d.want.Epoch && ack.Epoch < d.checked.Add(epochAhead).UnixNano() {
				// The member holds another table at a later epoch (sent
				// by a hub that led in between): it would refuse this
				// part, so the part takes an epoch above the member's.
				d.want.Epoch = max(ack.Epoch+1, t.lastEpoch+1)
				t.lastEpoch = d.want.Epoch
			}
		} else {
			d.retryAt = d.checked.Add(min(time.Second<<min(d.failures, 5), 30*time.Second))
			d.failures++
		}
	}
	stale := d != nil && err == nil && ack.Digest != d.want.Digest
	t.mu.Unlock()
	result := "ok"
	if err != nil {
		result = "error"
		if !errors.Is(err, context.Canceled) {
			t.log.Debug("endpoint table delivery failed", "cluster", cluster, "kind", kind, "err", err)
		}
	}
	t.count(t.sent, result, attribute.String("kind", kind))
	if stale {
		t.Wake() // the table moved on while this one was sent, or the member lost it
	}
}

// noteCounts returns the services whose endpoints went to none or came
// back since the last pass (under t.mu).
func (t *Table) noteCounts(services []protocol.ServiceEndpoints) map[string]int {
	changed := map[string]int{}
	seen := map[string]bool{}
	for _, s := range services {
		seen[s.Name] = true
		n := len(s.Endpoints)
		old, ok := t.counts[s.Name]
		if ok && (old == 0) != (n == 0) {
			changed[s.Name] = n
		}
		t.counts[s.Name] = n
	}
	for name := range t.counts {
		if !seen[name] {
			delete(t.counts, name)
		}
	}
	return changed
}

// event records, on the service, that its endpoints went or came back,
// and on a cluster, that its reports went over the rate bound.
func (t *Table) event(ctx context.Context, changed map[string]int, throttled map[string]int32, now time.Time) error {
	if len(changed) == 0 && len(throttled) == 0 {
		return nil
	}
	return t.store.InTx(ctx, actor, func(tx *pgstore.Tx) error {
		for c, n := range throttled {
			msg := fmt.Sprintf("endpoint reports over the rate bound (%d at once, %g a second): the newest is taken when the bound allows", t.cfg.ReportBurst, t.cfg.ReportRate)
			if err := events.Dedup(ctx, tx, now, api.ObjectReference{Kind: "Cluster", Name: c}, api.EventWarning, "EndpointReportsThrottled", c, msg, "hub/endpoints", n); err != nil {
				return err
			}
		}
		for name, n := range changed {
			ref := api.ObjectReference{Kind: "Service", Name: name}
			typ, reason, msg := api.EventNormal, "EndpointsAvailable", fmt.Sprintf("%d ready endpoints", n)
			if n == 0 {
				typ, reason, msg = api.EventWarning, "NoEndpoints", "no ready endpoint in any reachable cluster: gateways answer 503"
			}
			if err := events.Record(ctx, tx, now, ref, typ, reason, msg, "hub/endpoints"); err != nil {
				return err
			}
		}
		return nil
	})
}

// ServiceStatus is a service's endpoints as the table holds them.
func (t *Table) ServiceStatus(service string) api.ServiceStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	var st api.ServiceStatus
	for _, s := range t.current.Services {
		if s.Name != service {
			continue
		}
		st.Endpoints = int32(len(s.Endpoints))
		for _, e := range s.Endpoints {
			if !slices.Contains(st.Clusters, e.Cluster) {
				st.Clusters = append(st.Clusters, e.Cluster)
			}
		}
	}
	slices.Sort(st.Clusters)
	return st
}

// Current is the table as it stands.
func (t *Table) Current() protocol.EndpointTable {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.current
}

// Selecting names the services that select workload, as last read.
func (t *Table) Selecting(workload string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, s := range t.services {
		if s.Spec.Workload == workload {
			out = append(out, s.Metadata.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Known says whether service exists and cluster is registered, as last
// read: what a member's traffic report may speak of.
func (t *Table) Known(service, cluster string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.regions[cluster]; !ok {
		return false
	}
	for _, s := range t.services {
		if s.Metadata.Name == service {
			return true
		}
	}
	return false
}
