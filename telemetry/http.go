package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

type requestIDKey struct{}

// RequestID returns the request id the middleware gave this request.
func RequestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

// RequestIDFrom returns the request id stored in a request's context.
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// HTTPMiddleware traces and measures every request: a server span named
// "{method} {route}" (the chi route pattern, so names stay low-cardinality),
// the atoll_http_server_request_duration_seconds histogram labelled by
// method, route and status, and an X-Request-ID (kept from the client when
// it is sane, made up otherwise).
func HTTPMiddleware(p *Providers) func(http.Handler) http.Handler {
	tracer := p.Tracer.Tracer("github.com/atollhq/atoll/telemetry")
	meter := p.Meter.Meter("github.com/atollhq/atoll/telemetry")
	duration, _ := meter.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to answer an HTTP request."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	inflight, _ := meter.Int64UpDownCounter("http.server.active_requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests being answered, watches included."))
	sets := &attrSets{}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get("X-Request-ID")
			if !saneID(id) {
				var b [8]byte
				_, _ = rand.Read(b[:])
				id = hex.EncodeToString(b[:])
			}
			w.Header().Set("X-Request-ID", id)
			ctx := p.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx = context.WithValue(ctx, requestIDKey{}, id)
			ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path),
					attribute.String("atoll.request_id", id)))
			defer span.End()
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			methodOpt := sets.method(r.Method)
			inflight.Add(ctx, 1, methodOpt)
			defer inflight.Add(ctx, -1, methodOpt)

			next.ServeHTTP(sw, r.WithContext(ctx))

			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			span.SetName(r.Method + " " + route)
			span.SetAttributes(semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(sw.status))
			if sw.status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(sw.status))
			}
			duration.Record(ctx, time.Since(start).Seconds(), sets.outcome(r.Method, route, sw.status))
		})
	}
}

// attrSets holds the metric attributes of each method, and of each
// method, route and status, made once: making a set sorts and copies its
// attributes, three times a request otherwise. Only the standard methods
// are kept (a client picks the method; routes are chi's patterns and
// statuses three digits), so what is kept stays bounded.
type attrSets struct {
	methods  sync.Map // method -> metric.MeasurementOption
	outcomes sync.Map // outcomeKey -> metric.MeasurementOption
}

type outcomeKey struct {
	method, route string
	status        int
}

func (a *attrSets) method(m string) metric.MeasurementOption {
	if o, ok := a.methods.Load(m); ok {
		return o.(metric.MeasurementOption)
	}
	o := metric.WithAttributeSet(attribute.NewSet(attribute.String("http.request.method", m)))
	if standardMethod(m) {
		a.methods.Store(m, o)
	}
	return o
}

func (a *attrSets) outcome(m, route string, status int) metric.MeasurementOption {
	k := outcomeKey{m, route, status}
	if o, ok := a.outcomes.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	o := metric.WithAttributeSet(attribute.NewSet(attribute.String("http.request.method", m),
		attribute.String("http.route", route), attribute.String("http.response.status_code", strconv.Itoa(status))))
	if standardMethod(m) {
		a.outcomes.Store(k, o)
	}
	return o
}

func standardMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func saneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// statusWriter remembers the status code and keeps http.Flusher working
// (watches stream through it).
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
