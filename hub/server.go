package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/clusterevents"
	"github.com/atollhq/atoll/hub/compactor"
	"github.com/atollhq/atoll/hub/datasync"
	"github.com/atollhq/atoll/hub/drill"
	"github.com/atollhq/atoll/hub/endpoints"
	"github.com/atollhq/atoll/hub/httpapi"
	"github.com/atollhq/atoll/hub/imagepin"
	"github.com/atollhq/atoll/hub/keyring"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/placer"
	"github.com/atollhq/atoll/hub/revisions"
	"github.com/atollhq/atoll/hub/secrets"
	"github.com/atollhq/atoll/hub/standby"
	"github.com/atollhq/atoll/hub/throttle"
	"github.com/atollhq/atoll/hub/traffic"
	"github.com/atollhq/atoll/member/image"
	"github.com/atollhq/atoll/protocol"
	"github.com/atollhq/atoll/telemetry"
)

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// Store is the PostgreSQL store (required).
	Store *pgstore.Store
	// Telemetry are the process's providers (required).
	Telemetry *telemetry.Providers
	// Logger; nil discards.
	Logger *slog.Logger
	// Version is reported in the OpenAPI document; default "dev".
	Version string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ChangeRetention is how long the change log keeps rows for watches to
	// resume from; default 1h.
	ChangeRetention time.Duration
	// CompactEvery is how often the change log is compacted; default 1m.
	CompactEvery time.Duration
	// WatchKeepalive is the interval of keep-alive comments on idle
	// watches; default 15s.
	WatchKeepalive time.Duration
	// EventRetention is how long events are kept; default 1h.
	EventRetention time.Duration
	// Bus is the hub's NATS; nil runs the hub without members (API only).
	Bus *natsbus.Bus
	// Health tunes the cluster health monitor.
	Health members.HealthConfig
	// AdvertiseURL is the hub's API address as members and clients should
	// use it (it goes into join tokens); empty: the address each request
	// came in on.
	AdvertiseURL string
	// LeafURLs are the NATS leafnode URLs members connect to; empty: the
	// hub's leafnode port on the host the member registered through.
	LeafURLs []string
	// CAFingerprint is the SHA-256 fingerprint of the API's TLS CA, put in
	// join tokens; empty without TLS.
	CAFingerprint string
	// HubID names this hub in heartbeat acks, /readyz, /api/v1/hubs and
	// the audit rows of its controllers' writes; it should be the name
	// its elector campaigns under. Default "hub".
	HubID string
	// PlaceEvery is the placement controller's resync period; default 2s
	// (changes wake it sooner).
	PlaceEvery time.Duration
	// Leader says whether this hub leads (package leader); nil means it
	// always does (a single hub). Only the leader writes placements,
	// cluster health and folded status, and runs drills; every hub keeps
	// the state warm.
	Leader leader.Leadership
	// Drills tunes the drill controller.
	Drills drill.Config
	// AuthThrottle tunes how failed token checks and sign-ins are slowed
	// down per client address (package throttle's defaults: 20 in a row,
	// then one every 2 s).
	AuthThrottle throttle.Config
	// Keys are the key-encryption keys (the first seals) that wrap
	// secrets' data keys; nil: the hub stores no secrets (their writes
	// answer 503).
	Keys *keyring.Ring
	// Registry is how the hub reaches registries to resolve oci images'
	// tags to digests, once per template revision (package imagepin):
	// HTTPS with the system's roots and CAFile, plain HTTP only to the
	// registries listed in Insecure; credentials from the workload's
	// imagePullSecret (read through Keys' vault), then CredentialsFile.
	Registry image.RegistryConfig
	// NodesResolveTags turns that off, for a hub that cannot reach the
	// registries: templates are delivered as written and each node
	// resolves a tag itself (clusters may then run different bits, and
	// only images named by digest are kept warm).
	NodesResolveTags bool
}

// Server is one hub: the API and the controllers, built from Config.
type Server struct {
	store    *pgstore.Store
	log      *slog.Logger
	now      func() time.Time
	hubID    string
	bus      *natsbus.Bus
	lead     leader.Audited
	leaderM  leaderMetrics
	notifier *pgstore.Notifier

	api        *httpapi.API
	compactor  *compactor.Compactor
	monitor    *members.Monitor
	heartbeats *members.Heartbeats // nil without NATS
	folder     *placer.StatusFolder
	placer     *placer.Placer      // nil without NATS
	endpoints  *endpoints.Table    // nil without NATS
	traffic    *traffic.Window     // nil without NATS
	datasync   *datasync.Syncer    // nil without NATS
	resolver   *imagepin.Resolver  // nil without NATS
	standby    *standby.Controller // nil without NATS
	drills     *drill.Controller

	done     chan struct{} // closed by Stop
	stopOnce sync.Once
}

// New builds the hub's parts. Start begins the background services;
// Handler serves HTTP.
func New(cfg Config) *Server {
	s := &Server{store: cfg.Store, log: cfg.Logger, now: cfg.Now, hubID: cfg.HubID, bus: cfg.Bus, done: make(chan struct{})}
	if s.hubID == "" {
		s.hubID = "hub"
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	lead := cfg.Leader
	if lead == nil {
		lead = leader.Sole{}
	}
	s.lead = leader.Audited{Leadership: lead, Hub: s.hubID}
	meter := cfg.Telemetry.Meter.Meter("github.com/atollhq/atoll/hub")
	s.leaderMetrics(meter)
	s.notifier = s.store.NewNotifier(s.log)
	s.compactor = compactor.New(s.store, s.log, cfg.ChangeRetention, cfg.EventRetention, cfg.CompactEvery)
	s.monitor = members.NewMonitor(s.store, s.log, s.now, meter, cfg.Health, s.lead)
	s.folder = placer.NewStatusFolder(s.store, func(c string) string {
		if l, ok := s.monitor.Live(c); ok {
			return l.Health
		}
		return api.HealthUnreachable // deregistered: its reports are history
	}, s.lead, s.log, s.now, meter, 0)
	var vault *secrets.Vault
	if cfg.Keys != nil {
		vault = secrets.New(cfg.Keys)
	}
	var finalizers []string
	var rebalancer httpapi.Rebalancer // nil, not a nil *Placer, without NATS
	if s.bus != nil {
		s.placer = placer.NewPlacer(s.store, s.bus, s.monitor, s.lead, s.log, s.now, meter, cfg.PlaceEvery)
		s.heartbeats = members.NewHeartbeats(s.bus.HeartbeatConn(), s.monitor, s.hubID, s.now, s.placer.Wake)
		s.datasync = datasync.New(s.store, secrets.Reader{Vault: vault, Store: s.store}, s.bus, s.monitor, s.lead, s.log, cfg.PlaceEvery)
		finalizers = []string{placer.Finalizer}
		rebalancer = s.placer
		s.endpoints = endpoints.New(s.store, s.monitor, s.bus, s.lead, endpoints.Config{Logger: s.log, Now: s.now, Meter: meter,
			Tracer: cfg.Telemetry.Tracer.Tracer("github.com/atollhq/atoll/hub")})
		// Images: tags resolved once per revision, delivered pinned, and
		// kept warm where workloads may fail over.
		var registry imagepin.Registry
		if r, err := image.NewResolver(cfg.Registry); err != nil {
			s.log.Error("registry configuration: images cannot be resolved", "err", err)
			registry = brokenRegistry{err}
		} else {
			registry = r
		}
		pins := imagepin.NewPins(s.store)
		if !cfg.NodesResolveTags {
			s.placer.PinImages(pins)
		}
		s.standby = standby.New(s.store, pins, s.bus, s.monitor, s.lead, standby.Config{Logger: s.log, Now: s.now, Meter: cfg.Telemetry.Meter})
		if !cfg.NodesResolveTags {
			s.resolver = imagepin.New(s.store, registry, s.lead, imagepin.Config{Logger: s.log, Now: s.now, Meter: cfg.Telemetry.Meter,
				Credentials: pullSecrets{secrets.Reader{Vault: vault, Store: s.store}},
				OnPinned:    func() { s.placer.Wake(); s.standby.Wake() }})
		}
		s.traffic = traffic.New(s.endpoints, traffic.Config{Logger: s.log, Now: s.now, Meter: meter})
		s.placer.MeasureTraffic(s.traffic)
	}
	var serviceTraffic httpapi.ServiceTraffic
	if s.traffic != nil {
		serviceTraffic = s.traffic
	}
	var serviceEndpoints httpapi.ServiceEndpoints
	if s.endpoints != nil {
		serviceEndpoints = s.endpoints
	}
	clusterevents.New(s.store) // cordons, drains and taints as events on the cluster
	// A workload's references to configs and secrets are checked in its
	// write's transaction (the check reads no version: a create stays one
	// round trip).
	s.store.OnSpecChangeUnversioned("Workload", secrets.CheckReferences)
	// Its template pins the versions of those it uses; a config's new
	// values are kept by version and roll the workloads that use it (a
	// secret's, by its write in the API).
	s.store.OnSpecPrepare("Workload", secrets.Pin)
	s.store.OnSpecChange("Config", secrets.KeepConfig)
	// Services' host names and tcp ports are checked again in their
	// write's transaction, one service write at a time.
	s.store.OnSpecChange("Service", httpapi.CheckServiceClaims)
	s.drills = drill.New(s.store, s.bus, s.monitor, s.folder, s.lead, s.log, s.now, meter, cfg.Telemetry.Tracer.Tracer("github.com/atollhq/atoll/hub"), s.hubID, cfg.Drills)
	s.api = httpapi.New(httpapi.Config{Store: s.store, Notifier: s.notifier, Telemetry: cfg.Telemetry, Logger: s.log, Now: s.now,
		Version: cfg.Version, WatchKeepalive: cfg.WatchKeepalive, Bus: s.bus, Health: s.monitor,
		Members: members.NewRegistrar(s.store, s.bus, s.monitor, s.log, s.now, meter, cfg.LeafURLs),
		Drills:  s.drills, Leader: s.lead, HubID: s.hubID, AdvertiseURL: cfg.AdvertiseURL, CAFingerprint: cfg.CAFingerprint,
		WorkloadFinalizers: finalizers, Throttle: cfg.AuthThrottle, Rebalancer: rebalancer, Endpoints: serviceEndpoints, Traffic: serviceTraffic, Vault: vault,
		ProbeEntryPoints: slices.Sorted(maps.Keys(cfg.Drills.EntryPoints)),
		Revisions:        revisions.New(s.store, cfg.Telemetry.Tracer, cfg.Telemetry.Meter)})
	return s
}

// Start begins the change listener, the compactor, the drill controller
// and, with NATS, the health monitor, the heartbeat handler and the
// placement controller.
func (s *Server) Start(ctx context.Context) error {
	s.notifier.Start(ctx)
	s.compactor.Start(ctx)
	s.api.Start(ctx)
	if err := s.drills.Start(ctx); err != nil {
		return err
	}
	// Drill and cluster changes (an abort, a health transition) wake the
	// drill controller at once.
	s.wakeOn(s.drills.Wake, "Drill", "Cluster")
	if s.bus == nil {
		go s.followLeadership(ctx)
		return nil
	}
	if err := s.monitor.Start(ctx); err != nil {
		return err
	}
	if err := s.heartbeats.Start(ctx); err != nil {
		return err
	}
	if err := s.folder.Start(ctx, s.bus.Conn()); err != nil {
		return fmt.Errorf("subscribe to status reports: %w", err)
	}
	s.placer.Start(ctx)
	if err := s.endpoints.Start(ctx, s.bus.Conn()); err != nil {
		return err
	}
	if err := s.traffic.Start(s.bus.Conn()); err != nil {
		return err
	}
	// Services, the workloads they select and clusters (their regions)
	// are read again at once when they change.
	s.wakeOn(s.endpoints.Changed, "Service", "Workload", "Cluster")
	s.datasync.Start(ctx)
	if s.resolver != nil {
		s.resolver.Start(ctx)
	}
	s.standby.Start(ctx)
	go s.followLeadership(ctx)
	// A new revision is resolved at once. The standby lists follow
	// clusters' changes at once and workloads' (whose status is written
	// all the time) at the controller's period, or when an image is pinned.
	s.wakeOn(s.resolver.Wake, "Workload")
	s.wakeOn(s.standby.Wake, "Cluster")
	// Configs and secrets go to the members that use them.
	s.wakeOn(s.datasync.Wake, "Workload", "Config", "Secret", "Cluster")
	// Workload and cluster changes wake the placer at once.
	s.wakeOn(s.placer.Wake, "Workload", "Cluster")
	return nil
}

// wakeOn calls wake whenever an object of one of kinds changes, until
// Stop.
func (s *Server) wakeOn(wake func(), kinds ...string) {
	for _, kind := range kinds {
		ch, cancel := s.notifier.Subscribe(kind)
		go func() {
			defer cancel()
			for {
				select {
				case <-s.done:
					return
				case <-ch:
					wake()
				}
			}
		}()
	}
}

// Monitor is the cluster health monitor.
func (s *Server) Monitor() *members.Monitor { return s.monitor }

// Stop ends watches and background services; safe to call twice.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		close(s.done)
		s.api.Stop()
		if s.heartbeats != nil {
			s.heartbeats.Stop()
		}
		s.drills.Stop()
		s.monitor.Stop()
		s.folder.Stop()
		if s.placer != nil {
			s.placer.Stop()
			s.datasync.Stop()
			if s.resolver != nil {
				s.resolver.Stop()
			}
			s.standby.Stop()
		}
		if s.endpoints != nil {
			s.endpoints.Stop()
			s.traffic.Stop()
		}
		s.compactor.Stop()
		s.notifier.Stop()
	})
}

// Handler is the HTTP handler for everything the hub serves.
func (s *Server) Handler() http.Handler { return s.api.Handler() }

// brokenRegistry answers every resolution with the configuration's
// error, so workloads say why their images wait instead of the hub
// failing to start.
type brokenRegistry struct{ err error }

func (b brokenRegistry) Resolve(context.Context, string, ...image.PullOption) (string, error) {
	return "", b.err
}

// pullSecrets reads templates' imagePullSecrets for the image resolver
// (imagepin.Credentials), through the secrets vault.
type pullSecrets struct{ values secrets.Reader }

// PullAuth returns the template's imagePullSecret key at the version the
// template pins (the newest when it pins none); nil when it names none.
// Errors never quote a value.
func (p pullSecrets) PullAuth(ctx context.Context, t api.ReplicaTemplate) ([]byte, error) {
	ref := t.ImagePullSecret
	if ref == nil {
		return nil, nil
	}
	rec, err := p.values.Store.Get(ctx, "Secret", ref.Name)
	if api.ErrorCode(err) == api.CodeNotFound {
		return nil, errors.New("the secret does not exist")
	}
	if err != nil {
		return nil, err
	}
	version := protocol.Pins(t)[protocol.DataID(protocol.DataSecret, ref.Name)]
	data, err := p.values.ReadAt(ctx, rec.Meta.UID, version)
	if api.ErrorCode(err) == api.CodeNotFound {
		if version != 0 {
			return nil, fmt.Errorf("version %d of the secret, which the revision pins, is no longer kept", version)
		}
		return nil, errors.New("the secret has no value")
	}
	if err != nil {
		return nil, err
	}
	v, ok := data.Bytes()[ref.Key]
	if !ok {
		return nil, errors.New("the secret has no such key")
	}
	return v, nil
}
