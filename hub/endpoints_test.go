package hub_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/protocol"
)

// endpointsEnv is a hub with three members and a service web over the
// workload web. Each member has a node the test plays (heartbeats sent
// with the member's admin key, every 500ms and on each change) whose
// ready replicas of web the test chooses: the member publishes them as
// it would a real node's.
type endpointsEnv struct {
	e       *env
	members []*member.Member
	stops   []func()
	mu      sync.Mutex
	ready   []int // per member: ready replicas of web on its node
	conns   []*nats.Conn
}

func newEndpointsEnv(t testing.TB) *endpointsEnv {
	e := newMemberEnv(t, members.HealthConfig{})
	x := &endpointsEnv{e: e, ready: make([]int, 3)}
	join := e.joinToken("j", api.TokenSpec{Uses: 3})
	for i := 1; i <= 3; i++ {
		m, stop := runMember(t, join, fmt.Sprintf("m%d", i), t.TempDir())
		nc, err := nats.Connect(m.NATSURL(), m.AdminOption())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		x.members, x.stops, x.conns = append(x.members, m), append(x.stops, stop), append(x.conns, nc)
	}
	// One replica per member (Duplicated), so every member may serve web.
	w := workload("web", 1, nil)
	w.Spec.Template = api.ReplicaTemplate{Driver: "process", Command: "/bin/true"}
	w.Spec.Placement = &api.PlacementPolicy{ReplicaMode: "Duplicated"}
	e.create(w)
	if r := e.json("POST", "/api/v1/services", api.Service{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Service"},
		Metadata: api.ObjectMeta{Name: "web"}, Spec: api.ServiceSpec{Workload: "web", Ports: []api.ServicePort{{Name: "http"}}}}); r.status != 201 {
		t.Fatalf("create service web: %d %s", r.status, r.body)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for i := range x.members {
				x.beat(i)
			}
		}
	}()
	return x
}

// beat sends member i its node's heartbeat.
func (x *endpointsEnv) beat(i int) {
	x.mu.Lock()
	n := x.ready[i]
	x.mu.Unlock()
	node := fmt.Sprintf("n%d", i+1)
	hb := protocol.NodeHeartbeat{Version: protocol.Version, Node: node, Allocatable: protocol.Resources{MilliCPU: 1000, Memory: 1 << 30}, Replicas: []protocol.ReplicaState{}}
	for j := 0; j < n; j++ {
		hb.Replicas = append(hb.Replicas, protocol.ReplicaState{ID: fmt.Sprintf("web-%d-%d", i, j), Workload: "web", Phase: "Running", Ready: true, Port: 20000 + j})
	}
	data, _ := json.Marshal(hb)
	_ = x.conns[i].Publish(protocol.NodeHeartbeatSubject(node), data)
}

// report makes n replicas of web ready on member i's node.
func (x *endpointsEnv) report(t testing.TB, i, n int) {
	x.mu.Lock()
	x.ready[i] = n
	x.mu.Unlock()
	x.beat(i)
}

// everywhere waits until every running member's gateway holds n
// endpoints of web.
func (x *endpointsEnv) everywhere(t testing.TB, n int, skip ...int) time.Duration {
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	for {
		all := true
		for i, m := range x.members {
			if !slices.Contains(skip, i) && m.Gateway().Endpoints("web") != n {
				all = false
			}
		}
		if all {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			var got []int
			for _, m := range x.members {
				got = append(got, m.Gateway().Endpoints("web"))
			}
			t.Fatalf("want %d endpoints of web in every gateway within 20s; gateways hold %v", n, got)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// TestEndpointsReachEveryGateway: a member's ready replicas reach every
// member's gateway; a member cannot report for another cluster; a
// service with spec.gateways reaches only the gateways it selects; a
// cluster the hub declares Unreachable has its endpoints withdrawn from
// every gateway.
func TestEndpointsReachEveryGateway(t *testing.T) {
	t.Parallel()
	x := newEndpointsEnv(t)
	x.report(t, 0, 2)
	x.everywhere(t, 2)
	x.report(t, 1, 1)
	x.everywhere(t, 3)

	// m3 speaking as m1: NATS refuses the subject (its account may
	// publish only under its own prefix), and a message naming another
	// cluster than its subject is refused by the table.
	data, _ := json.Marshal(protocol.EndpointReport{Version: protocol.Version, Cluster: "m1", Seq: 1 << 50, Run: "forged",
		Workloads: map[string][]protocol.ReplicaAddress{"web": {{Replica: "evil", Host: "10.0.0.66", Port: 80}}}})
	_ = x.members[2].Conn().Publish(protocol.EndpointsSubject("m1"), data)
	_ = x.members[2].Conn().Publish(protocol.EndpointsSubject("m3"), data)
	if err := x.members[2].Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	x.report(t, 1, 2) // a later, legitimate change: everything before it was handled
	x.everywhere(t, 4)
	var st api.Service
	if r := x.e.json("GET", "/api/v1/services/web", nil); r.status != 200 || json.Unmarshal(r.body, &st) != nil || st.Status.Endpoints != 4 || !slices.Equal(st.Status.Clusters, []string{"m1", "m2"}) {
		t.Errorf("want 4 endpoints in m1 and m2 (nothing forged); got %d %s", r.status, r.body)
	}

	// m1's gateway holds another table at a later epoch (as one sent by
	// a hub that led in between): the next change reaches it all the same.
	ahead := time.Now().Add(time.Minute).UnixNano()
	if !x.members[0].Gateway().Update(protocol.EndpointTable{Version: protocol.Version, Epoch: ahead, Digest: "another-hubs"}) {
		t.Fatal("the gateway refused a later table")
	}
	x.report(t, 1, 1)
	x.everywhere(t, 3)
	x.report(t, 1, 2)
	x.everywhere(t, 4)

	// A service served by the gateways of clusters labelled tier=edge
	// reaches m1's gateway only; m2 labelled too gets it (a member moving
	// to another part of the table takes its newer epoch).
	label := func(cluster string) {
		if r := x.e.do("PATCH", "/api/v1/clusters/"+cluster, adminSecret, "application/merge-patch+json", []byte(`{"metadata":{"labels":{"tier":"edge"}}}`)); r.status != 200 {
			t.Fatalf("label %s: %d %s", cluster, r.status, r.body)
		}
	}
	label("m1")
	edge := api.Service{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Service"}, Metadata: api.ObjectMeta{Name: "edge"},
		Spec: api.ServiceSpec{Workload: "web", Ports: []api.ServicePort{{Name: "http"}}, Gateways: &api.LabelSelector{MatchLabels: map[string]string{"tier": "edge"}}}}
	if r := x.e.json("POST", "/api/v1/services", edge); r.status != 201 {
		t.Fatalf("create service edge: %d %s", r.status, r.body)
	}
	serves := func(i int) bool { return slices.Contains(x.members[i].Gateway().Services(), "edge") }
	waitFor(t, "m1's gateway serving edge", 20*time.Second, func() bool { return serves(0) && x.members[0].Gateway().Endpoints("edge") == 4 })
	x.report(t, 2, 1) // a later change, in every member's part
	x.everywhere(t, 5)
	if serves(1) || serves(2) {
		t.Errorf("want edge only in m1's gateway (tier=edge); m2 %v, m3 %v", x.members[1].Gateway().Services(), x.members[2].Gateway().Services())
	}
	label("m2")
	waitFor(t, "m2's gateway serving edge once labelled", 20*time.Second, func() bool { return serves(1) })
	if serves(2) {
		t.Errorf("m3 is not labelled: want edge not in its gateway")
	}

	// m2 stops: once Unreachable, its endpoints leave every gateway.
	x.stops[1]()
	waitFor(t, "m2 Unreachable", 30*time.Second, func() bool {
		l, _ := x.e.server.Monitor().Live("m2")
		return l.Health == api.HealthUnreachable
	})
	d := x.everywhere(t, 3, 1)
	t.Logf("m2's endpoints withdrawn from the other gateways %s after the hub saw it Unreachable", d)

	// m3 flaps its reports: past the burst the hub defers them, and says
	// so in an event on the cluster.
	for i := 1; i <= 60; i++ {
		data, _ := json.Marshal(protocol.EndpointReport{Version: protocol.Version, Cluster: "m3", Seq: uint64(i), Run: "flap",
			Workloads: map[string][]protocol.ReplicaAddress{"web": {{Replica: fmt.Sprint("flap-", i%2), Host: "127.0.0.1", Port: 20000 + i%2}}}})
		_ = x.members[2].Conn().Publish(protocol.EndpointsSubject("m3"), data)
	}
	waitFor(t, "an EndpointReportsThrottled event on cluster m3", 20*time.Second, func() bool {
		var list api.EventList
		r := x.e.do("GET", "/api/v1/events?labelSelector="+api.LabelEventName+"%3Dm3", adminSecret, "", nil)
		if r.status != 200 || json.Unmarshal(r.body, &list) != nil {
			t.Fatalf("list events: %d %s", r.status, r.body)
		}
		for _, ev := range list.Items {
			if ev.Reason == "EndpointReportsThrottled" && ev.InvolvedObject.Kind == "Cluster" && ev.Type == api.EventWarning && ev.Count > 0 {
				return true
			}
		}
		return false
	})
}

// BenchmarkEndpointPropagation: from a member's endpoint report to every
// gateway (three members) holding the change, through the hub. Changes
// come at most every 150ms (an honest member's pace: the hub holds each
// member to 10 reports a second past a burst of 20).
//
//	go test ./hub -run '^$' -bench EndpointPropagation -benchtime 200x
func BenchmarkEndpointPropagation(b *testing.B) {
	x := newEndpointsEnv(b)
	x.report(b, 0, 1)
	x.everywhere(b, 1)
	lat := make([]time.Duration, 0, b.N)
	pace := time.NewTicker(150 * time.Millisecond)
	defer pace.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-pace.C
		n := 2 + i%2
		x.report(b, 0, n)
		lat = append(lat, x.everywhere(b, n))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
