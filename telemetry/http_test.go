package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestHTTPMiddlewareNamesSpansByRoute(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	p := &Providers{
		Tracer:     sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)),
		Meter:      sdkmetric.NewMeterProvider(),
		Propagator: propagation.TraceContext{},
	}
	var logged bytes.Buffer
	log := slog.New(traceHandler{slog.NewJSONHandler(&logged, nil)})
	r := chi.NewRouter()
	r.Use(HTTPMiddleware(p))
	r.Get("/things/{name}", func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handling", "request_id", RequestID(r))
		w.WriteHeader(http.StatusTeapot)
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL+"/things/abc", nil)
	req.Header.Set("X-Request-ID", "client-chosen-1")
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); got != "client-chosen-1" {
		t.Errorf("X-Request-ID: want the client's id, got %q", got)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("want 1 span, got %d", len(spans))
	}
	s := spans[0]
	if s.Name() != "GET /things/{name}" {
		t.Errorf("span name %q, want %q", s.Name(), "GET /things/{name}")
	}
	if s.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("the span did not continue the caller's trace: %s", s.SpanContext().TraceID())
	}
	if !strings.Contains(logged.String(), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) || !strings.Contains(logged.String(), "client-chosen-1") {
		t.Errorf("log line lacks the trace id or request id: %s", logged.String())
	}

	// A hostile request id is replaced.
	req, _ = http.NewRequest("GET", srv.URL+"/things/x", nil)
	req.Header.Set("X-Request-ID", "bad id with <script>")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); got == "" || strings.ContainsAny(got, " <>") {
		t.Errorf("unsafe request id kept: %q", got)
	}
}

// TestHTTPMiddlewareMetrics: the duration histogram counts requests by
// method, route and status (the same combination twice in one point, a
// non-standard method, which is not kept, in a point of its own), and
// the active requests come back to zero.
func TestHTTPMiddlewareMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	p := &Providers{
		Tracer:     sdktrace.NewTracerProvider(),
		Meter:      sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		Propagator: propagation.TraceContext{},
	}
	r := chi.NewRouter()
	r.Use(HTTPMiddleware(p))
	r.Get("/things/{name}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, c := range []struct{ method, path string }{{"GET", "/things/a"}, {"GET", "/things/b"}, {"BREW", "/things/x"}, {"BREW", "/things/y"}, {"GET", "/nowhere"}} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	active := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					method, _ := dp.Attributes.Value("http.request.method")
					route, _ := dp.Attributes.Value("http.route")
					status, _ := dp.Attributes.Value("http.response.status_code")
					counts[method.AsString()+" "+route.AsString()+" "+status.AsString()] += dp.Count
				}
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					method, _ := dp.Attributes.Value("http.request.method")
					active[method.AsString()] += dp.Value
				}
			}
		}
	}
	want := map[string]uint64{"GET /things/{name} 418": 2, "BREW unmatched 405": 2, "GET unmatched 404": 1}
	if !maps.Equal(counts, want) {
		t.Errorf("request durations counted by method, route and status: %v; want %v", counts, want)
	}
	if !maps.Equal(active, map[string]int64{"GET": 0, "BREW": 0}) {
		t.Errorf("active requests by method after every request ended: %v; want 0 for GET and BREW", active)
	}
}
