package natsbus

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/telemetry"
)

// Config configures the hub's NATS.
type Config struct {
	// Seeds are the signing keys (shared by all hubs through the store).
	Seeds Seeds
	// Identities are the members known so far.
	Identities Identities
	// DataDir holds the JetStream store (<DataDir>/jetstream).
	DataDir string
	// ClientListen is host:port for NATS clients; default 127.0.0.1:4222,
	// port 0 picks a free one.
	ClientListen string
	// LeafListen is host:port for members' leafnode connections; default
	// 0.0.0.0:7422, port 0 picks a free one.
	LeafListen string
	// ServerName names this server in the NATS cluster; default "atoll-hub".
	ServerName string
	// LeafTLS, when set, makes the leafnode listener TLS-only.
	LeafTLS *tls.Config
	// LeafCompression is the leafnode connections' compression (see
	// LeafCompressionModes); "" is "auto".
	LeafCompression string
	// Logger receives the server's log lines; nil discards.
	Logger *slog.Logger
}

// LeafCompressionModes are Config.LeafCompression's values: "auto" (S2,
// its level by the connection's round-trip time: no compression below
// 10 ms, but S2's framing and buffers all the same), "off", or S2 at a
// fixed level, "fast", "better", "best". A connection compresses only
// when both ends want it: "off" here turns it off for every member. S2
// costs each leaf connection a few MB of buffers at the hub (4.6 MB a
// member under the scale harness's load, BENCHMARKS.md) and saves
// bandwidth on a slow link.
var LeafCompressionModes = []string{"auto", "off", "fast", "better", "best"}

// CheckLeafCompression refuses a mode that is none of
// LeafCompressionModes (a command checks its flag before it starts
// anything).
func CheckLeafCompression(mode string) error {
	_, err := leafCompression(mode)
	return err
}

// leafCompression is the server's option for a LeafCompressionModes value.
func leafCompression(mode string) (server.CompressionOpts, error) {
	switch mode {
	case "", "auto":
		return server.CompressionOpts{Mode: server.CompressionS2Auto}, nil
	case "off":
		return server.CompressionOpts{Mode: server.CompressionOff}, nil
	case "fast":
		return server.CompressionOpts{Mode: server.CompressionS2Fast}, nil
	case "better":
		return server.CompressionOpts{Mode: server.CompressionS2Better}, nil
	case "best":
		return server.CompressionOpts{Mode: server.CompressionS2Best}, nil
	}
	return server.CompressionOpts{}, fmt.Errorf("leaf compression %q: want one of %s", mode, strings.Join(LeafCompressionModes, ", "))
}

// Identities are the members' NATS identities as the store keeps them.
type Identities struct {
	// Current maps each registered cluster to its member's user key.
	Current map[string]string
	// Revoked maps a cluster to its revoked user keys, with when.
	Revoked map[string]map[string]time.Time
}

// legacy lists every member key the store knows: each was signed in the
// ATOLL account itself before members had accounts of their own.
func (ids Identities) legacy() []string {
	var keys []string
	for _, k := range ids.Current {
		keys = append(keys, k)
	}
	for _, r := range ids.Revoked {
		for k := range r {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// clusters lists every cluster the store knows of.
func (ids Identities) clusters() []string {
	names := slices.Collect(maps.Keys(ids.Current))
	for c := range ids.Revoked {
		names = append(names, c)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Bus is the running hub NATS.
type Bus struct {
	auth     *authority
	server   *server.Server
	resolver *server.MemAccResolver
	conn     *nats.Conn
	beats    *nats.Conn      // members' heartbeats alone: never behind bulk work on conn
	opts     *server.Options // the server writes the ports it picked here
	req      *requester
	sys      *nats.Conn // system-account connection to an external cluster

	mu       sync.Mutex
	revoked  map[string]map[string]time.Time // cluster to user key to when
	accounts map[string]bool                 // member accounts given to the servers
}

func newBus(auth *authority, ids Identities) *Bus {
	b := &Bus{auth: auth, revoked: map[string]map[string]time.Time{}, accounts: map[string]bool{}}
	for c, r := range ids.Revoked {
		b.revoked[c] = maps.Clone(r)
	}
	return b
}

// Start runs the embedded server and connects the hub to it.
func Start(ctx context.Context, cfg Config) (*Bus, error) {
	compression, err := leafCompression(cfg.LeafCompression)
	if err != nil {
		return nil, err
	}
	auth, err := newAuthority(cfg.Seeds)
	if err != nil {
		return nil, err
	}
	b := newBus(auth, cfg.Identities)
	b.resolver = &server.MemAccResolver{}
	sysJWT, err := auth.systemAccountJWT()
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	_, accJWT, err := auth.accountJWT(cfg.Identities.legacy())
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	if err := b.resolver.Store(auth.systemPub, sysJWT); err != nil {
		return nil, err
	}
	if err := b.resolver.Store(auth.accountPub, accJWT); err != nil {
		return nil, err
	}
	for _, c := range cfg.Identities.clusters() {
		if err := b.pushMember(c); err != nil {
			return nil, fmt.Errorf("start nats: %w", err)
		}
	}
	host, port, err := splitListen(cmp.Or(cfg.ClientListen, "127.0.0.1:4222"))
	if err != nil {
		return nil, fmt.Errorf("nats client listen: %w", err)
	}
	leafHost, leafPort, err := splitListen(cmp.Or(cfg.LeafListen, "0.0.0.0:7422"))
	if err != nil {
		return nil, fmt.Errorf("nats leaf listen: %w", err)
	}
	opts := &server.Options{
		ServerName:       cmp.Or(cfg.ServerName, "atoll-hub"),
		Host:             host,
		Port:             port,
		JetStream:        true,
		JetStreamDomain:  "hub",
		StoreDir:         filepath.Join(cfg.DataDir, "jetstream"),
		LeafNode:         server.LeafNodeOpts{Host: leafHost, Port: leafPort, TLSConfig: cfg.LeafTLS, TLSTimeout: 5, Compression: compression},
		TrustedOperators: []*jwt.OperatorClaims{auth.operatorClaims},
		SystemAccount:    auth.systemPub,
		AccountResolver:  b.resolver,
		NoSigs:           true,
		MaxPayload:       8 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	if cfg.Logger != nil {
		s.SetLoggerV2(telemetry.NATSLogger{Log: cfg.Logger, Role: "hub"}, false, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("start nats: the server did not become ready within 30s (are the ports free?)")
	}
	b.server, b.opts = s, opts
	conn, err := b.connect("hub")
	if err != nil {
		s.Shutdown()
		return nil, err
	}
	b.conn = conn
	if b.beats, err = b.connect("hub-heartbeats"); err != nil {
		b.Close()
		return nil, err
	}
	if b.req, err = newRequester(conn); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// connect opens an in-process connection with a fresh all-powerful user
// of the ATOLL account.
func (b *Bus) connect(name string) (*nats.Conn, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	token, err := b.auth.userJWT("atoll-"+name, pub)
	if err != nil {
		return nil, err
	}
	conn, err := nats.Connect("", nats.InProcessServer(b.server), nats.UserJWTAndSeed(token, string(seed)),
		nats.Name("atoll-"+name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	return conn, nil
}

// Conn is the hub's own connection.
func (b *Bus) Conn() *nats.Conn { return b.conn }

// HeartbeatConn is the connection that serves members' heartbeats, apart
// from Conn, so that an ack never waits behind deliveries, status reports
// or log streams.
func (b *Bus) HeartbeatConn() *nats.Conn { return b.beats }

// ClientURL is where NATS clients connect.
func (b *Bus) ClientURL() string {
	if b.server == nil {
		return b.conn.ConnectedUrlRedacted()
	}
	return b.server.ClientURL()
}

// LeafPort is the port of the embedded leafnode listener (0 with an
// external cluster).
func (b *Bus) LeafPort() int {
	if b.opts == nil {
		return 0
	}
	return b.opts.LeafNode.Port
}

// LeafURL is a leafnode URL on the given host (tls:// when the listener
// uses TLS).
func (b *Bus) LeafURL(host string) string {
	if b.opts == nil {
		return ""
	}
	scheme := "nats"
	if b.opts.LeafNode.TLSConfig != nil {
		scheme = "tls"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(b.LeafPort()))}
	return u.String()
}

// Server is the embedded server (for tests and diagnostics).
func (b *Bus) Server() *server.Server { return b.server }

// MemberJWT signs the user JWT of a member's key in the member's own
// account, limited to the member's own subjects. revoked are the
// cluster's revoked keys as the store has them (the account is given to
// the servers again with them when this bus knew fewer).
func (b *Bus) MemberJWT(cluster, userPub string, revoked map[string]time.Time) (string, error) {
	// The name is one subject token: a wildcard or a dot would widen the
	// permissions over other members' subjects.
	if cluster == "" || strings.ContainsAny(cluster, ".*> \t\r\n") {
		return "", fmt.Errorf("member JWT: cluster name %q is not a single NATS subject token", cluster)
	}
	token, err := b.auth.memberUserJWT(cluster, userPub)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.merge(cluster, revoked) && b.accounts[cluster] {
		return token, nil
	}
	if err := b.pushMember(cluster); err != nil {
		return "", fmt.Errorf("member JWT: %w", err)
	}
	return token, nil
}

// merge adds revoked to what the bus knows of cluster's revocations and
// says whether that changed anything. b.mu is held.
func (b *Bus) merge(cluster string, revoked map[string]time.Time) bool {
	changed := false
	for k, at := range revoked {
		if b.revoked[cluster] == nil {
			b.revoked[cluster] = map[string]time.Time{}
		}
		if old, ok := b.revoked[cluster][k]; !ok || at.After(old) {
			b.revoked[cluster][k] = at
			changed = true
		}
	}
	return changed
}

// RevokeAll revokes every key of revoked (the store's whole list, cluster
// to user key to when) besides those this bus revoked already, and gives
// the servers each member account whose list grew. Several hubs share the
// servers' account JWTs: each push replaces the last, so a hub pushes
// every revocation of the account it knows of, not just its own.
func (b *Bus) RevokeAll(revoked map[string]map[string]time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, c := range slices.Sorted(maps.Keys(revoked)) {
		if !b.merge(c, revoked[c]) && b.accounts[c] {
			continue
		}
		if err := b.pushMember(c); err != nil {
			errs = append(errs, fmt.Errorf("revoke in %q: %w", c, err))
		}
	}
	return errors.Join(errs...)
}

// pushMember gives the servers cluster's member account with the
// revocations the bus knows: straight into the embedded server, or
// through the system account to an external cluster (whose full resolver
// spreads it to every server). b.mu is held, or the bus is starting.
func (b *Bus) pushMember(cluster string) error {
	ac, token, err := b.auth.memberAccountJWT(cluster, b.revoked[cluster])
	if err != nil {
		return err
	}
	if b.server == nil && b.sys != nil {
		if err := pushClaims(b.sys, token); err != nil {
			return err
		}
		b.accounts[cluster] = true
		return nil
	}
	if err := b.resolver.Store(ac.Subject, token); err != nil {
		return err
	}
	b.accounts[cluster] = true
	if b.server == nil {
		return nil // starting: the server reads the resolver
	}
	// A member account the server has not loaded yet is read from the
	// resolver when first used; a loaded one takes the new claims now,
	// which drops connections of keys they revoke.
	if acc, err := b.server.LookupAccount(ac.Subject); err == nil {
		b.server.UpdateAccountClaims(acc, ac)
	}
	return nil
}

// Close drains the hub's connection and stops the server.
func (b *Bus) Close() {
	if b.sys != nil {
		b.sys.Close()
	}
	if b.beats != nil {
		b.beats.Close()
	}
	if b.conn != nil {
		// Drain works in the background: wait for it to finish (it is
		// bounded by the drain timeout) before the server goes away.
		closed := make(chan struct{})
		b.conn.SetClosedHandler(func(*nats.Conn) { close(closed) })
		if b.conn.Drain() == nil {
			<-closed
		} else {
			b.conn.Close()
		}
	}
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
	}
}

func splitListen(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}
