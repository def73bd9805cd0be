package web

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/telemetry"
)

// Principal is a signed-in caller as the hub's authentication names it.
type Principal struct {
	Name string // "token:ops-alice"
	Role string // api.RoleViewer, RoleOperator or RoleAdmin
}

// Config wires the console to the hub. Zero values mean the documented
// defaults; Store, Notifier, API, Authenticate and Telemetry are required.
type Config struct {
	// Store is read for pages (lists come from the console's own cache,
	// which follows the store's change log).
	Store *pgstore.Store
	// Notifier wakes the cache when objects change.
	Notifier *pgstore.Notifier
	// API is the hub's own HTTP handler. Every change the console makes
	// is a request to it, with the signed-in token, so it is validated,
	// role-checked and audited exactly as the same request from the CLI.
	API http.Handler
	// Authenticate resolves an API token to its principal; it fails with
	// api.CodeUnauthorized for an unknown, expired or revoked token.
	Authenticate func(ctx context.Context, token string) (Principal, error)
	// Throttle slows down token guessing at sign-in, per client address
	// (the hub shares its own with its API); nil: none.
	Throttle Throttle
	// LiveCluster overlays what the hub's health monitor knows now
	// (health, heartbeat, capacity) onto a stored cluster, as the API does.
	LiveCluster func(*api.Cluster)
	// Nodes lists a cluster's nodes as its member sees them now (the API
	// asks the member over NATS); nil: the cluster page lists none.
	Nodes func(ctx context.Context, cluster string) ([]api.NodeInfo, error)
	// ServiceStatus is a service's endpoints as the hub's table has them
	// now; nil: the services page says they are unknown.
	ServiceStatus func(name string) api.ServiceStatus
	// ProbeEntryPoints are the names of the entry points drills' probes
	// may send through (the hub's --probe-entry-point flags), offered by
	// the new-drill form; none: the form says the hub knows none.
	ProbeEntryPoints []string
	// NotFound answers requests for paths nobody serves that do not ask
	// for HTML (the hub's problem+json); nil: a plain 404.
	NotFound http.Handler
	// Telemetry are the hub's providers.
	Telemetry *telemetry.Providers
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// SessionTTL is how long a sign-in lasts; default 12h.
	SessionTTL time.Duration
	// LiveEvery is how often live cluster health is sampled for open
	// pages; default 100ms.
	LiveEvery time.Duration
	// PageSize is the rows per page of the lists; default 50.
	PageSize int
}

// Throttle is what sign-in needs of the hub's throttle: whether the
// client at remoteAddr may try now (if not, how long until it may), and
// that one of its sign-ins failed.
type Throttle interface {
	Allow(ctx context.Context, surface, remoteAddr string) (retryAfter time.Duration, ok bool)
	Fail(remoteAddr string)
}

// Console serves the web console.
type Console struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	router   chi.Router
	sessions *sessions
	fleet    *fleet
	nodes    nodeCache
	pages    *pages
	tracer   trace.Tracer
	metrics  consoleMetrics
	done     chan struct{}
	stopOnce sync.Once
}

type consoleMetrics struct {
	signins metric.Int64Counter
	streams metric.Int64UpDownCounter
	patches metric.Int64Counter
	actions metric.Int64Counter
}

// New builds the console; Start begins following the store.
func New(cfg Config) *Console {
	cfg.SessionTTL = cmp.Or(cfg.SessionTTL, 12*time.Hour)
	cfg.LiveEvery = cmp.Or(cfg.LiveEvery, 100*time.Millisecond)
	cfg.PageSize = cmp.Or(cfg.PageSize, 50)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LiveCluster == nil {
		cfg.LiveCluster = func(*api.Cluster) {}
	}
	c := &Console{cfg: cfg, log: cfg.Logger, now: cfg.Now, done: make(chan struct{})}
	c.sessions = newSessions(cfg.Store, cfg.Now, cfg.SessionTTL)
	c.fleet = newFleet(cfg.Store, cfg.Notifier, cfg.LiveCluster, cfg.Now, cfg.Logger, cfg.LiveEvery)
	c.pages = mustPages()
	c.tracer = cfg.Telemetry.Tracer.Tracer("github.com/atollhq/atoll/web")
	meter := cfg.Telemetry.Meter.Meter("github.com/atollhq/atoll/web")
	c.metrics.signins, _ = meter.Int64Counter("console.signins", metric.WithUnit("{signin}"), metric.WithDescription("Console sign-in attempts, by result."))
	c.metrics.streams, _ = meter.Int64UpDownCounter("console.live.streams", metric.WithUnit("{stream}"), metric.WithDescription("Open live-update streams of console pages."))
	c.metrics.patches, _ = meter.Int64Counter("console.live.patches", metric.WithUnit("{patch}"), metric.WithDescription("Page regions pushed to open console pages."))
	c.metrics.actions, _ = meter.Int64Counter("console.actions", metric.WithUnit("{action}"), metric.WithDescription("Changes asked for from the console, by action and HTTP status of the API's answer."))
	c.router = c.routes()
	return c
}

// Start loads the fleet and follows changes until Stop or ctx ends. It
// returns once the first load is done (or failed: the cache then keeps
// retrying in the background and pages say the data is loading).
func (c *Console) Start(ctx context.Context) {
	c.fleet.start(ctx, c.done)
}

// Stop ends live streams and the cache; safe to call twice.
func (c *Console) Stop() {
	c.stopOnce.Do(func() {
		close(c.done)
		c.fleet.wait()
	})
}

// Handler serves the console: pages, static files, sign-in and live
// updates.
func (c *Console) Handler() http.Handler { return c.router }

func (c *Console) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(securityHeaders)
	// Non-GET requests from another origin are refused (Sec-Fetch-Site,
	// else Origin against Host), on top of the SameSite=Strict cookie.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusForbidden, api.CodeForbidden, "cross-origin request refused: the console only accepts changes from its own pages", nil)
	}))
	r.Use(cop.Handler, c.checkText)

	r.NotFound(c.notFound)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path, nil)
	})
	r.Get("/static/{file}", serveStatic)
	r.Get("/favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, staticPath("icon.svg"), http.StatusMovedPermanently)
	})
	r.Get("/signin", c.signinPage)
	r.Post("/signin", c.signin)
	r.Post("/signout", c.signout)

	r.Group(func(r chi.Router) {
		r.Use(c.requireSession, c.checkText) // here, after routing, path parameters are known
		for _, p := range c.pages.nav {
			for _, route := range p.routes {
				r.Get(route.pattern, c.page(route))
			}
		}
		r.Get("/live", c.live)
		r.Post("/clusters/{name}/cordon", c.clusterAction(actCordon))
		r.Post("/clusters/{name}/uncordon", c.clusterAction(actUncordon))
		r.Post("/clusters/{name}/drain", c.clusterAction(actDrain))
		r.Post("/clusters/{name}/taints", c.clusterAction(actTaint))
		r.Post("/clusters/{name}/taints/remove", c.clusterAction(actUntaint))
		r.Post("/workloads/{name}/scale", c.scale)
		// The rebalance page is not a live page: it is one plan, asked for
		// once (a dry run of the API's).
		r.Get("/workloads/{name}/rebalance", c.rebalancePlan)
		r.Get("/workloads/{name}/logs", c.logs)
		r.Post("/workloads/{name}/rebalance", c.rebalance)
		// The new-drill form is not a live page: it holds what is being
		// typed. A drill named "new" is shown by the API and the CLI only.
		r.Get("/drills/new", c.newDrill)
		r.Get("/services", c.servicesPage)
		r.Get("/services/{name}", c.servicePage)
		r.Post("/drills", c.createDrill)
		r.Post("/drills/{name}/abort", c.abortDrill)
	})
	return r
}

// securityHeaders keeps the console's pages to themselves: no framing,
// only its own scripts and styles, no referrer leaks.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// checkText refuses query parameters and path parameters that are not
// text (NUL, invalid UTF-8, control characters: api.TextProblem) with a
// 400 located at the parameter ("query.next", "path.name"), before
// anything looks them up.
func (c *Console) checkText(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bad := func(location, msg string) {
			c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "The address holds characters that are not text.",
				[]api.ProblemDetail{{Location: location, Message: msg}})
		}
		if rc := chi.RouteContext(r.Context()); rc != nil {
			for i, k := range rc.URLParams.Keys {
				if msg := api.TextProblem(rc.URLParams.Values[i], false); msg != "" && k != "*" {
					bad("path."+k, msg)
					return
				}
			}
		}
		for k, vs := range r.URL.Query() {
			if msg := api.TextProblem(k, false); msg != "" {
				bad("query", "a parameter name "+msg)
				return
			}
			for _, v := range vs {
				if msg := api.TextProblem(v, false); msg != "" {
					bad("query."+k, msg)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// wantsHTML tells a browser (which asks for text/html) from an API client.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	if !wantsHTML(r) || strings.HasPrefix(r.URL.Path, "/api/") {
		if c.cfg.NotFound != nil {
			c.cfg.NotFound.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	c.fail(w, r, http.StatusNotFound, api.CodeNotFound, "There is no page at "+r.URL.Path+".", nil)
}

// errUnavailable is what pages say while the database cannot answer.
var errUnavailable = errors.New("the hub's database is unavailable; retry shortly")
