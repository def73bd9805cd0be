package member

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/member/controller"
	"github.com/atollhq/atoll/member/gateway"
	"github.com/atollhq/atoll/protocol"
)

// endpointsFile keeps the last endpoint table in the data folder, so that
// a member restarted while the hub is away serves its last table at once.
const endpointsFile = "endpoints.json"

// endpointsRefresh is how often a member publishes its endpoints even
// when they did not change (a lost report is repaired by the next).
const endpointsRefresh = 2 * time.Second

// publishEndpoints publishes the region's ready replicas' addresses on
// every change (wake) and every endpointsRefresh, until ctx ends.
func (m *Member) publishEndpoints(ctx context.Context, nodes *controller.Nodes, wake <-chan struct{}) {
	subject := protocol.EndpointsSubject(m.cfg.Name)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var seq uint64
	var last []byte
	var lastAt time.Time
	t := time.NewTicker(endpointsRefresh / 4) // lost nodes drop out within a quarter of the refresh
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
		now := time.Now()
		if m.drill.cutOff(now) {
			continue // a drill cut this member off: the hub hears nothing
		}
		addrs := nodes.Addresses(now)
		body, _ := json.Marshal(addrs)
		if string(body) == string(last) && now.Sub(lastAt) < endpointsRefresh {
			continue
		}
		seq++
		data, _ := json.Marshal(protocol.EndpointReport{Version: protocol.Version, Cluster: m.cfg.Name, Seq: seq, Run: run, Workloads: addrs})
		if err := m.conn.Publish(subject, data); err != nil {
			m.log.WarnContext(ctx, "publishing endpoints failed", "err", err)
			continue
		}
		last, lastAt = body, now
	}
}

// tables is the member's side of endpoint tables: the gateway's, kept
// on disk.
type tables struct {
	mu  sync.Mutex
	gw  *gateway.Gateway
	dir string
}

// load hands the gateway the table kept on disk, if any.
func (t *tables) load() {
	path := filepath.Join(t.dir, endpointsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	info, err := os.Stat(path)
	var tb protocol.EndpointTable
	if err == nil && json.Unmarshal(data, &tb) == nil && t.gw.Update(tb) {
		t.gw.HeardAt(info.ModTime())
	}
}

// take applies a table from the hub and answers what is held.
func (t *tables) take(tb protocol.EndpointTable, log func(msg string, args ...any)) protocol.EndpointAck {
	t.mu.Lock()
	defer t.mu.Unlock()
	epoch, digest := t.gw.Held()
	switch {
	case tb.Check:
		if tb.Digest == digest && tb.Epoch <= epoch {
			t.gw.Confirm()
		}
	case tb.Epoch >= epoch:
		if t.gw.Update(tb) {
			epoch, digest = tb.Epoch, tb.Digest
			if err := writeFileAtomic(filepath.Join(t.dir, endpointsFile), tb); err != nil {
				log("keeping the endpoint table on disk failed", "err", err)
			}
		}
	}
	return protocol.EndpointAck{Version: protocol.Version, Epoch: epoch, Digest: digest}
}

func writeFileAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFile0600(path, data)
}

// serveEndpointTables takes the hub's endpoint tables for the gateway.
func (m *Member) serveEndpointTables(ctx context.Context, t *tables) (*nats.Subscription, error) {
	sub, err := m.conn.Subscribe(protocol.EndpointTableSubject(m.cfg.Name), func(msg *nats.Msg) {
		if m.drill.cutOff(time.Now()) {
			return
		}
		var tb protocol.EndpointTable
		if err := json.Unmarshal(msg.Data, &tb); err != nil || tb.Version < protocol.EndpointsSince {
			m.log.WarnContext(ctx, "an endpoint table that cannot be read", "err", err, "version", tb.Version)
			return
		}
		ack := t.take(tb, func(msg string, args ...any) { m.log.WarnContext(ctx, msg, args...) })
		if msg.Reply != "" {
			data, _ := json.Marshal(ack)
			_ = msg.Respond(data)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to endpoint tables: %w", err)
	}
	return sub, nil
}

// trafficEvery is how often a member reports its gateway's traffic.
const trafficEvery = time.Second

// publishTraffic reports the gateway's tries (per service, serving
// cluster and generation) every trafficEvery, until ctx ends. A report
// that cannot be sent is lost (the hub's windows are samples, and the
// next report covers only its own interval).
func (m *Member) publishTraffic(ctx context.Context, gw *gateway.Gateway) {
	subject := protocol.TrafficSubject(m.cfg.Name)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var seq uint64
	t := time.NewTicker(trafficEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		counts, seconds, dropped := gw.TakeTraffic()
		if dropped > 0 {
			m.log.WarnContext(ctx, "gateway traffic counts dropped: too many services, clusters and generations at once", "dropped", dropped)
		}
		if len(counts) == 0 || m.drill.cutOff(time.Now()) {
			continue
		}
		seq++
		data, _ := json.Marshal(protocol.TrafficReport{Version: protocol.Version, Cluster: m.cfg.Name, Run: run, Seq: seq, Seconds: seconds, Counts: counts})
		if err := m.conn.Publish(subject, data); err != nil {
			m.log.WarnContext(ctx, "publishing traffic failed", "err", err)
		}
	}
}
