package gateway

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/atollhq/atoll/protocol"
)

// dnsGateway is a gateway serving DNS for one service "web" of n
// endpoints, each on its own host; replica names come from name.
func dnsGateway(t *testing.T, n int, name func(i int) string) string {
	t.Helper()
	g := startGateway(t, "us")
	eps := make([]protocol.Endpoint, 0, n)
	for i := range n {
		eps = append(eps, protocol.Endpoint{Cluster: "us-1", Region: "us", Replica: name(i),
			Host: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), Ports: map[string]int{"http": 8000 + i}})
	}
	g.Update(table(1, web(nil, eps...)))
	addr, err := g.ServeDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// rawUDP sends q and answers the size of the datagram that came back.
func rawUDP(t *testing.T, addr string, q *dns.Msg) (int, *dns.Msg) {
	t.Helper()
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer over UDP: %v", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatalf("answer over UDP does not unpack: %v", err)
	}
	return n, m
}

// TestDNSAnswersOverUDPAreBounded: a UDP answer fits the size the client
// announced (512 bytes without EDNS, at most 1232 with it) and says it
// was truncated, so a spoofed 40-byte question cannot draw tens of
// kilobytes toward its victim; over TCP the answer is whole.
func TestDNSAnswersOverUDPAreBounded(t *testing.T) {
	t.Parallel()
	addr := dnsGateway(t, 600, func(i int) string { return fmt.Sprintf("web-%012x", i) })
	for _, c := range []struct {
		name  string
		qt    uint16
		edns  uint16
		limit int
	}{
		{"web.svc.atoll.", dns.TypeA, 0, dns.MinMsgSize},
		{"_http._tcp.web.svc.atoll.", dns.TypeSRV, 0, dns.MinMsgSize},
		{"web.svc.atoll.", dns.TypeA, 65535, 1232},
		{"_http._tcp.web.svc.atoll.", dns.TypeSRV, 4096, 1232},
	} {
		q := new(dns.Msg)
		q.SetQuestion(c.name, c.qt)
		if c.edns > 0 {
			q.SetEdns0(c.edns, false)
		}
		n, m := rawUDP(t, addr, q)
		if n > c.limit || !m.Truncated {
			t.Errorf("%s %s (EDNS %d) over UDP: %d bytes, truncated %v; want at most %d bytes, truncated",
				c.name, dns.TypeToString[c.qt], c.edns, n, m.Truncated, c.limit)
		}
	}
	q := new(dns.Msg)
	q.SetQuestion("web.svc.atoll.", dns.TypeA)
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 10 * time.Second}).Exchange(q, addr)
	if err != nil || len(r.Answer) != 600 || r.Truncated {
		t.Fatalf("A over TCP: want 600 addresses, whole; got %v, %v", err, r)
	}
}

// TestDNSHostileReplicaNames: a replica whose name is no DNS label (as a
// member reports it) is left out of SRV answers instead of making the
// whole answer unpackable, which left every client of the service with
// none.
func TestDNSHostileReplicaNames(t *testing.T) {
	t.Parallel()
	addr := dnsGateway(t, 3, func(i int) string {
		return []string{"web-good", strings.Repeat("x", 70), "web-ok"}[i]
	})
	q := new(dns.Msg)
	q.SetQuestion("_http._tcp.web.svc.atoll.", dns.TypeSRV)
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 10 * time.Second}).Exchange(q, addr)
	if err != nil {
		t.Fatalf("SRV over TCP: %v; want the two well-named targets", err)
	}
	var targets []string
	for _, rr := range r.Answer {
		targets = append(targets, rr.(*dns.SRV).Target)
	}
	if strings.Join(targets, ",") != "web-good.us-1.ep.svc.atoll.,web-ok.us-1.ep.svc.atoll." {
		t.Errorf("SRV targets: want web-good and web-ok; got %v", targets)
	}
}
