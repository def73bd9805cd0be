package controller

import (
	"slices"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// TestStandbyNodes: an image goes to as many nodes as the scheduler
// would pick for a failover's replicas (spread over nodes), only to
// nodes its template's selector allows, still where there is no room
// now, never to nodes that are not Ready, and stays on a Ready node that
// holds it already; presence counts the nodes
// asked by what they reported.
func TestStandbyNodes(t *testing.T) {
	views := nodes(map[string]bool{"a": true, "b": true, "c": true, "d": false}, nil)
	v := views["c"]
	v.Record.Labels = map[string]string{"disk": "ssd"}
	views["c"] = v
	img := func(w string, replicas int32, t api.ReplicaTemplate) protocol.StandbyImage {
		return protocol.StandbyImage{Workload: w, Image: "r.example/" + w + "@sha256:" + string(rune('a'+len(w))), Replicas: replicas, Template: t}
	}
	huge := api.ReplicaTemplate{Driver: "oci", Resources: api.Resources{CPU: "64", Memory: "1Gi"}}
	list := []protocol.StandbyImage{
		img("two", 2, api.ReplicaTemplate{Driver: "oci"}),
		img("ssd", 3, api.ReplicaTemplate{Driver: "oci", NodeSelector: map[string]string{"disk": "ssd"}}),
		img("huge", 1, huge),
		img("all", 10, api.ReplicaTemplate{Driver: "oci"}),
	}
	got := StandbyNodes(views, nil, list, map[string][]string{"b": {list[1].Image}, "d": {list[0].Image}})
	count := func(image string) (n int, on []string) {
		for node, refs := range got {
			if slices.Contains(refs, image) {
				n++
				on = append(on, node)
			}
		}
		slices.Sort(on)
		return n, on
	}
	if n, on := count(list[0].Image); n != 2 || slices.Contains(on, "d") {
		t.Errorf("two replicas: want 2 Ready nodes; got %v", on)
	}
	if _, on := count(list[1].Image); !slices.Equal(on, []string{"b", "c"}) {
		t.Errorf("node selector disk=ssd: want c, and b, which holds it already; got %v", on)
	}
	if n, _ := count(list[2].Image); n != 1 {
		t.Errorf("a replica bigger than any node: want the image on 1 node anyway (room is made before it lands); got %d", n)
	}
	if _, on := count(list[3].Image); !slices.Equal(on, []string{"a", "b", "c"}) {
		t.Errorf("10 replicas: want every Ready node; got %v", on)
	}
	if _, ok := got["d"]; ok {
		t.Errorf("node d is not Ready and was asked: %v", got["d"])
	}

	reported := map[string][]protocol.NodeImage{
		"a": {{Image: list[3].Image, State: protocol.ImagePresent}},
		"b": {{Image: list[3].Image, State: protocol.ImageFailed, Message: "MANIFEST_UNKNOWN"}},
	}
	p := StandbyPresence(list[3:], got, reported, views)
	if len(p) != 1 || p[0].Wanted != 3 || p[0].Present != 1 || p[0].Failed != 1 || p[0].Pulling != 1 || p[0].Message != "b: MANIFEST_UNKNOWN" {
		t.Errorf("presence: want 3 wanted, 1 present, 1 failed (b's answer), 1 pulling; got %+v", p)
	}
}
