package hub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/metric"
	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
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
}

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

	done     chan struct{} // closed by Stop: ends watches
	stopOnce sync.Once
}

type serverMetrics struct {
	watches     metric.Int64UpDownCounter
	watchEvents metric.Int64Counter
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
	s.notifier = s.store.NewNotifier(s.log)
	s.compactor = NewCompactor(s.store, s.log, cfg.ChangeRetention, cfg.CompactEvery)
	s.router = s.routes()
	return s
}

// Start begins the change listener and the compactor.
func (s *Server) Start(ctx context.Context) {
	s.notifier.Start(ctx)
	s.compactor.Start(ctx)
}

// Stop ends watches and background services; safe to call twice.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		close(s.done)
		s.compactor.Stop()
		s.notifier.Stop()
	})
}

// Handler is the HTTP handler for everything the hub serves.
func (s *Server) Handler() http.Handler { return s.router }

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(telemetry.HTTPMiddleware(s.tel))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, newProblem(http.StatusNotFound, api.CodeNotFound, "no such route: "+r.Method+" "+r.URL.Path))
	})
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
		_, _ = io.WriteString(w, `{"status":"ready"}`+"\n")
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
		kind: mustKind("Workload"), writeRole: api.RoleOperator, mutable: true,
		list: func(items []api.Workload, meta api.ListMeta) api.WorkloadList {
			return api.WorkloadList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "WorkloadList"}, Metadata: meta, Items: items}
		},
	})
	registerKind(s, hapi, kindRoutes[api.Token, *api.Token, api.TokenList]{
		kind: mustKind("Token"), writeRole: api.RoleAdmin, create: tokenCreate,
		list: func(items []api.Token, meta api.ListMeta) api.TokenList {
			return api.TokenList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "TokenList"}, Metadata: meta, Items: items}
		},
	})
	registerAudit(s, hapi)
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

func requestIDOf(ctx context.Context) string { return telemetry.RequestIDFrom(ctx) }

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
