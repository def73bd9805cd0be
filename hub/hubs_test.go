package hub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/protocol"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// electedEnv is a hub on dbURL whose controllers follow an elector named
// name (with the elector's clock now, when not nil). The elector runs
// rounds only when the test calls RunOnce.
func electedEnv(t *testing.T, dbURL, name string, now func() time.Time) (*env, *leader.Elector) {
	return electedEnvOn(t, dbURL, nil, name, now)
}

// electedEnvOn is electedEnv on a NATS bus (nil: none); hubs given the
// same bus share its connection, as hubs of one NATS cluster share the
// subjects, and their clocks run.
func electedEnvOn(t *testing.T, dbURL string, bus *natsbus.Bus, name string, now func() time.Time) (*env, *leader.Elector) {
	t.Helper()
	el, err := leader.New(leader.Config{DatabaseURL: dbURL, HolderID: name, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(el.Stop)
	e := newEnvWith(t, dbURL, bus, members.HealthConfig{}, bus != nil, func(c *hub.Config) {
		c.Leader, c.HubID = el, name
	})
	return e, el
}

type readyz struct {
	Status      string `json:"status"`
	Hub         string `json:"hub"`
	Role        string `json:"role"`
	LeaderEpoch int64  `json:"leaderEpoch"`
}

func (e *env) readyz() readyz {
	e.t.Helper()
	r := e.do("GET", "/readyz", adminSecret, "", nil) // the details are for authenticated callers
	var got readyz
	if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil {
		e.t.Fatalf("GET /readyz: %d %s, want 200 and JSON", r.status, r.body)
	}
	return got
}

// waitRole polls /readyz until the hub reports role (leadership changes
// reach the server through the elector's change signal, in the
// background).
func (e *env) waitRole(role string) readyz {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := e.readyz()
		if got.Role == role {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("want /readyz to say role %s within 5s; got %+v", role, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) metric(name string) string {
	e.t.Helper()
	r := e.do("GET", "/metrics", "", "", nil)
	for _, line := range strings.Split(string(r.body), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

// leaderEvent waits until the events about hub name include a
// LeaderElected one, and returns them.
func (e *env) leaderEvent(name string) api.Event {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var list api.EventList
		r := e.do("GET", "/api/v1/events?labelSelector="+api.LabelEventName+"%3D"+name, adminSecret, "", nil)
		if r.status != http.StatusOK || json.Unmarshal(r.body, &list) != nil {
			e.t.Fatalf("list events: %d %s", r.status, r.body)
		}
		for _, ev := range list.Items {
			if ev.Reason == "LeaderElected" && ev.InvolvedObject.Kind == "Hub" {
				return ev
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("want a LeaderElected event about hub %s within 5s; got %+v", name, list.Items)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHubsShowTheLeader: two hubs on one database, each with its
// elector. Each says in /readyz and /metrics whether it leads;
// /api/v1/hubs (viewer) lists both and the term; the new leader records
// a LeaderElected event whose audit row names its term; after a takeover
// all of it follows.
func TestHubsShowTheLeader(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	a, ea := electedEnv(t, dbURL, "hub-a", nil)
	b, eb := electedEnv(t, dbURL, "hub-b", nil)
	if _, err := ea.RunOnce(t.Context()); err != nil || !ea.IsLeader() {
		t.Fatalf("hub-a's first round: leader %v, %v; want leader", ea.IsLeader(), err)
	}
	if _, err := eb.RunOnce(t.Context()); err != nil || eb.IsLeader() {
		t.Fatalf("hub-b's first round: leader %v, %v; want follower", eb.IsLeader(), err)
	}

	if got := a.waitRole("leader"); got.Hub != "hub-a" || got.LeaderEpoch != ea.Epoch() {
		t.Errorf("hub-a's /readyz: %+v; want hub hub-a, leader epoch %d", got, ea.Epoch())
	}
	if got := b.waitRole("follower"); got.Hub != "hub-b" || got.LeaderEpoch != 0 {
		t.Errorf("hub-b's /readyz: %+v; want hub hub-b, no epoch", got)
	}
	if got := a.metric("atoll_leader"); got != "1" {
		t.Errorf("hub-a's atoll_leader = %q, want 1", got)
	}
	if got := b.metric("atoll_leader"); got != "0" {
		t.Errorf("hub-b's atoll_leader = %q, want 0", got)
	}
	if got := a.metric("atoll_leader_epoch"); got != fmt.Sprint(ea.Epoch()) {
		t.Errorf("hub-a's atoll_leader_epoch = %q, want %d", got, ea.Epoch())
	}

	// The hub list: viewers may read it, anonymous callers may not.
	viewer := b.token("hubs-viewer", api.RoleViewer)
	if r := b.do("GET", "/api/v1/hubs", "", "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/hubs without a token: %d, want 401", r.status)
	}
	r := b.do("GET", "/api/v1/hubs", viewer, "", nil)
	var list api.HubList
	if r.status != http.StatusOK || json.Unmarshal(r.body, &list) != nil {
		t.Fatalf("GET /api/v1/hubs as a viewer: %d %s", r.status, r.body)
	}
	if list.Kind != "HubList" || list.ServedBy != "hub-b" || list.Leader == nil || list.Leader.Hub != "hub-a" || list.Leader.Epoch != ea.Epoch() {
		t.Errorf("hub list %s; want a HubList served by hub-b, led by hub-a at epoch %d", r.body, ea.Epoch())
	}
	leaders := map[string]bool{}
	for _, h := range list.Items {
		leaders[h.Name] = h.Leader
	}
	if len(leaders) != 2 || !leaders["hub-a"] || leaders["hub-b"] {
		t.Errorf("hub list items %+v; want hub-a (leader) and hub-b", list.Items)
	}

	// The election is an event, and its audit row names the term.
	ev := a.leaderEvent("hub-a")
	if !strings.Contains(ev.Message, fmt.Sprintf("epoch %d", ea.Epoch())) {
		t.Errorf("LeaderElected event says %q; want it to name epoch %d", ev.Message, ea.Epoch())
	}
	audit, err := a.store.AuditLog(t.Context(), "Event", ev.Metadata.Name, 0, 10)
	if err != nil || len(audit) != 1 {
		t.Fatalf("audit rows of the event: %+v, %v; want one", audit, err)
	}
	if want := fmt.Sprintf("leader hub-a epoch %d", ea.Epoch()); audit[0].Actor != "system:leader" || audit[0].Detail != want {
		t.Errorf("the event's audit row: actor %q detail %q; want system:leader, %q", audit[0].Actor, audit[0].Detail, want)
	}

	// Takeover: hub-a's elector stops (its process ends), hub-b wins.
	epochA := ea.Epoch()
	ea.Stop()
	if _, err := eb.RunOnce(t.Context()); err != nil || !eb.IsLeader() {
		t.Fatalf("hub-b's round after hub-a stopped: leader %v, %v; want leader", eb.IsLeader(), err)
	}
	if got := b.waitRole("leader"); got.LeaderEpoch != eb.Epoch() || eb.Epoch() <= epochA {
		t.Errorf("hub-b's /readyz after the takeover: %+v; want leader at epoch %d", got, eb.Epoch())
	}
	a.waitRole("follower")
	if got := b.metric("atoll_leader"); got != "1" {
		t.Errorf("hub-b's atoll_leader after the takeover = %q, want 1", got)
	}
	if got := b.metric(`atoll_leader_changes_total{direction="gained"}`); got != "1" {
		t.Errorf(`hub-b's atoll_leader_changes_total{direction="gained"} = %q, want 1`, got)
	}
	b.leaderEvent("hub-b")
	var writes []pgstore.AuditEntry
	if writes, err = a.store.AuditLog(t.Context(), "", "", 0, 100); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		if w.Actor == "system:leader" && !strings.HasPrefix(w.Detail, "leader ") {
			t.Errorf("audit row %+v of a controller write names no term", w)
		}
	}
}

// TestResumedLeaderWritesAreRefused: a leader stopped (its elector's clock
// frozen, no rounds: it still believes it leads) while another hub takes
// over cannot write when it resumes: its health monitor sees its clusters
// silent for the whole pause and tries to store them Unreachable, and the
// leader epoch refuses the write; nothing of it lands.
func TestResumedLeaderWritesAreRefused(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	paused := time.Now()
	a, ea := electedEnv(t, dbURL, "hub-a", func() time.Time { return paused })
	_, eb := electedEnv(t, dbURL, "hub-b", nil)
	ctx := t.Context()
	if _, err := ea.RunOnce(ctx); err != nil || !ea.IsLeader() {
		t.Fatalf("hub-a's first round: leader %v, %v; want leader", ea.IsLeader(), err)
	}
	status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthReady})
	if _, err := a.store.Create(ctx, pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster", Meta: api.ObjectMeta{Name: "east"},
		Spec: []byte("{}"), Status: status}); err != nil {
		t.Fatal(err)
	}
	mon := a.server.Monitor()
	if err := mon.Load(ctx); err != nil {
		t.Fatal(err)
	}

	// hub-a stops: its session goes (PostgreSQL or the new leader ends it),
	// hub-b takes over.
	if _, err := a.store.Pool().Exec(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM leader_epoch`); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.RunOnce(ctx); err != nil || !eb.IsLeader() {
		t.Fatalf("hub-b's round after hub-a's session ended: leader %v, %v; want leader", eb.IsLeader(), err)
	}
	if !ea.IsLeader() {
		t.Fatal("hub-a already knows it lost; this test wants the epoch to refuse its write")
	}
	// Every write of hub-a's term committed before the takeover did.
	mark, err := a.store.AuditLog(ctx, "", "", 0, 1)
	if err != nil || len(mark) != 1 {
		t.Fatalf("audit log: %v, %v; want rows", mark, err)
	}

	// hub-a resumes: "east" has been silent for the whole pause.
	a.clock.Advance(time.Minute)
	_, err = mon.RunOnce(ctx)
	if !errors.Is(err, leader.ErrNotLeader) {
		t.Fatalf("the resumed leader's health write: %v; want it refused with %v", err, leader.ErrNotLeader)
	}
	rec, err := a.store.Get(ctx, "Cluster", "east")
	if err != nil {
		t.Fatal(err)
	}
	var c api.Cluster
	if err := rec.Decode(&c); err != nil || c.Status.Health != api.HealthReady {
		t.Errorf("east after the refused write: health %q (%v); want Ready, as stored before", c.Status.Health, err)
	}
	rows, err := a.store.AuditLog(ctx, "", "", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.ID > mark[0].ID && strings.Contains(r.Detail, "hub-a") {
			t.Errorf("audit row %+v: a write of hub-a's term landed after the takeover", r)
		}
	}
}

// TestOnlyTheLeaderAcksHeartbeats: two hubs hear every heartbeat, but the
// ack is the member's lease on the hub whose count decides when its
// exclusive workloads move, so only the leader acks; after a takeover the
// new leader does, the old one only for LeaderAckGrace, and the new one
// counts leases from the end of that grace.
func TestOnlyTheLeaderAcksHeartbeats(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	bus := newBus(t, dbURL)
	a, ea := electedEnvOn(t, dbURL, bus, "hub-a", nil)
	b, eb := electedEnvOn(t, dbURL, bus, "hub-b", nil)
	if _, err := ea.RunOnce(t.Context()); err != nil || !ea.IsLeader() {
		t.Fatalf("hub-a's first round: leader %v, %v; want leader", ea.IsLeader(), err)
	}
	if _, err := eb.RunOnce(t.Context()); err != nil || eb.IsLeader() {
		t.Fatalf("hub-b's first round: leader %v, %v; want follower", eb.IsLeader(), err)
	}
	// A member registers (both hubs learn of it), then falls silent: the
	// test speaks for it from here on, with a key of the member's account.
	_, stop := runMember(t, a.joinToken("j", api.TokenSpec{}), "m1", t.TempDir())
	stop()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	creds, err := bus.MemberJWT("m1", pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(bus.ClientURL(), nats.UserJWTAndSeed(creds, string(seed)), nats.CustomInboxPrefix(protocol.InboxPrefix("m1")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// A member's request reaches the hubs with a reply NATS made for its
	// import, which takes one answer: every hub's ack is seen where they
	// publish it, in the hubs' account.
	acks, err := bus.Conn().SubscribeSync("_R_.>")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = acks.Unsubscribe() })
	if err := bus.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	var seq uint64 = 1 << 40 // above any the member sent
	// beat sends one heartbeat as m1 and returns the ack m1 got.
	beat := func() protocol.HeartbeatAck {
		t.Helper()
		seq++
		data, _ := json.Marshal(protocol.Heartbeat{Version: protocol.Version, Cluster: "m1", Seq: seq, SentAt: time.Now().UTC(), IntervalMillis: 500})
		msg, err := nc.Request(protocol.HeartbeatSubject("m1"), data, 5*time.Second)
		if err != nil {
			t.Fatalf("heartbeat %d: no ack: %v", seq, err)
		}
		var ack protocol.HeartbeatAck
		if err := json.Unmarshal(msg.Data, &ack); err != nil || ack.Seq != seq {
			t.Fatalf("heartbeat %d: ack %s (%v)", seq, msg.Data, err)
		}
		return ack
	}
	// acked reads the acks the hubs published for heartbeat seq, until
	// done says enough.
	acked := func(seq uint64, done func(from map[string]int) bool) map[string]int {
		t.Helper()
		from := map[string]int{}
		for !done(from) {
			msg, err := acks.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("heartbeat %d: acks %v so far, then %v", seq, from, err)
			}
			var ack protocol.HeartbeatAck
			if err := json.Unmarshal(msg.Data, &ack); err == nil && ack.Seq == seq {
				from[ack.HubID]++
			}
		}
		return from
	}
	beats := func(leaderID string) {
		t.Helper()
		for range 20 {
			if ack := beat(); ack.HubID != leaderID {
				t.Fatalf("heartbeat %d: acked by %s; want the leader %s", seq, ack.HubID, leaderID)
			}
		}
		// A marker published after the last ack on the hubs' heartbeat
		// connection follows every ack they sent before it.
		if err := bus.HeartbeatConn().Publish("_R_.marker", []byte(`{"seq":0}`)); err != nil {
			t.Fatal(err)
		}
		first, got := seq-19, map[string]int{}
		for s := first; s <= seq; s++ {
			for h, n := range acked(s, func(from map[string]int) bool { return len(from) > 0 }) {
				got[h] += n
			}
		}
		if got[leaderID] != 20 || len(got) != 1 {
			t.Errorf("heartbeats %d to %d: acks %v; want 20 from the leader %s alone", first, seq, got, leaderID)
		}
		for {
			msg, err := acks.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("the marker after the acks: %v", err)
			}
			if msg.Subject == "_R_.marker" {
				break
			}
			t.Errorf("an extra ack, from a follower: %s", msg.Data)
		}
	}
	beats("hub-a")

	ea.Stop() // hub-a steps down (its session ends, freeing the lock)
	took := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for !eb.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("hub-b did not take over within 10s")
		}
		if _, err := eb.RunOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// The new leader counts a member's lease from the end of the old
	// leader's grace before it moves an exclusive workload, from its very
	// first look (the placer's pass right after the takeover), before any
	// heartbeat or monitor tick told it that it leads...
	if l, ok := b.server.Monitor().Live("m1"); !ok || l.LeaseFrom.Before(took.Add(members.LeaderAckGrace)) {
		t.Errorf("want hub-b to count m1's lease from at least %s after it took over; got %+v", members.LeaderAckGrace, l)
	}
	// ...for hub-a goes on acking for LeaderAckGrace after it stopped
	// leading (a PostgreSQL blip must not fence every region).
	beat()
	acked(seq, func(from map[string]int) bool { return from["hub-a"] > 0 && from["hub-b"] > 0 })
	// Once the grace is over, only the leader acks.
	a.clock.Advance(members.LeaderAckGrace + time.Second)
	beats("hub-b")
}

// TestReadyzDetailsNeedAToken: /readyz tells anyone whether the hub is
// ready, and only a caller with a valid token which hub it is (its name
// defaults to its host name and PID), its role and its epoch.
func TestReadyzDetailsNeedAToken(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	name := host + "/" + strconv.Itoa(os.Getpid()) // what the elector names a hub by default
	e := newEnvWith(t, pgtest.NewDatabase(t), nil, members.HealthConfig{}, false, func(c *hub.Config) { c.HubID = name })
	viewer := e.token("watcher", api.RoleViewer)

	r := e.do("GET", "/readyz", "", "", nil)
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"status":"ready"}` {
		t.Errorf("GET /readyz without a token: want 200 {\"status\":\"ready\"}, got %d %s", r.status, r.body)
	}
	for _, secret := range []string{host, strconv.Itoa(os.Getpid()), "leader", "epoch"} {
		if strings.Contains(string(r.body), secret) {
			t.Errorf("GET /readyz without a token tells %q: %s", secret, r.body)
		}
	}
	r = e.do("GET", "/readyz", viewer, "", nil)
	var got readyz
	if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.Hub != name || got.Role != "leader" || got.Status != "ready" {
		t.Errorf("GET /readyz as a viewer: want the hub %q, leader, ready; got %d %s", name, r.status, r.body)
	}
	r = e.do("GET", "/readyz", "atoll_wrongwrongwrongwrongwrong", "", nil)
	if r.status != http.StatusUnauthorized || strings.Contains(string(r.body), host) {
		t.Errorf("GET /readyz with a wrong token: want 401 without details, got %d %s", r.status, r.body)
	}
}
