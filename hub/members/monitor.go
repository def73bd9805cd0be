package members

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// HealthConfig tunes the health monitor. Zero values mean the defaults.
type HealthConfig struct {
	// Interval is the members' heartbeat interval; default 500ms. A cluster
	// is Suspect after two intervals without a heartbeat.
	Interval time.Duration
	// UnreachableAfter is the grace: a cluster is Unreachable after this
	// long without a heartbeat; default 1.5s (three missed heartbeats).
	UnreachableAfter time.Duration
	// FlushEvery is how often changed capacity is written to the store when
	// the health state does not change; default 5s.
	FlushEvery time.Duration
}

func (c HealthConfig) withDefaults() HealthConfig {
	if c.Interval <= 0 {
		c.Interval = 500 * time.Millisecond
	}
	if c.UnreachableAfter <= 0 {
		c.UnreachableAfter = 1500 * time.Millisecond
	}
	if c.FlushEvery <= 0 {
		c.FlushEvery = 5 * time.Second
	}
	return c
}

// Monitor turns heartbeats into cluster health: Ready while they arrive,
// Suspect after two missed intervals, Unreachable after the grace, Ready
// again on the first heartbeat. It keeps the live state in memory (the
// hub's cost grows with clusters, not nodes or heartbeats) and writes the
// store only on transitions and, throttled, on capacity changes. After
// the hub starts, every cluster gets one full grace before it can be
// declared Unreachable, so a hub restart does not flap the fleet.
type Monitor struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
	cfg   HealthConfig

	mu       sync.Mutex
	clusters map[string]*clusterHealth
	started  time.Time
	gen      uint64 // bumped by Add, so Load never drops a cluster added during its read

	metrics healthMetrics
	leader  leader.Leadership
	// Leases (heartbeat acks), under mu: when this hub last saw itself
	// lead, and since when it leads now, in which term (zero: it does not).
	lastLed   time.Time
	leadSince time.Time
	leadTerm  int64
	wake      chan struct{} // a heartbeat arrived from a cluster that is not Ready
	cancel    context.CancelFunc
	done      chan struct{}
	once      sync.Once
}

// Store is what the monitor reads and writes (*pgstore.Store has it).
type Store interface {
	List(ctx context.Context, kind string, opts pgstore.ListOptions) (*pgstore.ListResult, error)
	InTx(ctx context.Context, actor pgstore.Actor, fn func(tx *pgstore.Tx) error) error
}

type clusterHealth struct {
	gen     uint64
	health  string    // as last written to the store
	since   time.Time // when health began, as the monitor judged it
	noted   time.Time // when this hub recorded health (the event's time on the leader)
	seen    time.Time // last heartbeat (or hub start)
	heard   bool      // a heartbeat arrived since this hub started
	hb      protocol.Heartbeat
	dirty   bool // capacity or versions changed since the last write
	written time.Time
}

type healthMetrics struct {
	received  metric.Int64Counter
	dropped   metric.Int64Counter
	latency   metric.Float64Histogram
	detection metric.Float64Histogram
}

// NewMonitor makes a monitor; Start loads the clusters and begins. A nil
// lead is a hub that leads alone.
func NewMonitor(store Store, log *slog.Logger, now func() time.Time, meter metric.Meter, cfg HealthConfig, lead leader.Leadership) *Monitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	m := &Monitor{store: store, log: log, now: now, cfg: cfg.withDefaults(), clusters: map[string]*clusterHealth{}, done: make(chan struct{}), wake: make(chan struct{}, 1), leader: lead}
	if m.leader == nil {
		m.leader = leader.Sole{}
	}
	m.metrics.received, _ = meter.Int64Counter("heartbeats.received", metric.WithUnit("{heartbeat}"), metric.WithDescription("Heartbeats accepted from members."))
	m.metrics.dropped, _ = meter.Int64Counter("nats.messages.dropped", metric.WithUnit("{message}"), metric.WithDescription("Messages from members dropped, by reason."))
	m.metrics.latency, _ = meter.Float64Histogram("heartbeat.condition.latency", metric.WithUnit("s"),
		metric.WithDescription("From the heartbeat that changed a cluster's health to the new condition being stored."),
		metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1))
	m.metrics.detection, _ = meter.Float64Histogram("health.detection.delay", metric.WithUnit("s"),
		metric.WithDescription("From a cluster passing a silence threshold to the condition being stored."),
		metric.WithExplicitBucketBoundaries(0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2))
	_, _ = meter.Int64ObservableGauge("clusters", metric.WithUnit("{cluster}"), metric.WithDescription("Registered clusters by health."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			counts := map[string]int64{api.HealthReady: 0, api.HealthSuspect: 0, api.HealthUnreachable: 0, api.HealthUnknown: 0}
			m.mu.Lock()
			for _, c := range m.clusters {
				counts[c.health]++
			}
			m.mu.Unlock()
			for h, n := range counts {
				o.Observe(n, metric.WithAttributes(attribute.String("health", h)))
			}
			return nil
		}))
	return m
}

// Config is the monitor's effective configuration.
func (m *Monitor) Config() HealthConfig { return m.cfg }

// Load reads the registered clusters; each gets a grace from now.
func (m *Monitor) Load(ctx context.Context) error {
	m.mu.Lock()
	before := m.gen
	m.mu.Unlock()
	res, err := m.store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return fmt.Errorf("load clusters: %w", err)
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started.IsZero() {
		m.started = now
	}
	seen := map[string]bool{}
	for _, rec := range res.Items {
		var c api.Cluster
		if err := rec.Decode(&c); err != nil {
			return fmt.Errorf("load clusters: %w", err)
		}
		if c.Metadata.DeletionTimestamp != nil {
			continue // on its way out
		}
		seen[c.Metadata.Name] = true
		if _, ok := m.clusters[c.Metadata.Name]; ok {
			continue
		}
		health := c.Status.Health
		if health == "" {
			health = api.HealthUnknown
		}
		m.clusters[c.Metadata.Name] = &clusterHealth{health: health, seen: now, since: now}
	}
	for name, c := range m.clusters {
		if !seen[name] && c.gen <= before {
			delete(m.clusters, name)
		}
	}
	return nil
}

// Add starts watching a newly registered (or re-registered) cluster.
func (m *Monitor) Add(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	if c, ok := m.clusters[name]; ok {
		c.gen = m.gen
		return
	}
	m.clusters[name] = &clusterHealth{gen: m.gen, health: api.HealthUnknown, seen: m.now(), since: m.now()}
}

// Unreachable lists the clusters whose stored health is Unreachable.
func (m *Monitor) Unreachable() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name, c := range m.clusters {
		if c.health == api.HealthUnreachable {
			out = append(out, name)
		}
	}
	return out
}

// Forget stops watching a deregistered cluster.
func (m *Monitor) Forget(name string) {
	m.mu.Lock()
	delete(m.clusters, name)
	m.mu.Unlock()
}

// Observe records a heartbeat that arrived at `at`. It returns false when
// the cluster is not registered (the heartbeat is then dropped).
func (m *Monitor) Observe(hb protocol.Heartbeat, at time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clusters[hb.Cluster]
	if !ok {
		return false
	}
	if c.hb.Capacity != hb.Capacity || c.hb.MemberVersion != hb.MemberVersion || c.hb.Version != hb.Version {
		c.dirty = true
	}
	c.seen, c.heard, c.hb = at, true, hb
	if c.health != api.HealthReady {
		// Recovery is news: evaluate now rather than at the next tick.
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// LeaderAckGrace is how long a hub that stopped leading goes on acking
// heartbeats (the acks are the members' leases): a leader that loses
// PostgreSQL for a moment, or steps down, does not fence every region's
// exclusive workloads. A new leader re-places an exclusive workload only
// once this grace and leaderOverlap, then the member's fence and the
// margin, have passed since it began to lead: the previous leader's last
// acks have run out by then.
const LeaderAckGrace = 10 * time.Second

// leaderOverlap is how long a hub may still believe it leads after
// another took over: a follower takes the lock as soon as the leader's
// session ends, and the old leader sees itself lead until its lease
// (hub/leader's default, 3 s) passes without a confirmed heartbeat.
const leaderOverlap = 3 * time.Second

// lead is this hub's term as the leadership says now: 0 when it does not
// lead (a sole hub, which always leads, is term 1).
func (m *Monitor) lead() int64 {
	if !m.leader.IsLeader() {
		return 0
	}
	return max(m.leader.Epoch(), 1)
}

// mayAck says whether this hub acks heartbeats at now: while it leads,
// and for LeaderAckGrace after. It also notes when this hub began to lead.
func (m *Monitor) mayAck(now time.Time) bool {
	term := m.lead()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.noteLeadLocked(term, now)
	return term != 0 || (!m.lastLed.IsZero() && now.Sub(m.lastLed) < LeaderAckGrace)
}

// noteLeadLocked records the term this hub leads in at now (0: none): a
// new term, even straight after another, starts leadSince afresh.
func (m *Monitor) noteLeadLocked(term int64, now time.Time) {
	switch {
	case term == 0:
		m.leadSince, m.leadTerm = time.Time{}, 0
		return
	case term != m.leadTerm:
		m.leadSince, m.leadTerm = now, term
	}
	m.lastLed = now
}

// Live returns what the monitor knows of a cluster now.
func (m *Monitor) Live(name string) (failover.Live, bool) {
	term := m.lead()
	m.mu.Lock()
	defer m.mu.Unlock()
	// A pass that runs straight after a takeover (the placer is woken by
	// it) must see the new term, not wait for the monitor's next tick.
	m.noteLeadLocked(term, m.now())
	c, ok := m.clusters[name]
	if !ok {
		return failover.Live{}, false
	}
	from := c.seen
	// A sole hub (no election) never follows another leader: no earlier
	// acks to wait out.
	if !leader.IsSole(m.leader) && !m.leadSince.IsZero() {
		if t := m.leadSince.Add(LeaderAckGrace + leaderOverlap); t.After(from) {
			from = t
		}
	}
	return failover.Live{Seen: c.seen, Heard: c.heard, Health: c.health, Since: c.since, Noted: c.noted, LeaseFrom: from, Capacity: c.hb.Capacity,
		FenceAfter: time.Duration(c.hb.FenceAfterMillis) * time.Millisecond, Term: c.hb.Term, Resync: c.hb.Resync, Version: c.hb.Version}, true
}

// AdoptStored takes the health the store holds for every cluster this
// monitor knows as the last written state, so that the next pass writes
// whatever this hub sees differently (a follower tracks health in memory
// only; the transitions it saw may never have been stored).
func (m *Monitor) AdoptStored(ctx context.Context) error {
	res, err := m.store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rec := range res.Items {
		var c api.Cluster
		if rec.Decode(&c) != nil || c.Status.Health == "" {
			continue
		}
		if ch, ok := m.clusters[c.Metadata.Name]; ok {
			ch.health, ch.dirty = c.Status.Health, true
		}
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}
