package entry

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
