package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
	"github.com/atollhq/atoll/protocol"
	"github.com/nats-io/nats.go"
)

// waitFor polls a condition of in-process components (a bounded wait on
// state that changes through NATS and timers).
func waitFor(t testing.TB, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func workloadStatus(m *member.Member, w string) protocol.WorkloadStatus {
	for _, s := range m.Workloads() {
		if s.Workload == w {
			return s
		}
	}
	return protocol.WorkloadStatus{}
}

// TestRegionRunsAndHeals: desired state from the hub becomes replicas on a
// region's node agents; a node that goes silent loses its replicas to the
// others; scaling and a tombstone take effect.
func TestRegionRunsAndHeals(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("j", api.TokenSpec{})
	m, err := member.New(member.Config{JoinToken: join, Name: "r1", Region: "eu", DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", NodeGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()
	waitFor(t, "the member's first heartbeat ack (its leaf link is up)", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
	stops := map[string]context.CancelFunc{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		a, err := node.New(node.Config{MemberURL: m.NATSURL(), JoinToken: m.NodeJoinToken(), Name: name, Zone: fmt.Sprintf("z%d", i), DataDir: t.TempDir(),
			MilliCPU: 2000, Memory: 4 << 30, Interval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		actx, acancel := context.WithCancel(ctx)
		stops[name] = acancel
		go func() { _ = a.Run(actx) }()
	}
	waitFor(t, "3 nodes ready", 10*time.Second, func() bool { return m.Capacity().NodesReady == 3 })
	tmpl := api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "250m", Memory: "128Mi"}, Sim: &api.SimSpec{StartLatency: "10ms"}}
	// The hub places the workload (only r1 exists) and delivers it.
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 4, Template: tmpl}})
	waitFor(t, "4 replicas ready", 10*time.Second, func() bool { return workloadStatus(m, "web").Ready == 4 })
	// The member's reports fold into the Workload's status at the hub.
	var w api.Workload
	waitFor(t, "Workload.status folded from the member's report", 10*time.Second, func() bool {
		w = api.Workload{}
		_ = e.admin.Get(ctx, "workloads", "web", &w)
		return w.Status.ReadyReplicas == 4
	})
	if len(w.Status.Clusters) != 1 || w.Status.Clusters[0].Cluster != "r1" || w.Status.Clusters[0].Region != "eu" ||
		w.Status.ObservedGeneration != 1 || w.Status.Placement == nil || w.Status.Placement.Clusters["r1"] != 4 {
		t.Errorf("folded status: %+v", w.Status)
	}

	onNode := func(n string) int {
		bs, _ := m.State().NodeBindings(ctx, n)
		return len(bs)
	}
	// Read once, check and report the same figures: bindings may move
	// between two reads.
	if n1, n2, n3 := onNode("n1"), onNode("n2"), onNode("n3"); n1 == 0 || n2 == 0 || n3 == 0 {
		t.Errorf("zone spread: replicas per node %d %d %d", n1, n2, n3)
	}
	// n1 goes silent: after the grace its replicas run on n2 and n3, all
	// four ready.
	stops["n1"]()
	waitFor(t, "n1's replicas rebound onto n2 and n3, all ready", 30*time.Second, func() bool {
		return onNode("n1") == 0 && onNode("n2")+onNode("n3") == 4 && workloadStatus(m, "web").Ready == 4
	})
	// Scale up through the API.
	if err := e.admin.Patch(ctx, "workloads", "web", []byte(`{"spec":{"replicas":6}}`), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "6 replicas ready", 10*time.Second, func() bool { return workloadStatus(m, "web").Ready == 6 })
	// Delete: a tombstone reaches the member, its replicas go, and only then
	// does the Workload go (the placement finalizer).
	if err := e.admin.Delete(ctx, "workloads", "web", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replicas gone after the tombstone", 10*time.Second, func() bool { return onNode("n2")+onNode("n3") == 0 })
	waitFor(t, "the Workload gone once the member confirmed", 10*time.Second, func() bool {
		err := e.admin.Get(ctx, "workloads", "web", &api.Workload{})
		return api.ErrorCode(err) == api.CodeNotFound || (err != nil && strings.Contains(err.Error(), "not found"))
	})
}

// freePort is a loopback port nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestMemberRestartKeepsReplicas: a restarted member resumes from its KV
// (desired state, bindings, node registry) without restarting or moving
// the replicas its node agents kept running.
func TestMemberRestartKeepsReplicas(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("j", api.TokenSpec{})
	dir, natsAddr := t.TempDir(), freePort(t)
	start := func() (*member.Member, context.CancelFunc, chan struct{}) {
		m, err := member.New(member.Config{JoinToken: join, Name: "r1", Region: "eu", DataDir: dir, NATSListen: natsAddr, NodeGrace: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		waitFor(t, "the member's leaf link", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
		return m, cancel, done
	}
	m, stop, done := start()
	actx, acancel := context.WithCancel(context.Background())
	defer acancel()
	var agents []*node.Agent
	ended := make(chan error, 2) // an agent must outlive the member's restart
	for i := 1; i <= 2; i++ {
		a, err := node.New(node.Config{MemberURL: "nats://" + natsAddr, JoinToken: m.NodeJoinToken(), Name: fmt.Sprintf("n%d", i), DataDir: t.TempDir(), MilliCPU: 2000, Memory: 2 << 30, Interval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
		go func() { ended <- a.Run(actx) }()
	}
	waitFor(t, "2 nodes", 10*time.Second, func() bool { return m.Capacity().NodesReady == 2 })
	tmpl := api.ReplicaTemplate{Driver: "sim", Sim: &api.SimSpec{StartLatency: "10ms"}}
	d, _ := json.Marshal(protocol.DesiredWorkload{Version: protocol.Version, Workload: "web", Epoch: 1, Generation: 1, Replicas: 4, Template: tmpl})
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if _, err := e.bus.Request(rctx, "r1", protocol.DesiredSubject("r1"), d); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "4 replicas ready", 10*time.Second, func() bool { return workloadStatus(m, "web").Ready == 4 })
	before := map[string]time.Time{}
	for _, a := range agents {
		for _, s := range a.Runtime().Status() {
			before[s.ID] = s.StartedAt
		}
	}

	stop()
	<-done
	m2, stop2, done2 := start()
	defer func() { stop2(); <-done2 }()
	waitFor(t, "the restarted member sees 4 ready replicas", 10*time.Second, func() bool { return workloadStatus(m2, "web").Ready == 4 })
	// Sample through twice the node grace (a move would happen within
	// one): the replicas stay the same ones, never restarted.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		after := map[string]time.Time{}
		for _, a := range agents {
			for _, s := range a.Runtime().Status() {
				after[s.ID] = s.StartedAt
				if s.Restarts != 0 {
					t.Fatalf("replica %s restarted %d times across a member restart", s.ID, s.Restarts)
				}
			}
		}
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Fatalf("replicas changed across a member restart:\nbefore %v\nafter  %v", before, after)
		}
	}
	select {
	case err := <-ended:
		t.Fatalf("a node agent stopped across the member's restart: %v", err)
	default:
	}
}

// TestNodeHeartbeatsLeaveOutUnchangedReplicas: once the member acks the
// number of a node's replica list, the node's heartbeats leave the list
// out while it stays the same, and the member keeps what it holds; a
// change goes whole under a new number; a restarted member, which holds
// no number, gets the list again.
func TestNodeHeartbeatsLeaveOutUnchangedReplicas(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("j", api.TokenSpec{})
	dir, listen := t.TempDir(), freePort(t) // the restarted member listens where the agent reconnects
	start := func() (*member.Member, context.CancelFunc, chan struct{}) {
		m, err := member.New(member.Config{JoinToken: join, Name: "r1", Region: "eu", DataDir: dir, NATSListen: listen})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		waitFor(t, "the member's first heartbeat ack", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
		return m, cancel, done
	}
	m, stop, stopped := start()
	url := m.NATSURL()
	var mu sync.Mutex
	var beats []protocol.NodeHeartbeat
	watch := func(m *member.Member) {
		nc, err := nats.Connect(m.NATSURL(), m.AdminOption())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if _, err := nc.Subscribe(protocol.NodeHeartbeatSubject("n1"), func(msg *nats.Msg) {
			var hb protocol.NodeHeartbeat
			if err := json.Unmarshal(msg.Data, &hb); err != nil {
				t.Errorf("a heartbeat: %v", err)
				return
			}
			mu.Lock()
			beats = append(beats, hb)
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	watch(m)
	a, err := node.New(node.Config{MemberURL: url, JoinToken: m.NodeJoinToken(), Name: "n1", Zone: "z1", DataDir: t.TempDir(),
		MilliCPU: 2000, Memory: 4 << 30, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	defer acancel()
	go func() { _ = a.Run(actx) }()
	waitFor(t, "the node ready", 20*time.Second, func() bool { return m.Capacity().NodesReady == 1 })
	tmpl := api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "100m", Memory: "64Mi"}, Sim: &api.SimSpec{StartLatency: "10ms"}}
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 2, Template: tmpl}})
	waitFor(t, "2 replicas ready", 20*time.Second, func() bool { return workloadStatus(m, "web").Ready == 2 })
	// sameSince counts the heartbeats that left the list out after the
	// i-th, and says the number they named.
	sameSince := func(i int) (n int, seq uint64) {
		mu.Lock()
		defer mu.Unlock()
		for _, hb := range beats[min(i, len(beats)):] {
			if hb.ReplicasSame {
				if hb.Replicas != nil {
					t.Errorf("a heartbeat said its list was left out and gave one: %+v", hb)
				}
				n, seq = n+1, hb.ReplicasSeq
			}
		}
		return n, seq
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(beats)
	}
	mark := count()
	waitFor(t, "ten heartbeats without the unchanged list", 30*time.Second, func() bool { n, _ := sameSince(mark); return n >= 10 })
	if got := workloadStatus(m, "web"); got.Ready != 2 {
		t.Fatalf("the member lost the replicas the heartbeats left out: %+v", got)
	}
	_, before := sameSince(mark)

	// A change goes whole, under a new number; then it is left out again.
	if err := e.admin.Patch(context.Background(), "workloads", "web", []byte(`{"spec":{"replicas":3}}`), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "3 replicas ready", 20*time.Second, func() bool { return workloadStatus(m, "web").Ready == 3 })
	mark = count()
	waitFor(t, "the new list left out again", 30*time.Second, func() bool { n, _ := sameSince(mark); return n >= 3 })
	if _, after := sameSince(mark); after <= before {
		t.Errorf("the changed list kept its number %d (before the change: %d)", after, before)
	}

	// A restarted member holds no number: the node sends its list again,
	// and the member sees its replicas from it.
	stop()
	<-stopped
	m, stop, stopped = start()
	defer func() { stop(); <-stopped }()
	if m.NATSURL() != url {
		t.Fatalf("the restarted member listens at %s, not %s: the agent cannot follow", m.NATSURL(), url)
	}
	waitFor(t, "3 replicas ready on the restarted member", 30*time.Second, func() bool { return workloadStatus(m, "web").Ready == 3 })
}
