package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"
	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/telemetry"
	"github.com/atollhq/atoll/web"
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
	Health HealthConfig
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
	Leader Leadership
	// Drills tunes the drill controller.
	Drills DrillConfig
}

// Leadership is the part of leader election the hub needs
// (*leader.Elector has it).
type Leadership interface {
	IsLeader() bool
	// Fence fails inside a transaction when this hub's term is over, so a
	// paused-then-resumed old leader cannot write.
	Fence(ctx context.Context, tx leader.Querier) error
	// Epoch is the leader epoch of this hub's term while it leads, else 0.
	Epoch() int64
	// Changes signals gains and losses; nil when there is no election.
	Changes() <-chan struct{}
}

// soleHub leads alone.
type soleHub struct{}

func (soleHub) IsLeader() bool                              { return true }
func (soleHub) Fence(context.Context, leader.Querier) error { return nil }
func (soleHub) Epoch() int64                                { return 0 }
func (soleHub) Changes() <-chan struct{}                    { return nil }

// Server serves the API.
type Server struct {
	store     *pgstore.Store
	tel       *telemetry.Providers
	log       *slog.Logger
	now       func() time.Time
	version   string
	keepalive time.Duration
	notifier  *pgstore.Notifier
	compactor *Compactor
	router    chi.Router
	metrics   serverMetrics
	console   *web.Console

	bus           *natsbus.Bus
	monitor       *Monitor
	folder        *StatusFolder
	placer        *Placer
	drills        *DrillController
	lead          term
	leaderM       leaderMetrics
	reload        clusterReload
	heartbeats    *nats.Subscription
	advertiseURL  string
	leafURLs      []string
	caFingerprint string
	hubID         string

	done     chan struct{} // closed by Stop: ends watches
	stopOnce sync.Once
}

type serverMetrics struct {
	watches       metric.Int64UpDownCounter
	watchEvents   metric.Int64Counter
	registrations metric.Int64Counter
}

var installErrors sync.Once

// New builds the server and its routes. Start begins the background
// services; Handler serves HTTP.
func New(cfg Config) *Server {
	s := &Server{
		store:     cfg.Store,
		tel:       cfg.Telemetry,
		log:       cfg.Logger,
		now:       cfg.Now,
		version:   cfg.Version,
		keepalive: cfg.WatchKeepalive,
		done:      make(chan struct{}),

		bus:           cfg.Bus,
		advertiseURL:  strings.TrimRight(cfg.AdvertiseURL, "/"),
		leafURLs:      cfg.LeafURLs,
		caFingerprint: cfg.CAFingerprint,
		hubID:         cfg.HubID,
	}
	if s.hubID == "" {
		s.hubID = "hub"
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.version == "" {
		s.version = "dev"
	}
	if s.keepalive == 0 {
		s.keepalive = 15 * time.Second
	}
	installErrors.Do(func() { installErrorModel(s.log) })
	meter := s.tel.Meter.Meter("github.com/atollhq/atoll/hub")
	s.metrics.watches, _ = meter.Int64UpDownCounter("watch.active", metric.WithUnit("{watch}"), metric.WithDescription("Open watch streams."))
	s.metrics.watchEvents, _ = meter.Int64Counter("watch.events", metric.WithUnit("{event}"), metric.WithDescription("Change-log rows read by watches."))
	s.metrics.registrations, _ = meter.Int64Counter("registrations", metric.WithUnit("{registration}"), metric.WithDescription("Member registrations, by result."))
	s.notifier = s.store.NewNotifier(s.log)
	s.compactor = NewCompactor(s.store, s.log, cfg.ChangeRetention, cfg.CompactEvery)
	s.compactor.eventRetention = cfg.EventRetention
	lead := cfg.Leader
	if lead == nil {
		lead = soleHub{}
	}
	s.lead = term{Leadership: lead, hub: s.hubID}
	s.leaderMetrics(meter)
	s.monitor = NewMonitor(s.store, s.log, s.now, meter, cfg.Health)
	s.monitor.leader = s.lead
	s.folder = NewStatusFolder(s.store, s.log, s.now, meter, 0)
	s.folder.leader = s.lead
	s.folder.health = func(c string) string {
		if l, ok := s.monitor.Live(c); ok {
			return l.Health
		}
		return api.HealthUnreachable // deregistered: its reports are history
	}
	if s.bus != nil {
		s.placer = NewPlacer(s.store, s.bus, s.monitor, s.log, s.now, meter, cfg.PlaceEvery)
		s.placer.leader = s.lead
	}
	s.drills = NewDrillController(s.store, s.bus, s.monitor, s.log, s.now, meter, s.tel.Tracer.Tracer("github.com/atollhq/atoll/hub"), s.hubID, cfg.Drills)
	s.drills.leader = s.lead
	s.router = s.routes()
	return s
}

// Start begins the change listener, the compactor, the drill controller
// and, with NATS, the health monitor, the heartbeat handler and the
// placement controller.
func (s *Server) Start(ctx context.Context) error {
	s.notifier.Start(ctx)
	s.compactor.Start(ctx)
	s.console.Start(ctx)
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
	sub, err := s.serveHeartbeats()
	if err == nil {
		err = s.bus.Conn().Flush() // the server has the interest before Start returns
	}
	if err != nil {
		return fmt.Errorf("subscribe to heartbeats: %w", err)
	}
	s.heartbeats = sub
	if err := s.folder.Start(ctx, s.bus.Conn()); err != nil {
		return fmt.Errorf("subscribe to status reports: %w", err)
	}
	s.placer.Start(ctx)
	go s.followLeadership(ctx)
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
func (s *Server) Monitor() *Monitor { return s.monitor }

// Stop ends watches and background services; safe to call twice.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		close(s.done)
		s.console.Stop()
		if s.heartbeats != nil {
			_ = s.heartbeats.Unsubscribe()
		}
		s.drills.Stop()
		s.monitor.Stop()
		s.folder.Stop()
		if s.placer != nil {
			s.placer.Stop()
		}
		s.compactor.Stop()
		s.notifier.Stop()
	})
}

// Handler is the HTTP handler for everything the hub serves.
func (s *Server) Handler() http.Handler { return s.router }

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(telemetry.HTTPMiddleware(s.tel))
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, newProblem(http.StatusNotFound, api.CodeNotFound, "no such route: "+r.Method+" "+r.URL.Path))
	})
	r.NotFound(notFound)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, newProblem(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path))
	})
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.store.Ready(ctx); err != nil {
			writeProblem(w, r, newProblem(http.StatusServiceUnavailable, api.CodeUnavailable, "not ready: "+readyReason(err)))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.readyBody())
	})
	r.Handle("/metrics", s.tel.Metrics)

	cfg := huma.DefaultConfig("Atoll", s.version)
	cfg.Info.Description = "Atoll federation hub API. Every route but /healthz, /readyz and /metrics needs a bearer token."
	cfg.DocsPath = ""
	cfg.CreateHooks = nil // no $schema links in bodies: objects must round-trip unchanged
	cfg.RejectUnknownQueryParameters = true
	cfg.Formats = map[string]huma.Format{
		"application/json":   huma.DefaultJSONFormat,
		"json":               huma.DefaultJSONFormat,
		"application/yaml":   yamlFormat,
		"yaml":               yamlFormat,
		"application/x-yaml": yamlFormat,
		"text/yaml":          yamlFormat,
	}
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "An Atoll API token."},
	}
	hapi := humachi.New(r, cfg)
	hapi.UseMiddleware(s.authMiddleware(hapi))

	registerKind(s, hapi, kindRoutes[api.Workload, *api.Workload, api.WorkloadList]{
		kind: mustKind("Workload"), create: s.createWorkload,
		roles: map[string]string{pgstore.VerbCreate: api.RoleOperator, pgstore.VerbUpdate: api.RoleOperator, pgstore.VerbPatch: api.RoleOperator, pgstore.VerbDelete: api.RoleOperator},
		list: func(items []api.Workload, meta api.ListMeta) api.WorkloadList {
			return api.WorkloadList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "WorkloadList"}, Metadata: meta, Items: items}
		},
	})
	registerKind(s, hapi, kindRoutes[api.Token, *api.Token, api.TokenList]{
		kind: mustKind("Token"), create: tokenCreate,
		roles: map[string]string{pgstore.VerbCreate: api.RoleAdmin, pgstore.VerbDelete: api.RoleAdmin},
		list: func(items []api.Token, meta api.ListMeta) api.TokenList {
			return api.TokenList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "TokenList"}, Metadata: meta, Items: items}
		},
	})
	s.registerClusters(hapi)
	s.registerDrills(hapi)
	registerKind(s, hapi, kindRoutes[api.Event, *api.Event, api.EventList]{
		kind: mustKind("Event"),
		list: func(items []api.Event, meta api.ListMeta) api.EventList {
			return api.EventList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "EventList"}, Metadata: meta, Items: items}
		},
	})
	registerAudit(s, hapi)
	registerHubs(s, hapi)
	registerLogs(s, hapi)

	// The web console, at /: its changes are requests to this same router.
	s.console = web.New(web.Config{Store: s.store, Notifier: s.notifier, API: r, Telemetry: s.tel, Logger: s.log, Now: s.now,
		LiveCluster: s.liveCluster, NotFound: notFound, Authenticate: func(ctx context.Context, token string) (web.Principal, error) {
			p, err := s.authenticate(ctx, "Bearer "+token)
			return web.Principal(p), err
		}})
	r.Mount("/", s.console.Handler())
	return r
}

func readyReason(err error) string {
	var de *api.Error
	if errors.As(err, &de) {
		return de.Message
	}
	return err.Error()
}

func mustKind(name string) api.Kind {
	k, ok := api.LookupKind(name)
	if !ok {
		panic("unknown kind " + name)
	}
	return k
}

func reflectTypeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// yamlFormat reads YAML request bodies (through JSON, so the schema and
// field names are the JSON ones) and writes YAML when asked to.
var yamlFormat = huma.Format{
	Marshal: func(w io.Writer, v any) error {
		js, err := json.Marshal(v)
		if err != nil {
			return err
		}
		out, err := yaml.JSONToYAML(js)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	},
	Unmarshal: func(data []byte, v any) error {
		js, err := api.YAMLToJSON(data)
		if err != nil {
			return err
		}
		return json.Unmarshal(js, v)
	},
}
