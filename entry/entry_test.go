package entry

import (
	"io"
	"net"
	"net/http"
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
