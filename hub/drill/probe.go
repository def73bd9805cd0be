package drill

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
)

// A probe sends a drill's real requests: GET <entry point>/svc/<service>
// <path> at the probe's rate through each entry point, from the baseline
// before the fault until the drill ends, and counts them per entry point
// and per phase (the phase a request was sent in). It runs beside the
// controller's passes, in its own goroutines, and touches neither the
// store nor placement: the controller copies its counts into the drill's
// status on each pass.
type probe struct {
	spec    api.DrillProbe
	started time.Time
	uid     string
	every   time.Duration // the series' grain
	now     func() time.Time
	client  *http.Client
	metrics probeMetrics
	phase   atomic.Int32 // index into probePhases

	cancel   context.CancelFunc
	stopping atomic.Bool
	wg       sync.WaitGroup

	mu      sync.Mutex
	entries []*probeEntry
	samples []api.DrillProbeSample
}

var probePhases = [3]string{api.ProbeBaseline, api.ProbeFault, api.ProbeAfter}

// probeEntry is one entry point's counts.
type probeEntry struct {
	name, url string
	phases    [3]probeCounts
	// The current stretch of the series.
	requests, failed int64
}

type probeCounts struct {
	requests, succeeded, failed int64
	latencies                   []float64 // milliseconds, a reservoir of at most maxLatencies
}

// maxLatencies bounds each phase's latency reservoir per entry point.
const maxLatencies = 10000

// maxInFlight bounds a probe's requests waiting for an answer per entry
// point; a request that would exceed it is not sent and counts as failed.
const maxInFlight = 512

// probeTimeout bounds one request.
const probeTimeout = 2 * time.Second

// maxProbeSamples is about how many points each entry point's series has.
const maxProbeSamples = 200

type probeMetrics struct {
	requests metric.Int64Counter
	duration metric.Float64Histogram
}

func newProbeMetrics(meter metric.Meter) probeMetrics {
	var m probeMetrics
	m.requests, _ = meter.Int64Counter("drill.probe.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Drill probes' requests, by entry point, phase and outcome (ok, failed)."))
	m.duration, _ = meter.Float64Histogram("drill.probe.duration", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2),
		metric.WithDescription("Drill probes' request latency, by entry point."))
	return m
}

// startProbe starts sending; the span covers the probe's life (its
// requests carry its trace context to the gateways).
func (d *Controller) startProbe(ctx context.Context, dr api.Drill) *probe {
	spec := *dr.Spec.Probe
	total := spec.BaselineOrDefault() + dr.Spec.DurationOrDefault() + dr.Spec.FailbackTimeoutOrDefault()
	p := &probe{spec: spec, started: d.now(), uid: dr.Metadata.UID, every: max(time.Second, total/maxProbeSamples), now: d.now,
		client:  &http.Client{Timeout: probeTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}},
		metrics: d.metrics.probe}
	for _, n := range spec.Through {
		p.entries = append(p.entries, &probeEntry{name: n, url: strings.TrimRight(d.cfg.EntryPoints[n], "/")})
	}
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	ctx, span := d.tracer.Start(ctx, "drill.probe", trace.WithAttributes(attribute.String("drill", dr.Metadata.Name),
		attribute.String("probe.service", spec.Service), attribute.Int("probe.rate", int(spec.Rate)), attribute.StringSlice("probe.through", spec.Through)))
	for _, e := range p.entries {
		p.wg.Go(func() { p.send(ctx, e) })
	}
	p.wg.Go(func() {
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.cut()
			}
		}
	})
	go func() {
		<-ctx.Done()
		p.wg.Wait()
		p.client.CloseIdleConnections()
		r := p.report()
		span.SetAttributes(attribute.Int64("probe.fault.requests", r.Fault.Requests), attribute.Int64("probe.fault.failed", r.Fault.Failed))
		span.End()
	}()
	d.log.InfoContext(ctx, "drill probe started", "drill", dr.Metadata.Name, "service", spec.Service, "rate", spec.Rate, "through", spec.Through)
	return p
}

// setPhase counts the requests sent from now on in phase (fault, after),
// with a span event.
func (p *probe) setPhase(ctx context.Context, phase string) {
	if p == nil {
		return
	}
	p.phase.Store(int32(slices.Index(probePhases[:], phase)))
	trace.SpanFromContext(ctx).AddEvent("drill.probe.phase", trace.WithAttributes(attribute.String("probe.phase", phase)))
}

// stop ends the probe; requests still waiting are dropped, not counted.
func (p *probe) stop() {
	if p == nil {
		return
	}
	p.stopping.Store(true)
	p.cancel()
}

// send issues e's requests at the probe's rate until ctx ends: every
// tick, as many as are due since the start.
func (p *probe) send(ctx context.Context, e *probeEntry) {
	url := e.url + "/svc/" + p.spec.Service + p.spec.PathOrDefault()
	tick := max(time.Second/time.Duration(p.spec.Rate), 5*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	var sent int64
	inFlight := make(chan struct{}, maxInFlight)
	var reqs sync.WaitGroup
	defer reqs.Wait()
	carrier := http.Header{}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(carrier))
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := int64(now.Sub(start).Seconds()*float64(p.spec.Rate)) + 1
			for ; sent < due; sent++ {
				phase := int(p.phase.Load())
				select {
				case inFlight <- struct{}{}:
				default:
					p.done(ctx, e, phase, false, 0)
					continue
				}
				reqs.Go(func() {
					defer func() { <-inFlight }()
					ok, took := p.get(ctx, url, carrier)
					if p.stopping.Load() && ctx.Err() != nil {
						return // cut off by the drill's end, not by the fault
					}
					p.done(ctx, e, phase, ok, took)
				})
			}
		}
	}
}

// get sends one request: ok for a 2xx or 3xx answer read to its end.
func (p *probe) get(ctx context.Context, url string, carrier http.Header) (bool, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, 0
	}
	for k, v := range carrier {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "atoll-drill-probe")
	t0 := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return false, time.Since(t0)
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return err == nil && resp.StatusCode >= 200 && resp.StatusCode < 400, time.Since(t0)
}

func (p *probe) done(ctx context.Context, e *probeEntry, phase int, ok bool, took time.Duration) {
	outcome := "ok"
	if !ok {
		outcome = "failed"
	}
	p.metrics.requests.Add(ctx, 1, metric.WithAttributes(attribute.String("through", e.name), attribute.String("phase", probePhases[phase]), attribute.String("outcome", outcome)))
	if took > 0 {
		p.metrics.duration.Record(ctx, took.Seconds(), metric.WithAttributes(attribute.String("through", e.name)))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := &e.phases[phase]
	c.requests++
	e.requests++
	if !ok {
		c.failed++
		e.failed++
		return
	}
	c.succeeded++
	ms := float64(took.Microseconds()) / 1000
	if len(c.latencies) < maxLatencies {
		c.latencies = append(c.latencies, ms)
	} else if i := rand.Int64N(c.succeeded); i < maxLatencies {
		c.latencies[i] = ms
	}
}

// cut closes the series' current stretch: one sample per entry point that
// had answers in it.
func (p *probe) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := p.now().UTC().Truncate(time.Millisecond)
	for _, e := range p.entries {
		if e.requests == 0 {
			continue
		}
		p.samples = append(p.samples, api.DrillProbeSample{At: at, Through: e.name, Requests: e.requests, Failed: e.failed,
			SuccessRatio: float64(e.requests-e.failed) / float64(e.requests)})
		e.requests, e.failed = 0, 0
	}
}

// report is the counts so far and the series.
func (p *probe) report() *api.DrillProbeReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &api.DrillProbeReport{Service: p.spec.Service, Rate: p.spec.Rate}
	var fault probeCounts
	for _, e := range p.entries {
		r.Through = append(r.Through, api.DrillProbeEntry{Name: e.name, Baseline: e.phases[0].stats(), Fault: e.phases[1].stats(), After: e.phases[2].stats()})
		f := e.phases[1]
		fault.requests += f.requests
		fault.succeeded += f.succeeded
		fault.failed += f.failed
		fault.latencies = append(fault.latencies, f.latencies...)
	}
	r.Fault = fault.stats()
	return r
}

// series is the success-ratio samples so far.
func (p *probe) series() []api.DrillProbeSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.samples)
}

func (c probeCounts) stats() api.DrillProbeStats {
	s := api.DrillProbeStats{Requests: c.requests, Succeeded: c.succeeded, Failed: c.failed, SuccessRatio: 1}
	if c.requests > 0 {
		s.SuccessRatio = float64(c.succeeded) / float64(c.requests)
	}
	if len(c.latencies) > 0 {
		l := slices.Sorted(slices.Values(c.latencies))
		s.P50Millis, s.P99Millis = percentile(l, 0.50), percentile(l, 0.99)
	}
	return s
}

// percentile of sorted values (nearest rank).
func percentile(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// checkProbe is what the hub can tell of a probe beyond its shape: the
// service exists, and the hub knows each entry point (paths relative to
// the spec).
func (d *Controller) checkProbe(ctx context.Context, pr *api.DrillProbe) (api.FieldErrors, error) {
	var fe api.FieldErrors
	if _, err := d.store.Get(ctx, "Service", pr.Service); api.ErrorCode(err) == api.CodeNotFound {
		fe = append(fe, api.FieldError{Field: "probe.service", Value: pr.Service, Message: "no service named " + pr.Service})
	} else if err != nil {
		return nil, err
	}
	known := slices.Sorted(maps.Keys(d.cfg.EntryPoints))
	for i, n := range pr.Through {
		if _, ok := d.cfg.EntryPoints[n]; ok {
			continue
		}
		msg := "this hub knows no entry points (its --probe-entry-point flags name them)"
		if len(known) > 0 {
			msg = "no entry point named " + n + "; this hub knows " + strings.Join(known, ", ")
		}
		fe = append(fe, api.FieldError{Field: fmt.Sprintf("probe.through[%d]", i), Value: n, Message: msg})
	}
	return fe, nil
}
