package httpapi

import (
	"context"
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
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/secrets"
	"github.com/atollhq/atoll/hub/throttle"
	"github.com/atollhq/atoll/hub/tokens"
	"github.com/atollhq/atoll/telemetry"
	"github.com/atollhq/atoll/web"
)

// Config configures the API. Zero values mean the documented defaults.
type Config struct {
	// Store is the PostgreSQL store (required).
	Store *pgstore.Store
	// Notifier wakes watches on changes (required; the hub starts it).
	Notifier *pgstore.Notifier
	// Telemetry are the process's providers (required).
	Telemetry *telemetry.Providers
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Version is reported in the OpenAPI document; default "dev".
	Version string
	// WatchKeepalive is the interval of keep-alive comments on idle
	// watches; default 15s.
	WatchKeepalive time.Duration
	// Bus is the hub's NATS (logs are read through it); nil: no members.
	Bus *natsbus.Bus
	// Health is the live cluster health clusters are read with (required).
	Health Health
	// Members registers and deregisters clusters (required).
	Members Members
	// Drills plans drills and runs them (required).
	Drills Drills
	// Leader is this hub's leadership, as /readyz reports it (required).
	Leader Leadership
	// HubID names this hub in /readyz and /api/v1/hubs.
	HubID string
	// AdvertiseURL is the hub's API address as members and clients should
	// use it (it goes into join tokens); empty: the address each request
	// came in on.
	AdvertiseURL string
	// CAFingerprint is the SHA-256 fingerprint of the API's TLS CA, put in
	// join tokens; empty without TLS.
	CAFingerprint string
	// WorkloadFinalizers are added to every workload created, so that the
	// controllers that need them see its deletion.
	WorkloadFinalizers []string
	// Revisions reads workloads' template revisions (nil: the route
	// answers 503).
	Revisions Revisions
	// Rebalancer plans rebalances (nil: the route answers 503, as a hub
	// without NATS places nothing).
	Rebalancer Rebalancer
	// Endpoints tells a service's live endpoints (nil: services read
	// without them).
	Endpoints ServiceEndpoints
	// ProbeEntryPoints names the entry points drills' probes may send
	// through, for the console's new-drill form.
	ProbeEntryPoints []string
	// Traffic is the gateways' traffic (nil: the traffic route answers
	// 503).
	Traffic ServiceTraffic
	// Throttle tunes how failed token checks and console sign-ins are
	// slowed down, per client address (its clock and meter default to
	// the API's).
	Throttle throttle.Config
	// Vault keeps secrets' values (nil: secrets' writes and value reads
	// answer 503).
	Vault *secrets.Vault
}

// Health is the live cluster health the API shows (*members.Monitor has
// it).
type Health interface {
	Live(cluster string) (failover.Live, bool)
}

// Members is registration as the API serves it (*members.Registrar has
// it). Authenticate checks a registration's token before its body is
// read; Challenge and Register take the token it returned. Errors are
// domain errors (package api).
type Members interface {
	Authenticate(ctx context.Context, authorization string) (*api.Token, error)
	Challenge(ctx context.Context, tok *api.Token, req *api.RegisterChallengeRequest) (*api.RegisterChallenge, error)
	Register(ctx context.Context, tok *api.Token, host string, req *api.RegisterRequest) (*api.RegisterResponse, error)
	Reissue(ctx context.Context, a pgstore.Actor, name, precondition string) (*pgstore.Record, error)
	Deregister(ctx context.Context, a pgstore.Actor, name, precondition string, force bool) (*pgstore.Record, error)
}

// Drills is the drill controller as the API uses it (*drill.Controller
// has it).
type Drills interface {
	Plan(ctx context.Context, name string, spec api.DrillSpec) (*api.DrillPlan, api.FieldErrors, error)
	// PlanEvacuation plans what adding NoExecute taints to a cluster
	// moves (a drain's plan), changing nothing.
	PlanEvacuation(ctx context.Context, cluster string, taints []api.Taint) (*api.DrillPlan, error)
	ServesKind(kind, field string) error
	Wake()
}

// Leadership is what the API reports of the election.
type Leadership interface {
	IsLeader() bool
	Epoch() int64
}

// API serves the hub's HTTP surface.
type API struct {
	store         *pgstore.Store
	notifier      *pgstore.Notifier
	tel           *telemetry.Providers
	log           *slog.Logger
	now           func() time.Time
	version       string
	keepalive     time.Duration
	bus           *natsbus.Bus
	monitor       Health
	members       Members
	drills        Drills
	revisions     Revisions
	rebalancer    Rebalancer
	lead          Leadership
	hubID         string
	advertiseURL  string
	caFingerprint string
	finalizers    []string
	endpoints     ServiceEndpoints
	entryPoints   []string
	traffic       ServiceTraffic
	metrics       apiMetrics
	throttle      *throttle.Throttle
	router        chi.Router
	console       *web.Console
	vault         *secrets.Vault

	done     chan struct{} // closed by Stop: ends watches and streams
	stopOnce sync.Once
}

type apiMetrics struct {
	watches     metric.Int64UpDownCounter
	watchEvents metric.Int64Counter
	refused     metric.Int64Counter
	logReads    metric.Int64Counter
}

var installErrors sync.Once

// New builds the API and its routes, the console's included.
func New(cfg Config) *API {
	s := &API{store: cfg.Store, notifier: cfg.Notifier, tel: cfg.Telemetry, log: cfg.Logger, now: cfg.Now, version: cfg.Version,
		keepalive: cfg.WatchKeepalive, bus: cfg.Bus, monitor: cfg.Health, members: cfg.Members, drills: cfg.Drills, revisions: cfg.Revisions, rebalancer: cfg.Rebalancer, lead: cfg.Leader,
		hubID: cfg.HubID, advertiseURL: strings.TrimRight(cfg.AdvertiseURL, "/"), caFingerprint: cfg.CAFingerprint,
		finalizers: cfg.WorkloadFinalizers, endpoints: cfg.Endpoints, entryPoints: cfg.ProbeEntryPoints, traffic: cfg.Traffic, vault: cfg.Vault, done: make(chan struct{})}
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
	installErrors.Do(installErrorModel)
	meter := s.tel.Meter.Meter("github.com/atollhq/atoll/hub")
	tc := cfg.Throttle
	if tc.Now == nil {
		tc.Now = s.now
	}
	if tc.Meter == nil {
		tc.Meter = meter
	}
	s.throttle = throttle.New(tc)
	s.metrics.watches, _ = meter.Int64UpDownCounter("watch.active", metric.WithUnit("{watch}"), metric.WithDescription("Open watch streams."))
	s.metrics.watchEvents, _ = meter.Int64Counter("watch.events", metric.WithUnit("{event}"), metric.WithDescription("Change-log rows read by watches."))
	s.metrics.refused, _ = meter.Int64Counter("http.input.refused", metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused before decoding, by reason: parameter, body_unreadable, yaml, body_too_costly, body_text."))
	s.metrics.logReads, _ = meter.Int64Counter("logs.reads", metric.WithUnit("{request}"),
		metric.WithDescription("Replica log reads, by outcome: lines, empty, problem, member_too_old."))
	s.router = s.routes()
	return s
}

// Handler is the HTTP handler for everything the hub serves.
func (s *API) Handler() http.Handler { return s.router }

// Start starts the console's background work.
func (s *API) Start(ctx context.Context) { s.console.Start(ctx) }

// Stop ends watches and streams and the console; safe to call twice.
func (s *API) Stop() {
	s.stopOnce.Do(func() {
		close(s.done)
		s.console.Stop()
	})
}

func (s *API) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(telemetry.HTTPMiddleware(s.tel), noSniff, s.withLog)
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
	r.Get("/readyz", s.readyz)
	r.Handle("/metrics", s.tel.Metrics)

	cfg := huma.DefaultConfig("Atoll", s.version)
	cfg.Info.Description = "Atoll federation hub API. Every route but /healthz, /readyz and /metrics needs a bearer token; /readyz shows which hub answered, and whether it leads, only to one."
	cfg.DocsPath = ""
	cfg.CreateHooks = nil // no $schema links in bodies: objects must round-trip unchanged
	cfg.RejectUnknownQueryParameters = true
	// checkInput reads bodies, within bodyReadTimeout, and clears the
	// connection's read deadline once it has; huma then reads them from
	// memory and must not set one again: a deadline left on the
	// connection fires while the handler runs and cancels its context.
	cfg.OnAddOperation = append(cfg.OnAddOperation, func(_ *huma.OpenAPI, op *huma.Operation) { op.BodyReadTimeout = -1 })
	cfg.Formats = map[string]huma.Format{
		"application/json":   jsonFormat,
		"json":               jsonFormat,
		"application/yaml":   yamlFormat,
		"yaml":               yamlFormat,
		"application/x-yaml": yamlFormat,
		"text/yaml":          yamlFormat,
	}
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "An Atoll API token."},
	}
	hapi := humachi.New(r, cfg)
	// Every token check (the API's, then registration's) comes before
	// checkInput reads a body.
	hapi.UseMiddleware(s.authMiddleware(hapi), s.registrationAuth(hapi), s.checkInput(hapi))

	registerKind(s, hapi, kindRoutes[api.Workload, *api.Workload, api.WorkloadList]{
		kind: mustKind("Workload"), create: s.createWorkload,
		roles: map[string]string{pgstore.VerbCreate: api.RoleOperator, pgstore.VerbUpdate: api.RoleOperator, pgstore.VerbPatch: api.RoleOperator, pgstore.VerbDelete: api.RoleOperator},
		list: func(items []api.Workload, meta api.ListMeta) api.WorkloadList {
			return api.WorkloadList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "WorkloadList"}, Metadata: meta, Items: items}
		},
	})
	registerKind(s, hapi, kindRoutes[api.Token, *api.Token, api.TokenList]{
		kind: mustKind("Token"), create: tokenCreate, noDryRun: "creating a token makes its secret: tokens cannot be created as a dry run",
		roles: map[string]string{pgstore.VerbCreate: api.RoleAdmin, pgstore.VerbDelete: api.RoleAdmin},
		list: func(items []api.Token, meta api.ListMeta) api.TokenList {
			return api.TokenList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "TokenList"}, Metadata: meta, Items: items}
		},
	})
	s.registerClusters(hapi)
	s.registerDrills(hapi)
	s.registerServices(hapi)
	s.registerData(hapi)
	registerKind(s, hapi, kindRoutes[api.Event, *api.Event, api.EventList]{
		kind: mustKind("Event"),
		list: func(items []api.Event, meta api.ListMeta) api.EventList {
			return api.EventList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "EventList"}, Metadata: meta, Items: items}
		},
	})
	registerAudit(s, hapi)
	registerHubs(s, hapi)
	registerLogs(s, hapi)
	registerReplicas(s, hapi)
	registerRevisions(s, hapi)
	s.registerServiceTraffic(hapi)
	registerRebalance(s, hapi)
	registerRolloutCommands(s, hapi)

	// The web console, at /: its changes are requests to this same router.
	s.console = web.New(web.Config{Store: s.store, Notifier: s.notifier, API: r, Telemetry: s.tel, Logger: s.log, Now: s.now,
		LiveCluster: s.liveCluster, Nodes: s.memberNodes, NotFound: notFound, ServiceStatus: s.serviceStatusFunc(), ProbeEntryPoints: s.entryPoints, Throttle: s.throttle, Authenticate: func(ctx context.Context, token string) (web.Principal, error) {
			p, err := tokens.Authenticate(ctx, s.store, s.now(), "Bearer "+token)
			return web.Principal(p), err
		}})
	r.Mount("/", s.console.Handler())
	return r
}

// noSniff tells browsers to take every answer (API bodies, problems,
// streams, console pages) as the type it says it is, never to guess one.
func noSniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

func mustKind(name string) api.Kind {
	k, ok := api.LookupKind(name)
	if !ok {
		panic("unknown kind " + name)
	}
	return k
}

func reflectTypeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }
