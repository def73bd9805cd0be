package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
)

// Active health checks: services with spec.healthCheck have each of their
// endpoints probed every interval (an HTTP GET of the path, 2xx or 3xx
// healthy, or a TCP connect); an endpoint that fails its check is skipped
// like an ejected one until it passes again.

// checkTick is how often the checker looks for endpoints due a check.
const checkTick = 250 * time.Millisecond

func (o *outlier) setUnhealthy(bad bool, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unhealthy, o.checked = bad, at
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
			h := rt.spec.Health
			if h == nil {
				continue
			}
			every, timeout := h.Interval.Get(api.DefaultHealthInterval), h.Timeout.Get(api.DefaultHealthTimeout)
			for _, e := range rt.eps {
				if !e.out.due(now, every) {
					continue
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
					ok := probe(client, target, h.Path, e.httpAt != "", timeout)
					e.out.mu.Lock()
					e.out.checking = false
					e.out.mu.Unlock()
					e.out.setUnhealthy(!ok, g.now())
				}()
			}
		}
	}
}

// probe checks one endpoint: GET path over HTTP when the service has an
// http port and a path, else a TCP connect.
func probe(client *http.Client, target, path string, httpPort bool, timeout time.Duration) bool {
	if target == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if path == "" || !httpPort {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+path, nil)
	req.Header.Set("User-Agent", "atoll-gateway-health")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
