package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atollhq/atoll/api"
)

// Active health checks: services with spec.healthCheck have each of their
// endpoints probed every interval (an HTTP GET of the path, 2xx or 3xx
// healthy, or a TCP connect); an endpoint that fails its check is skipped
// like an ejected one until it passes again. A check that passes measures
// the endpoint's round trip (the connect, or the request on an open
// connection to its first byte), which nearest-mode services rank regions
// by; a nearest-mode service without a health check has its other
// regions' endpoints measured by a TCP connect every DefaultHealthInterval,
// at most latencyProbesPerTick a region each tick (only their latency: a
// failed connect leaves outlier detection to the requests).

// checkTick is how often the checker looks for endpoints due a check.
const checkTick = 250 * time.Millisecond

// latencyProbesPerTick bounds the latency-only probes (nearest mode
// without a health check) a service sends one region each tick: a
// region of many endpoints has them measured in turn, a few a second,
// not all at once.
const latencyProbesPerTick = 2

// checked ends a check begun by due: health says whether it judged the
// endpoint's health (a health check) or only measured it.
func (o *outlier) checkedAt(at time.Time, health, bad bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.checking, o.checked = false, at
	if health {
		o.unhealthy.Store(bad)
	}
}

func (o *outlier) due(now time.Time, every time.Duration) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.checking || now.Sub(o.checked) < every {
		return false
	}
	o.checking = true
	return true
}

// checkLoop probes endpoints due a check until the gateway stops.
func (g *Gateway) checkLoop() {
	defer g.wg.Done()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	sem := make(chan struct{}, 32)
	tick := time.NewTicker(checkTick)
	defer tick.Stop()
	var probes sync.WaitGroup
	defer probes.Wait()
	for {
		select {
		case <-g.done:
			return
		case <-tick.C:
		}
		now := g.now()
		for _, rt := range *g.routes.Load() {
			nearest := rt.spec.Locality.Nearest()
			if nearest {
				rt.rerank() // from what the last checks and requests measured
			}
			h := rt.spec.Health
			if h == nil && !nearest {
				continue
			}
			every, timeout, path := api.DefaultHealthInterval, api.DefaultHealthTimeout, ""
			if h != nil {
				every, timeout, path = h.Interval.Get(every), h.Timeout.Get(timeout), h.Path
			}
			var measuring map[string]int // latency-only probes begun this tick, by region
			for _, e := range rt.eps {
				if h == nil {
					if e.Region == rt.region {
						continue // the local region ranks first whatever its latency
					}
					if measuring[e.Region] >= latencyProbesPerTick {
						continue // its turn comes at a later tick
					}
				}
				if !e.out.due(now, every) {
					continue
				}
				if h == nil {
					if measuring == nil {
						measuring = map[string]int{}
					}
					measuring[e.Region]++
				}
				target := e.httpAt
				if target == "" {
					for _, p := range e.Ports {
						target = net.JoinHostPort(e.Host, strconv.Itoa(p))
						break
					}
				}
				sem <- struct{}{}
				probes.Add(1)
				go func() {
					defer func() { <-sem; probes.Done() }()
					rtt, ok := probe(client, target, path, e.httpAt != "", timeout)
					if ok && rtt > 0 {
						e.out.observe(rtt)
					}
					e.out.checkedAt(g.now(), h != nil, !ok)
				}()
			}
		}
	}
}

// probe checks one endpoint: GET path over HTTP when the service has an
// http port and a path, else a TCP connect. It returns the round trip it
// measured (0: none): the connect's, or from the request on its
// connection to the answer's first byte.
func probe(client *http.Client, target, path string, httpPort bool, timeout time.Duration) (time.Duration, bool) {
	if target == "" {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if path == "" || !httpPort {
		var d net.Dialer
		start := time.Now()
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return 0, false
		}
		rtt := time.Since(start)
		c.Close()
		return rtt, true
	}
	var sent, first atomic.Int64 // the trace's hooks run on the transport's goroutines
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest:         func(httptrace.WroteRequestInfo) { sent.Store(time.Now().UnixNano()) },
		GotFirstResponseByte: func() { first.Store(time.Now().UnixNano()) },
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+path, nil)
	req.Header.Set("User-Agent", "atoll-gateway-health")
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	rtt := time.Duration(first.Load() - sent.Load())
	if sent.Load() == 0 || rtt <= 0 {
		rtt = 0 // an answer before the request was written out: no measure
	}
	return rtt, resp.StatusCode >= 200 && resp.StatusCode < 400
}
