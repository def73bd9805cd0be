package node

import (
	"testing"
	"time"

	"github.com/atollhq/atoll/protocol"
)

func TestNodeLease(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bs := []protocol.Binding{{Replica: "web-1", Workload: "web"}, {Replica: "ledger-1", Workload: "ledger", Exclusive: true}, {Replica: "audit-1", Workload: "audit", Exclusive: true}}
	ids := func(l *nodeLease, now time.Time) (out []string) {
		for _, s := range l.allowed(bs, now) {
			out = append(out, s.ID)
		}
		return out
	}
	var l nodeLease
	if got := ids(&l, t0); len(got) != 1 || got[0] != "web-1" {
		t.Errorf("want only the stateless replica before any lease; got %v", got)
	}
	if !l.update(protocol.NodeAck{LeaseMillis: 3000, Hold: []string{"audit"}}, t0) {
		t.Errorf("want a granted lease to count as a change")
	}
	if got := ids(&l, t0.Add(time.Second)); len(got) != 2 || got[1] != "ledger-1" {
		t.Errorf("want web and ledger (audit is held) within the lease; got %v", got)
	}
	if d := l.untilExpiry(t0.Add(time.Second)); d != 2*time.Second {
		t.Errorf("want the lease to expire 2s later; got %s", d)
	}
	if got := ids(&l, t0.Add(3*time.Second)); len(got) != 1 {
		t.Errorf("want the exclusive replicas stopped once the lease ran out; got %v", got)
	}
	if l.update(protocol.NodeAck{LeaseMillis: 3000, Hold: []string{"audit"}}, t0.Add(time.Second)) {
		t.Errorf("want a renewed lease with the same holds to change nothing")
	}
	if !l.update(protocol.NodeAck{LeaseMillis: 3000, Dark: true}, t0.Add(2*time.Second)) || len(ids(&l, t0.Add(2*time.Second))) != 0 {
		t.Errorf("want nothing to run while a drill keeps the region dark")
	}
}
