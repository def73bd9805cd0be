package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// violations collects a connection's asynchronous permission errors.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler() nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		v.mu.Lock()
		v.errs = append(v.errs, err.Error())
		v.mu.Unlock()
	})
}

// saw waits for a permissions violation naming subject.
func (v *violations) saw(t *testing.T, subject string) {
	t.Helper()
	waitFor(t, "a permissions violation on "+subject, 10*time.Second, func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, e := range v.errs {
			if strings.Contains(strings.ToLower(e), "permissions violation") && strings.Contains(e, subject) {
				return true
			}
		}
		return false
	})
}

// TestMemberNATSIsClosedToStrangers tries, as an attacker on the member's
// machine or network would, everything the region's NATS allowed before
// it checked credentials: no anonymous client, no wrong join token, no
// unknown key gets in; a node's own key reaches its own subjects only (not
// the member's JetStream, not desired state, not another node's bindings
// or heartbeats); a join-token holder cannot enroll another key under an
// enrolled node's name; and a revoked node is cut off at once.
func TestMemberNATSIsClosedToStrangers(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("j", api.TokenSpec{})
	memberDir := t.TempDir()
	m, err := member.New(member.Config{JoinToken: join, Name: "edge", Region: "eu", DataDir: memberDir, NATSListen: "127.0.0.1:0", NodeGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()
	waitFor(t, "the member's leaf link", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
	dirs := map[string]string{}
	ended := map[string]chan error{}
	for _, name := range []string{"n1", "n2"} {
		dirs[name] = t.TempDir()
		a, err := node.New(node.Config{MemberURL: m.NATSURL(), JoinToken: m.NodeJoinToken(), Name: name, DataDir: dirs[name],
			MilliCPU: 1000, Memory: 1 << 30, Interval: 200 * time.Millisecond, RevokedAfter: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ended[name] = make(chan error, 1)
		go func() { ended[name] <- a.Run(ctx) }()
	}
	waitFor(t, "2 nodes ready", 20*time.Second, func() bool { return m.Capacity().NodesReady == 2 })
	url := m.NATSURL()

	// Nobody gets in without credentials.
	refused := func(what string, opts ...nats.Option) {
		t.Helper()
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: want the connection refused; it was accepted", what)
			return
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: want an authorization violation; got %v", what, err)
		}
	}
	refused("anonymous")
	refused("a wrong node join token", nats.UserInfo(protocol.NodeJoinUser, "atolln_guess"))
	refused("a user name and password", nats.UserInfo("admin", "admin"))
	stranger, _ := nkeys.CreateUser()
	strangerPub, _ := stranger.PublicKey()
	refused("a key nobody enrolled", nats.Nkey(strangerPub, stranger.Sign))
	// A key someone read (the public key alone) is not enough: the server's
	// nonce must be signed with its seed.
	n1Seed, err := os.ReadFile(filepath.Join(dirs["n1"], "node.nk"))
	if err != nil {
		t.Fatal(err)
	}
	n1, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(n1Seed))))
	if err != nil {
		t.Fatal(err)
	}
	n1Pub, _ := n1.PublicKey()
	refused("n1's public key signed by another key", nats.Nkey(n1Pub, stranger.Sign))

	// n1's own key reaches n1's subjects, and nothing else.
	var v violations
	nc, err := nats.Connect(url, nats.Nkey(n1Pub, n1.Sign), nats.CustomInboxPrefix(protocol.NodeInboxPrefix("n1")), v.handler())
	if err != nil {
		t.Fatalf("n1's key: want a connection; got %v", err)
	}
	defer nc.Close()
	reply, err := nc.Request(protocol.NodeBindingsSubject("n1"), nil, 5*time.Second)
	if err != nil {
		t.Fatalf("n1 asking for its own bindings: want an answer; got %v", err)
	}
	var nb protocol.NodeBindings
	if err := json.Unmarshal(reply.Data, &nb); err != nil {
		t.Fatalf("n1's bindings: %v", err)
	}
	forged, _ := json.Marshal(protocol.DesiredWorkload{Version: protocol.Version, Workload: "evil", Epoch: 1 << 40, Generation: 1, Replicas: 1,
		Template: api.ReplicaTemplate{Driver: "process", Command: "/bin/sh", Args: []string{"-c", "id > /tmp/owned"}}})
	_ = nc.Publish(protocol.DesiredSubject("edge"), forged)
	v.saw(t, protocol.DesiredSubject("edge"))
	_ = nc.Publish(protocol.NodeHeartbeatSubject("n2"), []byte(`{}`))
	v.saw(t, protocol.NodeHeartbeatSubject("n2"))
	_ = nc.PublishRequest(protocol.NodeBindingsSubject("n2"), nats.NewInbox(), nil)
	v.saw(t, protocol.NodeBindingsSubject("n2"))
	if _, err := nc.Subscribe(protocol.NodeChangedSubject("n2"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	v.saw(t, protocol.NodeChangedSubject("n2"))
	if _, err := nc.Subscribe("_INBOX.edge.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	v.saw(t, "_INBOX.edge.>")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	jctx, jcancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = js.KeyValue(jctx, state.BindingsBucket)
	jcancel()
	if err == nil {
		t.Error("n1's key: want the member's JetStream out of reach; it opened the bindings bucket")
	}
	v.saw(t, "$JS.API")
	// None of it reached the member, while the same message from the
	// region's admin does (a control: the check can fail).
	admin, err := nats.Connect(url, m.AdminOption())
	if err != nil {
		t.Fatalf("the admin key: want a connection; got %v", err)
	}
	defer admin.Close()
	control, _ := json.Marshal(protocol.DesiredWorkload{Version: protocol.Version, Workload: "control", Epoch: 1, Generation: 1, Replicas: 0,
		Template: api.ReplicaTemplate{Driver: "sim"}})
	if _, err := admin.Request(protocol.DesiredSubject("edge"), control, 5*time.Second); err != nil {
		t.Fatalf("the admin's desired state: %v", err)
	}
	held, err := m.State().Desired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := held["control"]; !ok {
		t.Error("the control: want the admin's desired state stored")
	}
	if _, ok := held["evil"]; ok {
		t.Errorf("want the forged desired state refused; the member stored it: %+v", held["evil"])
	}

	// The member answers a node only into that node's inbox: a request
	// whose reply names the member's own KV (which the member's
	// connection could write) is dropped, not answered there. The same
	// request with the node's inbox, sent after it on the same connection,
	// is answered: by then the forged one has been handled.
	keysBefore, _, err := m.State().NodeKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{protocol.NodeBindingsSubject("n1"), protocol.NodeHeartbeatSubject("n1")} {
		if err := nc.PublishRequest(subject, "$KV."+state.NodeKeysBucket+".n2", []byte(`{"v":4,"node":"n1"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Request(protocol.NodeBindingsSubject("n1"), nil, 5*time.Second); err != nil {
		t.Fatalf("n1's own bindings after the forged requests: %v", err)
	}
	keysAfter, bad, err := m.State().NodeKeys(ctx)
	if err != nil || bad != 0 || keysAfter["n2"].PublicKey != keysBefore["n2"].PublicKey || keysAfter["n2"].PublicKey == "" {
		t.Errorf("n2's key after requests with a forged reply: want it intact (%s); got %+v, %d bad entries (%v)", keysBefore["n2"].PublicKey, keysAfter["n2"], bad, err)
	}

	// A join-token holder cannot enroll another key under n1's name.
	jc, err := nats.Connect(url, nats.UserInfo(protocol.NodeJoinUser, m.NodeJoinToken()), nats.CustomInboxPrefix(protocol.NodeJoinInboxPrefix))
	if err != nil {
		t.Fatalf("the node join token: want a join connection; got %v", err)
	}
	defer jc.Close()
	req, _ := json.Marshal(protocol.NodeJoin{Version: protocol.Version, Node: "n1", PublicKey: strangerPub})
	msg, err := jc.Request(protocol.NodeJoinSubject, req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var j protocol.NodeJoined
	if err := json.Unmarshal(msg.Data, &j); err != nil || j.Accepted || !strings.Contains(j.Reason, "another key") {
		t.Errorf("joining as n1 with another key: want a refusal naming the other key; got %+v (%v)", j, err)
	}
	refused("the stranger's key after its refused join", nats.Nkey(strangerPub, stranger.Sign))
	// n1's public key cannot be enrolled under another name either.
	req, _ = json.Marshal(protocol.NodeJoin{Version: protocol.Version, Node: "n3", PublicKey: n1Pub})
	if msg, err = jc.Request(protocol.NodeJoinSubject, req, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(msg.Data, &j); err != nil || j.Accepted || !strings.Contains(j.Reason, "enrolled as node n1") {
		t.Errorf("joining as n3 with n1's key: want a refusal; got %+v (%v)", j, err)
	}
	// A join with a forged reply is not answered there.
	req, _ = json.Marshal(protocol.NodeJoin{Version: protocol.Version, Node: "n4", PublicKey: strangerPub})
	if err := jc.PublishRequest(protocol.NodeJoinSubject, "$KV."+state.NodeKeysBucket+".n1", req); err != nil {
		t.Fatal(err)
	}
	if _, err := jc.Request(protocol.NodeJoinSubject, []byte(`{}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if keys, bad, _ := m.State().NodeKeys(ctx); bad != 0 || keys["n1"].PublicKey != n1Pub {
		t.Errorf("n1's key after a join with a forged reply: want it intact; got %+v, %d bad entries", keys["n1"], bad)
	}
	var jv violations
	jc2, err := nats.Connect(url, nats.UserInfo(protocol.NodeJoinUser, m.NodeJoinToken()), nats.CustomInboxPrefix(protocol.NodeJoinInboxPrefix), jv.handler())
	if err != nil {
		t.Fatal(err)
	}
	defer jc2.Close()
	_ = jc2.Publish(protocol.NodeHeartbeatSubject("n1"), []byte(`{}`))
	jv.saw(t, protocol.NodeHeartbeatSubject("n1"))

	// Revoking n2 ('atoll member revoke-node', with the admin key from
	// the member's data folder) closes its connection at once, and its key
	// is refused from then on.
	if err := member.RevokeNode(ctx, url, memberDir, "nobody", false); err == nil || !strings.Contains(err.Error(), "no node of that name") {
		t.Errorf("revoking a node that never joined: want a clear error; got %v", err)
	}
	if err := member.RevokeNode(ctx, url, t.TempDir(), "n2", false); err == nil {
		t.Error("revoking without the member's admin key: want it refused")
	}
	if err := member.RevokeNode(ctx, url, memberDir, "n2", false); err != nil {
		t.Fatalf("revoking n2: %v", err)
	}
	n2Seed, _ := os.ReadFile(filepath.Join(dirs["n2"], "node.nk"))
	n2, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(n2Seed))))
	if err != nil {
		t.Fatal(err)
	}
	n2Pub, _ := n2.PublicKey()
	waitFor(t, "n2 refused once revoked", 10*time.Second, func() bool {
		c, err := nats.Connect(url, nats.Nkey(n2Pub, n2.Sign))
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, nats.ErrAuthorization)
	})
	select {
	case err := <-ended["n2"]:
		if !errors.Is(err, node.ErrRevoked) {
			t.Errorf("n2's agent: want it to stop with ErrRevoked; got %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("n2's agent: want it to stop once its key is refused; it runs on")
	}
	waitFor(t, "n2 NotReady once its connection is closed", 20*time.Second, func() bool { return m.Capacity().NodesReady == 1 })
	// The revocation sticks: n2's key, and its name with any key, cannot
	// join again with the join token, until an admin forgets it.
	joinAs := func(name, pub string) protocol.NodeJoined {
		t.Helper()
		req, _ := json.Marshal(protocol.NodeJoin{Version: protocol.Version, Node: name, PublicKey: pub})
		msg, err := jc.Request(protocol.NodeJoinSubject, req, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var j protocol.NodeJoined
		if err := json.Unmarshal(msg.Data, &j); err != nil {
			t.Fatal(err)
		}
		return j
	}
	fresh, _ := nkeys.CreateUser()
	freshPub, _ := fresh.PublicKey()
	if j := joinAs("n2", n2Pub); j.Accepted || !strings.Contains(j.Reason, "revoked") {
		t.Errorf("n2 joining again with its revoked key: want a refusal; got %+v", j)
	}
	if j := joinAs("n2", freshPub); j.Accepted || !strings.Contains(j.Reason, "revoked") {
		t.Errorf("n2's name with a new key: want a refusal until an admin forgets it; got %+v", j)
	}
	if err := member.RevokeNode(ctx, url, memberDir, "n2", true); err != nil {
		t.Fatalf("forgetting n2: %v", err)
	}
	if j := joinAs("n2", freshPub); !j.Accepted {
		t.Errorf("n2's name with a new key once forgotten: want it enrolled; got %+v", j)
	}
	waitFor(t, "the new key accepted", 10*time.Second, func() bool {
		c, err := nats.Connect(url, nats.Nkey(freshPub, fresh.Sign))
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}
