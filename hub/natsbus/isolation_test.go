package natsbus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What member A must never do, whichever way it connects. Each subject is
// refused by A's permissions; the comment says what it would reach.
var (
	// forbiddenPublish are subjects A publishes on.
	forbiddenPublish = []string{
		"atoll.m.b.hb",          // B's heartbeat: speaking as B
		"atoll.m.b.status",      // anything else of B's
		"atoll.h.b.cmd",         // a command to B, as if from the hub
		"atoll.h.a.cmd",         // a command to itself, as if from the hub
		"atoll.x",               // outside the member spaces
		"$JS.API.INFO",          // the hub's JetStream
		"$JS.hub.API.INFO",      // the same by domain
		"$SYS.REQ.SERVER.PING",  // the system account
		"$SYS.REQ.USER.INFO",    // a system service every account imports
		"_INBOX.b.x",            // B's replies
		"_INBOX.hub.x",          // someone else's replies
		"$JS.member-b.API.INFO", // B's JetStream by domain
	}
	// forbiddenSubscribe are subjects a plain client of A subscribes to.
	forbiddenSubscribe = []string{
		"atoll.h.b.>", "atoll.m.b.>", ">", "$JS.API.>", "$SYS.>",
		"atoll.>", "atoll.h.*.cmd", "atoll.m.>", "_INBOX.>", "_INBOX.b.>",
	}
	// hubSends are subjects the hub publishes on that A must not receive.
	hubSends = []string{
		"atoll.h.b.cmd", "atoll.h.b.x.y", "atoll.m.b.hb", "atoll.m.a.hb", "atoll.x",
		"$SYS.x", "$JS.member-a.API.INFO", "_INBOX.b.x", "_INBOX.hub.x",
	}
)

// reported is the subject the hub names in a publish violation: it
// applies the account's subject mappings first, and the hub's JetStream
// domain maps $JS.hub.API.> to $JS.API.>.
func reported(subject string) string {
	if rest, ok := strings.CutPrefix(subject, "$JS.hub.API."); ok {
		return "$JS.API." + rest
	}
	return subject
}

// publishAll publishes marker+subject on every subject, then the control
// subject, and flushes: anything forbidden that got through would arrive
// before the control message.
func publishAll(t *testing.T, conn *nats.Conn, marker string, subjects []string, control string) {
	t.Helper()
	for _, s := range append(append([]string(nil), subjects...), control) {
		if err := conn.Publish(s, []byte(marker+s)); err != nil {
			t.Fatalf("publish %q: %v", s, err)
		}
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestMemberClientIsolation connects with member A's credentials as a
// plain client: everything outside A's own subjects is refused, and the
// hub sees only what A may say.
func TestMemberClientIsolation(t *testing.T) {
	t.Parallel()
	bus := startBus(t, newSeeds(t), none, t.TempDir())
	a, b := register(t, bus, "a"), register(t, bus, "b")
	hubSaw := subscribeAll(t, bus.Conn(), ">")

	// The hub's view works: B's own heartbeat reaches it.
	cb, err := b.connect(bus)
	if err != nil {
		t.Fatalf("connect as B: %v", err)
	}
	t.Cleanup(cb.Close)
	publishAll(t, cb, "from-b ", nil, "atoll.m.b.hb")
	expectFirst(t, hubSaw, "from-b ", "atoll.m.b.hb")

	errs := make(asyncErrors, 256)
	ca, err := a.connect(bus, errs.option())
	if err != nil {
		t.Fatalf("connect as A: %v", err)
	}
	t.Cleanup(ca.Close)

	t.Run("publish", func(t *testing.T) {
		publishAll(t, ca, "from-a ", forbiddenPublish, "atoll.m.a.hb")
		expectFirst(t, hubSaw, "from-a ", "atoll.m.a.hb")
		var want []string
		for _, s := range forbiddenPublish {
			want = append(want, pubViolation(reported(s)))
		}
		errs.expect(t, want...)
	})

	t.Run("subscribe", func(t *testing.T) {
		// One channel for every subscription: the client puts messages
		// in it in the order the server sent them.
		got := make(chan *nats.Msg, 256)
		var want []string
		for _, s := range forbiddenSubscribe {
			if _, err := ca.ChanSubscribe(s, got); err != nil {
				t.Fatalf("subscribe %q: %v", s, err)
			}
			want = append(want, subViolation(s))
		}
		if _, err := ca.ChanSubscribe("atoll.h.a.>", got); err != nil {
			t.Fatal(err)
		}
		if err := ca.Flush(); err != nil {
			t.Fatal(err)
		}
		errs.expect(t, want...)
		publishAll(t, bus.Conn(), "from-hub ", hubSends, "atoll.h.a.cmd")
		expectFirst(t, got, "from-hub ", "atoll.h.a.cmd")
	})

	t.Run("jetstream", func(t *testing.T) {
		// Control: the account's JetStream answers the hub.
		hubJS, err := jetstream.New(bus.Conn())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hubJS.AccountInfo(t.Context()); err != nil {
			t.Fatalf("the hub's own JetStream request failed: %v", err)
		}
		js, err := jetstream.New(ca)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		info, err := js.AccountInfo(ctx)
		if err == nil {
			t.Fatalf("A reached the hub's JetStream: %+v", info)
		}
		errs.expect(t, pubViolation("$JS.API.INFO"))
	})

	t.Run("system", func(t *testing.T) {
		// Control: the hub may ask the system who it is.
		if _, err := bus.Conn().Request("$SYS.REQ.USER.INFO", nil, wait); err != nil {
			t.Fatalf("the hub's own $SYS.REQ.USER.INFO failed: %v", err)
		}
		if m, err := ca.Request("$SYS.REQ.USER.INFO", nil, 500*time.Millisecond); err == nil {
			t.Fatalf("A got an answer from the system account: %s", m.Data)
		}
		errs.expect(t, pubViolation("$SYS.REQ.USER.INFO"))
	})

	t.Run("replies", func(t *testing.T) {
		// A's requests get the hub's replies in A's inbox.
		hubResponder(t, bus, "atoll.m.a.ping")
		m, err := ca.Request("atoll.m.a.ping", nil, wait)
		if err != nil {
			t.Fatalf("A's request to the hub: %v", err)
		}
		if !strings.HasPrefix(m.Subject, "_INBOX.a.") {
			t.Errorf("A's reply came on %q, want A's inbox _INBOX.a.", m.Subject)
		}
	})
}

// TestMemberLeafIsolation connects member A's own NATS server as a leaf
// node with A's credentials and checks what crosses the leaf connection in
// each direction.
func TestMemberLeafIsolation(t *testing.T) {
	t.Parallel()
	bus := startBus(t, newSeeds(t), none, t.TempDir())
	a := register(t, bus, "a")
	hubSaw := subscribeAll(t, bus.Conn(), ">")
	hubResponder(t, bus, "atoll.m.a.ping")

	l := startLeaf(t, bus, a)
	// Everything the member's server gets, in the order it gets it.
	memberGot := make(chan *nats.Msg, 4096)
	for _, s := range []string{">", "atoll.h.>", "$SYS.>", "_INBOX.>", "$JS.>"} {
		if _, err := l.local.ChanSubscribe(s, memberGot); err != nil {
			t.Fatal(err)
		}
	}
	l.awaitLinked(t, "atoll.m.a.ping")

	t.Run("member to hub", func(t *testing.T) {
		publishAll(t, l.local, "from-a ", forbiddenPublish, "atoll.m.a.hb")
		expectFirst(t, hubSaw, "from-a ", "atoll.m.a.hb")
	})

	t.Run("hub to member", func(t *testing.T) {
		publishAll(t, bus.Conn(), "from-hub ", hubSends, "atoll.h.a.cmd")
		expectFirst(t, memberGot, "from-hub ", "atoll.h.a.cmd")
	})

	t.Run("replies", func(t *testing.T) {
		// Replies to A's inbox come back over the leaf (awaitLinked relies
		// on it too); replies to any other inbox do not: the hub gets the
		// request, but its reply is not A's to receive, so the request
		// times out (the leaf had interest in the request subject, so it
		// is not "no responders").
		other, err := nats.Connect("", nats.InProcessServer(l.server))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(other.Close)
		m, err := other.Request("atoll.m.a.ping", []byte("from-a default inbox"), 500*time.Millisecond)
		if !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("a request with the default inbox prefix through the leaf: %v %v, want a timeout", msgText(m), err)
		}
		deadline := time.After(wait)
		for got := false; !got; {
			select {
			case m := <-hubSaw:
				if got = string(m.Data) == "from-a default inbox"; got {
					if m.Subject != "atoll.m.a.ping" || strings.HasPrefix(m.Reply, "_INBOX.a.") {
						t.Fatalf("the hub got the request on %q with reply %q", m.Subject, m.Reply)
					}
				}
			case <-deadline:
				t.Fatalf("the hub never got the request with the default inbox prefix")
			}
		}
	})

	// None of this was a violation the hub had to cut the leaf off for:
	// the member's server filters by the permissions the hub announced.
	if n := bus.Server().NumLeafNodes(); n != 1 {
		t.Errorf("the hub has %d leaf connections after the test, want 1", n)
	}
}

// TestHubEnforcesLeafPermissions speaks the leafnode protocol by hand as
// member A, the way a member whose server ignores the permissions the hub
// announced would: the hub itself refuses what A may not send and filters
// what A may not receive. (Two subjects the hub does not check on a leaf
// are TestLeafCannotReachHubInternals' part.)
func TestHubEnforcesLeafPermissions(t *testing.T) {
	t.Parallel()
	bus := startBus(t, newSeeds(t), none, t.TempDir())
	a := register(t, bus, "a")
	hubSaw := subscribeAll(t, bus.Conn(), ">")

	t.Run("publish", func(t *testing.T) {
		for _, s := range forbiddenPublish {
			raw := dialRawLeaf(t, bus, a)
			raw.publish(t, s, "from-raw "+s)
			raw.send(t, "PING\r\n")
			raw.expect(t, func(e rawEvent) bool {
				if e.op == "PONG" {
					t.Fatalf("the hub accepted a leaf message on %q", s)
				}
				return e.op == "-ERR" && strings.Contains(e.arg, pubViolation(reported(s)))
			}, "a publish violation for "+s)
			raw.expect(t, func(e rawEvent) bool { return e.op == "EOF" }, "the hub closing the leaf after the violation on "+s)
		}
		raw := dialRawLeaf(t, bus, a)
		raw.publish(t, "atoll.m.a.hb", "from-raw atoll.m.a.hb")
		// Every forbidden message was refused before its connection
		// closed, so it would have reached the hub's subscriber before
		// this one.
		expectFirst(t, hubSaw, "from-raw ", "atoll.m.a.hb")
	})

	t.Run("subscribe to a subject", func(t *testing.T) {
		for _, s := range []string{"atoll.h.b.cmd", "atoll.m.b.hb", "atoll.m.a.hb", "$SYS.REQ.SERVER.PING", "$JS.API.INFO", "_INBOX.b.x", "atoll.x"} {
			raw := dialRawLeaf(t, bus, a)
			raw.send(t, "LS+ "+s+"\r\nPING\r\n")
			raw.expect(t, func(e rawEvent) bool {
				if e.op == "PONG" {
					t.Fatalf("the hub accepted a leaf subscription to %q", s)
				}
				return e.op == "-ERR" && strings.Contains(e.arg, subViolation(s))
			}, "a subscription violation for "+s)
			raw.expect(t, func(e rawEvent) bool { return e.op == "EOF" }, "the hub closing the leaf after the violation on "+s)
		}
	})

	t.Run("wildcard interest is filtered", func(t *testing.T) {
		// A leaf may express interest wider than its permissions (its
		// own clients may subscribe to >); the hub then sends it only
		// what it may receive.
		raw := dialRawLeaf(t, bus, a)
		raw.send(t, "LS+ >\r\nLS+ atoll.h.*.cmd\r\nLS+ $SYS.>\r\nLS+ _INBOX.>\r\nLS+ atoll.m.>\r\nPING\r\n")
		raw.expect(t, func(e rawEvent) bool {
			if e.op == "-ERR" || e.op == "EOF" {
				t.Fatalf("the hub refused wildcard interest: %s %s", e.op, e.arg)
			}
			return e.op == "PONG"
		}, "PONG after the subscriptions")
		publishAll(t, bus.Conn(), "from-hub ", hubSends, "atoll.h.a.cmd")
		e := raw.expect(t, func(e rawEvent) bool {
			return e.op == "-ERR" || e.op == "EOF" || (e.op == "LMSG" && strings.HasPrefix(e.payload, "from-hub "))
		}, "the control message")
		if e.op != "LMSG" || e.subject != "atoll.h.a.cmd" {
			t.Fatalf("the leaf got %s %s %q before the control message on atoll.h.a.cmd", e.op, e.subject, e.payload)
		}
	})
}

// TestLeafCannotReachHubInternals: nats-server does not check a leaf's
// publish permissions on $JS.ACK.> and _R_.> (it takes them for internal
// routing subjects), so a member whose own server ignores its permissions
// can publish there. With each member in an account of its own, they land
// in that account, where nothing listens: not the hub's JetStream
// consumers' acks, and not the replies the hub owes another member.
func TestLeafCannotReachHubInternals(t *testing.T) {
	t.Parallel()
	bus := startBus(t, newSeeds(t), none, t.TempDir())
	a, b := register(t, bus, "a"), register(t, bus, "b")
	ctx := t.Context()

	// A JetStream consumer of the hub's, with one message delivered and
	// not yet acknowledged: its ack subject is what A aims at.
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HUBWORK", Subjects: []string{"hubwork.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "hubwork.1", []byte("job")); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(wait)) // waits: the message may not be pending at once on a busy machine
	if err != nil {
		t.Fatal(err)
	}
	var ackSubject string
	for m := range batch.Messages() {
		ackSubject = m.Reply()
	}
	if !strings.HasPrefix(ackSubject, "$JS.ACK.HUBWORK.worker.") {
		t.Fatalf("the consumer's message has ack subject %q", ackSubject)
	}

	// B asks the hub; the hub holds the request, so its reply subject in
	// the ATOLL account (a _R_ one, through B's import) is live.
	held := make(chan *nats.Msg, 1)
	hold, err := bus.Conn().Subscribe("atoll.m.b.ask", func(m *nats.Msg) { held <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hold.Unsubscribe() })
	hubResponder(t, bus, "atoll.m.b.ping")
	lb := startLeaf(t, bus, b)
	lb.awaitLinked(t, "atoll.m.b.ping")
	answer := make(chan *nats.Msg, 4)
	inbox := "_INBOX.b.ask"
	if _, err := lb.local.ChanSubscribe(inbox, answer); err != nil {
		t.Fatal(err)
	}
	if err := lb.local.PublishRequest("atoll.m.b.ask", inbox, []byte("question")); err != nil {
		t.Fatal(err)
	}
	var question *nats.Msg
	select {
	case question = <-held:
	case <-time.After(wait):
		t.Fatal("B's question never reached the hub")
	}
	if !strings.HasPrefix(question.Reply, "_R_.") {
		t.Fatalf("B's question came with reply %q, want a _R_ one", question.Reply)
	}

	hubSaw := subscribeAll(t, bus.Conn(), ">")
	raw := dialRawLeaf(t, bus, a)
	for _, s := range []string{ackSubject, "$JS.ACK.HUBWORK.worker.>", question.Reply, "_R_.x.y"} {
		raw.publish(t, s, "from-a "+s)
	}
	raw.publish(t, "atoll.m.a.hb", "from-a atoll.m.a.hb")
	expectFirst(t, hubSaw, "from-a ", "atoll.m.a.hb")

	// The ack never landed: the message is still pending. (The hub's own
	// ack, below, shows the check would see one.)
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 1 {
		t.Fatalf("the consumer has %d messages pending after A's forged ack, want 1", info.NumAckPending)
	}
	// B gets the hub's answer, not A's.
	if err := question.Respond([]byte("from the hub")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-answer:
		if string(m.Data) != "from the hub" {
			t.Fatalf("B's question was answered with %q by someone else than the hub", m.Data)
		}
	case <-time.After(wait):
		t.Fatal("B never got the hub's answer")
	}
	if err := bus.Conn().Publish(ackSubject, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for {
		if info, err = cons.Info(ctx); err == nil && info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub's own ack did not land within %v: %+v %v", wait, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMemberJetStreamIsolation: a member's JetStream domain works on its
// own server, and neither side reaches the other's JetStream over the
// leaf.
func TestMemberJetStreamIsolation(t *testing.T) {
	t.Parallel()
	bus := startBus(t, newSeeds(t), none, t.TempDir())
	a := register(t, bus, "a")
	hubSaw := subscribeAll(t, bus.Conn(), ">")
	hubResponder(t, bus, "atoll.m.a.ping")
	l := startLeaf(t, bus, a)
	l.awaitLinked(t, "atoll.m.a.ping")
	ctx := t.Context()

	js, err := jetstream.NewWithDomain(l.local, "member-a")
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "desired"})
	if err != nil {
		t.Fatalf("create a KV bucket in the member's domain: %v", err)
	}
	if _, err := kv.Put(ctx, "w1", []byte("epoch-7")); err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "w1"); err != nil || string(e.Value()) != "epoch-7" {
		t.Fatalf("read back from the member's KV: %v", err)
	}

	// Control: the hub's own JetStream answers by domain.
	if _, err := bus.Conn().Request("$JS.hub.API.INFO", nil, wait); err != nil {
		t.Fatalf("the hub's own $JS.hub.API.INFO failed: %v", err)
	}
	// The member's server has no interest to forward it to.
	if m, err := l.local.Request("$JS.hub.API.INFO", []byte("from-a $JS.hub.API.INFO"), 500*time.Millisecond); err == nil {
		t.Fatalf("the member reached the hub's JetStream: %s", m.Data)
	}
	publishAll(t, l.local, "from-a ", []string{"$JS.hub.API.STREAM.LIST", "$JS.API.STREAM.LIST"}, "atoll.m.a.hb")
	expectFirst(t, hubSaw, "from-a ", "atoll.m.a.hb")

	// Nor does the hub reach the member's.
	hubJS, err := jetstream.NewWithDomain(bus.Conn(), "member-a")
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := hubJS.KeyValue(ctx2, "desired"); err == nil {
		t.Fatal("the hub reached the member's KV bucket over the leaf")
	}
}

func msgText(m *nats.Msg) string {
	if m == nil {
		return "<no message>"
	}
	return string(m.Data)
}
