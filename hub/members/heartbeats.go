package members

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/protocol"
)

// Heartbeats serves the members' heartbeats on the hub's NATS: each one
// feeds the monitor and, while this hub may give leases, is answered with
// an ack into the member's own inbox. Every hub serves them, so its health
// view is warm for a takeover.
type Heartbeats struct {
	nc       *nats.Conn
	monitor  *Monitor
	hubID    string
	now      func() time.Time
	onResync func()
	reload   clusterReload

	mu  sync.Mutex
	sub *nats.Subscription
}

// NewHeartbeats serves heartbeats from nc into monitor. onResync (may be
// nil) is called when a member asks for all of its desired state again
// (the placement controller's Wake).
func NewHeartbeats(nc *nats.Conn, monitor *Monitor, hubID string, now func() time.Time, onResync func()) *Heartbeats {
	if now == nil {
		now = time.Now
	}
	return &Heartbeats{nc: nc, monitor: monitor, hubID: hubID, now: now, onResync: onResync}
}

// Start subscribes; it returns once the server has the subscription, so a
// heartbeat sent after Start is served.
func (h *Heartbeats) Start(context.Context) error {
	sub, err := h.nc.Subscribe(protocol.HeartbeatWildcard, h.serve)
	if err == nil {
		err = h.nc.Flush()
	}
	if err != nil {
		return fmt.Errorf("subscribe to heartbeats: %w", err)
	}
	h.mu.Lock()
	h.sub = sub
	h.mu.Unlock()
	return nil
}

// Stop unsubscribes; safe to call twice and before Start.
func (h *Heartbeats) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sub != nil {
		_ = h.sub.Unsubscribe()
		h.sub = nil
	}
}

// serve answers one heartbeat and feeds the monitor. Garbage is dropped
// and counted, never fatal.
func (h *Heartbeats) serve(msg *nats.Msg) {
	at := h.now()
	ctx := context.Background()
	hb, err := protocol.DecodeHeartbeat(msg.Subject, msg.Data)
	if err != nil {
		h.monitor.metrics.dropped.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", protocol.DropReason(err))))
		return
	}
	if !h.monitor.Observe(hb, at) {
		h.monitor.metrics.dropped.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", "unknown_cluster")))
		h.reload.trigger(h.monitor, at) // it may have registered through another hub
		return
	}
	h.monitor.metrics.received.Add(ctx, 1)
	if hb.Resync && h.onResync != nil {
		h.onResync() // a member in a new lease term waits for its resync
	}
	// The ack is the member's lease, so only the leader gives it (and,
	// for LeaderAckGrace, a hub that just stopped leading, so that a
	// PostgreSQL blip does not fence every exclusive workload): the
	// leader alone re-places a silent member's exclusive workloads, when
	// its own count since the last heartbeat it heard runs out. A
	// follower that still heard the member across a partition that
	// cut the leader off would otherwise keep the lease alive while the
	// leader started the work elsewhere. Followers still observe (warm
	// health for a takeover).
	//
	// Answer only through the member's import, never on a reply subject
	// of its choosing, which would have the hub publish on another
	// member's subjects.
	if h.monitor.mayAck(at) && protocol.ImportedReply(msg.Reply) {
		// Every hub of this version folds status deltas (placer.StatusFolder).
		ack, _ := json.Marshal(protocol.HeartbeatAck{Version: protocol.Version, Seq: hb.Seq, HubTime: at.UTC(), HubID: h.hubID, StatusDeltas: true})
		_ = msg.Respond(ack)
	}
}

// clusterReload reloads the health monitor's clusters when a heartbeat
// comes from a cluster it does not know: one that registered through
// another hub since this hub's last reload. At most one reload a second.
type clusterReload struct {
	last    atomic.Int64 // unix nanos of the last reload started
	running atomic.Bool
}

func (r *clusterReload) trigger(m *Monitor, now time.Time) {
	if now.UnixNano()-r.last.Load() < int64(time.Second) || !r.running.CompareAndSwap(false, true) {
		return
	}
	r.last.Store(now.UnixNano())
	go func() {
		defer r.running.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Load(ctx); err != nil {
			m.log.WarnContext(ctx, "loading clusters registered through another hub failed", "err", err)
		}
	}()
}
