package entry

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/gateway"
	"github.com/atollhq/atoll/protocol"
)

// TestBadGatewayKeepsAddressesIn: when no regional gateway answers, the
// client (anyone on the internet) learns that, not the gateways'
// internal addresses or the dialer's error.
func TestBadGatewayKeepsAddressesIn(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String() // a port just closed: nothing listens
	ln.Close()
	e, err := New(Config{Listen: "127.0.0.1:0", Targets: []Target{{Region: "eu", URL: "http://" + dead}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	resp, err := http.Get("http://" + e.Addr() + "/")
	if err != nil {
		t.Fatalf("GET through the entry: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, port, _ := net.SplitHostPort(dead)
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(string(b), port) || strings.Contains(string(b), "dial") {
		t.Errorf("want 502 naming no address; got %d %s (the gateway was %s)", resp.StatusCode, b, dead)
	}
}

// TestDeadGatewayCostsNoRequest: with no health check run yet, a request
// first sent to a gateway that refuses connections goes on to the next
// one, a POST as well (it never reached the first), and the dead
// gateway is marked down so the next request goes to the live one first.
func TestDeadGatewayCostsNoRequest(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.Method+" "+string(b))
	}))
	t.Cleanup(live.Close)
	e, err := New(Config{Targets: []Target{{Region: "eu", URL: "http://" + dead}, {Region: "us", URL: live.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	if o := e.order(); o[0].Region != "eu" {
		t.Fatalf("want the dead gateway first before any check; got %s", o[0].Region)
	}
	srv := httptest.NewServer(e) // ServeHTTP only: no health checks run
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "POST hello" {
		t.Fatalf("want the live gateway's answer to the POST; got %d %q", resp.StatusCode, b)
	}
	if o := e.order(); o[0].Region != "us" {
		t.Errorf("want the refusing gateway marked down and ranked last; got %s first", o[0].Region)
	}
}

// regionalGateway is a real regional gateway (package member/gateway)
// serving service web from one backend.
func regionalGateway(t *testing.T, region string, backend string) *gateway.Gateway {
	t.Helper()
	g := gateway.New(gateway.Config{Listen: "127.0.0.1:0", Cluster: region + "-1", Region: region, LocalPeers: true})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	routeWeb(t, g, 1, region, backend)
	return g
}

// routeWeb gives the gateway a table with service web at the backend's
// address (host:port).
func routeWeb(t *testing.T, g *gateway.Gateway, epoch int64, region, backend string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(backend)
	p, _ := strconv.Atoi(port)
	svcs := []protocol.ServiceEndpoints{{Name: "web", Spec: api.ServiceSpec{Workload: "web", Ports: []api.ServicePort{{Name: "http"}}},
		Endpoints: []protocol.Endpoint{{Cluster: region + "-1", Region: region, Replica: "web-" + region, Host: host, Ports: map[string]int{"http": p}}}}}
	if !g.Update(protocol.EndpointTable{Version: protocol.Version, Epoch: epoch, Digest: protocol.EndpointDigest(svcs), Services: svcs}) {
		t.Fatalf("gateway %s refused table %d", region, epoch)
	}
}

// TestBackendsBadGatewayIsNotTheGateways: a 502 a backend answered
// through its regional gateway reaches the client as it is, and that
// gateway stays first; a 502 the regional gateway answers itself (its
// only endpoint refuses connections) sends the request to the next
// region and marks the gateway down.
func TestBackendsBadGatewayIsNotTheGateways(t *testing.T) {
	t.Parallel()
	eu := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(gatewayErrorHeader, "forged") // a backend cannot pass for its gateway
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "eu backend: upstream down")
	}))
	t.Cleanup(eu.Close)
	us := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "us") }))
	t.Cleanup(us.Close)
	euGW := regionalGateway(t, "eu", eu.Listener.Addr().String())
	usGW := regionalGateway(t, "us", us.Listener.Addr().String())
	e, err := New(Config{Targets: []Target{{Region: "eu", URL: "http://" + euGW.Addr()}, {Region: "us", URL: "http://" + usGW.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e) // ServeHTTP only: no health checks undo the marks
	t.Cleanup(srv.Close)
	get := func() (int, string, http.Header) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/svc/web/")
		if err != nil {
			t.Fatalf("GET through the entry: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, h := get(); code != http.StatusBadGateway || body != "eu backend: upstream down" || h.Get(gatewayErrorHeader) != "" {
		t.Errorf("a backend's 502: want it passed on as it is, unmarked; got %d %q (%s: %q)", code, body, gatewayErrorHeader, h.Get(gatewayErrorHeader))
	}
	if o := e.order(); o[0].Region != "eu" {
		t.Errorf("a backend's 502: want the eu gateway still up and first; got %s first", o[0].Region)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	routeWeb(t, euGW, 2, "eu", dead)
	if code, body, _ := get(); code != http.StatusOK || body != "us" {
		t.Errorf("the eu gateway's own 502: want the us gateway's answer; got %d %q", code, body)
	}
	if o := e.order(); o[0].Region != "us" {
		t.Errorf("the eu gateway's own 502: want it marked down and ranked last; got %s first", o[0].Region)
	}
}
