package natsbus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// TestExternalCluster: a nats-server configured from ServerConfig serves
// the hub as an existing cluster: the hub pushes its account, members
// connect with their own JWTs and their limits, revocation reaches the
// server through the system account and survives a hub reconnect.
func TestExternalCluster(t *testing.T) {
	t.Parallel()
	seeds, err := NewSeeds()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ServerConfig(seeds, Identities{})
	if err != nil {
		t.Fatal(err)
	}
	// As deploy/nats/README.md says: the generated file included, the
	// server's own settings after it.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "atoll-nats.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	own := fmt.Sprintf(`include ./atoll-nats.conf
server_name: ext-1
listen: 127.0.0.1:-1
leafnodes { listen: 127.0.0.1:-1 }
jetstream { domain: hub, store_dir: %q }
resolver { type: full, dir: %q, allow_delete: false, interval: "2m" }
`, filepath.Join(dir, "js"), filepath.Join(dir, "jwt"))
	file := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(file, []byte(own), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("the generated config does not parse: %v\n%s", err, conf)
	}
	if opts.JetStreamDomain != "hub" || opts.LeafNode.Port == 0 || opts.AccountResolver == nil || len(opts.TrustedOperators) != 1 {
		t.Fatalf("the server's settings did not all take: domain %q, leaf port %d, resolver %v, operators %d",
			opts.JetStreamDomain, opts.LeafNode.Port, opts.AccountResolver, len(opts.TrustedOperators))
	}
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("external nats not ready")
	}
	t.Cleanup(s.Shutdown)

	bus, err := Connect(context.Background(), ExternalConfig{URLs: []string{s.ClientURL()}, Seeds: seeds})
	if err != nil {
		t.Fatalf("hub connect: %v", err)
	}
	t.Cleanup(bus.Close)

	// A member with its own JWT: its own subjects pass, others' are refused.
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	token, err := bus.MemberJWT("a", pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	violations := make(chan error, 4)
	closed := make(chan struct{})
	member, err := nats.Connect(s.ClientURL(), nats.UserJWTAndSeed(token, string(seed)), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatalf("member connect: %v", err)
	}
	got := make(chan string, 4)
	sub, _ := bus.Conn().Subscribe("atoll.m.>", func(m *nats.Msg) { got <- m.Subject })
	defer sub.Unsubscribe()
	_ = bus.Conn().Flush()
	_ = member.Publish("atoll.m.b.hb", nil)
	_ = member.Publish("atoll.m.a.hb", nil)
	_ = member.Flush()
	select {
	case subj := <-got:
		if subj != "atoll.m.a.hb" {
			t.Errorf("the hub received %s first; only atoll.m.a.hb may pass", subj)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the member's own heartbeat never arrived")
	}
	select {
	case err := <-violations:
		if !strings.Contains(err.Error(), "atoll.m.b.hb") {
			t.Errorf("unexpected error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publishing as b was not refused")
	}

	// Revocation goes through the system account to the server's resolver.
	if err := bus.RevokeAll(map[string]map[string]time.Time{"a": {pub: time.Now().Add(time.Second)}}); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked member is still connected")
	}
	if _, err := nats.Connect(s.ClientURL(), nats.UserJWTAndSeed(token, string(seed))); err == nil {
		t.Error("the revoked member connected again")
	}
	// A hub connecting anew pushes the same revocations (from the store).
	bus2, err := Connect(context.Background(), ExternalConfig{URLs: []string{s.ClientURL()}, Seeds: seeds, Identities: Identities{Revoked: map[string]map[string]time.Time{"a": {pub: time.Now().Add(time.Second)}}}})
	if err != nil {
		t.Fatal(err)
	}
	bus2.Close()
	if _, err := nats.Connect(s.ClientURL(), nats.UserJWTAndSeed(token, string(seed))); err == nil {
		t.Error("the revoked member connected after a hub reconnect")
	}
}
