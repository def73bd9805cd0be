package natsbus_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestExplore(t *testing.T) {
	seeds := newSeeds(t)
	bus := startBus(t, seeds, nil, t.TempDir())
	a := register(t, bus, "a")
	ev := watchSystem(t, bus, seeds)
	hubSaw := subscribeAll(t, bus.Conn(), ">")

	m, err := bus.Conn().Request("$SYS.REQ.USER.INFO", nil, time.Second)
	t.Logf("hub USER.INFO: %v %s", err, msgData(m))
	m, err = bus.Conn().Request("$JS.API.INFO", nil, time.Second)
	t.Logf("hub JS INFO: %v %s", err, msgData(m))
	m, err = bus.Conn().Request("$JS.hub.API.INFO", nil, time.Second)
	t.Logf("hub JS hub INFO: %v %s", err, msgData(m))
	m, err = bus.Conn().Request("$SYS.REQ.SERVER.PING", nil, time.Second)
	t.Logf("hub SERVER.PING: %v %s", err, msgData(m))

	errs := make(asyncErrors, 64)
	ca, err := a.connect(bus, errs.option())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = ca.Request("$JS.API.INFO", nil, time.Second)
	t.Logf("A JS INFO: %v after %v", err, time.Since(start))
	for i := 0; i < 1; i++ {
		select {
		case e := <-errs:
			t.Logf("async: %v", e)
		case <-time.After(time.Second):
		}
	}

	raw := dialRawLeaf(t, bus, a)
	raw.publish(t, "$JS.ACK.s.c.1.1.1.1.0", "from-raw ack")
	raw.publish(t, "_R_.abc.def", "from-raw r")
	raw.publish(t, "atoll.m.a.hb", "from-raw ctl")
	raw.send(t, "PING\r\n")
	raw.expect(t, func(e rawEvent) bool { t.Logf("raw event %+v", e); return e.op == "PONG" || e.op == "EOF" }, "pong")
	bus.Conn().Flush()
	for {
		select {
		case m := <-hubSaw:
			t.Logf("hub saw %s %q", m.Subject, m.Data)
			continue
		case <-time.After(500 * time.Millisecond):
		}
		break
	}

	hubResponder(t, bus, "atoll.m.a.ping")
	l := startLeaf(t, bus, a)
	l.awaitLinked(t, "atoll.m.a.ping")
	other, _ := nats.Connect("", nats.InProcessServer(l.server))
	start = time.Now()
	_, err = other.Request("atoll.m.a.ping", nil, time.Second)
	t.Logf("default inbox request: %v after %v", err, time.Since(start))
	_, err = l.local.Request("$JS.hub.API.INFO", nil, time.Second)
	t.Logf("leaf $JS.hub.API.INFO: %v", err)

	if err := bus.Revoke(a.pub, time.Now()); err != nil {
		t.Fatal(err)
	}
	t.Logf("revoked; hub leafs %d", bus.Server().NumLeafNodes())
	for i := 0; i < 6; i++ {
		select {
		case e := <-ev.disconnects:
			t.Logf("disconnect kind=%s reason=%q user=%s", e.Client.Kind, e.Reason, eventUser(e))
		case e := <-ev.authErrors:
			t.Logf("autherr kind=%s reason=%q user=%s", e.Client.Kind, e.Reason, eventUser(e))
		case <-time.After(2 * time.Second):
		}
	}
	t.Logf("A status %v last err %v", ca.Status(), ca.LastError())
	_, err = a.connect(bus)
	t.Logf("new conn: %v", err)
}

func msgData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	if len(m.Data) > 300 {
		return string(m.Data[:300])
	}
	return string(m.Data)
}
