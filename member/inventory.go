package member

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/member/controller"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// serveInventory answers the hub's questions about what runs in the
// region (protocol.ReplicasSubject, protocol.NodesSubject), from the
// bindings in memory and the nodes' latest heartbeats.
func (m *Member) serveInventory(ctx context.Context, st *state.Store, nodes *controller.Nodes) error {
	tracer := otel.Tracer("github.com/atollhq/atoll/member")
	answer := func(msg *nats.Msg, v any) {
		if msg.Reply == "" {
			return
		}
		data, _ := json.Marshal(v)
		_ = msg.Respond(data)
	}
	if _, err := m.conn.Subscribe(protocol.ReplicasSubject(m.cfg.Name), func(msg *nats.Msg) {
		if m.drill.cutOff(time.Now()) {
			return
		}
		_, span := tracer.Start(ctx, "member.list_replicas", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		q, err := protocol.DecodeReplicasQuery(msg.Data)
		if err != nil {
			answer(msg, protocol.ReplicaList{Version: protocol.Version, Error: err.Error()})
			return
		}
		bindings, err := st.Bindings(ctx)
		if err != nil {
			answer(msg, protocol.ReplicaList{Version: protocol.Version, Error: err.Error()})
			return
		}
		list := controller.ListReplicas(bindings, nodes.Snapshot(time.Now()), q)
		span.SetAttributes(attribute.Int("replicas", list.Total))
		answer(msg, list)
	}); err != nil {
		return fmt.Errorf("subscribe to replica requests: %w", err)
	}
	if _, err := m.conn.Subscribe(protocol.NodesSubject(m.cfg.Name), func(msg *nats.Msg) {
		if m.drill.cutOff(time.Now()) {
			return
		}
		_, span := tracer.Start(ctx, "member.list_nodes", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		bindings, err := st.Bindings(ctx)
		if err != nil {
			answer(msg, protocol.NodeList{Version: protocol.Version, Error: err.Error()})
			return
		}
		answer(msg, protocol.NodeList{Version: protocol.Version, Nodes: controller.ListNodes(bindings, nodes.Snapshot(time.Now()))})
	}); err != nil {
		return fmt.Errorf("subscribe to node requests: %w", err)
	}
	return nil
}
