package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/drill"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/tokens"
	"github.com/atollhq/atoll/member/image"
	"github.com/atollhq/atoll/telemetry"
)

type hubOptions struct {
	db           dbFlags
	keyFiles     []string
	generateKey  bool // atoll dev: make <data-dir>/atoll.key when missing
	listen       string
	dataDir      string
	logs         logFlags
	advertiseURL string
	natsListen   string
	leafListen   string
	// natsStarted, if set (atoll dev), hears the embedded NATS server's
	// leaf port and client URL once it listens; an error stops the hub.
	natsStarted       func(leafPort int, clientURL string) error
	leafAdvertise     []string
	leafCompression   string
	heartbeatInterval time.Duration
	unreachableAfter  time.Duration
	tlsCert, tlsKey   string
	tlsCA             string
	natsURLs          []string
	name              string
	// entryPoints are what drills' probes may send through, name=URL
	// (atoll dev sets its gateways and global entry).
	entryPoints map[string]string
	// registry is how the hub resolves oci images' tags (atoll dev lists
	// its embedded registry as insecure).
	registry         image.RegistryConfig
	nodesResolveTags bool
	// debugListen serves Go's profiles (off when empty); loopback only
	// unless debugAllowRemote.
	debugListen      string
	debugAllowRemote bool
	// memoryLimitRatio: the Go runtime's soft memory limit as this share
	// of the process's cgroup memory limit (0: not set).
	memoryLimitRatio float64
}

func (o *hubOptions) addFlags(cmd *cobra.Command, defaultListen, defaultNATS, defaultLeaf string) {
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", defaultListen, "address for the API, console and metrics")
	o.logs.add(f)
	f.StringVar(&o.name, "name", "", "this hub's name among the hubs sharing the database (leader election, /api/v1/hubs, audit); at most 50 bytes; default: <hostname>/<pid>")
	f.StringVar(&o.advertiseURL, "advertise-url", "", "the API's URL as members and clients reach it (goes into join tokens); default: the address each request came in on")
	f.StringVar(&o.natsListen, "nats-listen", defaultNATS, "address of the embedded NATS server's client port (port 0 picks one)")
	f.StringSliceVar(&o.natsURLs, "nats-url", nil, "use this existing NATS cluster (comma-separated URLs) instead of the embedded server; configure it with 'atoll hub nats-config' and give members its leafnode URLs with --leaf-advertise")
	f.StringVar(&o.leafListen, "leaf-listen", defaultLeaf, "address where members' NATS leaf nodes connect (port 0 picks one)")
	f.StringVar(&o.leafCompression, "leaf-compression", "auto", "compression of members' leaf connections to the embedded NATS: auto (S2 by round-trip time), off, fast, better or best; S2 costs the hub a few MB of buffers per member and saves bandwidth on slow links (a connection compresses only when both ends want it)")
	f.StringSliceVar(&o.leafAdvertise, "leaf-advertise", nil, "leafnode URLs members should connect to (default: the leaf port on the host they registered through)")
	f.DurationVar(&o.heartbeatInterval, "heartbeat-interval", 500*time.Millisecond, "how often members heartbeat; a cluster is Suspect after two missed")
	f.DurationVar(&o.unreachableAfter, "unreachable-after", 1500*time.Millisecond, "a cluster silent this long (three missed heartbeats) is Unreachable")
	f.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate (chain) for the API and the leafnode listener; turns TLS on")
	f.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringToStringVar(&o.entryPoints, "probe-entry-point", nil, "an entry point drills' probes may send requests through, as name=URL (a member's --gateway-listen, or 'atoll gateway'); repeat for more")
	f.StringVar(&o.tlsCA, "tls-ca", "", "PEM certificate of the CA that issued --tls-cert (its fingerprint goes into join tokens); default: the last certificate of --tls-cert")
	f.StringVar(&o.debugListen, "debug-listen", "", "serve Go's profiles (net/http/pprof: /debug/pprof/heap, profile, goroutine, trace) on this address, apart from the API; off by default. Unauthenticated: keep it on loopback (e.g. 127.0.0.1:6060) and reach it over SSH; any other address is refused without --debug-allow-remote")
	f.Float64Var(&o.memoryLimitRatio, "memory-limit-ratio", 0.9, "set the Go runtime's soft memory limit (GOMEMLIMIT) to this share of the memory limit of the hub's cgroup (a container's or a systemd unit's MemoryMax), so that the garbage collector works harder near the limit instead of the process being killed; 0 leaves it unset; a GOMEMLIMIT in the environment wins")
	f.BoolVar(&o.debugAllowRemote, "debug-allow-remote", false, "let --debug-listen bind an address that is not loopback (anyone who reaches it can read the hub's profiles and load it with CPU profiles and traces)")
}

func newHubCmd() *cobra.Command {
	o := &hubOptions{}
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Run the hub: API, console and controllers, backed by PostgreSQL",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.db.resolve(); err != nil {
				return err
			}
			log, err := o.logs.newLogger()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", o.listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", o.listen, err)
			}
			return runHub(cmd.Context(), log, o, ln, nil)
		},
	}
	o.db.add(cmd.Flags())
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "/var/lib/atoll", "folder for the hub's files (the first admin token, the default key file)")
	addKeyFlag(cmd.Flags(), &o.keyFiles, "; else <data-dir>/"+keyFileName)
	cmd.AddCommand(newNATSConfigCmd(), newGenKeyCmd(), newRotateKeyCmd())
	o.addFlags(cmd, "0.0.0.0:8080", "127.0.0.1:4222", "0.0.0.0:7422")
	f := cmd.Flags()
	f.StringSliceVar(&o.registry.Insecure, "registry-insecure", nil, "registry (host or host:port) the hub may resolve image tags at over plain HTTP (repeatable); every other registry is HTTPS only")
	f.StringVar(&o.registry.CAFile, "registry-ca", "", "PEM file of CAs trusted for registries when resolving image tags, besides the system's roots")
	f.StringVar(&o.registry.CredentialsFile, "registry-credentials", "", "docker config.json style file with registry credentials for resolving image tags (read at each resolution, never logged)")
	f.BoolVar(&o.nodesResolveTags, "nodes-resolve-tags", false, "do not resolve image tags at the hub (for a hub that cannot reach the registries): nodes resolve them, clusters may run different bits, and only images named by digest are kept warm")
	return cmd
}

// logFlags are every long-running command's logging options.
type logFlags struct{ level, format string }

func (l *logFlags) add(f *pflag.FlagSet) {
	f.StringVar(&l.level, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&l.format, "log-format", "auto", "text, json, or auto: text on a terminal, JSON otherwise")
}

// newLogger logs to standard error as the flags say.
func (l logFlags) newLogger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", l.level)
	}
	var format telemetry.LogFormat
	switch l.format {
	case "auto", "":
		format = telemetry.LogAuto
	case "text":
		format = telemetry.LogText
	case "json":
		format = telemetry.LogJSON
	default:
		return nil, fmt.Errorf("--log-format: %q is not text, json or auto", l.format)
	}
	return telemetry.NewLogger(os.Stderr, level, format), nil
}

// runHub serves the hub on ln until ctx ends. Until PostgreSQL answers and
// migrations are done, /healthz is 200, /readyz and the API are 503. ready
// (when not nil) is called with the admin token path once serving.
func runHub(ctx context.Context, log *slog.Logger, o *hubOptions, ln net.Listener, ready func(tokenPath string, tel *telemetry.Providers)) error {
	if o.heartbeatInterval <= 0 || o.unreachableAfter <= 2*o.heartbeatInterval {
		ln.Close()
		return fmt.Errorf("--unreachable-after (%s) must be more than twice --heartbeat-interval (%s): a cluster is Suspect after two missed heartbeats", o.unreachableAfter, o.heartbeatInterval)
	}
	if err := natsbus.CheckLeafCompression(o.leafCompression); err != nil {
		ln.Close()
		return fmt.Errorf("--leaf-compression: %w", err)
	}
	if err := setMemoryLimit(log, o.memoryLimitRatio); err != nil {
		ln.Close()
		return err
	}
	if o.debugListen != "" {
		stop, err := serveDebug(log, o.debugListen, o.debugAllowRemote)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	keyFile := filepath.Join(o.dataDir, keyFileName)
	keys, created, err := keySource{files: o.keyFiles, env: os.Getenv(keyEnv), defaultFile: keyFile, generate: o.generateKey}.ring()
	if err != nil {
		ln.Close()
		return err
	}
	if created {
		log.InfoContext(ctx, "made a key-encryption key for the NATS signing keys and secrets: keep a copy apart from the database's backups", "file", keyFile, "key_id", keys.PrimaryID())
	}
	log.InfoContext(ctx, "key-encryption keys", "seals_with", keys.PrimaryID(), "opens_with", keys.IDs())
	var tlsCfg *tls.Config
	var fingerprint string
	if o.tlsCert != "" || o.tlsKey != "" {
		var err error
		if tlsCfg, fingerprint, err = hub.LoadTLS(o.tlsCert, o.tlsKey, o.tlsCA); err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tlsCfg)
		log.InfoContext(ctx, "TLS on for the API and leaf nodes", "ca_fingerprint", fingerprint)
	}
	tel, err := telemetry.Setup(ctx, "atoll-hub", version)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	var handler atomic.Pointer[http.Handler]
	starting := http.Handler(startingHandler())
	handler.Store(&starting)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.InfoContext(ctx, "hub listening", "addr", ln.Addr().String())

	storeCfg := o.db.config()
	storeCfg.Logger, storeCfg.Tracer, storeCfg.Meter = log, tel.Tracer, tel.Meter
	store, err := openStore(ctx, log, storeCfg)
	if err != nil {
		_ = srv.Close()
		return err
	}
	defer store.Close()
	// Before anything is written: a key-encryption key that does not open
	// the secrets stops the hub here, having changed nothing.
	if n, err := store.CheckSecretKeys(ctx, keys); err != nil {
		_ = srv.Close()
		return explainKeyError(err)
	} else if n > 0 {
		log.InfoContext(ctx, "secrets' data keys open with the keys given", "secrets", n)
	}
	tokenPath, err := tokens.Bootstrap(ctx, store, o.dataDir, os.Getenv("ATOLL_ADMIN_TOKEN"))
	if err != nil {
		_ = srv.Close()
		return err
	}
	seeds, err := store.NATSKeys(ctx, keys, newSeeds)
	if err != nil {
		_ = srv.Close()
		return explainKeyError(err)
	}
	ids, err := natsIdentities(ctx, store)
	if err != nil {
		_ = srv.Close()
		return err
	}
	var bus *natsbus.Bus
	if len(o.natsURLs) > 0 {
		if len(o.leafAdvertise) == 0 {
			_ = srv.Close()
			return errors.New("--nats-url needs --leaf-advertise: the leafnode URLs of that cluster, which members connect to")
		}
		bus, err = natsbus.Connect(ctx, natsbus.ExternalConfig{URLs: o.natsURLs, Seeds: natsbus.Seeds(seeds), Identities: ids, Logger: log})
	} else {
		bus, err = natsbus.Start(ctx, natsbus.Config{Seeds: natsbus.Seeds(seeds), Identities: ids, DataDir: o.dataDir,
			ClientListen: o.natsListen, LeafListen: o.leafListen, LeafTLS: tlsCfg, LeafCompression: o.leafCompression, Logger: log})
	}
	if err != nil {
		_ = srv.Close()
		return err
	}
	defer bus.Close()
	log.InfoContext(ctx, "hub NATS running", "client", bus.ClientURL(), "leaf_port", bus.LeafPort(), "external", len(o.natsURLs) > 0)
	if o.natsStarted != nil && len(o.natsURLs) == 0 {
		if err := o.natsStarted(bus.LeafPort(), bus.ClientURL()); err != nil {
			_ = srv.Close()
			return err
		}
	}
	// Any number of hubs may share the database; one leads the controllers.
	elector, err := leader.New(leader.Config{DatabaseURL: o.db.url, HolderID: o.name, Logger: log})
	if err != nil {
		_ = srv.Close()
		return err
	}
	elector.Start(ctx)
	defer elector.Stop()
	if len(o.natsURLs) == 0 {
		go warnSharedEmbeddedNATS(ctx, log, store, elector.Holder())
	}
	server := hub.New(hub.Config{Store: store, Telemetry: tel, Logger: log, Version: version, Bus: bus, Leader: elector, HubID: elector.Holder(),
		AdvertiseURL: o.advertiseURL, LeafURLs: o.leafAdvertise, CAFingerprint: fingerprint, Keys: keys,
		Health: members.HealthConfig{Interval: o.heartbeatInterval, UnreachableAfter: o.unreachableAfter}, Drills: drill.Config{EntryPoints: o.entryPoints}, Registry: o.registry, NodesResolveTags: o.nodesResolveTags})
	if err := server.Start(ctx); err != nil {
		_ = srv.Close()
		server.Stop()
		return err
	}
	srv.RegisterOnShutdown(server.Stop)
	h := server.Handler()
	handler.Store(&h)
	log.InfoContext(ctx, "hub ready", "addr", ln.Addr().String())
	if ready != nil {
		ready(tokenPath, tel)
	}

	select {
	case err := <-serveErr:
		server.Stop()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("hub stopping")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	server.Stop()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// setMemoryLimit sets the Go runtime's soft memory limit to ratio of the
// process's cgroup memory limit, when it has one and GOMEMLIMIT is not
// set. Without a limit the garbage collector lets the heap grow to twice
// what is live (GOGC=100) before collecting: the hub's RSS at the scale
// harness's sizes is 2-3 times its live heap (BENCHMARKS.md), enough to
// be killed by a limit the live heap is well under.
func setMemoryLimit(log *slog.Logger, ratio float64) error {
	if ratio == 0 {
		return nil
	}
	if math.IsNaN(ratio) || ratio < 0 || ratio > 1 {
		return fmt.Errorf("--memory-limit-ratio %v: want a share in (0, 1], or 0 for none", ratio)
	}
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("Go memory limit from GOMEMLIMIT", "GOMEMLIMIT", v)
		return nil
	}
	limit, err := memlimit.Set(memlimit.WithRatio(ratio), memlimit.WithProvider(memlimit.FromCgroup))
	if err != nil {
		// No cgroup to read (not Linux, no memory controller): no limit.
		log.Warn("Go memory limit not set from the cgroup", "err", err)
		return nil
	}
	if limit < math.MaxInt64 {
		log.Info("Go memory limit set from the cgroup's", "limit_bytes", limit, "ratio", ratio)
	}
	return nil
}

// serveDebug serves telemetry.DebugHandler on addr (see
// telemetry.DebugListen) until the function it returns is called.
func serveDebug(log *slog.Logger, addr string, allowRemote bool) (stop func(), err error) {
	ln, err := telemetry.DebugListen(addr, allowRemote)
	if err != nil {
		if errors.Is(err, telemetry.ErrDebugNotLoopback) {
			return nil, fmt.Errorf("--debug-listen %w: profiles carry no authentication, keep them on loopback (127.0.0.1:6060), or give --debug-allow-remote", err)
		}
		return nil, fmt.Errorf("--debug-listen %s: %w", addr, err)
	}
	// No write timeout: a CPU profile or trace streams for the seconds it
	// was asked for.
	srv := &http.Server{Handler: telemetry.DebugHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { _ = srv.Serve(ln) }()
	log.Info("debug listener serving Go's profiles at /debug/pprof/", "addr", ln.Addr().String(), "loopback_only", !allowRemote)
	return func() { _ = srv.Close() }, nil
}

// warnSharedEmbeddedNATS warns, once, when another hub shares the database
// while this one runs its own embedded NATS: members joined through one
// hub are then not heard by the others, whichever leads.
func warnSharedEmbeddedNATS(ctx context.Context, log *slog.Logger, store *pgstore.Store, self string) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, hubs, err := leader.Hubs(ctx, store.Pool())
		if err != nil {
			continue
		}
		for _, h := range hubs {
			if h.Holder != self {
				log.WarnContext(ctx, "another hub shares this database, but this hub runs its own embedded NATS: members are heard only by the hub they joined through; give every hub the same NATS cluster with --nats-url (deploy/nats/README.md)", "hub", self, "other", h.Holder)
				return
			}
		}
	}
}

// openStore connects and migrates, retrying while PostgreSQL is not there
// yet (it may be starting alongside the hub).
func openStore(ctx context.Context, log *slog.Logger, cfg pgstore.Config) (*pgstore.Store, error) {
	backoff := 250 * time.Millisecond
	for {
		store, err := pgstore.Open(ctx, cfg)
		if err == nil {
			return store, nil
		}
		if api.ErrorCode(err) != api.CodeUnavailable {
			return nil, err
		}
		log.WarnContext(ctx, "waiting for PostgreSQL", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for PostgreSQL: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func startingHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
			return
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"type":"https://atoll.dev/problems/unavailable","title":"Service Unavailable","status":503,"code":"Unavailable","detail":"the hub is starting: waiting for PostgreSQL and migrations"}` + "\n"))
	}
}

// newSeeds makes the NATS signing keys of a new database.
func newSeeds() (pgstore.NATSSeeds, error) {
	s, err := natsbus.NewSeeds()
	return pgstore.NATSSeeds(s), err
}

// newNATSConfigCmd prints the nats-server configuration an existing NATS
// cluster needs to serve this hub (atoll hub --nats-url).
func newNATSConfigCmd() *cobra.Command {
	var db dbFlags
	var output string
	var keyFiles []string
	cmd := &cobra.Command{
		Use:   "nats-config --database-url URL --key-file FILE",
		Short: "Print the nats-server configuration an existing NATS cluster needs for 'atoll hub --nats-url'",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := db.resolve(); err != nil {
				return fmt.Errorf("%w: the NATS signing keys live in the hub's database", err)
			}
			keys, _, err := keySource{files: keyFiles, env: os.Getenv(keyEnv)}.ring()
			if err != nil {
				return err
			}
			store, err := pgstore.Open(cmd.Context(), db.config())
			if err != nil {
				return err
			}
			defer store.Close()
			seeds, err := store.NATSKeys(cmd.Context(), keys, newSeeds)
			if err != nil {
				return explainKeyError(err)
			}
			ids, err := natsIdentities(cmd.Context(), store)
			if err != nil {
				return err
			}
			conf, err := natsbus.ServerConfig(natsbus.Seeds(seeds), ids)
			if err != nil {
				return err
			}
			if output != "" {
				// Public keys and signed JWTs only, no seeds: readable by
				// the NATS servers' own user.
				return writeFileAtomic(output, []byte(conf), 0o644)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), conf)
			return err
		},
	}
	db.add(cmd.Flags())
	addKeyFlag(cmd.Flags(), &keyFiles, "")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the configuration to this file (atomically) instead of standard output")
	return cmd
}

// natsIdentities reads the members' NATS identities the hub's NATS starts
// with: each cluster's account, and the keys it revokes.
func natsIdentities(ctx context.Context, store *pgstore.Store) (natsbus.Identities, error) {
	var ids natsbus.Identities
	var err error
	if ids.Current, err = store.NATSIdentities(ctx); err != nil {
		return ids, err
	}
	ids.Revoked, err = store.NATSRevocations(ctx)
	return ids, err
}
