// Package entry is the global entry (`atoll gateway`): a standalone HTTP
// reverse proxy in front of the regional gateways, what a user puts
// behind their DNS name or anycast address. It routes each request to
// the healthy regional gateway that answers fastest (nearest by
// measured latency), and to the next one when a gateway cannot be
// reached, so a region that goes dark costs no request that can be sent
// again.
//
// Health is active (each gateway's /_atoll/healthz, every CheckEvery,
// whose round trip is the latency measured) and passive (a refused
// connection, or a 502/504 the gateway answered itself, marks a gateway
// down until its next good check). A 502 or 504 that a backend answered
// through its gateway is the service's answer, not the gateway's
// failure: it goes to the client as it is, and the gateway stays up.
// Regional gateways mark their own answers with the Atoll-Gateway-Error
// header (gatewayErrorHeader). The entry knows the regional gateways from its configuration;
// it knows nothing of services, the hub or members: the regional
// gateways route by Host and path, and the entry passes both through.
//
// It must not hold routing state of its own beyond gateways' health.
package entry

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
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Target is one regional gateway.
type Target struct {
	Region string
	URL    string // http://host:port
}

// Config configures the entry. Zero values mean the defaults.
type Config struct {
	Listen  string
	Targets []Target
	// CheckEvery is the health check period; default 500ms.
	CheckEvery time.Duration
	// MaxBodyBytes bounds a request body; default 64 MiB. Bodies up to
	// 64 KiB are kept so that a request can go to another gateway.
	MaxBodyBytes int64
	Logger       *slog.Logger
	Meter        metric.MeterProvider
}

// Entry is a running global entry.
type Entry struct {
	cfg     Config
	log     *slog.Logger
	targets []*target
	proxy   *httputil.ReverseProxy
	rt      *http.Transport
	check   *http.Client
	srv     *http.Server
	ln      net.Listener
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	requests metric.Int64Counter
	duration metric.Float64Histogram
}

type target struct {
	Target
	host    string
	mu      sync.Mutex
	healthy bool
	rtt     time.Duration // smoothed health check round trip
}

func (t *target) state() (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.healthy, t.rtt
}

func (t *target) mark(healthy bool, rtt time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.healthy = healthy
	if rtt > 0 {
		if t.rtt == 0 {
			t.rtt = rtt
		} else {
			t.rtt = (t.rtt*4 + rtt) / 5
		}
	}
}

// New checks the configuration and makes an entry; Start serves.
func New(cfg Config) (*Entry, error) {
	if len(cfg.Targets) == 0 {
		return nil, errors.New("name at least one regional gateway (--region-gateway REGION=URL)")
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 500 * time.Millisecond
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 20
	}
	if cfg.Meter == nil {
		cfg.Meter = noop.NewMeterProvider()
	}
	e := &Entry{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	for _, t := range cfg.Targets {
		u, err := url.Parse(t.URL)
		if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("regional gateway %s=%q: want http://host:port", t.Region, t.URL)
		}
		e.targets = append(e.targets, &target{Target: t, host: u.Host, healthy: true})
	}
	meter := cfg.Meter.Meter("github.com/atollhq/atoll/entry")
	e.requests, _ = meter.Int64Counter("entry.requests", metric.WithUnit("{request}"), metric.WithDescription("Requests through the global entry, by the region whose gateway answered and outcome."))
	e.duration, _ = meter.Float64Histogram("entry.request.duration", metric.WithUnit("s"), metric.WithDescription("From a request's arrival to its answer's headers, by region."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
	e.rt = &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	e.check = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: false}, Timeout: max(cfg.CheckEvery, 250*time.Millisecond)}
	e.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "gateway.invalid"
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: (*tries)(e),
		// 0, as in the regional gateway: streams (no length, or
		// text/event-stream) are still flushed on every write; -1 costs
		// every answer a second write.
		FlushInterval: 0,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			// The error names the gateways' internal addresses: the log
			// has it, the client (anyone) does not.
			e.log.WarnContext(r.Context(), "global entry: no regional gateway answered", "err", err)
			problem(w, http.StatusBadGateway, "no regional gateway answered", "every regional gateway failed or is unreachable; try again")
		},
		ErrorLog: slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	return e, nil
}

// Start opens the listener and begins health checks.
func (e *Entry) Start() error {
	ln, err := net.Listen("tcp", e.cfg.Listen)
	if err != nil {
		return fmt.Errorf("global entry listen %s: %w", e.cfg.Listen, err)
	}
	e.ln = ln
	e.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(e.log.Handler(), slog.LevelDebug)}
	e.wg.Add(2)
	go func() { defer e.wg.Done(); _ = e.srv.Serve(ln) }()
	go func() { defer e.wg.Done(); e.checkLoop() }()
	e.log.Info("global entry listening", "listen", ln.Addr().String(), "gateways", len(e.targets))
	return nil
}

// Addr is the listener's address (after Start).
func (e *Entry) Addr() string { return e.ln.Addr().String() }

// Stop closes the listener and waits; safe twice and before Start.
func (e *Entry) Stop() {
	e.once.Do(func() {
		close(e.done)
		if e.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = e.srv.Shutdown(ctx)
			cancel()
		}
		e.wg.Wait()
		e.rt.CloseIdleConnections()
	})
}

// RunOnce checks every gateway's health once.
func (e *Entry) RunOnce(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range e.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.host+"/_atoll/healthz", nil)
			resp, err := e.check.Do(req)
			if err != nil {
				t.mark(false, 0)
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			t.mark(resp.StatusCode == http.StatusOK, time.Since(start))
		}()
	}
	wg.Wait()
}

func (e *Entry) checkLoop() {
	tick := time.NewTicker(e.cfg.CheckEvery)
	defer tick.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-e.done; cancel() }()
	for {
		e.RunOnce(ctx)
		select {
		case <-e.done:
			return
		case <-tick.C:
		}
	}
}

// order is the gateways to try: healthy ones by measured latency, then
// the others (a try beats a sure failure).
func (e *Entry) order() []*target {
	out := slices.Clone(e.targets)
	slices.SortStableFunc(out, func(a, b *target) int {
		ha, ra := a.state()
		hb, rb := b.state()
		switch {
		case ha != hb:
			if ha {
				return -1
			}
			return 1
		case ra < rb:
			return -1
		case ra > rb:
			return 1
		}
		return 0
	})
	return out
}

// gatewayErrorHeader marks an answer a regional gateway wrote itself
// (member/gateway's OwnErrorHeader; the entry's tests check the two
// against a real gateway). The entry imports nothing of the members.
const gatewayErrorHeader = "Atoll-Gateway-Error"

type entryCall struct {
	body   []byte
	resend bool
	region string
	status string
}

type entryKey struct{}

// ServeHTTP proxies one request; /_atoll/healthz tells the gateways'
// health.
func (e *Entry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_atoll/healthz" {
		type gw struct {
			Region    string  `json:"region"`
			Healthy   bool    `json:"healthy"`
			RTTMillis float64 `json:"rttMillis"`
		}
		var out []gw
		for _, t := range e.targets {
			h, rtt := t.state()
			out = append(out, gw{Region: t.Region, Healthy: h, RTTMillis: float64(rtt.Microseconds()) / 1000})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"gateways": out})
		return
	}
	start := time.Now()
	c := &entryCall{region: "none", status: "error"}
	defer func() {
		e.requests.Add(r.Context(), 1, metric.WithAttributes(attribute.String("region", c.region), attribute.String("outcome", c.status)))
		e.duration.Record(r.Context(), time.Since(start).Seconds(), metric.WithAttributes(attribute.String("region", c.region)))
	}()
	if r.ContentLength > e.cfg.MaxBodyBytes {
		c.status = "4xx"
		problem(w, http.StatusRequestEntityTooLarge, "body too large", fmt.Sprintf("request bodies are at most %d bytes", e.cfg.MaxBodyBytes))
		return
	}
	switch {
	case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
		r.Body, c.resend = http.NoBody, true
	case r.ContentLength > 0 && r.ContentLength <= 64<<10:
		b, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
		if err != nil {
			c.status = "4xx"
			problem(w, http.StatusBadRequest, "body unreadable", "the request body could not be read")
			return
		}
		c.body, c.resend = b, true
	default:
		r.Body = http.MaxBytesReader(w, r.Body, e.cfg.MaxBodyBytes)
	}
	e.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), entryKey{}, c)))
}

// tries sends a request to the gateways in order until one answers.
type tries Entry

func (t *tries) RoundTrip(req *http.Request) (*http.Response, error) {
	e := (*Entry)(t)
	c, _ := req.Context().Value(entryKey{}).(*entryCall)
	if c == nil {
		return nil, errors.New("entry: request without its call")
	}
	idempotent := req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions || req.Method == http.MethodPut || req.Method == http.MethodDelete
	var lastErr error = errors.New("no regional gateway configured")
	order := e.order()
	for i, g := range order {
		out := req.Clone(req.Context())
		out.URL.Host = g.host
		if c.body != nil {
			out.Body = io.NopCloser(bytes.NewReader(c.body))
		}
		resp, err := e.rt.RoundTrip(out)
		last := i == len(order)-1
		c.region = g.Region
		if err != nil {
			if req.Context().Err() != nil {
				return nil, req.Context().Err()
			}
			var op *net.OpError
			connect := errors.As(err, &op) && op.Op == "dial"
			g.mark(false, 0)
			lastErr = err
			if last || !c.resend || (!connect && !idempotent) {
				return nil, err
			}
			continue
		}
		own := resp.Header.Get(gatewayErrorHeader) != ""
		if (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout) && own && idempotent && c.resend && !last {
			g.mark(false, 0)
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			continue
		}
		c.status = fmt.Sprintf("%dxx", resp.StatusCode/100)
		return resp, nil
	}
	return nil, lastErr
}

func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": title, "status": status, "detail": detail})
}
