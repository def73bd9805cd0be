package hub_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/protocol"
)

// TestMemberSendsStatusDeltas: a member whose hub takes deltas sends
// them, and no whole report, once acked; a hub's request for its whole
// status is answered with a resend.
func TestMemberSendsStatusDeltas(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	nc := e.bus.Conn()
	whole := make(chan *nats.Msg, 64)
	deltas := make(chan *nats.Msg, 64)
	for subject, ch := range map[string]chan *nats.Msg{protocol.StatusSubject("m1"): whole, protocol.StatusDeltaSubject("m1"): deltas} {
		sub, err := nc.ChanSubscribe(subject, ch)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	runMember(t, e.joinToken("j", api.TokenSpec{}), "m1", t.TempDir())
	next := func() protocol.StatusDelta {
		t.Helper()
		var m *nats.Msg
		select {
		case m = <-deltas:
		case <-time.After(30 * time.Second):
			t.Fatal("no status delta from the member within 30s")
		}
		d, err := protocol.DecodeStatusDelta(m.Subject, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := next()
	// Whole reports sent before the ack turned deltas on are drained;
	// from the first delta on, none: a member reporting whole sends one
	// every 2 s, so 3 s of deltas would show one. Another delta (the
	// member says it lives every 2 s) may come later on a busy machine.
	for len(whole) > 0 {
		<-whole
	}
	end, giveUp := time.After(3*time.Second), time.After(30*time.Second)
	for seen, ended := 0, false; !ended || seen == 0; {
		select {
		case m := <-whole:
			t.Fatalf("a whole report after deltas began: %s", m.Data)
		case <-deltas:
			seen++
		case <-end:
			ended = true
		case <-giveUp:
			t.Fatal("no delta after the first within 30 s (the member says it lives every 2 s)")
		}
	}
	data, _ := json.Marshal(protocol.StatusFullRequest{Version: protocol.Version})
	if err := nc.Publish(protocol.StatusFullSubject("m1"), data); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := next()
		if d.Reset && d.Session == first.Session && d.Seq > first.Seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no resend within 30s of the request")
		}
	}
}
