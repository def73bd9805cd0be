package gateway

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// tcpListener proxies one tcp service port: every connection goes to an
// endpoint picked as for HTTP (a refused dial tries the next).
type tcpListener struct {
	ln       net.Listener
	port     int
	mu       sync.Mutex
	service  string
	portName string
	once     sync.Once
}

func (l *tcpListener) close() { l.once.Do(func() { _ = l.ln.Close() }) }

// syncTCP opens the tcp ports the routes need and closes the others
// (under g.mu).
func (g *Gateway) syncTCP(routes map[string]*route) {
	want := map[int][2]string{}
	for _, r := range routes {
		for name, port := range r.tcpPorts {
			want[port] = [2]string{r.name, name}
		}
	}
	for port, l := range g.tcp {
		if _, ok := want[port]; !ok {
			l.close()
			delete(g.tcp, port)
		}
	}
	select {
	case <-g.done:
		return
	default:
	}
	host := g.cfg.TCPHost
	if host == "" {
		host, _, _ = net.SplitHostPort(g.cfg.Listen)
	}
	for port, sp := range want {
		if l, ok := g.tcp[port]; ok {
			l.mu.Lock()
			l.service, l.portName = sp[0], sp[1]
			l.mu.Unlock()
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			g.log.Warn("gateway: cannot listen for a tcp service port", "service", sp[0], "port", port, "err", err)
			continue
		}
		l := &tcpListener{ln: ln, port: port, service: sp[0], portName: sp[1]}
		g.tcp[port] = l
		g.wg.Add(1)
		go g.acceptTCP(l)
	}
}

func (g *Gateway) acceptTCP(l *tcpListener) {
	defer g.wg.Done()
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		service, portName := l.service, l.portName
		l.mu.Unlock()
		select {
		case g.tcpConns <- struct{}{}:
		default:
			// At the bound: a client opening connections without end
			// would otherwise hold as many to the endpoints.
			_ = conn.Close()
			g.requests.Add(context.Background(), 1, metric.WithAttributes(attribute.String("service", service), attribute.String("region", "none"), attribute.String("outcome", "refused")))
			continue
		}
		go func() {
			defer func() { <-g.tcpConns }()
			g.proxyTCP(conn, service, portName)
		}()
	}
}

// proxyTCP connects a client to an endpoint of service and copies both
// ways until either side closes.
func (g *Gateway) proxyTCP(client net.Conn, service, portName string) {
	defer client.Close()
	start := g.now()
	rt := (*g.routes.Load())[service]
	region, outcome := "none", "no_endpoints"
	defer func() {
		attrs := metric.WithAttributes(attribute.String("service", service), attribute.String("region", region), attribute.String("outcome", outcome))
		g.requests.Add(context.Background(), 1, attrs)
		g.duration.Record(context.Background(), g.now().Sub(start).Seconds(), metric.WithAttributes(attribute.String("service", service), attribute.String("region", region)))
	}()
	if rt == nil {
		return
	}
	var tries tried
	usable := func(e *endpoint) bool { _, ok := e.Ports[portName]; return ok }
	ranks := *rt.ranks.Load()
	for {
		e := pick(rt.eps, ranks, g.now(), tries, usable)
		if e == nil {
			outcome = "error"
			return
		}
		tries = append(tries, e)
		addr := net.JoinHostPort(e.Host, strconv.Itoa(e.Ports[portName]))
		dialed := g.now()
		up, err := net.DialTimeout("tcp", addr, rt.policy.connect)
		if err != nil {
			if rt.policy.failed(e, g.now(), ejectedCount(rt.eps, g.now()), len(rt.eps)) {
				g.ejects.Add(context.Background(), 1, metric.WithAttributes(attribute.String("service", service), attribute.String("region", e.Region)))
			}
			continue
		}
		rt.policy.succeeded(e, g.now(), g.now().Sub(dialed))
		region, outcome = e.Region, "connected"
		done := make(chan struct{}, 2)
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			if c, ok := dst.(*net.TCPConn); ok {
				_ = c.CloseWrite()
			}
			done <- struct{}{}
		}
		go pipe(up, client)
		go pipe(client, up)
		select {
		case <-done:
		case <-g.done:
		}
		// One side finished: give the other a moment to drain, then close.
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		case <-g.done:
		}
		up.Close()
		return
	}
}
