package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

func (e *env) addCluster(name string) {
	e.t.Helper()
	status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthUnknown, Identity: "U" + name})
	_, err := e.store.Create(context.Background(), pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster",
		Meta: api.ObjectMeta{Name: name, Labels: map[string]string{"region": "r"}}, Spec: []byte("{}"), Status: status})
	if err != nil {
		e.t.Fatal(err)
	}
}

func hb(cluster string, seq uint64) protocol.Heartbeat {
	return protocol.Heartbeat{Version: protocol.Version, Cluster: cluster, Seq: seq, Capacity: protocol.Capacity{NodesReady: 3, NodesTotal: 3}}
}

// step runs one monitor pass and checks exactly the expected transitions
// happened ("a:Ready>Suspect").
func step(t *testing.T, m *members.Monitor, want ...string) {
	t.Helper()
	got, err := m.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("monitor pass: %v", err)
	}
	var have []string
	for _, tr := range got {
		have = append(have, fmt.Sprintf("%s:%s>%s", tr.Cluster, tr.From, tr.To))
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Fatalf("transitions: want %v, got %v", want, have)
	}
}

func TestHealthTransitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.addCluster("a")
	e.addCluster("b")
	cfg := members.HealthConfig{Interval: 500 * time.Millisecond, UnreachableAfter: 2 * time.Second}
	m := members.NewMonitor(e.store, nil, e.clock.Now, noop.NewMeterProvider().Meter(""), cfg, nil)
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// Within the start-up grace nothing changes, heard or not.
	e.clock.Advance(1900 * time.Millisecond)
	step(t, m)
	m.Observe(hb("a", 1), e.clock.Now())
	step(t, m, "a:Unknown>Ready")
	// b was never heard: Unreachable once the grace since start is over.
	e.clock.Advance(200 * time.Millisecond)
	m.Observe(hb("a", 2), e.clock.Now())
	step(t, m, "b:Unknown>Unreachable")
	// a goes quiet: Suspect after two intervals, Unreachable after the grace.
	e.clock.Advance(1100 * time.Millisecond)
	step(t, m, "a:Ready>Suspect")
	e.clock.Advance(500 * time.Millisecond)
	step(t, m)
	e.clock.Advance(500 * time.Millisecond)
	step(t, m, "a:Suspect>Unreachable")
	m.Observe(hb("a", 3), e.clock.Now())
	step(t, m, "a:Unreachable>Ready")
	// A pause shorter than the grace (a GC pause, SIGSTOP 1.5s): Suspect at
	// most, never Unreachable.
	e.clock.Advance(1500 * time.Millisecond)
	step(t, m, "a:Ready>Suspect")
	m.Observe(hb("a", 4), e.clock.Now())
	step(t, m, "a:Suspect>Ready")

	var c api.Cluster
	if err := e.admin.Get(ctx, "clusters", "a", &c); err != nil {
		t.Fatal(err)
	}
	if c.Status.Health != api.HealthReady || len(c.Status.Conditions) != 1 || c.Status.Conditions[0].Status != "True" ||
		c.Status.Capacity == nil || c.Status.Capacity.NodesReady != 3 || c.Status.LastHeartbeatTime == nil {
		t.Errorf("stored status of a: %+v", c.Status)
	}
	var events api.EventList
	if err := e.admin.List(ctx, "events", client.ListOptions{LabelSelector: api.LabelEventName + "=a"}, &events); err != nil {
		t.Fatal(err)
	}
	sort.Slice(events.Items, func(i, j int) bool { // in the order written
		a, _ := strconv.Atoi(events.Items[i].Metadata.ResourceVersion)
		b, _ := strconv.Atoi(events.Items[j].Metadata.ResourceVersion)
		return a < b
	})
	var reasons []string
	for _, ev := range events.Items {
		reasons = append(reasons, ev.Reason)
	}
	want := "[ClusterReady ClusterSuspect ClusterUnreachable ClusterReady ClusterSuspect ClusterReady]"
	if fmt.Sprint(reasons) != want {
		t.Errorf("events of a: want %s, got %v", want, reasons)
	}

	// A restarted hub gives everyone a grace again: a stays Ready without
	// a flap, b stays Unreachable.
	m2 := members.NewMonitor(e.store, nil, e.clock.Now, noop.NewMeterProvider().Meter(""), cfg, nil)
	if err := m2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(1900 * time.Millisecond)
	step(t, m2)
	m2.Observe(hb("a", 5), e.clock.Now())
	step(t, m2)
	e.clock.Advance(300 * time.Millisecond)
	m2.Observe(hb("a", 6), e.clock.Now())
	step(t, m2)
}

// TestHeartbeatsOverNATS: acks for registered clusters, garbage and
// impostors dropped without harm.
func TestHeartbeatsOverNATS(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	e.addCluster("a")
	e.addCluster("b")
	if err := e.server.Monitor().Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	// a heartbeats as a member does: its own identity, its own inbox.
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	jwtA, err := e.bus.MemberJWT("a", pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.bus.ClientURL(), nats.UserJWTAndSeed(jwtA, string(seed)), nats.CustomInboxPrefix(protocol.InboxPrefix("a")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	request := func(subject string, body any) error {
		var data []byte
		switch b := body.(type) {
		case []byte:
			data = b
		default:
			data, _ = json.Marshal(b)
		}
		msg, err := nc.Request(subject, data, 300*time.Millisecond)
		if err != nil {
			return err
		}
		var ack protocol.HeartbeatAck
		if err := json.Unmarshal(msg.Data, &ack); err != nil {
			return err
		}
		return nil
	}
	for _, c := range []struct {
		name    string
		subject string
		body    any
	}{
		{"garbage", "atoll.m.a.hb", []byte("\x00not json")},
		{"a heartbeat for b on a's subject", "atoll.m.a.hb", hb("b", 1)},
		{"future protocol version", "atoll.m.a.hb", protocol.Heartbeat{Version: protocol.Version + 5, Cluster: "a"}},
	} {
		// Dropped: no answer at all. (No responders would mean the hub was
		// not listening, and prove nothing.)
		if err := request(c.subject, c.body); !errors.Is(err, nats.ErrTimeout) {
			t.Errorf("%s: want it dropped (a timeout); got %v", c.name, err)
		}
	}
	if live, _ := e.server.Monitor().Live("b"); live.Heard {
		t.Error("the hub attributed a heartbeat to b")
	}
	if err := request("atoll.m.a.hb", hb("a", 7)); err != nil {
		t.Fatalf("a valid heartbeat was not acked: %v", err)
	}
	// A heartbeat for a cluster nobody registered (from the hub's own
	// connection, which may publish anywhere): dropped, not acked.
	if _, err := e.bus.Conn().Request("atoll.m.nobody.hb", mustMarshal(hb("nobody", 1)), 300*time.Millisecond); err == nil {
		t.Error("a heartbeat of an unregistered cluster was acked")
	}
	// An ack is never sent to a reply subject outside the member's inbox
	// (it could be another member's subject).
	stolen, _ := e.bus.Conn().SubscribeSync("atoll.h.b.>")
	_ = e.bus.Conn().Flush()
	_ = nc.PublishRequest("atoll.m.a.hb", "atoll.h.b.desired", mustMarshal(hb("a", 8)))
	if err := request("atoll.m.a.hb", hb("a", 9)); err != nil {
		t.Fatal(err)
	}
	if m, err := stolen.NextMsg(100 * time.Millisecond); err == nil {
		t.Errorf("the hub published an ack on %s for member a", m.Subject)
	}
	if live, _ := e.server.Monitor().Live("a"); !live.Heard {
		t.Error("a's heartbeat was not recorded")
	}
	// The drops are counted by reason.
	r := e.do("GET", "/metrics", "", "", nil)
	for _, reason := range []string{"malformed", "wrong_cluster", "version", "unknown_cluster"} {
		if !containsAll(string(r.body), "atoll_nats_messages_dropped_total", `reason="`+reason+`"`) {
			t.Errorf("no drop counted for %s", reason)
		}
	}
}

func mustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func containsAll(s string, subs ...string) bool {
	for _, line := range strings.Split(s, "\n") {
		ok := true
		for _, sub := range subs {
			if !strings.Contains(line, sub) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
