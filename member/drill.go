package member

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/protocol"
)

// drillState is a failover drill the hub started on this member: an
// outage (the region goes dark) or a partition (hub and member cannot
// hear each other) until a restore or the end of its duration, which
// the member keeps by itself so a member cut off comes back on time.
type drillState struct {
	mu    sync.Mutex
	name  string
	kind  string
	until time.Time
}

// active returns the drill kind in force at now, or "".
func (d *drillState) active(now time.Time) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kind == "" || !now.Before(d.until) {
		return ""
	}
	return d.kind
}

// cutOff says whether the member must neither speak to nor answer the hub.
func (d *drillState) cutOff(now time.Time) bool { return d.active(now) != "" }

// dark says whether the region is down (its replicas stopped).
func (d *drillState) dark(now time.Time) bool { return d.active(now) == protocol.DrillOutage }

// serveDrills takes drill commands from the hub. They are the only hub
// messages a member in a drill still hears, so abort works.
func (m *Member) serveDrills(ctx context.Context, wake func()) (*nats.Subscription, error) {
	sub, err := m.conn.Subscribe(protocol.DrillSubject(m.cfg.Name), func(msg *nats.Msg) {
		var c protocol.DrillCommand
		ack := protocol.DrillAck{Version: protocol.Version}
		switch err := json.Unmarshal(msg.Data, &c); {
		case err != nil:
			ack.Reason = "malformed drill command"
		case c.Version < protocol.MinVersion || c.Version > protocol.Version:
			ack.Reason = fmt.Sprintf("protocol version %d not supported", c.Version)
		case c.Kind == protocol.DrillRestore:
			m.drill.mu.Lock()
			was := m.drill.kind
			m.drill.kind, m.drill.name = "", ""
			m.drill.mu.Unlock()
			ack.Accepted = true
			if was != "" {
				m.log.InfoContext(ctx, "drill ended: restored", "drill", c.Drill, "kind", was)
			}
		case c.Kind != protocol.DrillOutage && c.Kind != protocol.DrillPartition:
			ack.Reason = fmt.Sprintf("drill kind %q: must be outage, partition or restore", c.Kind)
		case c.DurationMillis <= 0 || c.DurationMillis > int64(24*time.Hour/time.Millisecond):
			ack.Reason = "drill duration must be between 1ms and 24h"
		default:
			m.drill.mu.Lock()
			busy := m.drill.kind != "" && time.Now().Before(m.drill.until) && m.drill.name != c.Drill
			if !busy {
				m.drill.name, m.drill.kind = c.Drill, c.Kind
				m.drill.until = time.Now().Add(time.Duration(c.DurationMillis) * time.Millisecond)
			}
			m.drill.mu.Unlock()
			if busy {
				ack.Reason = "another drill is running on this member"
				break
			}
			ack.Accepted = true
			m.log.WarnContext(ctx, "drill started: this member is cut off from the hub", "drill", c.Drill, "kind", c.Kind,
				"duration", time.Duration(c.DurationMillis)*time.Millisecond)
		}
		if msg.Reply != "" {
			data, _ := json.Marshal(ack)
			_ = msg.Respond(data)
		}
		wake()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to drill commands: %w", err)
	}
	return sub, nil
}
