package member

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// Files in the member's data folder that guard the region's NATS.
const (
	// nodeJoinTokenFile holds the secret node agents join with once.
	nodeJoinTokenFile = "node-join-token"
	// adminKeyFile holds the seed of the region's admin key: full access
	// to the region's NATS, for tools on the member's machine (revoking a
	// node, a simulated node fleet).
	adminKeyFile = "admin.nk"
)

// regionAuth decides who may connect to the region's NATS, and with which
// permissions. No one connects anonymously:
//
//   - the member's own connection, with a key made at start and kept in
//     memory, and the admin key from the data folder: everything;
//   - a node agent, with the key it enrolled: its own subjects only (it
//     heartbeats, asks for its bindings, serves its logs, hears its
//     replies and changes); never JetStream, never desired state, never
//     another node's subjects;
//   - a node agent that has not enrolled yet, as NodeJoinUser with the
//     node join token as its password: the join request alone.
//
// Keys are checked against the nonce the server sends (nkey signatures).
// A revoked node's connections are closed at once.
type regionAuth struct {
	member, admin string // public keys
	joinToken     []byte
	srv           func() *server.Server
	refused       metric.Int64Counter
	// loaded is closed once the enrolled keys were read: until then a
	// node's key waits (a restarted member opens its listener before it
	// can read its KV, and must not refuse its own nodes meanwhile).
	loaded     chan struct{}
	loadedOnce sync.Once

	mu    sync.Mutex
	nodes map[string]string // node -> public key (enrolled, not revoked)
	keys  map[string]string // public key -> node
}

// keysWait bounds how long a node's connection waits for the keys at a
// member's start.
const keysWait = 10 * time.Second

// Check implements server.Authentication.
func (a *regionAuth) Check(c server.ClientAuthentication) bool {
	opts := c.GetOpts()
	if opts.Nkey != "" {
		if !verifyNonce(opts.Nkey, opts.Sig, c.GetNonce()) {
			a.refuse("bad_signature")
			return false
		}
		switch opts.Nkey {
		case a.member, a.admin:
			c.RegisterUser(&server.User{Username: opts.Nkey})
			return true
		}
		select {
		case <-a.loaded:
		case <-time.After(keysWait):
		}
		a.mu.Lock()
		node, ok := a.keys[opts.Nkey]
		a.mu.Unlock()
		if !ok {
			a.refuse("unknown_key")
			return false
		}
		c.RegisterUser(&server.User{Username: nodeUser(node), Permissions: nodePermissions(node)})
		return true
	}
	if opts.Username == protocol.NodeJoinUser && len(a.joinToken) > 0 &&
		subtle.ConstantTimeCompare([]byte(opts.Password), a.joinToken) == 1 {
		c.RegisterUser(&server.User{Username: protocol.NodeJoinUser, Permissions: joinPermissions()})
		return true
	}
	a.refuse("no_credentials")
	return false
}

// nodeUser is the user name a node's connections carry.
func nodeUser(node string) string { return "node:" + node }

func (a *regionAuth) refuse(reason string) {
	if a.refused != nil {
		a.refused.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
	}
}

// verifyNonce checks an nkey's signature of the server's nonce.
func verifyNonce(pub, sig string, nonce []byte) bool {
	kp, err := nkeys.FromPublicKey(pub)
	if err != nil || len(nonce) == 0 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		if raw, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return false
		}
	}
	return kp.Verify(nonce, raw) == nil
}

// nodePermissions are what a node agent may do on the region's NATS.
func nodePermissions(node string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			protocol.NodeHeartbeatSubject(node),
			protocol.NodeBindingsSubject(node),
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			protocol.NodeInboxPrefix(node) + ".>",
			protocol.NodeChangedSubject(node),
			protocol.NodeLogsSubject(node),
			protocol.NodeLogsStopSubject(node, "*"),
		}},
		// Log streams answer the member's requests with many messages, for
		// as long as a follow lasts (the agent ends one after 30 minutes).
		Response: &server.ResponsePermission{MaxMsgs: -1, Expires: time.Hour},
	}
}

// joinPermissions are what a node agent may do before it enrolled.
func joinPermissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{protocol.NodeJoinSubject}},
		Subscribe: &server.SubjectPermission{Allow: []string{protocol.NodeJoinInboxPrefix + ".>"}},
	}
}

// setNodes replaces the enrolled keys (revoked ones left out) and closes
// the open connections of every node whose key left them. It returns
// those nodes.
func (a *regionAuth) setNodes(nodes map[string]string) []string {
	a.mu.Lock()
	old := a.nodes
	a.nodes = nodes
	a.keys = make(map[string]string, len(nodes))
	for node, key := range nodes {
		a.keys[key] = node
	}
	a.mu.Unlock()
	a.loadedOnce.Do(func() { close(a.loaded) })
	var gone []string
	for node, key := range old {
		if nodes[node] != key {
			gone = append(gone, node)
		}
	}
	if srv := a.srv(); srv != nil && len(gone) > 0 {
		// The server names an nkey user's connection by its public key.
		keys := map[string]bool{}
		for _, node := range gone {
			keys[old[node]] = true
		}
		conns, err := srv.Connz(&server.ConnzOptions{Username: true, Limit: 1 << 20})
		if err == nil {
			for _, c := range conns.Conns {
				if keys[c.AuthorizedUser] {
					_ = srv.DisconnectClientByID(c.Cid) // gone already: nothing to close
				}
			}
		}
	}
	return gone
}

// enrolled is the key a node is enrolled with ("" when none).
func (a *regionAuth) enrolled(node string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nodes[node]
}

// loadOrCreateSecret reads a secret file of the data folder, or makes it
// (random, mode 0600) on first start.
func loadOrCreateSecret(dir, name string, make func() (string, error)) (string, error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(data)); s != "" {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	secret, err := make()
	if err != nil {
		return "", err
	}
	if err := writeFile0600(path, []byte(secret+"\n")); err != nil {
		return "", err
	}
	return secret, nil
}

func newJoinToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "atolln_" + hex.EncodeToString(b[:]), nil
}

func newUserSeed() (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	return string(seed), err
}

// NkeyOption is the NATS connect option that authenticates with an nkey
// seed (a node's or the admin's).
func NkeyOption(seed string) (nats.Option, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("read nkey seed: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return nats.Nkey(pub, kp.Sign), nil
}

// RevokeNode revokes a node's key on the region's NATS at natsURL, as the
// admin whose key is in dataDir (the member's data folder): the member
// closes the node's connections at once, and refuses its key, and its
// name, from then on, join token or not. forget instead drops the node's
// entry, revoked or not, so that its name may join again with a new key.
func RevokeNode(ctx context.Context, natsURL, dataDir, node string, forget bool) error {
	what := "revoke"
	if forget {
		what = "forget"
	}
	seed, err := os.ReadFile(filepath.Join(dataDir, adminKeyFile))
	if err != nil {
		return fmt.Errorf("%s node %s: the region's admin key: %w", what, node, err)
	}
	auth, err := NkeyOption(strings.TrimSpace(string(seed)))
	if err != nil {
		return fmt.Errorf("%s node %s: %w", what, node, err)
	}
	nc, err := nats.Connect(natsURL, nats.Name("atoll-revoke-node"), auth)
	if err != nil {
		return fmt.Errorf("%s node %s: connect to the region's NATS at %s: %w", what, node, natsURL, err)
	}
	defer nc.Close()
	st, err := state.Open(ctx, nc)
	if err != nil {
		return fmt.Errorf("%s node %s: %w", what, node, err)
	}
	keys, _, err := st.NodeKeys(ctx)
	if err != nil {
		return fmt.Errorf("%s node %s: %w", what, node, err)
	}
	k, ok := keys[node]
	if !ok {
		return fmt.Errorf("%s node %s: no node of that name is enrolled", what, node)
	}
	if forget {
		return st.DeleteNodeKey(ctx, node)
	}
	if k.RevokedAt == nil {
		now := time.Now().UTC()
		k.RevokedAt = &now
	}
	return st.PutNodeKey(ctx, k)
}
