package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestDecodeEndpointReport: a report is taken only with addresses a
// gateway can dial as they are (an IP or a host name, nothing a URL or a
// dialer would read as more) and names of bounded size.
func TestDecodeEndpointReport(t *testing.T) {
	subject := EndpointsSubject("eu-1")
	report := func(a ReplicaAddress) []byte {
		b, _ := json.Marshal(EndpointReport{Version: Version, Cluster: "eu-1", Seq: 1, Run: "r",
			Workloads: map[string][]ReplicaAddress{"web": {a}}})
		return b
	}
	good := ReplicaAddress{Replica: "web-0123456789ab", Node: "n1", Zone: "a", Host: "10.0.0.1", Port: 8080}
	for _, host := range []string{"10.0.0.1", "fd00::1", "node-1.example.internal", "Node1"} {
		a := good
		a.Host = host
		if _, err := DecodeEndpointReport(subject, report(a)); err != nil {
			t.Errorf("host %q: %v; want it taken", host, err)
		}
	}
	long := strings.Repeat("x", 254)
	for name, a := range map[string]ReplicaAddress{
		"host with a path":     {Replica: "r", Host: "10.0.0.1/admin?", Port: 80},
		"host with userinfo":   {Replica: "r", Host: "user:pass@10.0.0.1", Port: 80},
		"host with a port":     {Replica: "r", Host: "10.0.0.1:5432", Port: 80},
		"host with a space":    {Replica: "r", Host: "evil host", Port: 80},
		"host with a newline":  {Replica: "r", Host: "a\r\nb", Port: 80},
		"replica without name": {Replica: "", Host: "10.0.0.1", Port: 80},
		"replica too long":     {Replica: long, Host: "10.0.0.1", Port: 80},
		"node too long":        {Replica: "r", Node: long, Host: "10.0.0.1", Port: 80},
		"zone too long":        {Replica: "r", Zone: long, Host: "10.0.0.1", Port: 80},
		"port zero":            {Replica: "r", Host: "10.0.0.1", Port: 0},
	} {
		if _, err := DecodeEndpointReport(subject, report(a)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v; want ErrMalformed", name, err)
		}
	}
}

func TestDecodeTrafficReport(t *testing.T) {
	subject := TrafficSubject("eu")
	ok := func() TrafficReport {
		c := TrafficCount{Service: "web", Cluster: "us", Generation: 2, Requests: 3, Errors: 1, Latency: make([]uint64, len(LatencyBounds)+1)}
		c.Latency[0], c.Latency[14] = 2, 1
		return TrafficReport{Version: Version, Cluster: "eu", Run: "r", Seq: 1, Seconds: 1, Counts: []TrafficCount{c}}
	}
	enc := func(r TrafficReport) []byte { b, _ := json.Marshal(r); return b }
	if _, err := DecodeTrafficReport(subject, enc(ok())); err != nil {
		t.Fatalf("a good report refused: %v", err)
	}
	for name, mutate := range map[string]func(*TrafficReport){
		"other cluster":     func(r *TrafficReport) { r.Cluster = "us" },
		"old version":       func(r *TrafficReport) { r.Version = TrafficSince - 1 },
		"errors > requests": func(r *TrafficReport) { r.Counts[0].Errors = 4 },
		"buckets off":       func(r *TrafficReport) { r.Counts[0].Latency[0] = 9 },
		"bucket count":      func(r *TrafficReport) { r.Counts[0].Latency = r.Counts[0].Latency[:3] },
		"service name":      func(r *TrafficReport) { r.Counts[0].Service = "../x" },
		"negative gen":      func(r *TrafficReport) { r.Counts[0].Generation = -1 },
		"too many": func(r *TrafficReport) {
			for len(r.Counts) <= MaxTrafficCounts {
				r.Counts = append(r.Counts, r.Counts[0])
			}
		},
	} {
		r := ok()
		mutate(&r)
		if _, err := DecodeTrafficReport(subject, enc(r)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
