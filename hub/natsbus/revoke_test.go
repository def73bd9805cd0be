package natsbus_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/hub/natsbus"
)

// signals of a plain client connection's life.
type connSignals struct {
	disconnected chan error
	reconnected  chan struct{}
}

func (s *connSignals) options() []nats.Option {
	s.disconnected = make(chan error, 16)
	s.reconnected = make(chan struct{}, 16)
	return []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { s.disconnected <- err }),
		nats.ReconnectHandler(func(*nats.Conn) { s.reconnected <- struct{}{} }),
		nats.ReconnectWait(20 * time.Millisecond),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}
}

// awaitUntil reads events until done says yes, failing on any event about
// a connection of one of the spared users.
func awaitUntil(t *testing.T, ch <-chan server.DisconnectEventMsg, what string, spared []string, done func(server.DisconnectEventMsg) bool) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-ch:
			for _, u := range spared {
				if eventUser(e) == u {
					t.Fatalf("while waiting for %s: a %s connection of %s went: %s", what, e.Client.Kind, u, e.Reason)
				}
			}
			if done(e) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, wait)
		}
	}
}

// TestRevokeDropsMemberAtOnce revokes member A while it is connected as a
// plain client and as a leaf: both drop, every reconnection is refused,
// and member B, connected the same two ways, does not notice.
func TestRevokeDropsMemberAtOnce(t *testing.T) {
	t.Parallel()
	seeds := newSeeds(t)
	bus := startBus(t, seeds, none, t.TempDir())
	ev := watchSystem(t, bus, seeds)
	a, b := register(t, bus, "a"), register(t, bus, "b")
	hubSaw := subscribeAll(t, bus.Conn(), ">")
	hubResponder(t, bus, "atoll.m.*.ping")

	var aSig, bSig connSignals
	ca, err := a.connect(bus, aSig.options()...)
	if err != nil {
		t.Fatalf("connect as A: %v", err)
	}
	t.Cleanup(ca.Close)
	cb, err := b.connect(bus, bSig.options()...)
	if err != nil {
		t.Fatalf("connect as B: %v", err)
	}
	t.Cleanup(cb.Close)
	la, lb := startLeaf(t, bus, a), startLeaf(t, bus, b)
	la.awaitLinked(t, "atoll.m.a.ping")
	lb.awaitLinked(t, "atoll.m.b.ping")

	if err := bus.RevokeAll(map[string]map[string]time.Time{"a": {a.pub: time.Now()}}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	select {
	case err := <-aSig.disconnected:
		t.Logf("A's client disconnected: %v", err)
	case <-time.After(wait):
		t.Fatalf("A's client was still connected %v after Revoke", wait)
	}
	// The hub drops both of A's connections for the revocation...
	dropped := map[string]bool{}
	awaitUntil(t, ev.disconnects, "A's client and leaf dropped for the revocation", []string{b.pub}, func(e server.DisconnectEventMsg) bool {
		if eventUser(e) == a.pub {
			if e.Reason != server.Revocation.String() {
				t.Errorf("A's %s connection closed for %q, want %q", e.Client.Kind, e.Reason, server.Revocation)
			}
			dropped[e.Client.Kind] = true
		}
		return dropped["Client"] && dropped["Leafnode"]
	})
	// ...and refuses them when they come back: the leaf retries every
	// 50ms and the client every 20ms, so a few refusals come quickly.
	refused := map[string]int{}
	awaitUntil(t, ev.authErrors, "A reconnecting and being refused", []string{b.pub}, func(e server.DisconnectEventMsg) bool {
		if eventUser(e) == a.pub {
			refused[e.Client.Kind]++
		}
		return refused["Client"] >= 1 && refused["Leafnode"] >= 2
	})
	if n := bus.Server().NumLeafNodes(); n != 1 {
		t.Errorf("the hub has %d leaf connections after A's refused retries, want 1 (B's)", n)
	}
	if n := la.server.NumLeafNodes(); n != 0 {
		t.Errorf("A's server still has %d leaf connections to the hub", n)
	}
	select {
	case <-aSig.reconnected:
		t.Error("A's client reconnected after its revocation")
	default:
	}

	// A new connection with A's credentials is refused.
	if c, err := a.connect(bus, nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		if c != nil {
			c.Close()
		}
		t.Errorf("a new connection with A's revoked credentials: %v, want %v", err, nats.ErrAuthorization)
	}

	// B noticed nothing and still speaks for itself, both ways.
	if s := cb.Status(); s != nats.CONNECTED {
		t.Errorf("B's client is %v, want CONNECTED", s)
	}
	select {
	case err := <-bSig.disconnected:
		t.Errorf("B's client was disconnected: %v", err)
	default:
	}
	publishAll(t, cb, "from-b ", nil, "atoll.m.b.hb")
	expectFirst(t, hubSaw, "from-b ", "atoll.m.b.hb")
	if _, err := lb.local.Request("atoll.m.b.ping", nil, wait); err != nil {
		t.Errorf("B's leaf after A's revocation: %v", err)
	}
}

// TestRevocationSparesLaterJWTs: revoking a key at T refuses the JWTs
// issued up to T, not one the hub signs for the same key afterwards (the
// member registering again). JWT times have one-second resolution, so the
// revocation is dated two seconds back instead of waiting for the clock.
func TestRevocationSparesLaterJWTs(t *testing.T) {
	t.Parallel()
	seeds := newSeeds(t)
	bus := startBus(t, seeds, none, t.TempDir())
	ev := watchSystem(t, bus, seeds)
	hubResponder(t, bus, "atoll.m.a.ping")
	a := register(t, bus, "a")

	if err := bus.RevokeAll(map[string]map[string]time.Time{"a": {a.pub: time.Now().Add(-2 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	a.resign(t, bus)
	var sig connSignals
	ca, err := a.connect(bus, sig.options()...)
	if err != nil {
		t.Fatalf("connect with a JWT signed after the revocation: %v", err)
	}
	t.Cleanup(ca.Close)
	if _, err := ca.Request("atoll.m.a.ping", nil, wait); err != nil {
		t.Fatalf("request with a JWT signed after the revocation: %v", err)
	}
	l := startLeaf(t, bus, a)
	l.awaitLinked(t, "atoll.m.a.ping")

	// Control: revoked now, the same JWT is refused, so the revocation
	// above was in force for this key and spared the JWT only for its date.
	if err := bus.RevokeAll(map[string]map[string]time.Time{"a": {a.pub: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	dropped := map[string]bool{}
	awaitUntil(t, ev.disconnects, "A's client and leaf dropped", nil, func(e server.DisconnectEventMsg) bool {
		if eventUser(e) == a.pub && e.Reason == server.Revocation.String() {
			dropped[e.Client.Kind] = true
		}
		return dropped["Client"] && dropped["Leafnode"]
	})
}

// TestRestartKeepsRevocations: a hub started again with the same keys and
// the stored revocations still refuses the revoked member, as a client and
// as a leaf, and still admits the others with the JWTs they already have.
func TestRestartKeepsRevocations(t *testing.T) {
	t.Parallel()
	seeds := newSeeds(t)
	dir := t.TempDir()
	first := startBus(t, seeds, none, dir)
	a, b := register(t, first, "a"), register(t, first, "b")
	at := time.Now()
	if err := first.RevokeAll(map[string]map[string]time.Time{"a": {a.pub: at}}); err != nil {
		t.Fatal(err)
	}
	first.Close()

	bus := startBus(t, seeds, natsbus.Identities{
		Current: map[string]string{"b": b.pub},
		Revoked: map[string]map[string]time.Time{"a": {a.pub: at}},
	}, dir)
	ev := watchSystem(t, bus, seeds)
	hubResponder(t, bus, "atoll.m.*.ping")

	if c, err := a.connect(bus, nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		if c != nil {
			c.Close()
		}
		t.Errorf("A's revoked credentials after a restart: %v, want %v", err, nats.ErrAuthorization)
	}
	startLeaf(t, bus, a)
	refused := 0
	awaitUntil(t, ev.authErrors, "A's leaf refused twice", nil, func(e server.DisconnectEventMsg) bool {
		if eventUser(e) == a.pub && e.Client.Kind == "Leafnode" {
			refused++
		}
		return refused >= 2
	})
	if n := bus.Server().NumLeafNodes(); n != 0 {
		t.Errorf("the restarted hub has %d leaf connections, want 0", n)
	}

	// Control: B's JWT from before the restart still works, both ways.
	cb, err := b.connect(bus, nats.NoReconnect())
	if err != nil {
		t.Fatalf("B after a restart: %v", err)
	}
	t.Cleanup(cb.Close)
	if _, err := cb.Request("atoll.m.b.ping", nil, wait); err != nil {
		t.Errorf("B's request after a restart: %v", err)
	}
	startLeaf(t, bus, b).awaitLinked(t, "atoll.m.b.ping")
}

// TestMemberJWTRefusesNamesThatWiden: a cluster name is one subject token;
// a wildcard or a dot would widen the member's permissions over others'
// subjects ("*" is every member, "a.b" publishes under a's heartbeat
// space and is counted as a).
func TestMemberJWTRefusesNamesThatWiden(t *testing.T) {
	t.Parallel()
	bus := startBus(t, newSeeds(t), none, t.TempDir())
	key := register(t, bus, "ok").pub
	for _, name := range []string{"", "*", ">", "a.b", "a.*", "a.>", "a b", "a\tb", "a\r\nb", "a*", "a>"} {
		if _, err := bus.MemberJWT(name, key, nil); err == nil {
			t.Errorf("MemberJWT(%q) signed a JWT, want an error", name)
		}
	}
	for _, name := range []string{"a", "eu-west-1", "x9"} {
		if _, err := bus.MemberJWT(name, key, nil); err != nil {
			t.Errorf("MemberJWT(%q): %v", name, err)
		}
	}
	if _, err := bus.MemberJWT("a", "not-a-key", nil); err == nil {
		t.Error("MemberJWT signed for something that is not a user public key")
	}
}
