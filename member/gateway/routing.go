package gateway

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// endpoint is one replica serving a service, with its outlier state
// (shared by every table that lists the same replica at the same
// address).
type endpoint struct {
	protocol.Endpoint
	key     string // cluster/replica@host
	httpAt  string // host:port of the service's http port ("" if none)
	ranking int    // 0: local region, then failover order, then the rest
	weight  int
	out     *outlier
}

// outlier is an endpoint's passive health.
type outlier struct {
	mu          sync.Mutex
	consecutive int
	ejections   int
	until       time.Time
	// Active health (health.go): the last check failed.
	unhealthy bool
	checked   time.Time
	checking  bool
}

// ejected says whether the endpoint is out of rotation: ejected by
// outlier detection or failing its health check.
func (o *outlier) ejected(now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return now.Before(o.until) || o.unhealthy
}

// route is one service as the gateway routes it.
type route struct {
	name     string
	spec     api.ServiceSpec
	eps      []*endpoint
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
		r := &route{name: s.Name, spec: s.Spec, policy: policyOf(s.Spec), budget: &budget{}, tcpPorts: map[string]int{}}
		rank := map[string]int{region: 0}
		weights := map[string]int32{}
		if l := s.Spec.Locality; l != nil {
			for i, reg := range l.Failover {
				if _, ok := rank[reg]; !ok {
					rank[reg] = i + 1
				}
			}
			weights = l.Weights
		}
		others := len(rank) + 1
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
			rk, ok := rank[e.Region]
			if !ok {
				rk = others
			}
			ep.ranking = rk
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

// pick chooses the endpoint for a try: the best-ranked rank that has an
// endpoint neither tried nor ejected, at random within it by weight. When
// every endpoint not tried is ejected, it picks among those (trying an
// ejected endpoint beats failing for sure). usable says whether an
// endpoint can serve this try (it has the port asked for). nil: none left.
func pick(eps []*endpoint, now time.Time, tried map[*endpoint]bool, usable func(*endpoint) bool) *endpoint {
	best, bestRank, total := []*endpoint(nil), -1, 0
	var fallback []*endpoint
	for _, e := range eps {
		if tried[e] || !usable(e) {
			continue
		}
		if e.out.ejected(now) {
			fallback = append(fallback, e)
			continue
		}
		switch {
		case bestRank == -1 || e.ranking < bestRank:
			best, bestRank, total = append(best[:0], e), e.ranking, e.weight
		case e.ranking == bestRank:
			best, total = append(best, e), total+e.weight
		}
	}
	if len(best) == 0 {
		if len(fallback) == 0 {
			return nil
		}
		return fallback[rand.IntN(len(fallback))]
	}
	if len(best) == 1 {
		return best[0]
	}
	n := rand.IntN(total)
	for _, e := range best {
		if n -= e.weight; n < 0 {
			return e
		}
	}
	return best[len(best)-1]
}

// failed records a failed try on e; it reports whether e was ejected now.
// ejectedNow counts the route's endpoints ejected at now, so that no
// more than the policy's share of them are ejected at once.
func (p policy) failed(e *endpoint, now time.Time, ejectedNow int, of int) bool {
	o := e.out
	o.mu.Lock()
	defer o.mu.Unlock()
	o.consecutive++
	if o.consecutive < p.consecutive || now.Before(o.until) {
		return false
	}
	if of == 0 || (ejectedNow+1)*100 > p.maxEjectShare*of {
		return false // the cap: keep it in rotation
	}
	o.ejections++
	d := min(p.baseEject*time.Duration(o.ejections), p.maxEject)
	o.until, o.consecutive = now.Add(d), 0
	return true
}

// succeeded records a good answer from e: its errors are forgiven, and
// an endpoint that has stayed healthy since its ejection ended starts
// its next ejection from the base again.
func (p policy) succeeded(e *endpoint, now time.Time) {
	o := e.out
	o.mu.Lock()
	defer o.mu.Unlock()
	o.consecutive = 0
	if o.ejections > 0 && now.After(o.until.Add(p.maxEject)) {
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
