package gateway

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
)

// DNS answers, for clients that do not go through the gateway, from the
// same table and in the same order as the proxy picks: the gateway's own
// region first, then the service's failover regions, then the rest,
// endpoints out of rotation last.
//
//	<service>.svc.atoll         A      every endpoint's address
//	_<port>._tcp.<service>.svc.atoll  SRV  one target per endpoint:
//	                                       <replica>.<cluster>.ep.svc.atoll, its port
//	<replica>.<cluster>.ep.svc.atoll  A    that endpoint's address
//
// Names outside svc.atoll are refused (it is no recursive resolver), and
// so is everything but A, SRV (and ANY, answered as A).

// dnsTTL is short: answers follow failover.
const dnsTTL = 5

// ServeDNS starts a DNS server on addr (UDP and TCP) until Stop; it
// returns the address it listens on.
func (g *Gateway) ServeDNS(addr string) (string, error) {
	pc, ln, err := listenDNS(addr)
	if err != nil {
		return "", err
	}
	h := dns.HandlerFunc(g.answerDNS)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	for _, s := range []*dns.Server{udp, tcp} {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			_ = s.ActivateAndServe()
		}()
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		<-g.done
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	}()
	return pc.LocalAddr().String(), nil
}

// listenDNS binds UDP and TCP on the same port. With port 0 the UDP port
// is picked first and its TCP twin may be taken already (on a busy
// machine, by any outgoing connection): another pair is tried.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	tries := 1
	if port == "0" {
		tries = 20
	}
	var err error
	for range tries {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return nil, nil, fmt.Errorf("dns listen %s: %w", addr, err)
		}
		var ln net.Listener
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			return pc, ln, nil
		}
		pc.Close()
	}
	return nil, nil, fmt.Errorf("dns listen %s/tcp: %w", addr, err)
}

func (g *Gateway) answerDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	outcome := "answered"
	defer func() {
		g.dnsQueries.Add(context.Background(), 1, metric.WithAttributes(attribute.String("outcome", outcome)))
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncate(udpAnswerSize(req))
		}
		_ = w.WriteMsg(m)
	}()
	if len(req.Question) != 1 {
		m.Rcode, outcome = dns.RcodeFormatError, "refused"
		return
	}
	q := req.Question[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	if name != api.ServiceDomain && !strings.HasSuffix(name, "."+api.ServiceDomain) {
		m.Rcode, outcome = dns.RcodeRefused, "refused"
		return
	}
	rrs, ok := g.lookupDNS(name, q.Qtype)
	if !ok {
		m.Rcode, outcome = dns.RcodeNameError, "nxdomain"
		return
	}
	m.Answer = rrs
	if q.Qtype == dns.TypeSRV {
		for _, rr := range rrs {
			if srv, ok := rr.(*dns.SRV); ok {
				a, _ := g.lookupDNS(strings.TrimSuffix(srv.Target, "."), dns.TypeA)
				m.Extra = append(m.Extra, a...)
			}
		}
	}
}

// maxUDPAnswer bounds an answer over UDP whatever size the client
// announces (the size DNS Flag Day 2020 recommends): a UDP source
// address can be forged, and a service's endpoints fill tens of
// kilobytes, so an unbounded answer would amplify a spoofed question
// a thousandfold toward its victim. A truncated answer sends the
// client to TCP.
const maxUDPAnswer = 1232

// udpAnswerSize is the size an answer to req over UDP may have: 512
// bytes without EDNS, else what the client announced, at most
// maxUDPAnswer.
func udpAnswerSize(req *dns.Msg) int {
	if o := req.IsEdns0(); o != nil {
		return min(max(int(o.UDPSize()), dns.MinMsgSize), maxUDPAnswer)
	}
	return dns.MinMsgSize
}

// ranked is an endpoint and its locality rank.
type ranked struct {
	*endpoint
	rank int
}

// ordered is a route's endpoints in the proxy's order of preference.
func ordered(rt *route, now time.Time) []ranked {
	ranks := *rt.ranks.Load()
	eps := make([]ranked, len(rt.eps))
	for i, e := range rt.eps {
		eps[i] = ranked{e, ranks[i]}
	}
	slices.SortStableFunc(eps, func(a, b ranked) int {
		ea, eb := a.out.ejected(now), b.out.ejected(now)
		switch {
		case ea != eb:
			if ea {
				return 1
			}
			return -1
		case a.rank != b.rank:
			return a.rank - b.rank
		}
		return 0
	})
	return eps
}

// lookupDNS answers name (lower case, no trailing dot) for qtype; ok is
// false for a name that does not exist.
func (g *Gateway) lookupDNS(name string, qtype uint16) ([]dns.RR, bool) {
	routes := *g.routes.Load()
	labels := strings.Split(strings.TrimSuffix(name, "."+api.ServiceDomain), ".")
	now := g.now()
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: t, Class: dns.ClassINET, Ttl: dnsTTL}
	}
	a := func(host string) dns.RR {
		ip := net.ParseIP(host)
		if ip == nil {
			return nil
		}
		if ip4 := ip.To4(); ip4 != nil {
			return &dns.A{Hdr: hdr(dns.TypeA), A: ip4}
		}
		return &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: ip}
	}
	switch {
	case len(labels) == 1: // <service>
		rt := routes[labels[0]]
		if rt == nil {
			return nil, false
		}
		if qtype != dns.TypeA && qtype != dns.TypeANY && qtype != dns.TypeAAAA {
			return nil, true
		}
		var out []dns.RR
		seen := map[string]bool{}
		for _, e := range ordered(rt, now) {
			if rr := a(e.Host); rr != nil && !seen[e.Host] && (qtype != dns.TypeAAAA || rr.Header().Rrtype == dns.TypeAAAA) {
				seen[e.Host] = true
				out = append(out, rr)
			}
		}
		return out, true
	case len(labels) == 3 && strings.HasPrefix(labels[0], "_") && labels[1] == "_tcp": // _<port>._tcp.<service>
		rt := routes[labels[2]]
		port := strings.TrimPrefix(labels[0], "_")
		if rt == nil || !slices.ContainsFunc(rt.spec.Ports, func(p api.ServicePort) bool { return p.Name == port }) {
			return nil, false
		}
		if qtype != dns.TypeSRV {
			return nil, true
		}
		var out []dns.RR
		for _, e := range ordered(rt, now) {
			p, ok := e.Ports[port]
			if !ok || !api.IsDNSLabel(e.Replica) || !api.IsDNSLabel(e.Cluster) {
				// A replica's name comes from its member: one that is
				// no label would make the whole answer unpackable.
				continue
			}
			out = append(out, &dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: uint16(min(e.rank*10+boolInt(e.out.ejected(now))*100, 65535)), Weight: uint16(min(e.weight, 65535)),
				Port: uint16(p), Target: dns.Fqdn(e.Replica + "." + e.Cluster + ".ep." + api.ServiceDomain)})
		}
		return out, true
	case len(labels) == 3 && labels[2] == "ep": // <replica>.<cluster>.ep
		for _, rt := range routes {
			for _, e := range rt.eps {
				if e.Replica == labels[0] && e.Cluster == labels[1] {
					if qtype != dns.TypeA && qtype != dns.TypeANY {
						return nil, true
					}
					if rr := a(e.Host); rr != nil {
						return []dns.RR{rr}, true
					}
					return nil, true
				}
			}
		}
	}
	return nil, false
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
