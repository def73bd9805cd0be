package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// Config configures a gateway. Zero values mean the documented defaults.
type Config struct {
	// Listen is host:port of the HTTP listener (port 0: a free one).
	Listen string
	// TCPHost is the address tcp service ports listen on; default the
	// host of Listen.
	TCPHost string
	// Cluster and Region are the gateway's own: endpoints of Region come
	// first.
	Cluster, Region string
	// LocalPeers lets other clusters' endpoints be on this machine
	// (loopback): for atoll dev and tests, where every region runs on one
	// machine. Otherwise such endpoints are left out of the routes, so a
	// member cannot aim every gateway at its own machine's services.
	LocalPeers bool
	// MaxBodyBytes bounds a request body; default 64 MiB.
	MaxBodyBytes int64
	// RetryBodyBytes is the largest body buffered so that an idempotent
	// request can be retried; default 64 KiB.
	RetryBodyBytes int64
	// MaxTCPConns bounds the connections the tcp service ports proxy at
	// once (each holds a connection to an endpoint too); one more is
	// closed as soon as it is accepted. Default 10000.
	MaxTCPConns int
	// StaleAfter is the table age from which answers carry
	// Atoll-Table-Age; default 10s.
	StaleAfter time.Duration
	Logger     *slog.Logger
	Meter      metric.MeterProvider
	Tracer     trace.TracerProvider
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Gateway is a running gateway.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	tracer trace.Tracer

	mu       sync.Mutex // table updates
	routes   atomic.Pointer[map[string]*route]
	names    atomic.Pointer[map[string]string] // host name -> service
	outliers map[string]*outlier
	epoch    atomic.Int64
	digest   atomic.Pointer[string]
	heard    atomic.Int64 // unix nanos the hub last sent or confirmed the table
	tcp      map[int]*tcpListener
	tcpConns chan struct{} // a slot per proxied tcp connection

	proxy *httputil.ReverseProxy
	rt    *http.Transport
	srv   *http.Server
	ln    net.Listener
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	requests metric.Int64Counter
	duration metric.Float64Histogram
	retries  metric.Int64Counter
	ejects   metric.Int64Counter
	// dnsQueries counts DNS questions by outcome (dns.go).
	dnsQueries metric.Int64Counter
	// traffic counts tries per service, serving cluster and generation
	// for the member's traffic reports (traffic.go).
	traffic trafficBook
}

// New makes a gateway; Start opens its listener.
func New(cfg Config) *Gateway {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 20
	}
	if cfg.RetryBodyBytes <= 0 {
		cfg.RetryBodyBytes = 64 << 10
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 10 * time.Second
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = 10000
	}
	if cfg.Meter == nil {
		cfg.Meter = noop.NewMeterProvider()
	}
	if cfg.Tracer == nil {
		cfg.Tracer = tnoop.NewTracerProvider()
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, now: cfg.Now, outliers: map[string]*outlier{}, tcp: map[int]*tcpListener{}, tcpConns: make(chan struct{}, cfg.MaxTCPConns), done: make(chan struct{})}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.tracer = cfg.Tracer.Tracer("github.com/atollhq/atoll/member/gateway")
	g.traffic.since = g.now()
	empty, none := map[string]*route{}, map[string]string{}
	g.routes.Store(&empty)
	g.names.Store(&none)
	d := ""
	g.digest.Store(&d)
	meter := cfg.Meter.Meter("github.com/atollhq/atoll/member/gateway")
	g.requests, _ = meter.Int64Counter("gateway.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests proxied, by service, the region that answered (none: no endpoint) and outcome (2xx..5xx, no_endpoints, error)."))
	g.duration, _ = meter.Float64Histogram("gateway.request.duration", metric.WithUnit("s"), metric.WithDescription("From a request's arrival to its answer's headers, by service and region."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
	g.retries, _ = meter.Int64Counter("gateway.retries", metric.WithUnit("{request}"), metric.WithDescription("Tries made again on another endpoint, by service and why (connect, status, timeout, budget_exhausted)."))
	g.ejects, _ = meter.Int64Counter("gateway.ejections", metric.WithUnit("{ejection}"), metric.WithDescription("Endpoints ejected by outlier detection, by service and region."))
	g.dnsQueries, _ = meter.Int64Counter("gateway.dns.queries", metric.WithUnit("{query}"), metric.WithDescription("DNS questions for <service>.svc.atoll, by outcome (answered, nxdomain, refused)."))
	_, _ = meter.Float64ObservableGauge("gateway.table.age", metric.WithUnit("s"), metric.WithDescription("Since the hub last sent or confirmed the endpoint table (static stability: the gateway serves it however old)."),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			if a, ok := g.Age(); ok {
				o.Observe(a.Seconds())
			}
			return nil
		}))
	g.rt = &http.Transport{
		Proxy:                 nil, // never a proxy from the environment
		DialContext:           (&net.Dialer{Timeout: api.DefaultConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // per try, from the service's policy
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:    g.rewrite,
		Transport:  (*tryTransport)(g),
		BufferPool: copyBuffers{},
		// 0: an answer of known length is written once, whole; streams
		// (no length, or text/event-stream) are flushed on every write
		// all the same. (-1 cost a second write and a timer per request.)
		FlushInterval: 0,
		ErrorHandler:  g.proxyError,
		ErrorLog:      slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	return g
}

// Start opens the HTTP listener and serves until Stop.
func (g *Gateway) Start() error {
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway listen %s: %w", g.cfg.Listen, err)
	}
	g.ln = ln
	g.srv = &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)}
	g.wg.Add(2)
	go func() {
		defer g.wg.Done()
		_ = g.srv.Serve(ln)
	}()
	go g.checkLoop()
	g.log.Info("gateway listening", "listen", ln.Addr().String(), "region", g.cfg.Region)
	return nil
}

// Addr is the HTTP listener's address (after Start).
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// Stop closes the listeners and waits; safe twice and before Start.
func (g *Gateway) Stop() {
	g.once.Do(func() {
		close(g.done)
		if g.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = g.srv.Shutdown(ctx)
			cancel()
		}
		g.mu.Lock()
		for port, l := range g.tcp {
			l.close()
			delete(g.tcp, port)
		}
		g.mu.Unlock()
		g.rt.CloseIdleConnections()
		g.wg.Wait()
	})
}

// Update swaps in a table from the hub (an older epoch than the one held
// is ignored; it reports whether the table was taken).
func (g *Gateway) Update(t protocol.EndpointTable) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.Epoch < g.epoch.Load() {
		return false
	}
	routes, kept := buildRoutes(t, routeSelf{cluster: g.cfg.Cluster, region: g.cfg.Region, localPeers: g.cfg.LocalPeers}, g.outliers)
	names := map[string]string{}
	for _, s := range t.Services {
		svc := api.Service{Metadata: api.ObjectMeta{Name: s.Name}, Spec: s.Spec}
		for _, n := range svc.Names() {
			names[n] = s.Name
		}
	}
	g.outliers = kept
	g.routes.Store(&routes)
	g.names.Store(&names)
	g.epoch.Store(t.Epoch)
	d := t.Digest
	g.digest.Store(&d)
	g.heard.Store(g.now().UnixNano())
	g.syncTCP(routes)
	return true
}

// Confirm notes that the hub confirmed the table held (a digest check):
// its age starts again.
func (g *Gateway) Confirm() { g.heard.Store(g.now().UnixNano()) }

// HeardAt sets when the hub last sent or confirmed the table held (a
// table read back from disk is as old as the file).
func (g *Gateway) HeardAt(at time.Time) { g.heard.Store(at.UnixNano()) }

// Held is the epoch and digest of the table held.
func (g *Gateway) Held() (int64, string) { return g.epoch.Load(), *g.digest.Load() }

// Age is how long since the hub last sent or confirmed the table; false
// before any table.
func (g *Gateway) Age() (time.Duration, bool) {
	n := g.heard.Load()
	if n == 0 {
		return 0, false
	}
	return g.now().Sub(time.Unix(0, n)), true
}

// Endpoints counts a service's endpoints in the table held.
func (g *Gateway) Endpoints(service string) int {
	if r := (*g.routes.Load())[service]; r != nil {
		return len(r.eps)
	}
	return 0
}

// Services is the names of the services the table held routes, sorted.
func (g *Gateway) Services() []string {
	routes := *g.routes.Load()
	out := make([]string, 0, len(routes))
	for name := range routes {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

type ctxKey struct{}

// call is one request's routing state, carried in its context.
type call struct {
	route   *route
	start   time.Time
	region  string // of the endpoint that answered
	body    []byte // buffered for retries (nil: not retryable with a body)
	retry   bool   // idempotent, and its body (if any) is buffered
	outcome string
}

// ServeHTTP routes one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_atoll/") {
		g.serveOwn(w, r)
		return
	}
	rt, strip := g.lookup(r)
	if rt == nil {
		writeProblem(w, http.StatusNotFound, "no such service", "this gateway routes no service by the Host "+quoteHost(r.Host)+" or the path; ask for <service>.svc.atoll or /svc/<service>/", "")
		return
	}
	ctx, span := g.tracer.Start(r.Context(), "gateway.proxy", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("atoll.service", rt.name), attribute.String("http.request.method", r.Method)))
	defer span.End()
	c := &call{route: rt, start: g.now()}
	defer func() {
		attrs := metric.WithAttributes(attribute.String("service", rt.name), attribute.String("region", c.region), attribute.String("outcome", c.outcome))
		g.requests.Add(ctx, 1, attrs)
		g.duration.Record(ctx, g.now().Sub(c.start).Seconds(), metric.WithAttributes(attribute.String("service", rt.name), attribute.String("region", c.region)))
		span.SetAttributes(attribute.String("atoll.region", c.region), attribute.String("atoll.outcome", c.outcome))
	}()
	if age, ok := g.Age(); ok && age > g.cfg.StaleAfter {
		w.Header().Set("Atoll-Table-Age", strconv.Itoa(int(age.Seconds()))+"s")
	}
	if len(rt.eps) == 0 {
		c.outcome, c.region = "no_endpoints", "none"
		span.SetStatus(codes.Error, "no endpoints")
		writeProblem(w, http.StatusServiceUnavailable, "no endpoints", "service "+rt.name+" has no ready endpoint in any reachable cluster", rt.name)
		return
	}
	if r.ContentLength > g.cfg.MaxBodyBytes {
		c.outcome, c.region = "4xx", "none"
		writeProblem(w, http.StatusRequestEntityTooLarge, "body too large", fmt.Sprintf("request bodies are at most %d bytes", g.cfg.MaxBodyBytes), rt.name)
		return
	}
	idempotent := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions || r.Method == http.MethodPut || r.Method == http.MethodDelete
	switch {
	case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
		c.retry = idempotent
		r.Body = http.NoBody
	case idempotent && r.ContentLength > 0 && r.ContentLength <= g.cfg.RetryBodyBytes:
		b, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
		if err != nil {
			c.outcome, c.region = "4xx", "none"
			writeProblem(w, http.StatusBadRequest, "body unreadable", "the request body could not be read", rt.name)
			return
		}
		c.body, c.retry = b, true
	default:
		r.Body = http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes)
	}
	if strip != "" {
		escaped := "/" + strings.TrimPrefix(r.URL.EscapedPath(), strip)
		if p, err := url.PathUnescape(escaped); err == nil {
			r.URL.Path, r.URL.RawPath = p, escaped
		}
	}
	rt.budget.request(c.start)
	if rt.policy.request > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.policy.request)
		defer cancel()
	}
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ctxKey{}, c)))
}

// lookup finds the service a request names: by Host, else by the path
// prefix /svc/<service>/ (returned as strip).
func (g *Gateway) lookup(r *http.Request) (*route, string) {
	routes := *g.routes.Load()
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	if name, ok := (*g.names.Load())[host]; ok {
		return routes[name], ""
	}
	// The service is the first segment of the path as sent (escaped): a
	// name is a DNS label, so "web%2f.." names no service.
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/svc/")
	if !ok {
		return nil, ""
	}
	name, _, _ := strings.Cut(rest, "/")
	if rt := routes[name]; rt != nil {
		return rt, "/svc/" + name + "/"
	}
	return nil, ""
}

// rewrite prepares the outgoing request; the transport picks its
// endpoint.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "endpoint.invalid" // set per try by tryTransport
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
}

// proxyError answers a request no endpoint served.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	c, _ := r.Context().Value(ctxKey{}).(*call)
	name := ""
	if c != nil {
		name = c.route.name
		c.outcome = "error"
		if c.region == "" {
			c.region = "none"
		}
	}
	var noEP errNoEndpoint
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		if c != nil {
			c.outcome = "4xx"
		}
		writeProblem(w, http.StatusRequestEntityTooLarge, "body too large", fmt.Sprintf("request bodies are at most %d bytes", mb.Limit), name)
	case errors.As(err, &noEP):
		writeProblem(w, http.StatusServiceUnavailable, "no endpoints", "service "+name+" has no endpoint left to try", name)
	case errors.Is(err, context.DeadlineExceeded):
		writeProblem(w, http.StatusGatewayTimeout, "timeout", "service "+name+" did not answer in time", name)
	case errors.Is(err, context.Canceled):
		w.WriteHeader(499) // the client went away; nobody reads this
	default:
		writeProblem(w, http.StatusBadGateway, "bad gateway", "service "+name+": every try failed", name)
	}
}

type errNoEndpoint struct{}

func (errNoEndpoint) Error() string { return "no endpoint left to try" }

// tryTransport sends a request to the endpoints the route picks, one try
// after another, and records each endpoint's outcome.
type tryTransport Gateway

func (t *tryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	g := (*Gateway)(t)
	c, _ := req.Context().Value(ctxKey{}).(*call)
	if c == nil {
		return nil, errors.New("gateway: request without routing state")
	}
	rt, p := c.route, c.route.policy
	ranks := *rt.ranks.Load()
	var tries tried
	var lastErr error = errNoEndpoint{}
	for try := 0; ; try++ {
		now := g.now()
		e := pick(rt.eps, ranks, now, tries, hasHTTP)
		if e == nil {
			return nil, lastErr
		}
		tries = append(tries, e)
		// The request is ReverseProxy's own copy, which no one else
		// changes: each try is a shallow copy of it with the endpoint's
		// address (the transport only reads headers, so they are shared).
		out, u := new(http.Request), *req.URL
		*out = *req
		u.Host = e.httpAt
		out.URL = &u
		if c.body != nil {
			out.Body = io.NopCloser(bytes.NewReader(c.body))
		}
		cancel := noCancel
		if p.perTry > 0 && req.Header.Get("Upgrade") == "" { // an upgraded connection outlives any try
			var ctx context.Context
			ctx, cancel = context.WithTimeout(req.Context(), p.perTry)
			out = out.WithContext(ctx)
		}
		resp, err := g.rt.RoundTrip(out)
		c.region = e.Region
		if err == nil {
			resp.Header.Del(OwnErrorHeader) // only the gateway's own answers say so
		}
		why := ""
		tk := trafficKey{service: rt.name, cluster: e.Cluster, generation: e.Generation}
		switch {
		case err != nil && req.Context().Err() != nil:
			cancel()
			if errors.Is(req.Context().Err(), context.DeadlineExceeded) {
				g.traffic.record(tk, true, g.now().Sub(now)) // the request's own timeout: the endpoint was too slow
			}
			return nil, req.Context().Err() // the client left, or the request's own timeout
		case err != nil && isConnectFailure(err):
			why = "connect"
		case err != nil && errors.Is(err, context.DeadlineExceeded):
			why = "timeout"
		case err != nil:
			why = "error"
		case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout:
			why = "status"
		}
		g.traffic.record(tk, why != "" || resp.StatusCode >= 500, g.now().Sub(now))
		if why == "" {
			p.succeeded(e, g.now(), g.now().Sub(now))
			c.outcome = strconv.Itoa(resp.StatusCode/100) + "xx"
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// The body is the upgraded connection: ReverseProxy needs it
				// writable, so it is not wrapped.
				go func() { <-req.Context().Done(); cancel() }()
				return resp, nil
			}
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
			return resp, nil
		}
		if p.failed(e, g.now(), ejectedCount(rt.eps, g.now()), len(rt.eps)) {
			g.ejects.Add(req.Context(), 1, metric.WithAttributes(attribute.String("service", rt.name), attribute.String("region", e.Region)))
			g.log.Info("endpoint ejected", "service", rt.name, "endpoint", e.key, "why", why)
		}
		// Retry: a refused connection reached nobody, so any method may
		// go to another endpoint (outside the budget: it loaded no one), as
		// long as its body can be sent again; other failures only for
		// idempotent requests, within the budget.
		canResend := req.Body == nil || req.Body == http.NoBody || c.body != nil
		retry := false
		left := pick(rt.eps, ranks, g.now(), tries, hasHTTP) != nil
		if why == "connect" {
			retry = canResend && left && try < len(rt.eps)+p.attempts
		} else if c.retry && left && try < p.attempts {
			retry = rt.budget.allow(g.now(), p.budgetPercent)
			if !retry {
				g.retries.Add(req.Context(), 1, metric.WithAttributes(attribute.String("service", rt.name), attribute.String("why", "budget_exhausted")))
			}
		}
		if !retry {
			if err != nil {
				cancel()
				return nil, err
			}
			c.outcome = strconv.Itoa(resp.StatusCode/100) + "xx"
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
			return resp, nil
		}
		g.retries.Add(req.Context(), 1, metric.WithAttributes(attribute.String("service", rt.name), attribute.String("why", why)))
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		cancel()
		if err != nil {
			lastErr = err
		} else {
			lastErr = fmt.Errorf("endpoint answered %d", resp.StatusCode)
		}
	}
}

// noCancel is the cancel of a try without its own timeout.
func noCancel() {}

// copyBuffers lends ReverseProxy the buffers it copies answers with
// (without a pool it makes a 32 KiB buffer for every request).
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// hasHTTP says whether an endpoint serves the service's http port.
func hasHTTP(e *endpoint) bool { return e.httpAt != "" }

// isConnectFailure says whether err happened before the request left:
// a refused or unreachable dial.
func isConnectFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// serveOwn answers the gateway's own routes: /_atoll/healthz says which
// table it serves and how old it is (no addresses: the listener is open).
func (g *Gateway) serveOwn(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/_atoll/healthz" {
		writeProblem(w, http.StatusNotFound, "not found", "/_atoll/ is reserved for the gateway", "")
		return
	}
	epoch, digest := g.Held()
	out := struct {
		Cluster         string   `json:"cluster"`
		Region          string   `json:"region"`
		Epoch           int64    `json:"epoch"`
		Digest          string   `json:"digest"`
		TableAgeSeconds *float64 `json:"tableAgeSeconds"`
		Stale           bool     `json:"stale"`
		Services        int      `json:"services"`
	}{Cluster: g.cfg.Cluster, Region: g.cfg.Region, Epoch: epoch, Digest: digest, Services: len(*g.routes.Load())}
	if age, ok := g.Age(); ok {
		s := age.Seconds()
		out.TableAgeSeconds, out.Stale = &s, age > g.cfg.StaleAfter
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// OwnErrorHeader marks an answer the gateway wrote itself (its 404, 413,
// 502, 503 and 504 problems; the value is the problem's title), as apart
// from a backend's answer it passes on: the global entry (package entry)
// counts only a marked 502 or 504 as this gateway's failure, and tries
// another region. A backend's answer never carries it (tryTransport
// removes it), so a service cannot make the entry eject a gateway.
const OwnErrorHeader = "Atoll-Gateway-Error"

// writeProblem answers with an RFC 9457 problem naming the service,
// marked as the gateway's own (OwnErrorHeader).
func writeProblem(w http.ResponseWriter, status int, title, detail, service string) {
	p := struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Status  int    `json:"status"`
		Detail  string `json:"detail"`
		Service string `json:"service,omitempty"`
	}{Type: "about:blank", Title: title, Status: status, Detail: detail, Service: service}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(OwnErrorHeader, title)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// quoteHost quotes a client's Host for a message, bounded.
func quoteHost(h string) string {
	return strconv.Quote(api.Truncate(h, 80))
}
