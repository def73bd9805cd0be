package gateway

import (
	"cmp"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// endpoint is one replica serving a service, with its outlier state
// (shared by every table that lists the same replica at the same
// address).
type endpoint struct {
	protocol.Endpoint
	key    string // cluster/replica@host
	httpAt string // host:port of the service's http port ("" if none)
	weight int
	out    *outlier
}

// outlier is an endpoint's passive health and measured latency. What the
// hot path reads (ejected, the latency) is atomic; the rest is under mu.
type outlier struct {
	until     atomic.Int64 // unix nanos the ejection ends
	unhealthy atomic.Bool  // active health (health.go): the last check failed
	rtt       atomic.Int64 // smoothed round trip in ns (0: not measured)

	mu          sync.Mutex
	consecutive int
	ejections   int
	checked     time.Time
	checking    bool
}

// ejected says whether the endpoint is out of rotation: ejected by
// outlier detection or failing its health check.
func (o *outlier) ejected(now time.Time) bool {
	return now.UnixNano() < o.until.Load() || o.unhealthy.Load()
}

// rttWeight is the share a new sample takes of the smoothed latency
// (an exponentially weighted moving average: 1/rttWeight).
const rttWeight = 4

// observe folds one round trip into the endpoint's smoothed latency.
func (o *outlier) observe(d time.Duration) {
	if d <= 0 {
		d = 1
	}
	for {
		old := o.rtt.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/rttWeight
		}
		if o.rtt.CompareAndSwap(old, next) {
			return
		}
	}
}

// latency is the endpoint's smoothed round trip; false before any.
func (o *outlier) latency() (time.Duration, bool) {
	n := o.rtt.Load()
	return time.Duration(n), n != 0
}

// route is one service as the gateway routes it.
type route struct {
	name     string
	spec     api.ServiceSpec
	eps      []*endpoint
	region   string                // the gateway's
	ranks    atomic.Pointer[[]int] // eps[i]'s rank: 0 local, then by the locality policy
	policy   policy
	budget   *budget
	tcpPorts map[string]int // service port name -> the port gateways listen on
}

// policy is a service's resolved timeouts, retries and outlier rules.
type policy struct {
	consecutive   int
	baseEject     time.Duration
	maxEject      time.Duration
	maxEjectShare int // percent
	attempts      int
	budgetPercent int
	perTry        time.Duration
	connect       time.Duration
	request       time.Duration
}

func policyOf(s api.ServiceSpec) policy {
	p := policy{consecutive: api.DefaultConsecutiveErrors, baseEject: api.DefaultBaseEjection, maxEject: api.DefaultMaxEjection,
		maxEjectShare: api.DefaultMaxEjectionPercent, attempts: api.DefaultRetryAttempts, budgetPercent: api.DefaultRetryBudgetPercent,
		connect: api.DefaultConnectTimeout, request: api.DefaultRequestTimeout}
	if o := s.Outlier; o != nil {
		if o.ConsecutiveErrors > 0 {
			p.consecutive = int(o.ConsecutiveErrors)
		}
		p.baseEject = o.BaseEjection.Get(p.baseEject)
		p.maxEject = o.MaxEjection.Get(p.maxEject)
		if o.MaxEjectionPercent > 0 {
			p.maxEjectShare = int(o.MaxEjectionPercent)
		}
	}
	if r := s.Retries; r != nil {
		p.attempts = int(r.Attempts)
		if r.BudgetPercent > 0 {
			p.budgetPercent = int(r.BudgetPercent)
		}
		p.perTry = r.PerTry.Get(0)
	}
	if t := s.Timeouts; t != nil {
		p.connect = t.Connect.Get(p.connect)
		p.request = t.Request.Get(p.request)
	}
	return p
}

// buildRoutes turns a table into routes for a gateway in region, reusing
// the outlier state of endpoints it already knew (outliers, by key).
func buildRoutes(t protocol.EndpointTable, self routeSelf, outliers map[string]*outlier) (map[string]*route, map[string]*outlier) {
	region := self.region
	routes := make(map[string]*route, len(t.Services))
	kept := map[string]*outlier{}
	for _, s := range t.Services {
		r := &route{name: s.Name, spec: s.Spec, region: region, policy: policyOf(s.Spec), budget: &budget{}, tcpPorts: map[string]int{}}
		var weights map[string]int32
		if l := s.Spec.Locality; l != nil {
			weights = l.Weights
		}
		hp := s.Spec.HTTPPort()
		for _, p := range s.Spec.Ports {
			if p.Protocol == "tcp" {
				r.tcpPorts[p.Name] = int(p.Port)
			}
		}
		for _, e := range s.Endpoints {
			if e.Cluster != self.cluster && !self.localPeers && machineLocal(e.Host) {
				// Another cluster's replica cannot be on this machine's
				// loopback (or at a link-local address such as a cloud's
				// metadata service): a member claiming so would turn the
				// gateway against this machine's own services.
				continue
			}
			ep := &endpoint{Endpoint: e, key: e.Cluster + "/" + e.Replica + "@" + e.Host}
			if hp != nil {
				if port, ok := e.Ports[hp.Name]; ok {
					ep.httpAt = net.JoinHostPort(e.Host, strconv.Itoa(port))
					ep.key += ":" + strconv.Itoa(port)
				}
			}
			ep.weight = 1
			if w, ok := weights[e.Region]; ok && w > 0 {
				ep.weight = int(w)
			}
			ep.out = outliers[ep.key]
			if ep.out == nil {
				ep.out = &outlier{}
			}
			kept[ep.key] = ep.out
			r.eps = append(r.eps, ep)
		}
		r.rerank()
		routes[s.Name] = r
	}
	return routes, kept
}

// routeSelf is what building routes knows of the gateway itself: its
// cluster and region, and whether other clusters' endpoints may be on this
// machine (atoll dev, tests: every region on one machine).
type routeSelf struct {
	cluster, region string
	localPeers      bool
}

// machineLocal says whether host names this machine or its link: a
// loopback, unspecified or link-local address, or localhost.
func machineLocal(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast()
}

// rerank orders the route's regions again from what the gateway has
// measured (nearest mode; the ordered mode's ranks never change).
func (r *route) rerank() {
	var lat map[string]time.Duration
	if r.spec.Locality.Nearest() {
		lat = regionLatencies(r.eps)
	}
	rank := rankRegions(r.region, r.spec.Locality, lat)
	ranks := make([]int, len(r.eps))
	for i, e := range r.eps {
		ranks[i] = rank(e.Region)
	}
	r.ranks.Store(&ranks)
}

// regionLatencies is each region's latency as the gateway measured it:
// the mean of its endpoints' smoothed round trips (those measured).
func regionLatencies(eps []*endpoint) map[string]time.Duration {
	sum, n := map[string]time.Duration{}, map[string]int{}
	for _, e := range eps {
		if d, ok := e.out.latency(); ok {
			sum[e.Region] += d
			n[e.Region]++
		}
	}
	for reg, c := range n {
		sum[reg] /= time.Duration(c)
	}
	return sum
}

// nearTolerance says how close two regions' latencies must be to share
// a rank in nearest mode: within 10% of the rank's nearest region, and
// never closer than nearFloor (jitter on a busy machine or a LAN).
const (
	nearShare = 10 // percent
	nearFloor = time.Millisecond
)

// rankRegions is the locality order of regions for a gateway in self,
// pure: self is rank 0. Ordered mode (or lat nil): the failover regions
// in order, then every other region in one rank. Nearest mode: the
// regions measured (lat), nearest first, those within the tolerance of
// a rank's nearest sharing it; then the regions not measured, in
// failover order, then the rest.
func rankRegions(self string, l *api.LocalityPolicy, lat map[string]time.Duration) func(region string) int {
	rank := map[string]int{self: 0}
	next := 1
	if l.Nearest() {
		measured := make([]string, 0, len(lat))
		for reg := range lat {
			if reg != self {
				measured = append(measured, reg)
			}
		}
		slices.SortFunc(measured, func(a, b string) int {
			if c := cmp.Compare(lat[a], lat[b]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		var lead time.Duration // the latency of the current rank's nearest
		for i, reg := range measured {
			switch d := lat[reg]; {
			case i == 0:
				lead = d
			case d > lead+max(lead*nearShare/100, nearFloor):
				next++
				lead = d
			}
			rank[reg] = next
		}
		if len(measured) > 0 {
			next++
		}
	}
	if l != nil {
		for _, reg := range l.Failover {
			if _, ok := rank[reg]; !ok {
				rank[reg] = next
				next++
			}
		}
	}
	return func(region string) int {
		if r, ok := rank[region]; ok {
			return r
		}
		return next
	}
}

// tried is the endpoints a request already tried (few: a slice beats a
// map on the hot path).
type tried []*endpoint

func (t tried) has(e *endpoint) bool {
	for _, x := range t {
		if x == e {
			return true
		}
	}
	return false
}

// pick chooses the endpoint for a try, pure: eps[i] has rank ranks[i]
// (the locality order, measurements included, handed in). It takes the
// best rank that has an endpoint neither tried nor ejected, at random
// within it by weight. When every endpoint not tried is ejected, it
// picks among those (trying an ejected endpoint beats failing for sure).
// usable says whether an endpoint can serve this try (it has the port
// asked for). nil: none left.
func pick(eps []*endpoint, ranks []int, now time.Time, done tried, usable func(*endpoint) bool) *endpoint {
	bestRank, total, fallback := -1, 0, 0
	for i, e := range eps {
		if done.has(e) || !usable(e) {
			continue
		}
		if e.out.ejected(now) {
			fallback++
			continue
		}
		switch {
		case bestRank == -1 || ranks[i] < bestRank:
			bestRank, total = ranks[i], e.weight
		case ranks[i] == bestRank:
			total += e.weight
		}
	}
	if bestRank == -1 {
		if fallback == 0 {
			return nil
		}
		n := rand.IntN(fallback)
		for _, e := range eps {
			if !done.has(e) && usable(e) && e.out.ejected(now) {
				if n--; n < 0 {
					return e
				}
			}
		}
		return nil
	}
	n := 0
	if total > 1 {
		n = rand.IntN(total)
	}
	var last *endpoint
	for i, e := range eps {
		if ranks[i] != bestRank || done.has(e) || !usable(e) || e.out.ejected(now) {
			continue
		}
		if n -= e.weight; n < 0 {
			return e
		}
		last = e
	}
	return last
}

// failed records a failed try on e; it reports whether e was ejected now.
// ejectedNow counts the route's endpoints ejected at now, so that no
// more than the policy's share of them are ejected at once.
func (p policy) failed(e *endpoint, now time.Time, ejectedNow int, of int) bool {
	o := e.out
	o.mu.Lock()
	defer o.mu.Unlock()
	o.consecutive++
	if o.consecutive < p.consecutive || now.UnixNano() < o.until.Load() {
		return false
	}
	if of == 0 || (ejectedNow+1)*100 > p.maxEjectShare*of {
		return false // the cap: keep it in rotation
	}
	o.ejections++
	d := min(p.baseEject*time.Duration(o.ejections), p.maxEject)
	o.until.Store(now.Add(d).UnixNano())
	o.consecutive = 0
	return true
}

// succeeded records a good answer from e after rtt (0: not a round trip
// to count, such as a tcp connection's): its errors are forgiven, an
// endpoint that has stayed healthy since its ejection ended starts its
// next ejection from the base again, and rtt goes into its latency.
func (p policy) succeeded(e *endpoint, now time.Time, rtt time.Duration) {
	o := e.out
	if rtt > 0 {
		o.observe(rtt)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.consecutive = 0
	if o.ejections > 0 && now.UnixNano() > o.until.Load()+int64(p.maxEject) {
		o.ejections = 0
	}
}

// ejectedCount is how many of eps are ejected at now.
func ejectedCount(eps []*endpoint, now time.Time) int {
	n := 0
	for _, e := range eps {
		if e.out.ejected(now) {
			n++
		}
	}
	return n
}

// budget counts a service's requests and retries over a sliding pair of
// 10-second windows; a retry is allowed while retries stay within the
// budget's share of requests (and always for the first few, so a quiet
// service can still retry).
type budget struct {
	mu       sync.Mutex
	start    time.Time
	requests [2]int
	retries  [2]int
}

const budgetWindow = 10 * time.Second

func (b *budget) roll(now time.Time) {
	if now.Sub(b.start) >= budgetWindow {
		if now.Sub(b.start) >= 2*budgetWindow {
			b.requests, b.retries = [2]int{}, [2]int{}
		} else {
			b.requests[1], b.retries[1] = b.requests[0], b.retries[0]
			b.requests[0], b.retries[0] = 0, 0
		}
		b.start = now
	}
}

func (b *budget) request(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(now)
	b.requests[0]++
}

// allow takes a retry from the budget if it has one.
func (b *budget) allow(now time.Time, percent int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(now)
	reqs, rets := b.requests[0]+b.requests[1], b.retries[0]+b.retries[1]
	if rets >= 10 && rets*100 >= reqs*percent {
		return false
	}
	b.retries[0]++
	return true
}
