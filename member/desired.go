package member

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// serveDesired stores the desired workloads the hub sends (one per
// request, or many in a DesiredBatch) into the member's KV, fenced by
// epoch, and acknowledges each once it is stored.
func (m *Member) serveDesired(ctx context.Context, st *state.Store, changed func(workloads ...string)) (*nats.Subscription, error) {
	received, _ := m.cfg.Meter.Meter("github.com/atollhq/atoll/member").Int64Counter("member.desired.received",
		metric.WithUnit("{message}"), metric.WithDescription("Desired-state messages from the hub, by result."))
	// Deliveries are stored concurrently (a bounded number at once): each
	// is a KV write the region's JetStream can overlap, and epochs fence
	// any two for the same workload whatever their order.
	sem := make(chan struct{}, storesInFlight)
	sub, err := m.conn.Subscribe(protocol.DesiredSubject(m.cfg.Name), func(msg *nats.Msg) {
		if m.drill.cutOff(time.Now()) {
			return // a drill cut this member off: the hub hears nothing
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			m.storeDesired(ctx, st, msg, received, changed)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to desired state: %w", err)
	}
	// Batches share the bound: one in flight holds one place.
	_, err = m.conn.Subscribe(protocol.DesiredBatchSubject(m.cfg.Name), func(msg *nats.Msg) {
		if m.drill.cutOff(time.Now()) {
			return
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			m.storeDesiredBatch(ctx, st, msg, received, changed)
		}()
	})
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to desired state batches: %w", err)
	}
	return sub, m.conn.Flush()
}

// storesInFlight bounds the deliveries stored at once; the hub keeps as
// many in flight (hub.deliveriesInFlight).
const storesInFlight = 256

// storeDesired stores one delivery and answers it.
func (m *Member) storeDesired(ctx context.Context, st *state.Store, msg *nats.Msg, received metric.Int64Counter, changed func(workloads ...string)) {
	d, err := protocol.DecodeDesired(msg.Data)
	ack := protocol.DesiredAck{Version: protocol.Version, Workload: d.Workload, Epoch: d.Epoch}
	result := "accepted"
	if err != nil {
		ack.Reason, result = "invalid desired state: "+err.Error(), "invalid"
	} else if ack, err = st.PutDesired(ctx, d); err != nil {
		ack.Accepted, ack.Reason, result = false, err.Error(), "error"
		m.log.WarnContext(ctx, "storing desired state failed", "workload", d.Workload, "epoch", d.Epoch, "err", err)
	} else if !ack.Accepted {
		result = "stale"
	} else {
		m.fence.desired(d.Workload, d.Epoch, d.Exclusive, d.Deleted, d.Term, time.Now())
		changed(d.Workload) // act now, not at the next resync
	}
	received.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	if msg.Reply == "" {
		return
	}
	data, _ := json.Marshal(ack)
	_ = msg.Respond(data)
}

// storeDesiredBatch stores a batch of deliveries (each judged on its
// own, the KV writes overlapped) and answers it with one ack each.
func (m *Member) storeDesiredBatch(ctx context.Context, st *state.Store, msg *nats.Msg, received metric.Int64Counter, changed func(workloads ...string)) {
	answer := func(a protocol.DesiredBatchAck) {
		if msg.Reply == "" {
			return
		}
		data, _ := json.Marshal(a)
		_ = msg.Respond(data)
	}
	b, err := protocol.DecodeDesiredBatch(msg.Data)
	if err != nil {
		received.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "invalid")))
		answer(protocol.DesiredBatchAck{Version: protocol.Version, Reason: "invalid desired state batch: " + err.Error()})
		return
	}
	out := protocol.DesiredBatchAck{Version: protocol.Version, Acks: make([]protocol.DesiredAck, len(b.Workloads))}
	results := make([]string, len(b.Workloads))
	var valid []protocol.DesiredWorkload
	var at []int // valid[k] is b.Workloads[at[k]]
	for i, d := range b.Workloads {
		out.Acks[i] = protocol.DesiredAck{Version: protocol.Version, Workload: d.Workload, Epoch: d.Epoch}
		if err := d.Validate(); err != nil {
			out.Acks[i].Reason, results[i] = "invalid desired state: "+err.Error(), "invalid"
			continue
		}
		valid = append(valid, d)
		at = append(at, i)
	}
	// Each workload acts as soon as it is stored (its fence first), not
	// once the whole batch is.
	acks, errs := st.PutDesiredBatch(ctx, valid, func(k int) {
		d := valid[k]
		m.fence.desired(d.Workload, d.Epoch, d.Exclusive, d.Deleted, d.Term, time.Now())
		changed(d.Workload)
	})
	for k, d := range valid {
		i := at[k]
		switch ack, err := acks[k], errs[k]; {
		case err != nil:
			out.Acks[i].Reason, results[i] = err.Error(), "error"
			m.log.WarnContext(ctx, "storing desired state failed", "workload", d.Workload, "epoch", d.Epoch, "err", err)
		case !ack.Accepted:
			out.Acks[i], results[i] = ack, "stale"
		default:
			out.Acks[i], results[i] = ack, "accepted"
		}
	}
	for _, r := range results {
		received.Add(ctx, 1, metric.WithAttributes(attribute.String("result", r)))
	}
	answer(out)
}

// serveDigest answers the hub's digest requests with the epoch held for
// every workload.
func (m *Member) serveDigest(ctx context.Context, st *state.Store) (*nats.Subscription, error) {
	sub, err := m.conn.Subscribe(protocol.DigestSubject(m.cfg.Name), func(msg *nats.Msg) {
		if msg.Reply == "" || m.drill.cutOff(time.Now()) {
			return
		}
		held, err := st.Desired(ctx)
		if err != nil {
			m.log.WarnContext(ctx, "digest: reading desired state failed", "err", err)
			return // no answer: the hub retries at the next digest round
		}
		d := protocol.Digest{Version: protocol.Version, Workloads: make(map[string]int64, len(held))}
		for w, dw := range held {
			d.Workloads[w] = dw.Epoch
		}
		data, _ := json.Marshal(d)
		_ = msg.Respond(data)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to digest requests: %w", err)
	}
	return sub, nil
}
