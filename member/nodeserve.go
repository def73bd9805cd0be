package member

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// serveNodeAccess serves what node agents ask of the member besides
// heartbeats: joining (enrolling a key), their bindings, and word that
// their bindings changed. It also follows the enrolled keys, so a key
// revoked by a tool (atoll member revoke-node) closes that node's
// connections at once.
func (m *Member) serveNodeAccess(ctx context.Context, st *state.Store) error {
	if _, err := m.loadNodeKeys(ctx, st); err != nil {
		return err
	}
	keys, err := st.WatchNodeKeys(ctx)
	if err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-keys:
				if _, err := m.loadNodeKeys(ctx, st); err != nil && ctx.Err() == nil {
					m.log.WarnContext(ctx, "reloading node keys failed", "err", err)
				}
			}
		}
	}()
	if _, err := m.conn.Subscribe(protocol.NodeJoinSubject, func(msg *nats.Msg) {
		if !strings.HasPrefix(msg.Reply, protocol.NodeJoinInboxPrefix+".") {
			return // answer only into a join inbox (see NodeReplyOK)
		}
		m.join(ctx, st, msg)
	}); err != nil {
		return fmt.Errorf("serve node joins: %w", err)
	}
	if _, err := m.conn.Subscribe(protocol.NodeBindingsWildcard, func(msg *nats.Msg) {
		node := strings.TrimSuffix(strings.TrimPrefix(msg.Subject, "atoll.node."), ".bindings")
		if !api.IsDNSLabel(node) || msg.Subject != protocol.NodeBindingsSubject(node) || !protocol.NodeReplyOK(node, msg.Reply) {
			return
		}
		bs, err := st.NodeBindings(ctx, node)
		if err != nil {
			return // the agent asks again at its next resync
		}
		data, _ := json.Marshal(protocol.NodeBindings{Version: protocol.Version, Bindings: m.withData(bs), Prepull: m.standby.forNode(node)})
		_ = msg.Respond(data)
	}); err != nil {
		return fmt.Errorf("serve node bindings: %w", err)
	}
	n := &changeNotifier{nc: m.conn, pending: map[string]bool{}, wake: make(chan struct{}, 1)}
	st.OnBindingChange(n.changed)
	m.nodeChanged = n.changed
	go n.run(ctx)
	return nil
}

// loadNodeKeys gives the region's NATS the enrolled keys (revoked ones
// left out), one reload at a time, and returns them all.
func (m *Member) loadNodeKeys(ctx context.Context, st *state.Store) (map[string]state.NodeKey, error) {
	m.keysMu.Lock()
	defer m.keysMu.Unlock()
	return m.loadNodeKeysLocked(ctx, st)
}

func (m *Member) loadNodeKeysLocked(ctx context.Context, st *state.Store) (map[string]state.NodeKey, error) {
	keys, bad, err := st.NodeKeys(ctx)
	if err != nil {
		return nil, err
	}
	if bad > 0 {
		m.log.WarnContext(ctx, "node key entries that name no key of their own were ignored", "count", bad)
	}
	nodes := make(map[string]string, len(keys))
	for name, k := range keys {
		if k.RevokedAt == nil {
			nodes[name] = k.PublicKey
		}
	}
	for _, node := range m.auth.setNodes(nodes) {
		m.log.WarnContext(ctx, "closed the connections of a node whose key was revoked", "node", node)
	}
	return keys, nil
}

// join enrolls a node agent's key: a new name takes a valid key that no
// other name holds; an enrolled name only the key it has (a join-token
// holder cannot take over another node: an admin revokes and forgets it
// first); a revoked name or key is refused until an admin forgets it.
func (m *Member) join(ctx context.Context, st *state.Store, msg *nats.Msg) {
	answer := func(j protocol.NodeJoined) {
		data, _ := json.Marshal(j)
		_ = msg.Respond(data)
	}
	var req protocol.NodeJoin
	if len(msg.Data) > 4096 || json.Unmarshal(msg.Data, &req) != nil {
		answer(protocol.NodeJoined{Reason: "malformed join request"})
		return
	}
	if !api.IsDNSLabel(req.Node) {
		answer(protocol.NodeJoined{Reason: fmt.Sprintf("node name %q: must be a DNS-1123 label", req.Node)})
		return
	}
	if !nkeys.IsValidPublicUserKey(req.PublicKey) {
		answer(protocol.NodeJoined{Reason: "the public key is not an nkey user key"})
		return
	}
	m.keysMu.Lock()
	defer m.keysMu.Unlock()
	keys, _, err := st.NodeKeys(ctx)
	if err != nil {
		answer(protocol.NodeJoined{Reason: "reading the enrolled keys failed; try again"})
		return
	}
	refuse := func(reason string) {
		m.log.WarnContext(ctx, "refused a node join", "node", req.Node, "reason", reason)
		answer(protocol.NodeJoined{Reason: reason})
	}
	for name, k := range keys {
		if k.PublicKey == req.PublicKey && name != req.Node {
			refuse(fmt.Sprintf("this key is enrolled as node %s; a key joins under one name", name))
			return
		}
		if k.PublicKey == req.PublicKey && k.RevokedAt != nil {
			refuse(fmt.Sprintf("this key was revoked (node %s); an admin must forget it first ('atoll member revoke-node --forget %s')", name, name))
			return
		}
	}
	if have, ok := keys[req.Node]; ok {
		switch {
		case have.RevokedAt != nil:
			refuse(fmt.Sprintf("node %s was revoked; an admin must forget it first ('atoll member revoke-node --forget %s')", req.Node, req.Node))
		case have.PublicKey == req.PublicKey:
			answer(protocol.NodeJoined{Accepted: true})
		default:
			refuse(fmt.Sprintf("node %s is enrolled with another key; if it was reinstalled, an admin revokes and forgets the old key first ('atoll member revoke-node --forget %s')", req.Node, req.Node))
		}
		return
	}
	if err := st.PutNodeKey(ctx, state.NodeKey{Node: req.Node, PublicKey: req.PublicKey, EnrolledAt: time.Now().UTC()}); err != nil {
		answer(protocol.NodeJoined{Reason: "storing the key failed; try again"})
		return
	}
	if _, err := m.loadNodeKeysLocked(ctx, st); err != nil {
		answer(protocol.NodeJoined{Reason: "loading the key failed; try again"})
		return
	}
	m.log.InfoContext(ctx, "node enrolled", "node", req.Node)
	answer(protocol.NodeJoined{Accepted: true})
}

// changeNotifier tells nodes that their bindings changed, once per node
// however many of its bindings a controller pass wrote.
type changeNotifier struct {
	nc      *nats.Conn
	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{}
}

func (n *changeNotifier) changed(node string) {
	n.mu.Lock()
	n.pending[node] = true
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *changeNotifier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		n.mu.Lock()
		nodes := n.pending
		n.pending = map[string]bool{}
		n.mu.Unlock()
		for node := range nodes {
			_ = n.nc.Publish(protocol.NodeChangedSubject(node), nil)
		}
	}
}
