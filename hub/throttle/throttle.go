// Package throttle slows down guessing: it counts failed authentications
// per client address, and an address that failed too often is refused
// for a while, its valid attempts included (else a refusal would tell a
// right guess from a wrong one). Each address has a token bucket that a
// failure drains and time refills; addresses that never fail cost
// nothing, and their attempts are never slowed.
//
// The package only counts and answers. Its callers decide what a failure
// is (a bearer token or a sign-in the hub refused, not a missing one) and
// what a refusal looks like (429 with Retry-After). Memory is bounded: at
// most Config.MaxClients addresses are tracked; when that many are,
// addresses whose buckets have refilled are forgotten first, then the
// least drained.
//
// A client is its IP address (its /64 for IPv6, which one host usually
// has whole). Behind a reverse proxy every client has the proxy's
// address, so they share one bucket.
package throttle

import (
	"cmp"
	"context"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Config tunes a Throttle. Zero values mean the documented defaults.
type Config struct {
	// Burst is how many failures in a row an address may have before it
	// is refused; default 20.
	Burst int
	// Every is how often an address earns back one failure; default 2s
	// (30 a minute once the burst is spent).
	Every time.Duration
	// MaxClients bounds the addresses tracked; default 10,000.
	MaxClients int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Meter, when set, gets the auth.throttled counter of refusals, by
	// surface (what the caller names: "api", "console").
	Meter metric.Meter
}

// Throttle is safe for concurrent use.
type Throttle struct {
	burst   float64
	every   time.Duration
	max     int
	now     func() time.Time
	refused metric.Int64Counter

	mu      sync.Mutex
	buckets map[string]*bucket
}

// bucket is an address's allowance: tokens left at time at.
type bucket struct {
	tokens float64
	at     time.Time
}

// New makes a Throttle.
func New(cfg Config) *Throttle {
	t := &Throttle{
		burst:   float64(cmp.Or(cfg.Burst, 20)),
		every:   cmp.Or(cfg.Every, 2*time.Second),
		max:     cmp.Or(cfg.MaxClients, 10_000),
		now:     cfg.Now,
		buckets: map[string]*bucket{},
	}
	if t.now == nil {
		t.now = time.Now
	}
	if cfg.Meter != nil {
		t.refused, _ = cfg.Meter.Int64Counter("auth.throttled", metric.WithUnit("{request}"),
			metric.WithDescription("Authentication attempts refused because their address failed too often, by surface."))
	}
	return t
}

// Allow says whether the client at remoteAddr ("host:port" or a bare
// address) may try to authenticate now; if not, how long until it may.
// A refusal is counted under surface.
func (t *Throttle) Allow(ctx context.Context, surface, remoteAddr string) (retryAfter time.Duration, ok bool) {
	key := Client(remoteAddr)
	now := t.now()
	t.mu.Lock()
	b := t.buckets[key]
	tokens := t.burst
	if b != nil {
		tokens = t.refill(b, now)
	}
	t.mu.Unlock()
	if tokens >= 1 {
		return 0, true
	}
	if t.refused != nil {
		t.refused.Add(ctx, 1, metric.WithAttributes(attribute.String("surface", surface)))
	}
	wait := time.Duration(math.Ceil((1 - tokens) * float64(t.every)))
	return max(wait, time.Millisecond), false
}

// Fail records a failed authentication by the client at remoteAddr.
func (t *Throttle) Fail(remoteAddr string) {
	key := Client(remoteAddr)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buckets[key]
	if b == nil {
		if len(t.buckets) >= t.max {
			t.makeRoom(now)
		}
		b = &bucket{tokens: t.burst, at: now}
		t.buckets[key] = b
	}
	b.tokens = t.refill(b, now) - 1
	b.at = now
}

// refill is b's tokens at now.
func (t *Throttle) refill(b *bucket, now time.Time) float64 {
	elapsed := now.Sub(b.at)
	if elapsed <= 0 {
		return b.tokens
	}
	return min(t.burst, b.tokens+float64(elapsed)/float64(t.every))
}

// makeRoom forgets the addresses whose buckets are full again or, if
// none is, the one with the most left: the least suspect. It reads every
// bucket, which costs about as much as the failed check that got here.
func (t *Throttle) makeRoom(now time.Time) {
	var most string
	mostTokens := -1.0
	for k, b := range t.buckets {
		tokens := t.refill(b, now)
		if tokens >= t.burst {
			delete(t.buckets, k)
			continue
		}
		if tokens > mostTokens {
			most, mostTokens = k, tokens
		}
	}
	if len(t.buckets) >= t.max {
		delete(t.buckets, most)
	}
}

// Tracked is how many addresses are tracked now.
func (t *Throttle) Tracked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buckets)
}

// Client is the key of an address: the IP of "host:port" (or of a bare
// address), its /64 for IPv6; the string itself when it is no address.
func Client(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
