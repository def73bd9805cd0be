package member

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// serveLogs relays the hub's log requests to the node agents running the
// workload's replicas, and their lines back to the hub.
func (m *Member) serveLogs(ctx context.Context, st *state.Store) (*nats.Subscription, error) {
	sub, err := m.conn.Subscribe(protocol.LogsSubject(m.cfg.Name), func(msg *nats.Msg) {
		if m.drill.cutOff(time.Now()) {
			return
		}
		req, err := protocol.DecodeLogsRequest(msg.Data)
		if err != nil {
			m.endLogs(msg.Reply, err.Error(), "")
			return
		}
		// Listen for the hub's stop first, so an early one is not missed;
		// a follow nobody stops ends after a cap all the same.
		rctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		var stop *nats.Subscription
		if req.Stop != "" {
			stop, _ = m.conn.Subscribe(req.Stop, func(*nats.Msg) { cancel() })
		}
		go func() {
			defer cancel()
			if stop != nil {
				defer stop.Unsubscribe()
			}
			m.relayLogs(rctx, st, msg.Reply, req)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to log requests: %w", err)
	}
	return sub, nil
}

func (m *Member) relayLogs(ctx context.Context, st *state.Store, reply string, req protocol.LogsRequest) {
	outcome := "ok"
	defer func() {
		if m.logReads != nil {
			m.logReads.Add(context.Background(), 1, metric.WithAttributes(attribute.String("outcome", outcome)))
		}
	}()
	bindings, err := st.Bindings(ctx)
	if err != nil {
		outcome = "error"
		m.endLogs(reply, err.Error(), "")
		return
	}
	var targets []protocol.Binding
	for _, b := range bindings {
		if b.Workload == req.Workload && (req.Replica == "" || b.Replica == req.Replica) {
			targets = append(targets, b)
		}
	}
	if len(targets) == 0 {
		outcome = "not_found"
		m.endLogs(reply, fmt.Sprintf("no replica of %s%s runs in cluster %s", req.Workload, replicaSuffix(req.Replica), m.cfg.Name), protocol.LogEndNotFound)
		return
	}
	var mu sync.Mutex
	var problems []string
	noPrevious := "" // the one replica asked for has no previous run
	problem := func(s string) {
		mu.Lock()
		problems = append(problems, s)
		mu.Unlock()
	}
	relay := func(b protocol.Binding) {
		inbox := m.conn.NewRespInbox()
		ch := make(chan *nats.Msg, 64)
		sub, err := m.conn.ChanSubscribe(inbox, ch)
		if err != nil {
			return
		}
		defer sub.Unsubscribe()
		nodeReq := req
		nodeReq.Replica, nodeReq.Stop = b.Replica, protocol.NodeLogsStopSubject(b.Node, nuid.Next())
		data, _ := json.Marshal(nodeReq)
		if err := m.conn.PublishRequest(protocol.NodeLogsSubject(b.Node), inbox, data); err != nil {
			return
		}
		for {
			select {
			case <-ctx.Done():
				_ = m.conn.Publish(nodeReq.Stop, nil)
				return
			case in := <-ch:
				if len(in.Data) == 0 && in.Header.Get("Status") == "503" {
					problem(fmt.Sprintf("node %s is not reachable for replica %s", b.Node, b.Replica))
					return
				}
				if end := in.Header.Get(protocol.LogEndHeader); end != "" {
					if end != "ok" && req.Replica != "" && in.Header.Get(protocol.LogEndCodeHeader) == protocol.LogEndNoPrevious {
						mu.Lock()
						noPrevious = end
						mu.Unlock()
					} else if end != "ok" {
						problem(fmt.Sprintf("replica %s on node %s: %s", b.Replica, b.Node, end))
					}
					if req.HasOptions() && in.Header.Get(protocol.LogVersionHeader) == "" {
						mu.Lock()
						outcome = "old_node"
						mu.Unlock()
						problem(fmt.Sprintf("node %s runs an older agent that ignores --tail, --since, --timestamps and --previous: replica %s's lines above are unfiltered; upgrade the agent", b.Node, b.Replica))
					}
					return
				}
				out := nats.NewMsg(reply)
				out.Header.Set(protocol.LogReplicaHeader, b.Replica)
				out.Data = in.Data
				if m.conn.PublishMsg(out) != nil {
					return
				}
			}
		}
	}
	if req.Follow {
		var wg sync.WaitGroup
		for _, b := range targets {
			wg.Add(1)
			go func() { defer wg.Done(); relay(b) }()
		}
		wg.Wait()
	} else {
		for _, b := range targets {
			relay(b)
		}
	}
	for _, p := range problems {
		out := nats.NewMsg(reply)
		out.Header.Set(protocol.LogReplicaHeader, "")
		out.Data = []byte("# " + p + "\n")
		_ = m.conn.PublishMsg(out)
	}
	if outcome == "ok" && len(problems) > 0 {
		outcome = "node_problem"
	}
	if noPrevious != "" {
		outcome = "no_previous"
		m.endLogs(reply, noPrevious, protocol.LogEndNoPrevious)
		return
	}
	m.endLogs(reply, "ok", "")
}

func replicaSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (replica " + r + ")"
}

// endLogs ends a stream to the hub with reason ("ok" or why it ended
// early) and the kind of end when there is one.
func (m *Member) endLogs(reply, reason, code string) {
	if reply == "" {
		return
	}
	out := nats.NewMsg(reply)
	out.Header.Set(protocol.LogEndHeader, reason)
	out.Header.Set(protocol.LogVersionHeader, strconv.Itoa(protocol.Version))
	if code != "" {
		out.Header.Set(protocol.LogEndCodeHeader, code)
	}
	_ = m.conn.PublishMsg(out)
}
