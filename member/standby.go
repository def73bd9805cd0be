package member

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/controller"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// standbyEvery is how often the member works out again which nodes hold
// the standby images (nodes come and go, bindings move).
const standbyEvery = 2 * time.Second

// standby is the member's warm standby: the hub's newest StandbyList,
// which nodes were asked to hold which image, and what they reported.
type standby struct {
	mu       sync.Mutex
	epoch    int64
	digest   string
	images   []protocol.StandbyImage
	assigned map[string][]string // node -> image refs
	reported map[string][]protocol.NodeImage
	wake     chan struct{}
}

func newStandby() *standby {
	return &standby{digest: protocol.StandbyDigest(nil), assigned: map[string][]string{}, reported: map[string][]protocol.NodeImage{}, wake: make(chan struct{}, 1)}
}

// take stores a list the hub sent and says what the member holds after.
func (s *standby) take(l protocol.StandbyList) protocol.StandbyAck {
	s.mu.Lock()
	defer s.mu.Unlock()
	ack := protocol.StandbyAck{Version: protocol.Version, Accepted: true}
	switch {
	case l.Check:
	case l.Epoch < s.epoch:
		ack.Accepted, ack.Reason = false, fmt.Sprintf("epoch %d is older than the %d held", l.Epoch, s.epoch)
	default:
		changed := l.Digest != s.digest
		s.epoch, s.digest, s.images = l.Epoch, l.Digest, l.Images
		if changed {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
	ack.Epoch, ack.Digest = s.epoch, s.digest
	return ack
}

// forNode is the images node should pull ahead.
func (s *standby) forNode(node string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assigned[node]
}

// observe keeps what a node's heartbeat says of its images.
func (s *standby) observe(node string, images []protocol.NodeImage) {
	if len(images) > protocol.MaxNodeImages {
		images = images[:protocol.MaxNodeImages]
	}
	images = slices.Clone(images)
	for i := range images {
		images[i].Message = api.Truncate(images[i].Message, 512) // goes on to the hub
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(images) == 0 && len(s.reported[node]) == 0 {
		return
	}
	s.reported[node] = images
}

// presence is each standby image's presence for the status report.
func (s *standby) presence(nodes map[string]controller.NodeView) []protocol.ImagePresence {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.images) == 0 {
		return nil
	}
	return controller.StandbyPresence(s.images, s.assigned, s.reported, nodes)
}

// assign works out again which nodes hold which image and returns the
// nodes whose lists changed.
func (s *standby) assign(nodes map[string]controller.NodeView, bindings []protocol.Binding) []string {
	s.mu.Lock()
	images := s.images
	held := map[string][]string{}
	for node, refs := range s.assigned {
		for _, ni := range s.reported[node] {
			if ni.State == protocol.ImagePresent && slices.Contains(refs, ni.Image) {
				held[node] = append(held[node], ni.Image)
			}
		}
	}
	s.mu.Unlock()
	next := controller.StandbyNodes(nodes, bindings, images, held)
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []string
	for node := range nodes {
		if !slices.Equal(next[node], s.assigned[node]) {
			changed = append(changed, node)
		}
	}
	for node := range s.assigned {
		if _, ok := nodes[node]; !ok {
			delete(s.reported, node) // gone from the registry
		}
	}
	s.assigned = next
	return changed
}

// serveStandby takes the hub's standby lists (protocol.StandbySubject)
// and keeps the nodes' prepull lists in step with them, the nodes and
// the bindings, until ctx ends.
func (m *Member) serveStandby(ctx context.Context, st *state.Store) (*nats.Subscription, error) {
	sub, err := m.conn.Subscribe(protocol.StandbySubject(m.cfg.Name), func(msg *nats.Msg) {
		if m.drill.cutOff(time.Now()) {
			return // a drill cut this member off: the hub hears nothing
		}
		var l protocol.StandbyList
		ack := protocol.StandbyAck{Version: protocol.Version}
		err := json.Unmarshal(msg.Data, &l)
		if err == nil {
			err = l.Validate()
		}
		if err != nil {
			ack.Reason = err.Error()
			m.log.WarnContext(ctx, "standby list from the hub refused", "err", err)
		} else {
			ack = m.standby.take(l)
		}
		data, _ := json.Marshal(ack)
		_ = msg.Respond(data)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to standby lists: %w", err)
	}
	go func() {
		t := time.NewTicker(standbyEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-m.standby.wake:
			}
			bs, err := st.Bindings(ctx)
			if err != nil {
				continue
			}
			changed := m.standby.assign(m.nodes.Snapshot(time.Now()), bs)
			slices.Sort(changed)
			for _, node := range changed {
				if m.nodeChanged != nil {
					m.nodeChanged(node) // read the bindings (and the prepull list) again
				}
			}
		}
	}()
	return sub, m.conn.Flush()
}
