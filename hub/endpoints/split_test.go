package endpoints

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// TestSplit: each cluster's part is the services its gateway serves: a
// service without spec.gateways everywhere, one with a selector only
// where the cluster's labels match; parts with the same services share
// one digest, different parts have different digests.
func TestSplit(t *testing.T) {
	t.Parallel()
	everywhere := protocol.ServiceEndpoints{Name: "web", Spec: api.ServiceSpec{Workload: "web"}, Endpoints: []protocol.Endpoint{}}
	euOnly := protocol.ServiceEndpoints{Name: "ledger", Spec: api.ServiceSpec{Workload: "ledger", Gateways: &api.LabelSelector{MatchLabels: map[string]string{"region": "eu"}}},
		Endpoints: []protocol.Endpoint{{Cluster: "eu-1", Region: "eu", Replica: "l1", Host: "10.0.0.1", Ports: map[string]int{"http": 80}}}}
	notEdge := protocol.ServiceEndpoints{Name: "admin", Spec: api.ServiceSpec{Workload: "admin", Gateways: &api.LabelSelector{
		MatchExpressions: []api.Requirement{{Key: "tier", Operator: "NotIn", Values: []string{"edge"}}}}}, Endpoints: []protocol.Endpoint{}}
	labels := map[string]map[string]string{
		"eu-1": {"region": "eu"}, "eu-2": {"region": "eu"},
		"us-1": {"region": "us"}, "us-edge": {"region": "us", "tier": "edge"},
	}
	parts := split([]protocol.ServiceEndpoints{everywhere, euOnly, notEdge}, labels)
	names := func(c string) []string {
		var out []string
		for _, s := range parts[c].services {
			out = append(out, s.Name)
		}
		slices.Sort(out)
		return out
	}
	want := map[string][]string{"eu-1": {"admin", "ledger", "web"}, "eu-2": {"admin", "ledger", "web"}, "us-1": {"admin", "web"}, "us-edge": {"web"}}
	for c, w := range want {
		if got := names(c); !slices.Equal(got, w) {
			t.Errorf("cluster %s: want services %v; got %v", c, w, got)
		}
	}
	if parts["eu-1"].digest != parts["eu-2"].digest {
		t.Error("eu-1 and eu-2 serve the same services: want one digest")
	}
	if parts["eu-1"].digest == parts["us-1"].digest || parts["us-1"].digest == parts["us-edge"].digest {
		t.Error("parts with different services: want different digests")
	}
	if got := parts["us-edge"].digest; got != protocol.EndpointDigest([]protocol.ServiceEndpoints{everywhere}) {
		t.Error("a part's digest is not the digest of its services")
	}
}

// TestReportsRateBound: a member flapping its reports has them taken up
// to the burst, then at the refill rate; the newest over the bound is
// kept pending and taken once the bucket refills (never lost), older
// pending ones are superseded; deferrals are logged once; another member
// is not slowed.
func TestReportsRateBound(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	now := time.Unix(1_000_000, 0)
	tb := New(nil, nil, nil, nil, Config{ReportBurst: 3, ReportRate: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now }})
	send := func(cluster string, seq uint64, replicas int) {
		addrs := make([]protocol.ReplicaAddress, replicas)
		for i := range addrs {
			addrs[i] = protocol.ReplicaAddress{Replica: fmt.Sprint("r", i), Host: "10.0.0.1", Port: 8000 + i}
		}
		data, _ := json.Marshal(protocol.EndpointReport{Version: protocol.Version, Cluster: cluster, Seq: seq, Run: "run", Workloads: map[string][]protocol.ReplicaAddress{"web": addrs}})
		tb.Observe(&nats.Msg{Subject: protocol.EndpointsSubject(cluster), Data: data})
	}
	held := func(cluster string) (taken, pending uint64) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		return tb.reports[cluster].seq, tb.pending[cluster].seq
	}
	for seq := uint64(1); seq <= 50; seq++ {
		send("eu-1", seq, int(seq%2)+1) // flapping
	}
	if taken, pending := held("eu-1"); taken != 3 || pending != 50 {
		t.Fatalf("50 reports at once, burst 3: want report 3 taken and 50 pending; got %d taken, %d pending", taken, pending)
	}
	send("us-1", 1, 1)
	if taken, _ := held("us-1"); taken != 1 {
		t.Errorf("another member's report: want it taken at once; got %d", taken)
	}
	// No token yet: nothing moves.
	tb.mu.Lock()
	took := tb.takePending(now.Add(100 * time.Millisecond))
	tb.mu.Unlock()
	if took {
		t.Error("100ms later at 2 a second: want the pending report still held")
	}
	now = now.Add(600 * time.Millisecond)
	tb.mu.Lock()
	took = tb.takePending(now)
	tb.mu.Unlock()
	if taken, pending := held("eu-1"); !took || taken != 50 || pending != 0 {
		t.Fatalf("after the refill: want the newest report (50) taken; got %d taken, %d pending", taken, pending)
	}
	// An older report than one taken or pending stays stale.
	send("eu-1", 49, 1)
	if taken, pending := held("eu-1"); taken != 50 || pending != 0 {
		t.Errorf("an older report: want it ignored; got %d taken, %d pending", taken, pending)
	}
	if n := bytes.Count(logs.Bytes(), []byte("over the member's rate bound")); n != 1 {
		t.Errorf("want one log line for the deferred reports; got %d:\n%s", n, logs.String())
	}
	tb.mu.Lock()
	due := tb.throttledDue(now)
	tb.mu.Unlock()
	if due["eu-1"] != 47 || len(due) != 1 {
		t.Errorf("want eu-1's 47 deferred reports due an event; got %v", due)
	}
}
