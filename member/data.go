package member

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// dataKeyFile holds the member's data key (base64 of 32 bytes, mode
// 0600), which seals the configs and secrets kept in its JetStream.
// Losing it loses nothing the hub cannot send again.
const dataKeyFile = "data.key"

// openData opens the member's store of configs and secrets with its data
// key, made at the first start.
func (m *Member) openData(ctx context.Context) error {
	text, err := loadOrCreateSecret(m.cfg.DataDir, dataKeyFile, func() (string, error) {
		b := make([]byte, state.DataKeySize)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(b), nil
	})
	if err != nil {
		return fmt.Errorf("data key %s: %w", filepath.Join(m.cfg.DataDir, dataKeyFile), err)
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return fmt.Errorf("data key %s: not base64", filepath.Join(m.cfg.DataDir, dataKeyFile))
	}
	m.data, err = state.OpenData(ctx, m.conn, key)
	return err
}

// serveData stores and removes the configs and secrets the hub sends
// (protocol.DataSubject) and answers with what it holds; the nodes whose
// replicas use them hear of a change.
func (m *Member) serveData(ctx context.Context, st *state.Store) (*nats.Subscription, error) {
	sub, err := m.conn.Subscribe(protocol.DataSubject(m.cfg.Name), func(msg *nats.Msg) {
		if m.drill.cutOff(time.Now()) {
			return // a drill cut this member off: the hub hears nothing
		}
		ans := protocol.DataHeld{Version: protocol.Version}
		var req protocol.DataRequest
		var err error
		if err = json.Unmarshal(msg.Data, &req); err == nil {
			switch {
			case req.Put != nil:
				if err = req.Put.Validate(); err == nil {
					err = m.data.Put(ctx, *req.Put)
				}
			case req.Delete != "":
				err = m.data.Delete(ctx, req.Delete, req.DeleteVersion)
			}
		}
		if err != nil {
			ans.Error = err.Error()
			m.log.WarnContext(ctx, "configuration from the hub not stored", "err", err)
		}
		if req.Put != nil || req.Delete != "" {
			m.touchNodes(ctx, st)
			if m.controller != nil {
				m.controller.Wake() // new versions roll the replicas that use them
			}
		}
		ans.Held, ans.Versions = m.data.Held(), m.data.Versions()
		data, _ := json.Marshal(ans)
		_ = msg.Respond(data)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to configuration: %w", err)
	}
	return sub, m.conn.Flush()
}

// touchNodes tells every node with bindings to read them again (their
// data may have changed).
func (m *Member) touchNodes(ctx context.Context, st *state.Store) {
	if m.nodeChanged == nil {
		return
	}
	bs, err := st.Bindings(ctx)
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, b := range bs {
		if !seen[b.Node] {
			seen[b.Node] = true
			m.nodeChanged(b.Node)
		}
	}
}

// withData fills in each binding's configs and secrets for its node.
func (m *Member) withData(bs []protocol.Binding) []protocol.Binding {
	if m.data == nil {
		return bs
	}
	var items map[string]map[int64]protocol.DataItem
	for i := range bs {
		if items == nil {
			items = m.data.Items()
		}
		bs[i].Data = protocol.ResolveData(bs[i].Template, items) // nil without references
	}
	return bs
}
