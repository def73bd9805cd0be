package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// runMember runs a member until stop (or the test's end) and waits for
// its first heartbeat ack.
func runMember(t testing.TB, join, name, dir string) (m *member.Member, stop func()) {
	t.Helper()
	m, err := member.New(member.Config{JoinToken: join, Name: name, Region: "eu", DataDir: dir, NATSListen: "127.0.0.1:0",
		GatewayLocalPeers: true}) // every test member runs on this machine
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	deadline := time.After(20 * time.Second)
	for m.LastAck().IsZero() {
		select {
		case err := <-done:
			t.Fatalf("member %s stopped: %v", name, err)
		case <-deadline:
			t.Fatalf("member %s: no heartbeat ack within 20s", name)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return m, stop
}

// runMemberWithNode runs member r1 (runMember) with one node agent, n1
// (2 cores, 2 GiB, its runtime as rt says), until the test's end, and
// waits for the node to be Ready.
func runMemberWithNode(t *testing.T, e *env, rt runtime.Config) *member.Member {
	t.Helper()
	m, _ := runMember(t, e.joinToken("j", api.TokenSpec{}), "r1", t.TempDir())
	a, err := node.New(node.Config{MemberURL: m.NATSURL(), JoinToken: m.NodeJoinToken(), Name: "n1", DataDir: t.TempDir(),
		MilliCPU: 2000, Memory: 2 << 30, Interval: 200 * time.Millisecond, Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the node", 10*time.Second, func() bool { return m.Capacity().NodesReady == 1 })
	return m
}

// TestDesiredStateDelivery: the hub sends a member desired state over the
// leaf link; the member stores it epoch-fenced and acks once stored; it
// survives a member restart.
func TestDesiredStateDelivery(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("j", api.TokenSpec{})
	dir := t.TempDir()
	_, stop := runMember(t, join, "m1", dir)

	send := func(d protocol.DesiredWorkload) protocol.DesiredAck {
		t.Helper()
		if d.Version == 0 {
			d.Version = protocol.Version
		}
		data, _ := json.Marshal(d)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		reply, err := e.bus.Request(ctx, "m1", protocol.DesiredSubject("m1"), data)
		if err != nil {
			t.Fatalf("deliver %s@%d: %v", d.Workload, d.Epoch, err)
		}
		var ack protocol.DesiredAck
		if err := json.Unmarshal(reply, &ack); err != nil {
			t.Fatal(err)
		}
		return ack
	}
	tmpl := api.ReplicaTemplate{Driver: "sim"}
	if ack := send(protocol.DesiredWorkload{Workload: "web", Epoch: 5, Replicas: 3, Template: tmpl}); !ack.Accepted || ack.Current != 5 {
		t.Errorf("first delivery: %+v", ack)
	}
	if ack := send(protocol.DesiredWorkload{Workload: "web", Epoch: 5, Replicas: 3, Template: tmpl}); !ack.Accepted {
		t.Errorf("the same epoch again must be accepted (idempotent): %+v", ack)
	}
	if ack := send(protocol.DesiredWorkload{Workload: "web", Epoch: 3, Replicas: 9, Template: tmpl}); ack.Accepted || ack.Current != 5 || !strings.Contains(ack.Reason, "stale epoch") {
		t.Errorf("an older epoch must be refused: %+v", ack)
	}
	if ack := send(protocol.DesiredWorkload{Workload: "web", Epoch: 6, Replicas: -1, Template: tmpl}); ack.Accepted || !strings.Contains(ack.Reason, "invalid") {
		t.Errorf("invalid desired state must be refused with a reason: %+v", ack)
	}
	if ack := send(protocol.DesiredWorkload{Workload: "web", Epoch: 7, Replicas: 4, Template: tmpl}); !ack.Accepted || ack.Current != 7 {
		t.Errorf("a newer epoch: %+v", ack)
	}

	// A batch: each workload judged on its own, one ack each in order.
	batch := func(b protocol.DesiredBatch) protocol.DesiredBatchAck {
		t.Helper()
		data, _ := json.Marshal(b)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		reply, err := e.bus.Request(ctx, "m1", protocol.DesiredBatchSubject("m1"), data)
		if err != nil {
			t.Fatalf("deliver a batch: %v", err)
		}
		var ack protocol.DesiredBatchAck
		if err := json.Unmarshal(reply, &ack); err != nil {
			t.Fatal(err)
		}
		return ack
	}
	v := protocol.Version
	acks := batch(protocol.DesiredBatch{Version: v, Workloads: []protocol.DesiredWorkload{
		{Version: v, Workload: "api", Epoch: 8, Replicas: 2, Template: tmpl},
		{Version: v, Workload: "web", Epoch: 6, Replicas: 9, Template: tmpl},
		{Version: v, Workload: "db", Epoch: 8, Replicas: -1, Template: tmpl},
		{Version: v, Workload: "web2", Epoch: 8, Replicas: 1, Template: tmpl},
	}}).Acks
	if len(acks) != 4 || !acks[0].Accepted || acks[0].Workload != "api" || acks[1].Accepted || acks[1].Current != 7 || !strings.Contains(acks[1].Reason, "stale epoch") ||
		acks[2].Accepted || !strings.Contains(acks[2].Reason, "invalid") || !acks[3].Accepted || acks[3].Current != 8 {
		t.Errorf("batch: want api and web2 accepted, web refused as stale (holds 7), db refused as invalid; got %+v", acks)
	}
	if a := batch(protocol.DesiredBatch{Version: v, Workloads: []protocol.DesiredWorkload{
		{Version: v, Workload: "api", Epoch: 8, Replicas: 2, Template: tmpl}, {Version: v, Workload: "api", Epoch: 9, Replicas: 2, Template: tmpl},
	}}); len(a.Acks) != 0 || !strings.Contains(a.Reason, "twice") {
		t.Errorf("a batch naming a workload twice must be refused as a whole; got %+v", a)
	}

	// The digest names the epoch held per workload.
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	raw, err := e.bus.Request(dctx, "m1", protocol.DigestSubject("m1"), []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	var digest protocol.Digest
	if err := json.Unmarshal(raw, &digest); err != nil || digest.Workloads["web"] != 7 || digest.Workloads["api"] != 8 || digest.Workloads["web2"] != 8 || len(digest.Workloads) != 3 {
		t.Errorf("digest: want web at epoch 7, api and web2 at 8, got %+v (%v)", digest, err)
	}

	// The state outlives a member restart (which needs no join token).
	stop()
	back, _ := runMember(t, "", "m1", dir)
	held, err := back.State().Desired(context.Background())
	if err != nil || held["web"].Epoch != 7 || held["web"].Replicas != 4 || held["api"].Epoch != 8 || held["api"].Replicas != 2 {
		t.Errorf("after a restart m1 holds %+v (err %v), want web at epoch 7 with 4 replicas and api at 8 with 2", held, err)
	}

	// Another member never sees m1's desired state: it has its own KV.
	other, _ := runMember(t, join, "m2", t.TempDir())
	held, err = other.State().Desired(context.Background())
	if err != nil || len(held) != 0 {
		t.Errorf("m2 holds %v (err %v), want nothing", held, err)
	}
	// A member that is not there does not answer.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := e.bus.Request(ctx, "ghost", protocol.DesiredSubject("ghost"), []byte("{}")); err == nil {
		t.Error("a request to a cluster that does not exist was answered")
	}
}

// TestDeregisteredMemberStops: once deregistered, a running member loses
// its acks, learns from the API that it is no longer admitted, and stops
// with ErrRefused instead of knocking forever.
func TestDeregisteredMemberStops(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{Interval: 100 * time.Millisecond, UnreachableAfter: 500 * time.Millisecond})
	join := e.joinToken("j", api.TokenSpec{})
	m, err := member.New(member.Config{JoinToken: join, Name: "gone", Region: "eu", DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	for m.LastAck().IsZero() {
		select {
		case err := <-done:
			t.Fatalf("member stopped early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	// While its member heartbeats, the cluster is deregistered only by
	// force, and the refusal is audited.
	if err := e.admin.Delete(context.Background(), "clusters", "gone", nil); api.ErrorCode(err) != api.CodeConflict || !strings.Contains(err.Error(), "force") {
		t.Fatalf("deregistering a cluster whose member heartbeats: want 409 naming force; got %v", err)
	}
	if got := e.auditResults("gone", "delete"); len(got) != 1 || got[0].Result != api.CodeConflict {
		t.Errorf("want the refused deregistration audited; got %+v", got)
	}
	if r := e.do("DELETE", "/api/v1/workloads/x?force=true", adminSecret, "", nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), "query.force") {
		t.Errorf("force on a workload: want 422 at query.force; got %d %s", r.status, r.body)
	}
	if err := e.admin.Raw(context.Background(), http.MethodDelete, "/api/v1/clusters/gone", url.Values{"force": {"true"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, member.ErrRefused) || !strings.Contains(err.Error(), "cluster gone was deregistered") || !strings.Contains(err.Error(), "new join token") {
			t.Errorf("a deregistered member must stop with ErrRefused, saying what happened and how to join again; got %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the deregistered member still runs 20s later")
	}
	var events api.EventList
	if err := e.admin.List(context.Background(), "events", client.ListOptions{LabelSelector: api.LabelEventName + "=gone"}, &events); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range events.Items {
		found = found || ev.Reason == "ClusterDeregistered"
	}
	if !found {
		t.Errorf("no ClusterDeregistered event: %+v", events.Items)
	}
}
