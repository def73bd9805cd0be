package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/protocol"
)

// keyFile holds the node's nkey seed in its data folder.
const keyFile = "node.nk"

// connect opens the agent's connection to the region's NATS with its own
// key, enrolling the key with the join token first when the member does
// not know it yet.
func (a *Agent) connect(ctx context.Context) (*nats.Conn, error) {
	kp, made, err := a.key()
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	if made && a.cfg.JoinToken != "" {
		// A key made just now is known to nobody: enroll it before the
		// first connection, which the member would refuse (and log as an
		// authentication error).
		if err := a.join(ctx, pub); err != nil {
			return nil, err
		}
	}
	// A refusal on a reconnect may be a member restarting (it reads its
	// keys only once its NATS runs): only refusals for revokedAfter in a
	// row mean the key was revoked, and then retrying would knock forever.
	var refusedSince atomic.Int64
	open := func() (*nats.Conn, error) {
		return nats.Connect(a.cfg.MemberURL, nats.Name("atoll-node-"+a.cfg.Name), nats.Nkey(pub, kp.Sign),
			nats.CustomInboxPrefix(protocol.NodeInboxPrefix(a.cfg.Name)),
			nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.IgnoreAuthErrorAbort(),
			nats.ReconnectHandler(func(*nats.Conn) {
				refusedSince.Store(0)
				// Change notices sent while it was away are lost: ask again.
				select {
				case a.reconnected <- struct{}{}:
				default:
				}
			}),
			nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
				if !errors.Is(err, nats.ErrAuthorization) {
					logNATSError(a.log, sub, err)
					return
				}
				now := time.Now().UnixNano()
				if refusedSince.CompareAndSwap(0, now) {
					a.log.Warn("the member refused this node's key; retrying (a restarting member refuses nodes briefly)")
					return
				}
				if time.Duration(now-refusedSince.Load()) >= a.revokedAfter {
					select {
					case a.refused <- struct{}{}:
					default:
					}
				}
			}))
	}
	nc, err := open()
	switch {
	case err == nil:
		return nc, nil
	case errors.Is(err, nats.ErrAuthorization) && a.cfg.JoinToken == "":
		return nil, fmt.Errorf("connect to the member at %s: this node's key is not enrolled (or was revoked): start it once with --join-token-file (the member's node-join-token)", a.cfg.MemberURL)
	case !errors.Is(err, nats.ErrAuthorization):
		return nil, fmt.Errorf("connect to the member at %s: %w", a.cfg.MemberURL, err)
	}
	if err := a.join(ctx, pub); err != nil {
		return nil, err
	}
	nc, err = open()
	if err != nil {
		return nil, fmt.Errorf("connect to the member at %s after joining: %w", a.cfg.MemberURL, err)
	}
	return nc, nil
}

// join enrolls the node's public key with the member's node join token.
func (a *Agent) join(ctx context.Context, pub string) error {
	nc, err := nats.Connect(a.cfg.MemberURL, nats.Name("atoll-node-join-"+a.cfg.Name),
		nats.UserInfo(protocol.NodeJoinUser, a.cfg.JoinToken), nats.CustomInboxPrefix(protocol.NodeJoinInboxPrefix))
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) {
			return fmt.Errorf("join the member at %s: the node join token was refused (it is in the member's data folder, file node-join-token)", a.cfg.MemberURL)
		}
		return fmt.Errorf("join the member at %s: %w", a.cfg.MemberURL, err)
	}
	defer nc.Close()
	data, _ := json.Marshal(protocol.NodeJoin{Version: protocol.Version, Node: a.cfg.Name, PublicKey: pub})
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, protocol.NodeJoinSubject, data)
	if err != nil {
		return fmt.Errorf("join the member at %s: %w", a.cfg.MemberURL, err)
	}
	var j protocol.NodeJoined
	if err := json.Unmarshal(msg.Data, &j); err != nil {
		return fmt.Errorf("join the member at %s: %w", a.cfg.MemberURL, err)
	}
	if !j.Accepted {
		return fmt.Errorf("join the member at %s: refused: %s", a.cfg.MemberURL, j.Reason)
	}
	a.log.InfoContext(ctx, "node joined its member with its own key", "public_key", pub)
	return nil
}

// key reads the node's key from its data folder, or makes it (mode 0600)
// on first start, and then says it made it.
func (a *Agent) key() (kp nkeys.KeyPair, made bool, err error) {
	path := filepath.Join(a.cfg.DataDir, keyFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(data))))
		if err != nil {
			return nil, false, fmt.Errorf("read the node key %s: %w", path, err)
		}
		return kp, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, fmt.Errorf("read the node key %s: %w", path, err)
	}
	if kp, err = nkeys.CreateUser(); err != nil {
		return nil, false, err
	}
	seed, _ := kp.Seed()
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("write the node key: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(seed, '\n'), 0o600); err != nil {
		return nil, false, fmt.Errorf("write the node key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, false, fmt.Errorf("write the node key: %w", err)
	}
	return kp, true, nil
}
