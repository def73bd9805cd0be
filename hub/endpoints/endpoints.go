// Package endpoints keeps the global endpoint table: which replica, in
// which cluster and at which address, serves each Service. Members
// publish their ready replicas' addresses (protocol.EndpointReport) on
// their own subject; the table takes the cluster from the subject alone,
// so a member can only ever speak for itself. The table lives in memory,
// away from the heartbeat path and the database's write path: it is
// rebuilt from the members' next reports (every 2 s) after a hub starts.
//
// The leader sends every member the whole table (protocol.EndpointTable)
// with an epoch and a digest, as the placer sends desired state: on each
// change, and a digest check every RepairEvery that resends the table to
// a member whose digest differs. A cluster the health monitor declares
// Unreachable has its endpoints withdrawn from the table at once (the next
// pass, within PassEvery), so every gateway stops routing to it without
// waiting for the member. A service whose endpoints all go, or come back,
// gets an event.
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
	Logger      *slog.Logger
	Now         func() time.Time
	Meter       metric.Meter
	Tracer      trace.Tracer
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
	reports   map[string]report // cluster -> its last report
	services  []api.Service     // as last read
	workloads map[string]*api.Workload
	regions   map[string]string // cluster -> region label
	readAt    time.Time
	dirty     bool
	current   protocol.EndpointTable
	members   map[string]*delivery
	counts    map[string]int       // service -> endpoints, as last evented
	refusedAt map[string]time.Time // cluster -> when a refused report was last logged
	started   time.Time

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

// delivery is one member's side of the table: what it acked and when.
type delivery struct {
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
	if cfg.Tracer == nil {
		cfg.Tracer = tnoop.NewTracerProvider().Tracer("")
	}
	t := &Table{cfg: cfg, store: store, health: health, bus: bus, lead: lead, log: cfg.Logger, now: cfg.Now,
		reports: map[string]report{}, workloads: map[string]*api.Workload{}, regions: map[string]string{},
		members: map[string]*delivery{}, counts: map[string]int{}, refusedAt: map[string]time.Time{}, dirty: true, wake: make(chan struct{}, 1)}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.started = t.now()
	if cfg.Meter != nil {
		t.received, _ = cfg.Meter.Int64Counter("endpoints.reports", metric.WithUnit("{report}"), metric.WithDescription("Endpoint reports from members, by result (taken, stale, refused)."))
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
	t.mu.Lock()
	old, ok := t.reports[r.Cluster]
	if ok && old.run == r.Run && r.Seq <= old.seq {
		t.mu.Unlock()
		t.count(t.received, "stale")
		return
	}
	t.reports[r.Cluster] = report{run: r.Run, seq: r.Seq, at: t.now(), workloads: r.Workloads}
	t.mu.Unlock()
	t.count(t.received, "taken")
	t.Wake()
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
	services := build(t.services, t.workloads, t.regions, t.reports, t.usable)
	digest := protocol.EndpointDigest(services)
	if digest != t.current.Digest {
		epoch := max(t.current.Epoch+1, now.UnixNano())
		t.current = protocol.EndpointTable{Version: protocol.Version, Epoch: epoch, Digest: digest, Services: services}
		if t.changes != nil {
			t.changes.Add(ctx, 1)
		}
	}
	table := t.current
	noted := t.noteCounts(table.Services)
	warm := t.warm(now)
	t.mu.Unlock()
	if !t.lead.IsLeader() || !warm {
		return nil
	}
	t.deliver(ctx, table, now)
	return t.event(ctx, noted, now)
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
	regions := map[string]string{}
	for _, rec := range cls.Items {
		regions[rec.Meta.Name] = rec.Meta.Labels[api.LabelRegion]
	}
	t.mu.Lock()
	t.services, t.workloads, t.regions, t.readAt = services, workloads, regions, now
	for c := range t.reports {
		if _, ok := regions[c]; !ok {
			delete(t.reports, c) // deregistered
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

// deliver sends the table to every usable cluster that does not hold
// it, and a digest check to those due one; one request per member in
// flight.
func (t *Table) deliver(ctx context.Context, table protocol.EndpointTable, now time.Time) {
	t.mu.Lock()
	var full, check []string
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
		if d.inflight || now.Before(d.retryAt) {
			continue
		}
		switch {
		case d.digest != table.Digest:
			full = append(full, c)
		case now.Sub(d.checked) >= t.cfg.RepairEvery:
			check = append(check, c)
		default:
			continue
		}
		d.inflight = true
	}
	t.mu.Unlock()
	fullData, _ := json.Marshal(table)
	checkData, _ := json.Marshal(protocol.EndpointTable{Version: table.Version, Epoch: table.Epoch, Digest: table.Digest, Check: true})
	for _, c := range full {
		go t.send(ctx, c, "table", fullData)
	}
	for _, c := range check {
		go t.send(ctx, c, "check", checkData)
	}
}

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
		} else {
			d.retryAt = d.checked.Add(min(time.Second<<min(d.failures, 5), 30*time.Second))
			d.failures++
		}
	}
	stale := d != nil && err == nil && ack.Digest != t.current.Digest
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

// event records, on the service, that its endpoints went or came back.
func (t *Table) event(ctx context.Context, changed map[string]int, now time.Time) error {
	if len(changed) == 0 {
		return nil
	}
	return t.store.InTx(ctx, actor, func(tx *pgstore.Tx) error {
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
