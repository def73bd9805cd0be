package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/member/controller"
	"github.com/atollhq/atoll/member/gateway"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
	"github.com/atollhq/atoll/telemetry"
)

// Config configures a member. Zero values mean the documented defaults.
type Config struct {
	// Hub is the hub's API URL; empty: the one in the join token.
	Hub string
	// JoinToken admits the member the first time; later starts use the
	// member's own credentials and ignore it.
	JoinToken string
	// Name is the cluster's name (a DNS-1123 label); Region is required;
	// Zone and Provider are optional topology labels.
	Name, Region, Zone, Provider string
	// Labels are custom cluster labels.
	Labels map[string]string
	// DataDir keeps the identity, NATS credentials and the JetStream store.
	DataDir string
	// NATSListen is host:port of the region's NATS, where node agents
	// connect; default 127.0.0.1:4223, port 0 picks a free one.
	NATSListen string
	// HeartbeatInterval overrides the interval the hub asks for.
	HeartbeatInterval time.Duration
	// Capacity reports the region's capacity in heartbeats; nil sums the
	// region's nodes and replicas.
	Capacity func() protocol.Capacity
	// NodeGrace is how long a node agent may be silent before it is
	// NotReady and its replicas move; default 3s.
	NodeGrace time.Duration
	// FenceAfter is how long the member runs exclusive workloads without a
	// heartbeat ack from the hub; default 3s. It is reported to the hub,
	// which waits longer than this before re-placing them.
	FenceAfter time.Duration
	// Version is the member's software version.
	Version string
	// Logger; nil discards.
	Logger *slog.Logger
	// Meter; nil means no metrics.
	Meter metric.MeterProvider
	// HTTPClient for the hub's API; nil means a client with a 10s timeout
	// that, when the join token names a CA fingerprint, trusts only that CA.
	HTTPClient *http.Client
	// GatewayListen is host:port of the region's service gateway (port 0:
	// a free one); empty: no gateway listens (the member still keeps the
	// endpoint table).
	GatewayListen string
	// GatewayLocalPeers lets the gateway route to other clusters'
	// replicas on this machine's loopback (atoll dev and tests, where
	// every region runs on one machine); otherwise it refuses them.
	GatewayLocalPeers bool
	// DNSListen is host:port where the member answers <service>.svc.atoll
	// (A and SRV, UDP and TCP) from the gateway's table; empty: no DNS.
	DNSListen string
}

// Member is a running member agent.
type Member struct {
	cfg    Config
	log    *slog.Logger
	id     identity
	server *server.Server
	conn   *nats.Conn
	// beats carries heartbeats to the hub alone, so that they never wait
	// behind bulk work on conn (a controller pass writing thousands of
	// bindings, thousands of deliveries stored at once).
	beats *nats.Conn
	ready chan struct{}

	state *state.Store
	// data holds the configs and secrets the hub sent (sealed).
	data *state.DataStore
	// nodeChanged tells a node to read its bindings again.
	nodeChanged func(node string)
	nodes       *controller.Nodes
	controller  *controller.Controller
	lastAck     atomic.Int64 // unix nanos of the last heartbeat ack
	hubDeltas   atomic.Bool  // the last ack said the hub takes status deltas
	fence       *fence
	drill       drillState
	seq         atomic.Uint64
	// capacity is the summary the next heartbeat carries, refreshed apart
	// from the heartbeats: summing it waits on the controller, the nodes
	// and the bindings, which bulk work holds (over a second while a
	// region binds 30,000 replicas), and a heartbeat must not wait.
	capacity atomic.Pointer[protocol.Capacity]
	interval time.Duration

	rtt    metric.Float64Histogram
	missed metric.Int64Counter
	// logReads counts the hub's log requests relayed, by outcome.
	logReads metric.Int64Counter

	// Access to the region's NATS (nodeauth.go).
	auth      *regionAuth
	keysMu    sync.Mutex // one reload of the node keys at a time (joins, the watcher)
	joinToken string
	adminSeed string

	gateway *gateway.Gateway // the region's service gateway (endpoints.go)
	standby *standby         // the images kept warm for failover (standby.go)
}

// New checks the configuration and makes a member; Run starts it.
func New(cfg Config) (*Member, error) {
	if !api.IsDNSLabel(cfg.Name) {
		return nil, fmt.Errorf("--name %q: must be a DNS-1123 label (lower-case letters, digits and '-')", cfg.Name)
	}
	if !api.IsDNSLabel(cfg.Region) {
		return nil, fmt.Errorf("--region %q: must be a DNS-1123 label", cfg.Region)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("--data-dir is required: the member keeps its identity there")
	}
	if cfg.NATSListen == "" {
		cfg.NATSListen = "127.0.0.1:4223"
	}
	if cfg.NodeGrace <= 0 {
		cfg.NodeGrace = 3 * time.Second
	}
	if cfg.FenceAfter <= 0 {
		cfg.FenceAfter = 3 * time.Second
	}
	if cfg.FenceAfter > protocol.MaxFenceAfter {
		return nil, fmt.Errorf("--fence-after %s: at most %s (a hub that has not heard a member assumes that long)", cfg.FenceAfter, protocol.MaxFenceAfter)
	}

	if cfg.Meter == nil {
		cfg.Meter = noop.NewMeterProvider()
	}
	m := &Member{cfg: cfg, log: cfg.Logger, ready: make(chan struct{}), fence: newFence(cfg.FenceAfter), standby: newStandby()}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("cluster", cfg.Name)
	meter := cfg.Meter.Meter("github.com/atollhq/atoll/member")
	m.rtt, _ = meter.Float64Histogram("member.heartbeat.rtt", metric.WithUnit("s"), metric.WithDescription("From sending a heartbeat to its ack."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5))
	m.missed, _ = meter.Int64Counter("member.heartbeat.missed", metric.WithUnit("{heartbeat}"), metric.WithDescription("Heartbeats the hub did not ack in time."))
	m.logReads, _ = meter.Int64Counter("member.logs.reads", metric.WithUnit("{request}"),
		metric.WithDescription("Log requests relayed to node agents, by outcome: ok, not_found, no_previous, node_problem, old_node, error."))
	refused, _ := meter.Int64Counter("member.nats.refused", metric.WithUnit("{connection}"), metric.WithDescription("Connections the region's NATS refused, by reason."))
	m.auth = &regionAuth{refused: refused, nodes: map[string]string{}, keys: map[string]string{}, loaded: make(chan struct{}),
		srv: func() *server.Server { return m.server }}
	return m, nil
}

// NodeJoinToken is the secret node agents join the region with once
// (valid after Ready; also in the data folder's node-join-token file).
func (m *Member) NodeJoinToken() string { return m.joinToken }

// NodeJoinTokenFile is where the node join token is kept.
func (m *Member) NodeJoinTokenFile() string { return filepath.Join(m.cfg.DataDir, nodeJoinTokenFile) }

// AdminOption authenticates a connection to the region's NATS with the
// region's admin key (valid after Ready): full access, for tools on the
// member's machine such as a simulated node fleet.
func (m *Member) AdminOption() nats.Option {
	opt, _ := NkeyOption(m.adminSeed) // made and checked by startNATS
	return opt
}

// Ready is closed once the member's NATS runs and heartbeats have begun.
func (m *Member) Ready() <-chan struct{} { return m.ready }

// NATSURL is where node agents connect (valid after Ready).
func (m *Member) NATSURL() string { return m.server.ClientURL() }

// Server is the region's NATS server (valid after Ready).
func (m *Member) Server() *server.Server { return m.server }

// Conn is the member's own connection to the region's NATS (valid after
// Ready).
func (m *Member) Conn() *nats.Conn { return m.conn }

// Capacity is the region's capacity summary as the next heartbeat will
// report it (valid after Ready).
func (m *Member) Capacity() protocol.Capacity { return m.cfg.Capacity() }

// Gateway is the region's service gateway (valid after Ready; it listens
// only with GatewayListen).
func (m *Member) Gateway() *gateway.Gateway { return m.gateway }

// Workloads is the per-workload status of the last controller pass
// (valid after Ready).
func (m *Member) Workloads() []protocol.WorkloadStatus { return m.controller.Status() }

// State is the member's KV state (valid after Ready).
func (m *Member) State() *state.Store { return m.state }

// DataHeld is, per config or secret (protocol.DataID), the newest
// version of its values the member holds (valid after Ready).
func (m *Member) DataHeld() map[string]int64 { return m.data.Held() }

// LastAck is when the hub last acknowledged a heartbeat: the member's
// lease on the hub. Zero before the first ack.
func (m *Member) LastAck() time.Time {
	n := m.lastAck.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Run registers (or re-registers), starts the region's NATS and heartbeats
// until ctx ends. It returns an error wrapping ErrRefused when the hub
// refuses the member.
func (m *Member) Run(ctx context.Context) error {
	id, err := m.admit(ctx)
	if err != nil {
		return err
	}
	m.id = id
	if err := m.startNATS(); err != nil {
		return err
	}
	defer m.stopNATS()
	st, err := state.Open(ctx, m.conn)
	if err != nil {
		return err
	}
	m.state = st
	// The member is the only writer of its buckets: serve its reads from
	// memory.
	if err := st.Mirror(ctx); err != nil {
		return err
	}
	recs, err := st.Nodes(ctx)
	if err != nil {
		return err
	}
	held, err := st.Desired(ctx)
	if err != nil {
		return err
	}
	for _, d := range held {
		// Held until the hub confirms them in this run's term.
		m.fence.desired(d.Workload, d.Epoch, d.Exclusive, d.Deleted, 0, time.Now())
		if d.Version < protocol.ExclusiveSince && !d.Deleted {
			m.fence.stale(d.Workload) // stored by a member before fencing: ask which are exclusive
		}
	}
	if err := m.openData(ctx); err != nil {
		return err
	}
	if err := m.serveNodeAccess(ctx, st); err != nil {
		return err
	}

	m.nodes = controller.NewNodes(recs, time.Now(), m.cfg.NodeGrace)
	addrWake := make(chan struct{}, 1)
	m.nodes.OnAddressChange(func() {
		select {
		case addrWake <- struct{}{}:
		default:
		}
	})
	m.gateway = gateway.New(gateway.Config{Listen: m.cfg.GatewayListen, Cluster: m.cfg.Name, Region: m.cfg.Region, LocalPeers: m.cfg.GatewayLocalPeers,
		Logger: m.log, Meter: m.cfg.Meter})
	tbl := &tables{gw: m.gateway, dir: m.cfg.DataDir}
	tbl.load()
	if m.cfg.GatewayListen != "" {
		if err := m.gateway.Start(); err != nil {
			return err
		}
		defer m.gateway.Stop()
	}
	if m.cfg.DNSListen != "" {
		addr, err := m.gateway.ServeDNS(m.cfg.DNSListen)
		if err != nil {
			return err
		}
		defer m.gateway.Stop()
		m.log.InfoContext(ctx, "answering DNS for services", "listen", addr, "domain", api.ServiceDomain)
	}
	if _, err := m.serveEndpointTables(ctx, tbl); err != nil {
		return err
	}
	var beatSub atomic.Pointer[nats.Subscription]
	unread := func() int {
		if s := beatSub.Load(); s != nil {
			n, _, _ := s.Pending()
			return n
		}
		return 0
	}
	m.nodes.SetUnread(unread)
	m.controller = controller.New(controller.Config{Store: st, Nodes: m.nodes, Logger: m.log, Data: m.data.Held,
		Meter: m.cfg.Meter.Meter("github.com/atollhq/atoll/member/controller")})
	sub, err := m.serveNodes(ctx, st, m.nodes, m.controller)
	if err != nil {
		return err
	}
	beatSub.Store(sub)
	if _, err := m.serveDesired(ctx, st, m.controller.WakeFor); err != nil {
		return err
	}
	if _, err := m.serveData(ctx, st); err != nil {
		return err
	}
	if _, err := m.serveStandby(ctx, st); err != nil {
		return err
	}
	if _, err := m.serveLogs(ctx, st); err != nil {
		return err
	}
	if _, err := m.serveDigest(ctx, st); err != nil {
		return err
	}
	if err := m.serveInventory(ctx, st, m.nodes); err != nil {
		return err
	}
	if _, err := m.serveDrills(ctx, m.controller.Wake); err != nil {
		return err
	}
	m.controller.Start(ctx)
	defer m.controller.Stop()
	go m.reportStatus(ctx, m.controller)
	go m.publishEndpoints(ctx, m.nodes, addrWake)
	go m.publishTraffic(ctx, m.gateway)
	if m.cfg.Capacity == nil {
		m.cfg.Capacity = func() protocol.Capacity {
			allocated, _ := st.Allocated(ctx) // from memory: one entry per node
			return capacity(m.nodes, m.controller.Status(), allocated)
		}
	}
	close(m.ready)
	m.log.InfoContext(ctx, "member running", "region", m.cfg.Region, "nats", m.server.ClientURL(), "hub", id.Hub, "leaf", id.LeafURLs)
	return m.heartbeat(ctx)
}

// admit returns the member's identity: registering with the join token on
// first start, re-registering with the member token later.
func (m *Member) admit(ctx context.Context) (identity, error) {
	id, ok, err := loadIdentity(m.cfg.DataDir)
	if err != nil {
		return id, err
	}
	if ok && id.Cluster != m.cfg.Name {
		return id, fmt.Errorf("%s holds the identity of cluster %q, not %q: use another --data-dir", m.cfg.DataDir, id.Cluster, m.cfg.Name)
	}
	if ok && id.MemberToken != "" {
		if m.cfg.Hub != "" {
			id.Hub = m.cfg.Hub
		}
		// One quick try; when the hub is away, run on the kept credentials.
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := m.register(rctx, id.Hub, id.MemberToken, id)
		cancel()
		switch {
		case err == nil:
			id.UserJWT, id.LeafURLs = resp.NATSUserJWT, resp.LeafURLs
			m.applyInterval(resp)
			return id, id.save(m.cfg.DataDir)
		case errors.Is(err, ErrRefused):
			return id, fmt.Errorf("%w (to join again, delete %s and start with a new join token)", err, filepath.Join(m.cfg.DataDir, identityFile))
		default:
			m.log.WarnContext(ctx, "hub unreachable; running on the kept credentials", "err", err)
			return id, nil
		}
	}
	if m.cfg.JoinToken == "" {
		return id, fmt.Errorf("%s has no member identity yet: pass --join-token-file (a join token from 'atoll token create NAME --join')", m.cfg.DataDir)
	}
	jt, err := api.ParseJoinToken(m.cfg.JoinToken)
	if err != nil {
		return id, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	hub := jt.Hub
	if m.cfg.Hub != "" {
		hub = m.cfg.Hub
	}
	if !ok {
		// Keep the key before the hub learns it: a member killed between
		// the hub's commit and its own save comes back with the same key,
		// which the hub accepts as a retry.
		seed, err := newSeed()
		if err != nil {
			return id, err
		}
		id = identity{Cluster: m.cfg.Name, NATSSeed: seed}
	}
	id.Hub, id.CA = hub, jt.CA
	if err := id.save(m.cfg.DataDir); err != nil {
		return id, err
	}
	backoff := 250 * time.Millisecond
	for {
		resp, err := m.register(ctx, hub, m.cfg.JoinToken, id)
		if err == nil {
			id.MemberToken, id.UserJWT, id.LeafURLs = resp.MemberToken, resp.NATSUserJWT, resp.LeafURLs
			m.applyInterval(resp)
			if err := id.save(m.cfg.DataDir); err != nil {
				return id, err
			}
			m.log.InfoContext(ctx, "joined the hub", "hub", hub)
			return id, nil
		}
		if errors.Is(err, ErrRefused) {
			// The hub refused this key for good: keep nothing of it.
			_ = os.Remove(filepath.Join(m.cfg.DataDir, identityFile))
			return id, err
		}
		if ctx.Err() != nil {
			return id, err
		}
		m.log.WarnContext(ctx, "cannot reach the hub to join; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return id, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (m *Member) applyInterval(resp *api.RegisterResponse) {
	if m.cfg.HeartbeatInterval == 0 {
		m.interval = resp.HeartbeatInterval.Get(0)
	}
}

// startNATS runs the region's NATS: its own JetStream domain and store, a
// client listener for node agents, and a leaf connection to the hub.
func (m *Member) startNATS() error {
	host, portText, err := net.SplitHostPort(m.cfg.NATSListen)
	if err != nil {
		return fmt.Errorf("--nats-listen %q: %w", m.cfg.NATSListen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("--nats-listen %q: bad port", m.cfg.NATSListen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if m.joinToken, err = loadOrCreateSecret(m.cfg.DataDir, nodeJoinTokenFile, newJoinToken); err != nil {
		return fmt.Errorf("node join token: %w", err)
	}
	if m.adminSeed, err = loadOrCreateSecret(m.cfg.DataDir, adminKeyFile, newUserSeed); err != nil {
		return fmt.Errorf("admin key: %w", err)
	}
	admin, err := nkeys.FromSeed([]byte(m.adminSeed))
	if err != nil {
		return fmt.Errorf("admin key %s: %w", filepath.Join(m.cfg.DataDir, adminKeyFile), err)
	}
	self, err := nkeys.CreateUser() // the member's own connection: in memory only
	if err != nil {
		return err
	}
	m.auth.admin, _ = admin.PublicKey()
	m.auth.member, _ = self.PublicKey()
	m.auth.joinToken = []byte(m.joinToken)
	var remotes []*url.URL
	for _, u := range m.id.LeafURLs {
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("leaf URL %q from the hub: %w", u, err)
		}
		remotes = append(remotes, p)
	}
	remote := &server.RemoteLeafOpts{URLs: remotes, Credentials: filepath.Join(m.cfg.DataDir, credsFile)}
	if m.id.CA != "" {
		tlsCfg, err := client.PinnedTLS(m.id.CA)
		if err != nil {
			return err
		}
		remote.TLS, remote.TLSConfig, remote.TLSTimeout = true, tlsCfg, 5
	}
	opts := &server.Options{
		ServerName:      "atoll-member-" + m.cfg.Name,
		Host:            host,
		Port:            port,
		JetStream:       true,
		JetStreamDomain: "member-" + m.cfg.Name,
		StoreDir:        filepath.Join(m.cfg.DataDir, "jetstream"),
		LeafNode: server.LeafNodeOpts{
			Remotes:           []*server.RemoteLeafOpts{remote},
			ReconnectInterval: 500 * time.Millisecond,
		},
		NoSigs:     true,
		MaxPayload: 8 << 20,
		// Nobody connects anonymously: regionAuth checks every client.
		CustomClientAuthentication: m.auth,
		AlwaysEnableNonce:          true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("start the region's NATS: %w", err)
	}
	s.SetLoggerV2(telemetry.NATSLogger{Log: m.log, Role: "member " + m.cfg.Name}, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("start the region's NATS: not ready within 30s (is %s free?)", m.cfg.NATSListen)
	}
	selfPub, _ := self.PublicKey()
	dial := func(name string) (*nats.Conn, error) {
		return nats.Connect("", nats.InProcessServer(s), nats.Name(name), nats.Nkey(selfPub, self.Sign),
			nats.CustomInboxPrefix(protocol.InboxPrefix(m.cfg.Name)), nats.MaxReconnects(-1))
	}
	conn, err := dial("atoll-member-" + m.cfg.Name)
	if err != nil {
		s.Shutdown()
		return fmt.Errorf("connect to the region's NATS: %w", err)
	}
	beats, err := dial("atoll-member-" + m.cfg.Name + "-heartbeats")
	if err != nil {
		conn.Close()
		s.Shutdown()
		return fmt.Errorf("connect to the region's NATS: %w", err)
	}
	m.server, m.conn, m.beats = s, conn, beats
	exposure := "this machine only"
	if ip := net.ParseIP(host); host == "" || (ip != nil && !ip.IsLoopback()) || (ip == nil && host != "localhost") {
		exposure = "the network"
	}
	m.log.Info("region NATS listening: node agents connect with their own enrolled keys, nobody anonymously",
		"listen", s.ClientURL(), "reachable_from", exposure, "node_join_token_file", m.NodeJoinTokenFile())
	return nil
}

func (m *Member) stopNATS() {
	if m.conn != nil {
		m.conn.Close()
	}
	if m.beats != nil {
		m.beats.Close()
	}
	if m.server != nil {
		m.server.Shutdown()
		m.server.WaitForShutdown()
	}
}

// heartbeat sends heartbeats every interval until ctx ends. When acks stop
// for a while, it asks the hub's API whether this member is still
// registered (refreshing its credentials when it is), and returns an
// error wrapping ErrRefused when it is not: a deregistered member stops
// instead of knocking forever.
func (m *Member) heartbeat(ctx context.Context) error {
	interval := m.cfg.HeartbeatInterval
	if interval <= 0 {
		interval = m.interval
	}
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	subject := protocol.HeartbeatSubject(m.cfg.Name)
	m.refreshCapacity()
	capCtx, stopCap := context.WithCancel(ctx)
	defer stopCap() // a member stopped by the hub's refusal stops summing too
	go m.keepCapacity(capCtx, interval)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	silentFor := max(10*interval, 2*time.Second)
	started, lastCheck := time.Now(), time.Time{}
	for {
		m.beat(ctx, subject, interval)
		since := m.LastAck()
		if since.IsZero() {
			since = started
		}
		if time.Since(since) > silentFor && time.Since(lastCheck) > 30*time.Second && !m.drill.cutOff(time.Now()) {
			lastCheck = time.Now()
			if err := m.recheck(ctx); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// keepCapacity refreshes the heartbeats' capacity summary every interval
// until ctx ends.
func (m *Member) keepCapacity(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.refreshCapacity()
		}
	}
}

func (m *Member) refreshCapacity() {
	c := m.cfg.Capacity()
	m.capacity.Store(&c)
}

// recheck re-registers with the member token after a long silence.
func (m *Member) recheck(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := m.register(rctx, m.id.Hub, m.id.MemberToken, m.id)
	switch {
	case errors.Is(err, ErrRefused):
		m.log.ErrorContext(ctx, "the hub no longer accepts this member", "err", err)
		return fmt.Errorf("cluster %s was deregistered, or its identity re-issued: the hub no longer accepts this member (%w); to join again, delete %s and start it with a new join token (--join-token-file)",
			m.cfg.Name, err, filepath.Join(m.cfg.DataDir, identityFile))
	case err != nil:
		m.log.WarnContext(ctx, "no heartbeat acks and the hub's API is unreachable; running on", "err", err)
		return nil
	}
	m.id.UserJWT, m.id.LeafURLs = resp.NATSUserJWT, resp.LeafURLs
	if err := m.id.save(m.cfg.DataDir); err != nil {
		m.log.WarnContext(ctx, "saving refreshed credentials failed", "err", err)
	}
	return nil
}

// beat sends one heartbeat and waits up to interval for its ack.
func (m *Member) beat(ctx context.Context, subject string, interval time.Duration) {
	now := time.Now()
	if m.drill.cutOff(now) {
		return // a drill cut this member off: silence, as in a real outage
	}
	hb := protocol.Heartbeat{Version: protocol.Version, Cluster: m.cfg.Name, Seq: m.seq.Add(1), SentAt: now.UTC(),
		MemberVersion: m.cfg.Version, IntervalMillis: interval.Milliseconds(), Capacity: *m.capacity.Load(),
		FenceAfterMillis: m.cfg.FenceAfter.Milliseconds(), Term: m.fence.Term(), Resync: m.fence.needsResync(now)}
	data, _ := json.Marshal(hb)
	rctx, cancel := context.WithTimeout(ctx, interval)
	defer cancel()
	start := time.Now()
	msg, err := m.beats.RequestWithContext(rctx, subject, data)
	if err != nil {
		if ctx.Err() == nil {
			m.missed.Add(ctx, 1)
		}
		return
	}
	var ack protocol.HeartbeatAck
	if json.Unmarshal(msg.Data, &ack) != nil || ack.Seq != hb.Seq {
		m.missed.Add(ctx, 1)
		return
	}
	if m.drill.cutOff(time.Now()) {
		return // an ack that raced the drill's start does not count
	}
	// The lease counts from the heartbeat's sending (the hub's own count
	// starts later, when it receives it): an ack that waited, in a paused
	// member say, never stretches it.
	m.lastAck.Store(now.UnixNano())
	m.hubDeltas.Store(ack.StatusDeltas)
	if m.fence.acked(now) {
		m.log.WarnContext(ctx, "the hub is back after longer than the fence: exclusive workloads wait for its confirmation", "fence_after", m.cfg.FenceAfter)
	}
	m.rtt.Record(ctx, time.Since(start).Seconds())
}
