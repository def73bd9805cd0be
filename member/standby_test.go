package member

import (
	"slices"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/controller"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// TestStandbyTakesNewerLists: a list replaces the one held only at the
// same or a newer epoch; a check changes nothing and says what is held;
// the nodes whose prepull lists changed are named; nodes' long messages
// are cut before they travel on.
func TestStandbyTakesNewerLists(t *testing.T) {
	s := newStandby()
	img := protocol.StandbyImage{Workload: "app", Image: "r.example/app:v1@sha256:" + strings.Repeat("a", 64), Replicas: 1,
		Template: api.ReplicaTemplate{Driver: "oci"}}
	list := protocol.StandbyList{Version: protocol.Version, Epoch: 10, Digest: protocol.StandbyDigest([]protocol.StandbyImage{img}), Images: []protocol.StandbyImage{img}}
	if ack := s.take(list); !ack.Accepted || ack.Epoch != 10 || ack.Digest != list.Digest {
		t.Fatalf("first list: %+v", ack)
	}
	older := protocol.StandbyList{Version: protocol.Version, Epoch: 9, Digest: protocol.StandbyDigest(nil)}
	if ack := s.take(older); ack.Accepted || ack.Digest != list.Digest {
		t.Errorf("an older epoch: want refused, the list kept; got %+v", ack)
	}
	if ack := s.take(protocol.StandbyList{Version: protocol.Version, Epoch: 1, Check: true}); !ack.Accepted || ack.Epoch != 10 || ack.Digest != list.Digest {
		t.Errorf("a check: want what is held; got %+v", ack)
	}
	nodes := map[string]controller.NodeView{
		"n1": {Ready: true, Record: state.NodeRecord{Name: "n1", Allocatable: protocol.Resources{MilliCPU: 1000, Memory: 1 << 30}}},
		"n2": {Ready: false, Record: state.NodeRecord{Name: "n2"}},
	}
	if changed := s.assign(nodes, nil); !slices.Equal(changed, []string{"n1"}) || !slices.Equal(s.forNode("n1"), []string{img.Image}) {
		t.Errorf("assign: changed %v, n1 asked %v; want n1 asked for the image", changed, s.forNode("n1"))
	}
	if changed := s.assign(nodes, nil); len(changed) != 0 {
		t.Errorf("assign again: %v changed; want none", changed)
	}
	s.observe("n1", []protocol.NodeImage{{Image: img.Image, State: protocol.ImageFailed, Message: strings.Repeat("x", 5000)}})
	p := s.presence(nodes)
	if len(p) != 1 || p[0].Failed != 1 || len(p[0].Message) > 600 {
		t.Errorf("presence: want 1 failed with a bounded message; got %d entries, %+v", len(p), p)
	}
}
