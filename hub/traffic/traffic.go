// Package traffic keeps the gateways' traffic: what every member's
// gateway sent to each service's endpoints, per serving cluster and per
// workload generation those endpoints run (protocol.TrafficReport, about
// once a second). It holds a rolling window of one-second slots in
// memory (Keep long), the cluster that reported taken from the subject
// alone, and answers sums over any part of it: the placer's traffic gates
// (a rolling-out workload's new revision against its stable one in the
// same window) and the API's per-region traffic of a service.
//
// Every hub subscribes, so any hub answers the API and a new leader
// judges gates as soon as the members' next reports arrive; nothing is
// written to the database (a hub that starts knows no traffic, and a gate
// waits for its minimum of requests).
//
// A member speaks only for its own gateway's tries; it could still lie
// about them (report errors it never saw) — its reports are attributed
// to it (Reporters) but not second-guessed. It must not decide anything.
package traffic

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/protocol"
)

// DefaultKeep is how much traffic history a window holds by default.
const DefaultKeep = 15 * time.Minute

// Bounds on what members' reports can make a hub hold: the (service,
// cluster, generation) series, and their slots in all. Slots older than
// fineFor are merged into coarseSlot-long ones, so a series holds about
// fineFor/1s + Keep/coarseSlot of them.
const (
	maxSeries  = 20000
	maxSlots   = 1_000_000
	fineFor    = 2 * time.Minute
	coarseSlot = 10 // seconds
)

// Services says which services select a workload, and whether a service
// and a cluster exist (*endpoints.Table has it): counts for others are
// dropped.
type Services interface {
	Selecting(workload string) []string
	Known(service, cluster string) bool
}

// Config tunes a window. Zero values mean the defaults.
type Config struct {
	// Keep is how long slots are kept; default DefaultKeep.
	Keep   time.Duration
	Logger *slog.Logger
	Now    func() time.Time
	Meter  metric.Meter
}

// Counts are tries to endpoints: requests, errors (connect failures,
// timeouts, 5xx) and latency in protocol.LatencyBounds' buckets.
type Counts struct {
	Requests, Errors uint64
	Latency          [len(protocol.LatencyBounds) + 1]uint64
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	for i := range c.Latency {
		c.Latency[i] += o.Latency[i]
	}
}

// ErrorRatio is errors over requests (0 without requests).
func (c Counts) ErrorRatio() float64 {
	if c.Requests == 0 {
		return 0
	}
	return float64(c.Errors) / float64(c.Requests)
}

// Quantile estimates the latency below which a share q of the tries
// answered, interpolating inside the bucket it falls in (the last,
// open bucket answers its lower bound); 0 without requests.
func (c Counts) Quantile(q float64) time.Duration {
	if c.Requests == 0 {
		return 0
	}
	rank := q * float64(c.Requests)
	var seen float64
	for i, n := range c.Latency {
		if n == 0 {
			continue
		}
		if seen+float64(n) >= rank {
			lo := time.Duration(0)
			if i > 0 {
				lo = protocol.LatencyBounds[i-1]
			}
			if i >= len(protocol.LatencyBounds) {
				return lo
			}
			hi := protocol.LatencyBounds[i]
			frac := math.Max(0, (rank-seen)/float64(n))
			return lo + time.Duration(frac*float64(hi-lo))
		}
		seen += float64(n)
	}
	return protocol.LatencyBounds[len(protocol.LatencyBounds)-1]
}

// Sample is one series' sum over a span: a service's tries to the
// endpoints of one cluster running one generation.
type Sample struct {
	Service    string
	Cluster    string
	Generation int64
	Counts
}

type seriesKey struct {
	service, cluster string
	generation       int64
}

type slot struct {
	sec int64 // unix second it covers
	Counts
}

type reporter struct {
	run string
	seq uint64
	at  time.Time
}

// Window is the rolling window of every gateway's traffic.
type Window struct {
	cfg      Config
	services Services
	log      *slog.Logger
	now      func() time.Time

	mu        sync.Mutex
	series    map[seriesKey][]slot // oldest slot first
	slots     int                  // in all series
	reporters map[string]reporter
	prunedAt  time.Time

	sub      *nats.Subscription
	received metric.Int64Counter
}

// New makes a window; Start subscribes to the members' reports.
// services may be nil (Workload then finds nothing).
func New(services Services, cfg Config) *Window {
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	w := &Window{cfg: cfg, services: services, log: cfg.Logger, now: cfg.Now, series: map[seriesKey][]slot{}, reporters: map[string]reporter{}}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.now == nil {
		w.now = time.Now
	}
	if cfg.Meter != nil {
		w.received, _ = cfg.Meter.Int64Counter("traffic.reports", metric.WithUnit("{report}"), metric.WithDescription("Gateway traffic reports from members, by result (taken, stale, refused)."))
	}
	return w
}

// Keep is how far back the window reaches.
func (w *Window) Keep() time.Duration { return w.cfg.Keep }

// Start subscribes to every member's traffic reports on conn.
func (w *Window) Start(conn *nats.Conn) error {
	sub, err := conn.Subscribe(protocol.TrafficWildcard, w.Observe)
	if err != nil {
		return fmt.Errorf("subscribe to traffic reports: %w", err)
	}
	w.sub = sub
	return nil
}

// Stop ends the subscription; safe twice and before Start.
func (w *Window) Stop() {
	if w.sub != nil {
		_ = w.sub.Unsubscribe()
	}
}

// Observe takes one member's report (a NATS message on its traffic
// subject).
func (w *Window) Observe(msg *nats.Msg) {
	r, err := protocol.DecodeTrafficReport(msg.Subject, msg.Data)
	if err != nil {
		w.count("refused")
		w.log.Debug("traffic report refused", "subject", msg.Subject, "err", err)
		return
	}
	if !w.Take(r) {
		w.count("stale")
		return
	}
	w.count("taken")
}

func (w *Window) count(result string) {
	if w.received != nil {
		w.received.Add(context.Background(), 1, metric.WithAttributes(attribute.String("result", result)))
	}
}

// Take adds a decoded report to the slot of the time it arrives; false
// when it was taken already (the same run and an older or equal seq).
func (w *Window) Take(r protocol.TrafficReport) bool {
	now := w.now()
	sec := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.reporters[r.Cluster]; ok && old.run == r.Run && r.Seq <= old.seq {
		return false
	}
	w.reporters[r.Cluster] = reporter{run: r.Run, seq: r.Seq, at: now}
	for _, c := range r.Counts {
		if w.services != nil && !w.services.Known(c.Service, c.Cluster) {
			continue // a service or cluster that does not exist (or not yet read)
		}
		k := seriesKey{service: c.Service, cluster: c.Cluster, generation: c.Generation}
		s, ok := w.series[k]
		if !ok && len(w.series) >= maxSeries {
			continue
		}
		if n := len(s); n == 0 || s[n-1].sec != sec {
			if w.slots >= maxSlots {
				continue
			}
			s = append(s, slot{sec: sec})
			w.slots++
		}
		last := &s[len(s)-1]
		last.Requests += c.Requests
		last.Errors += c.Errors
		for i, n := range c.Latency {
			if i < len(last.Latency) {
				last.Latency[i] += n
			}
		}
		w.series[k] = s
	}
	if now.Sub(w.prunedAt) > 10*time.Second {
		w.prune(now)
	}
	return true
}

// prune drops slots older than Keep and merges those older than
// fineFor into coarse slots (under w.mu).
func (w *Window) prune(now time.Time) {
	w.prunedAt = now
	oldest, fine := now.Add(-w.cfg.Keep).Unix(), now.Add(-fineFor).Unix()
	w.slots = 0
	for k, s := range w.series {
		out := make([]slot, 0, len(s))
		for _, sl := range s {
			switch {
			case sl.sec < oldest:
				continue
			case sl.sec < fine:
				sl.sec -= sl.sec % coarseSlot
				if n := len(out); n > 0 && out[n-1].sec == sl.sec {
					out[n-1].Add(sl.Counts)
					continue
				}
			}
			out = append(out, sl)
		}
		if len(out) == 0 {
			delete(w.series, k)
			continue
		}
		w.series[k] = out
		w.slots += len(out)
	}
	for c, r := range w.reporters {
		if now.Sub(r.at) > w.cfg.Keep {
			delete(w.reporters, c)
		}
	}
}

// Samples sums each series of the given services over [from, to] (whole
// seconds, both ends in; a coarse slot older than two minutes counts
// when it starts in the span), ordered by service, cluster and
// generation.
func (w *Window) Samples(services []string, from, to time.Time) []Sample {
	want := map[string]bool{}
	for _, s := range services {
		want[s] = true
	}
	lo, hi := from.Unix(), to.Unix()
	w.mu.Lock()
	var out []Sample
	for k, s := range w.series {
		if !want[k.service] {
			continue
		}
		var sum Counts
		for _, sl := range s {
			if sl.sec >= lo && sl.sec <= hi {
				sum.Add(sl.Counts)
			}
		}
		if sum.Requests > 0 {
			out = append(out, Sample{Service: k.service, Cluster: k.cluster, Generation: k.generation, Counts: sum})
		}
	}
	w.mu.Unlock()
	slices.SortFunc(out, func(a, b Sample) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Generation, b.Generation))
	})
	return out
}

// Workload sums the traffic of every service that selects workload over
// [from, to].
func (w *Window) Workload(workload string, from, to time.Time) []Sample {
	if w.services == nil {
		return nil
	}
	return w.Samples(w.services.Selecting(workload), from, to)
}

// Reporters names the clusters whose gateways reported within the
// window, and when each last did.
func (w *Window) Reporters() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Time, len(w.reporters))
	for c, r := range w.reporters {
		out[c] = r.at
	}
	return out
}
