package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/internal/ports"
	"github.com/atollhq/atoll/protocol"
)

// backend is a real HTTP server standing for a replica: it answers its
// name and counts what it served.
type backend struct {
	name   string
	srv    *httptest.Server
	served atomic.Int64
	status atomic.Int64 // answer with this status when set
	sick   atomic.Bool  // fail /healthz (and only it)
	delay  atomic.Int64 // answer everything (/healthz too) this many ns late
}

func newBackend(t testing.TB, name string) *backend {
	b := &backend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := b.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d)) // a far region
		}
		if r.URL.Path == "/healthz" {
			if b.sick.Load() {
				w.WriteHeader(500)
			}
			return
		}
		b.served.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if s := b.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Host", r.Host)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) endpoint(cluster, region string) protocol.Endpoint {
	host, port, _ := net.SplitHostPort(b.srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return protocol.Endpoint{Cluster: cluster, Region: region, Replica: b.name, Host: host, Ports: map[string]int{"http": p}}
}

// deadEndpoint is an address nothing listens on (a port just closed).
func deadEndpoint(t testing.TB, cluster, region, name string) protocol.Endpoint {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return protocol.Endpoint{Cluster: cluster, Region: region, Replica: name, Host: "127.0.0.1", Ports: map[string]int{"http": p}}
}

// echoServer is a tcp server that sends back what it reads, until the
// test ends.
func echoServer(t testing.TB) net.Listener {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return echo
}

// freePort is a port free a moment ago, for a tcp service port the
// gateway binds later (below the ephemeral range: package ports).
func freePort(t testing.TB) int {
	addr, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

func startGateway(t testing.TB, region string) *Gateway {
	g := New(Config{Listen: "127.0.0.1:0", Cluster: region + "-1", Region: region, MaxBodyBytes: 1 << 20, LocalPeers: true})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return g
}

func table(epoch int64, svcs ...protocol.ServiceEndpoints) protocol.EndpointTable {
	return protocol.EndpointTable{Version: protocol.Version, Epoch: epoch, Digest: protocol.EndpointDigest(svcs), Services: svcs}
}

func web(failover []string, eps ...protocol.Endpoint) protocol.ServiceEndpoints {
	spec := api.ServiceSpec{Workload: "web", Ports: []api.ServicePort{{Name: "http"}}, Hostnames: []string{"shop.example.com"}}
	if failover != nil {
		spec.Locality = &api.LocalityPolicy{Failover: failover}
	}
	return protocol.ServiceEndpoints{Name: "web", Spec: spec, Endpoints: eps}
}

func get(t testing.TB, url, host string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestRoutingByLocality: the local region first, then the failover
// order; by Host (any case, with a port) and by path prefix (stripped).
func TestRoutingByLocality(t *testing.T) {
	t.Parallel()
	eu, us, ap := newBackend(t, "eu"), newBackend(t, "us"), newBackend(t, "ap")
	g := startGateway(t, "us")
	g.Update(table(1, web([]string{"ap", "eu"}, eu.endpoint("eu-1", "eu"), us.endpoint("us-1", "us"), ap.endpoint("ap-1", "ap"))))
	base := "http://" + g.Addr()
	for i := 0; i < 20; i++ {
		if code, body, _ := get(t, base+"/x", "WEB.svc.atoll:8080"); code != 200 || body != "us" {
			t.Fatalf("want the local region's endpoint; got %d %q", code, body)
		}
	}
	code, body, h := get(t, base+"/svc/web/a/b?q=1", "")
	if code != 200 || body != "us" || h.Get("X-Path") != "/a/b" {
		t.Fatalf("by path: want us with /a/b; got %d %q %q", code, body, h.Get("X-Path"))
	}
	if code, body, _ := get(t, base+"/", "shop.example.com"); code != 200 || body != "us" {
		t.Fatalf("by host name: got %d %q", code, body)
	}
	// The local region gone: the first failover region.
	g.Update(table(2, web([]string{"ap", "eu"}, eu.endpoint("eu-1", "eu"), ap.endpoint("ap-1", "ap"))))
	if code, body, _ := get(t, base+"/", "web.svc.atoll"); code != 200 || body != "ap" {
		t.Fatalf("want the first failover region; got %d %q", code, body)
	}
	// An older epoch is ignored.
	if g.Update(table(1, web(nil))) {
		t.Fatal("an older table was taken")
	}
}

// TestOtherClustersOnThisMachineRefused: without LocalPeers, another
// cluster's endpoint on this machine's loopback or at a link-local
// address (a cloud's metadata service) is left out of the routes, so a
// member cannot aim gateways at their own machine's services; the
// gateway's own cluster may be on loopback, and routable addresses of
// other clusters stay.
func TestOtherClustersOnThisMachineRefused(t *testing.T) {
	t.Parallel()
	g := New(Config{Listen: "127.0.0.1:0", Cluster: "us-1", Region: "us"})
	ep := func(cluster, host string) protocol.Endpoint {
		return protocol.Endpoint{Cluster: cluster, Region: "eu", Replica: cluster + "-" + strings.NewReplacer(".", "-", ":", "-").Replace(host), Host: host, Ports: map[string]int{"http": 8080}}
	}
	g.Update(table(1, web(nil, ep("us-1", "127.0.0.1"), ep("eu-1", "127.0.0.1"), ep("eu-1", "localhost"), ep("eu-1", "169.254.169.254"),
		ep("eu-1", "::1"), ep("eu-1", "0.0.0.0"), ep("eu-1", "fe80::1"), ep("eu-1", "10.0.0.5"), ep("eu-1", "node-3.eu.internal"))))
	if n := g.Endpoints("web"); n != 3 {
		t.Errorf("want 3 endpoints routed (us-1's on loopback, eu-1's at 10.0.0.5 and node-3.eu.internal); got %d", n)
	}
	local := New(Config{Listen: "127.0.0.1:0", Cluster: "us-1", Region: "us", LocalPeers: true})
	local.Update(table(1, web(nil, ep("us-1", "127.0.0.1"), ep("eu-1", "127.0.0.1"))))
	if n := local.Endpoints("web"); n != 2 {
		t.Errorf("with LocalPeers: want both endpoints; got %d", n)
	}
}

// TestFailoverOnDeadEndpoints: endpoints that refuse connections cost no
// request: the gateway tries the next one, ejects them, and the service
// answers every time.
func TestFailoverOnDeadEndpoints(t *testing.T) {
	t.Parallel()
	alive := newBackend(t, "alive")
	g := startGateway(t, "us")
	g.Update(table(1, web([]string{"eu"}, deadEndpoint(t, "us-1", "us", "d1"), deadEndpoint(t, "us-1", "us", "d2"), alive.endpoint("eu-1", "eu"))))
	base := "http://" + g.Addr()
	for i := 0; i < 50; i++ {
		req, _ := http.NewRequest("POST", base+"/svc/web/", strings.NewReader(""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "alive" {
			t.Fatalf("request %d: want the live endpoint's answer; got %d %q", i, resp.StatusCode, b)
		}
	}
	rt := (*g.routes.Load())["web"]
	if n := ejectedCount(rt.eps, time.Now()); n != 1 {
		t.Errorf("want 1 endpoint ejected (the cap is half of 3); got %d", n)
	}
}

// TestRetriesAndBudget: a 503 from one endpoint is retried on another for
// a GET, not for a POST.
func TestRetriesAndBudget(t *testing.T) {
	t.Parallel()
	bad, good := newBackend(t, "bad"), newBackend(t, "good")
	bad.status.Store(503)
	g := startGateway(t, "us")
	svc := web(nil, bad.endpoint("us-1", "us"), good.endpoint("us-1", "us"))
	svc.Spec.Outlier = &api.OutlierPolicy{ConsecutiveErrors: 1000}
	svc.Spec.Retries = &api.RetryPolicy{Attempts: 2, BudgetPercent: 100}
	g.Update(table(1, svc))
	base := "http://" + g.Addr()
	for i := 0; i < 20; i++ {
		if code, body, _ := get(t, base+"/svc/web/", ""); code != 200 || body != "good" {
			t.Fatalf("GET %d: want retried onto good; got %d %q", i, code, body)
		}
	}
	sawPost503 := false
	for i := 0; i < 40 && !sawPost503; i++ {
		resp, err := http.Post(base+"/svc/web/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		sawPost503 = resp.StatusCode == 503
	}
	if !sawPost503 {
		t.Error("want a POST answered by the failing endpoint's 503 (not retried) at least once in 40")
	}

	// Both endpoints failing: retries stay within the budget (20%, after
	// the first 10), so the failing service is not hit three times over.
	good.status.Store(503)
	svc.Spec.Retries = nil
	g.Update(table(2, svc))
	before := bad.served.Load() + good.served.Load()
	const n = 200
	for i := 0; i < n; i++ {
		if code, _, _ := get(t, base+"/svc/web/", ""); code != 503 {
			t.Fatalf("want the endpoints' 503; got %d", code)
		}
	}
	tries := bad.served.Load() + good.served.Load() - before
	if tries < n || tries > n+n/5+10 {
		t.Errorf("want between %d and %d tries for %d requests (retry budget 20%%); got %d", n, n+n/5+10, n, tries)
	}
}

// TestHostileRequests: unknown services, hostile Hosts and paths, huge
// bodies and reserved paths get problems, never a route the client
// chose.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "b")
	g := startGateway(t, "us")
	g.Update(table(1, web(nil, b.endpoint("us-1", "us")), protocol.ServiceEndpoints{Name: "empty", Spec: api.ServiceSpec{Workload: "e", Ports: []api.ServicePort{{Name: "http"}}}}))
	base := "http://" + g.Addr()
	for _, c := range []struct {
		path, host string
		want       int
	}{
		{"/", "evil.example.com", 404},
		{"/", b.srv.Listener.Addr().String(), 404}, // an endpoint's own address is no service name
		{"/svc/../web/", "", 404},
		{"/svc/web%2f..%2fx/", "", 404},
		{"/svc/nope/", "", 404},
		{"/_atoll/table", "", 404},
		{"/svc/empty/", "", 503},
		{"/", "empty.svc.atoll", 503},
	} {
		code, body, h := get(t, base+c.path, c.host)
		if code != c.want || h.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s Host %q: want %d problem+json; got %d %s %q", c.path, c.host, c.want, code, h.Get("Content-Type"), body)
		}
		if c.want == 503 && !strings.Contains(body, `"service":"empty"`) {
			t.Errorf("503 must name the service; got %s", body)
		}
	}
	resp, err := http.Post(base+"/svc/web/", "application/octet-stream", bytes.NewReader(make([]byte, 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("a 2 MiB body through a 1 MiB gateway: want 413; got %d", resp.StatusCode)
	}
	// A body without a length, larger than allowed, is cut off too.
	pr, pw := io.Pipe()
	go func() { _, _ = pw.Write(make([]byte, 2<<20)); pw.Close() }()
	resp, err = http.Post(base+"/svc/web/", "application/octet-stream", pr)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("a chunked 2 MiB body: want refused; got 200")
		}
	}
	code, body, _ := get(t, base+"/_atoll/healthz", "")
	var hz struct {
		Epoch    int64
		Services int
	}
	if code != 200 || json.Unmarshal([]byte(body), &hz) != nil || hz.Epoch != 1 || hz.Services != 2 || strings.Contains(body, "127.0.0.1") {
		t.Errorf("healthz: want epoch 1, 2 services and no addresses; got %d %s", code, body)
	}
}

// TestStaleTableSaysItsAge: a table the hub has not confirmed for longer
// than StaleAfter is still served, with its age.
func TestStaleTableSaysItsAge(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "b")
	now := time.Now()
	var offset atomic.Int64
	g := New(Config{Listen: "127.0.0.1:0", Region: "us", LocalPeers: true, Now: func() time.Time { return now.Add(time.Duration(offset.Load())) }})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	g.Update(table(1, web(nil, b.endpoint("us-1", "us"))))
	offset.Store(int64(time.Minute))
	code, body, h := get(t, "http://"+g.Addr()+"/svc/web/", "")
	if code != 200 || body != "b" || h.Get("Atoll-Table-Age") != "60s" {
		t.Fatalf("want the stale table served with its age; got %d %q age %q", code, body, h.Get("Atoll-Table-Age"))
	}
	g.Confirm()
	if _, _, h := get(t, "http://"+g.Addr()+"/svc/web/", ""); h.Get("Atoll-Table-Age") != "" {
		t.Errorf("a confirmed table is not stale; got age %q", h.Get("Atoll-Table-Age"))
	}
}

// TestTCPProxy: a tcp service port proxies connections to an endpoint,
// skipping dead ones.
func TestTCPProxy(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	port := freePort(t)
	g := startGateway(t, "us")
	ep := protocol.Endpoint{Cluster: "us-1", Region: "us", Replica: "e", Host: "127.0.0.1", Ports: map[string]int{"db": echo.Addr().(*net.TCPAddr).Port}}
	dead := deadEndpoint(t, "us-1", "us", "d")
	dead.Ports = map[string]int{"db": dead.Ports["http"]}
	g.Update(table(1, protocol.ServiceEndpoints{Name: "db", Spec: api.ServiceSpec{Workload: "db", Ports: []api.ServicePort{{Name: "db", Protocol: "tcp", Port: int32(port)}}},
		Endpoints: []protocol.Endpoint{dead, ep}}))
	for i := 0; i < 5; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		if err != nil {
			t.Fatalf("dial the gateway's tcp port: %v", err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("want the echo back; got %q %v", buf, err)
		}
		c.Close()
	}
}

// TestActiveHealthCheck: an endpoint failing the service's health check
// gets no traffic until it passes again.
func TestActiveHealthCheck(t *testing.T) {
	t.Parallel()
	sick, well := newBackend(t, "sick"), newBackend(t, "well")
	sick.sick.Store(true)
	g := startGateway(t, "us")
	svc := web(nil, sick.endpoint("us-1", "us"), well.endpoint("us-1", "us"))
	svc.Spec.Health = &api.ServiceHealth{Path: "/healthz", Interval: "100ms"}
	g.Update(table(1, svc))
	rt := (*g.routes.Load())["web"]
	deadline := time.Now().Add(10 * time.Second)
	for ejectedCount(rt.eps, time.Now()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("want the sick endpoint out of rotation within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := sick.served.Load()
	for i := 0; i < 30; i++ {
		if code, body, _ := get(t, "http://"+g.Addr()+"/svc/web/", ""); code != 200 || body != "well" {
			t.Fatalf("want the healthy endpoint; got %d %q", code, body)
		}
	}
	if sick.served.Load() != before {
		t.Errorf("the endpoint failing its health check got traffic")
	}
	sick.sick.Store(false)
	for ejectedCount(rt.eps, time.Now()) != 0 {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("want the endpoint back once its check passes")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDNS: A and SRV answers in locality order, the endpoints' own names,
// NXDOMAIN for unknown services and REFUSED outside svc.atoll.
func TestDNS(t *testing.T) {
	t.Parallel()
	g := startGateway(t, "us")
	svc := web([]string{"eu"},
		protocol.Endpoint{Cluster: "eu-1", Region: "eu", Replica: "r1", Host: "10.0.0.1", Ports: map[string]int{"http": 8001}},
		protocol.Endpoint{Cluster: "us-1", Region: "us", Replica: "r2", Host: "10.0.0.2", Ports: map[string]int{"http": 8002}},
		protocol.Endpoint{Cluster: "ap-1", Region: "ap", Replica: "r3", Host: "10.0.0.3", Ports: map[string]int{"http": 8003}})
	g.Update(table(1, svc))
	addr, err := g.ServeDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ask := func(name string, qt uint16, proto string) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qt)
		c := &dns.Client{Net: proto, Timeout: 5 * time.Second}
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qt], proto, err)
		}
		return r
	}
	r := ask("web.svc.atoll.", dns.TypeA, "udp")
	var ips []string
	for _, rr := range r.Answer {
		ips = append(ips, rr.(*dns.A).A.String())
	}
	if r.Rcode != dns.RcodeSuccess || strings.Join(ips, ",") != "10.0.0.2,10.0.0.1,10.0.0.3" {
		t.Errorf("A: want the local region, then eu, then ap; got %v %v", dns.RcodeToString[r.Rcode], ips)
	}
	r = ask("_http._tcp.web.svc.atoll.", dns.TypeSRV, "tcp")
	if len(r.Answer) != 3 || r.Answer[0].(*dns.SRV).Port != 8002 || r.Answer[0].(*dns.SRV).Target != "r2.us-1.ep.svc.atoll." || len(r.Extra) != 3 {
		t.Errorf("SRV: want 3 targets, us-1's first, with their addresses; got %v extra %v", r.Answer, r.Extra)
	}
	if r := ask("nope.svc.atoll.", dns.TypeA, "udp"); r.Rcode != dns.RcodeNameError {
		t.Errorf("unknown service: want NXDOMAIN; got %s", dns.RcodeToString[r.Rcode])
	}
	if r := ask("example.com.", dns.TypeA, "udp"); r.Rcode != dns.RcodeRefused {
		t.Errorf("outside svc.atoll: want REFUSED; got %s", dns.RcodeToString[r.Rcode])
	}
}

// TestUpgradeThroughGateway: a protocol upgrade (as WebSockets do) passes
// through: after the 101, bytes flow both ways.
func TestUpgradeThroughGateway(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			w.WriteHeader(400)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = rw.Flush()
		_, _ = io.Copy(conn, rw)
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	g := startGateway(t, "us")
	g.Update(table(1, web(nil, protocol.Endpoint{Cluster: "us-1", Region: "us", Replica: "u", Host: host, Ports: map[string]int{"http": p}})))
	c, err := net.DialTimeout("tcp", g.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /svc/web/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 101") {
		t.Fatalf("want 101 through the gateway; got %q %v", buf[:n], err)
	}
	_, _ = io.WriteString(c, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("want the echo over the upgraded connection; got %q %v", got, err)
	}
}

// TestStreamsFlowThrough: an answer of unknown length reaches the client
// as the replica writes it, not when it ends.
func TestStreamsFlowThrough(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
		_, _ = io.WriteString(w, "second\n")
	}))
	t.Cleanup(be.Close)
	t.Cleanup(func() { close(release) })
	host, port, _ := net.SplitHostPort(be.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	g := startGateway(t, "us")
	g.Update(table(1, web(nil, protocol.Endpoint{Cluster: "us-1", Region: "us", Replica: "s", Host: host, Ports: map[string]int{"http": p}})))
	resp, err := http.Get("http://" + g.Addr() + "/svc/web/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "first\n" {
			t.Fatalf("want the stream's first line; got %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("want the stream's first line while the replica still writes; nothing came within 20s")
	}
}
