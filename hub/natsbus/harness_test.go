package natsbus_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/hub/natsbus"
)

// wait bounds every wait for a signal: long enough for a loaded CI
// machine, short enough that a missing signal fails the test quickly.
const wait = 10 * time.Second

func newSeeds(t *testing.T) natsbus.Seeds {
	t.Helper()
	seeds, err := natsbus.NewSeeds()
	if err != nil {
		t.Fatalf("NewSeeds: %v", err)
	}
	return seeds
}

// none is a store that knows no member yet.
var none natsbus.Identities

// startBus runs a hub NATS on free ports with its store in dataDir.
func startBus(t *testing.T, seeds natsbus.Seeds, ids natsbus.Identities, dataDir string) *natsbus.Bus {
	t.Helper()
	bus, err := natsbus.Start(t.Context(), natsbus.Config{
		Seeds:        seeds,
		Identities:   ids,
		DataDir:      dataDir,
		ClientListen: "127.0.0.1:0",
		LeafListen:   "127.0.0.1:0",
	})
	if err != nil {
		t.Fatalf("start the hub's NATS: %v", err)
	}
	t.Cleanup(bus.Close)
	return bus
}

// identity is a registered member: its own key pair and the user JWT the
// hub signed for it.
type identity struct {
	cluster string
	pub     string
	seed    string
	jwt     string
}

func register(t *testing.T, bus *natsbus.Bus, cluster string) identity {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	id := identity{cluster: cluster, pub: pub, seed: string(seed)}
	id.resign(t, bus)
	return id
}

// resign has the hub sign a fresh JWT for the same key (a registration
// again).
func (id *identity) resign(t *testing.T, bus *natsbus.Bus) {
	t.Helper()
	token, err := bus.MemberJWT(id.cluster, id.pub, nil)
	if err != nil {
		t.Fatalf("MemberJWT(%q): %v", id.cluster, err)
	}
	id.jwt = token
}

func (id identity) keyPair(t *testing.T) nkeys.KeyPair {
	t.Helper()
	kp, err := nkeys.FromSeed([]byte(id.seed))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// creds writes the member's credentials file, as a member keeps it.
func (id identity) creds(t *testing.T) string {
	t.Helper()
	data, err := jwt.FormatUserConfig(id.jwt, []byte(id.seed))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), id.cluster+".creds")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// connect opens a plain client connection to the hub with the member's
// credentials.
func (id identity) connect(bus *natsbus.Bus, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{
		nats.UserJWTAndSeed(id.jwt, id.seed),
		nats.Name("member-" + id.cluster),
		nats.CustomInboxPrefix("_INBOX." + id.cluster),
	}, opts...)
	return nats.Connect(bus.ClientURL(), opts...)
}

// asyncErrors collects a connection's asynchronous errors.
type asyncErrors chan error

func (e asyncErrors) option() nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case e <- err:
		default:
		}
	})
}

// expect waits until every wanted error text has been seen among the
// errors.
func (e asyncErrors) expect(t *testing.T, want ...string) {
	t.Helper()
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	var seen []string
	deadline := time.After(wait)
	for len(missing) > 0 {
		select {
		case err := <-e:
			seen = append(seen, err.Error())
			for w := range missing {
				if strings.Contains(err.Error(), w) {
					if !errors.Is(err, nats.ErrPermissionViolation) {
						t.Errorf("error %q is not a permissions violation", err)
					}
					delete(missing, w)
				}
			}
		case <-deadline:
			t.Fatalf("after %v, still no error containing %q; errors seen: %q", wait, keys(missing), seen)
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func pubViolation(subject string) string {
	return fmt.Sprintf("Permissions Violation for Publish to %q", subject)
}

func subViolation(subject string) string {
	return fmt.Sprintf("Permissions Violation for Subscription to %q", subject)
}

// expectFirst reads msgs until one carries a payload starting with
// marker (others are someone else's traffic) and checks it is control:
// the sender sent everything forbidden before control over one
// connection, so anything forbidden that got through would come first.
func expectFirst(t *testing.T, msgs <-chan *nats.Msg, marker, control string) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-msgs:
			if !strings.HasPrefix(string(m.Data), marker) {
				continue
			}
			if m.Subject != control || string(m.Data) != marker+control {
				t.Fatalf("got %q on %q before the control message on %q: it should have been refused", m.Data, m.Subject, control)
			}
			return
		case <-deadline:
			t.Fatalf("the control message on %q did not arrive within %v", control, wait)
		}
	}
}

// subscribeAll receives every message of conn's account into a channel,
// in the order the server sent them.
func subscribeAll(t *testing.T, conn *nats.Conn, subject string) <-chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 4096)
	sub, err := conn.ChanSubscribe(subject, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

// systemEvents watches the hub's system account for the ATOLL account's
// disconnections and for every refused authentication.
type systemEvents struct {
	disconnects chan server.DisconnectEventMsg
	authErrors  chan server.DisconnectEventMsg
}

func watchSystem(t *testing.T, bus *natsbus.Bus, seeds natsbus.Seeds) *systemEvents {
	t.Helper()
	sys, err := nkeys.FromSeed([]byte(seeds.System))
	if err != nil {
		t.Fatal(err)
	}
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()
	token, err := jwt.NewUserClaims(userPub).Encode(sys)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := nats.Connect(bus.ClientURL(), nats.UserJWTAndSeed(token, string(userSeed)), nats.Name("test-system-watch"))
	if err != nil {
		t.Fatalf("connect to the system account: %v", err)
	}
	t.Cleanup(conn.Close)
	ev := &systemEvents{
		disconnects: make(chan server.DisconnectEventMsg, 256),
		authErrors:  make(chan server.DisconnectEventMsg, 256),
	}
	for subject, ch := range map[string]chan server.DisconnectEventMsg{
		"$SYS.ACCOUNT.*.DISCONNECT":     ev.disconnects, // every member has its own account
		"$SYS.SERVER.*.CLIENT.AUTH.ERR": ev.authErrors,
	} {
		if _, err := conn.Subscribe(subject, func(m *nats.Msg) {
			var e server.DisconnectEventMsg
			if err := json.Unmarshal(m.Data, &e); err != nil {
				t.Errorf("system event on %s: %v", m.Subject, err)
				return
			}
			select {
			case ch <- e:
			default:
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	return ev
}

// eventUser is the user key of the connection an event is about.
func eventUser(e server.DisconnectEventMsg) string {
	if e.Client.Jwt == "" {
		return ""
	}
	uc, err := jwt.DecodeUserClaims(e.Client.Jwt)
	if err != nil {
		return ""
	}
	return uc.Subject
}

// awaitEvent waits for an event about user's connection of the given kind
// ("Client", "Leafnode").
func awaitEvent(t *testing.T, ch <-chan server.DisconnectEventMsg, what, user, kind string) server.DisconnectEventMsg {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-ch:
			if eventUser(e) == user && e.Client.Kind == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event for %s connection of %s within %v", what, kind, user, wait)
		}
	}
}

// leaf is a member's own NATS server: no auth, its own JetStream domain,
// and a leafnode remote to the hub with the member's credentials, as the
// member package runs it.
type leaf struct {
	server *server.Server
	// local is a client of the member's server, with the member's inbox
	// prefix like the member's own connection.
	local *nats.Conn
}

func startLeaf(t *testing.T, bus *natsbus.Bus, id identity) *leaf {
	t.Helper()
	u, err := url.Parse(bus.LeafURL("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{
		ServerName:      "atoll-member-" + id.cluster,
		Host:            "127.0.0.1",
		Port:            server.RANDOM_PORT,
		JetStream:       true,
		JetStreamDomain: "member-" + id.cluster,
		StoreDir:        t.TempDir(),
		LeafNode: server.LeafNodeOpts{
			Remotes:           []*server.RemoteLeafOpts{{URLs: []*url.URL{u}, Credentials: id.creds(t)}},
			ReconnectInterval: 50 * time.Millisecond,
		},
		NoLog:  true,
		NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(wait) {
		t.Fatal("the member's NATS did not start")
	}
	conn, err := nats.Connect("", nats.InProcessServer(s), nats.CustomInboxPrefix("_INBOX."+id.cluster))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return &leaf{server: s, local: conn}
}

// hubResponder answers requests on subject from the hub's connection and
// passes every message it gets on.
func hubResponder(t *testing.T, bus *natsbus.Bus, subject string) {
	t.Helper()
	sub, err := bus.Conn().Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte("pong " + m.Subject)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := bus.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
}

// awaitLinked waits until a request from the member's server reaches the
// hub and the reply comes back: the leaf connection is up and each side
// has the other's interest (the leaf sends its subscriptions before any
// message, so all subscriptions made so far on the member's server are
// known to the hub too). Until the leaf connects there is no interest, so
// this polls.
func (l *leaf) awaitLinked(t *testing.T, subject string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	var err error
	for time.Now().Before(deadline) {
		var m *nats.Msg
		if m, err = l.local.Request(subject, []byte("ping"), 200*time.Millisecond); err == nil {
			if want := "pong " + subject; string(m.Data) != want {
				t.Fatalf("the ping through the leaf got %q, want %q", m.Data, want)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no request/reply through the leaf within %v: %v", wait, err)
}

// rawLeaf speaks the leafnode protocol to the hub by hand, as a member
// that ignores the permissions the hub announces would: it shows what the
// hub itself enforces, not what a well-behaved member server filters
// before sending.
type rawLeaf struct {
	conn   net.Conn
	mu     sync.Mutex // serializes writes
	events chan rawEvent
}

type rawEvent struct {
	op      string // INFO, PING, PONG, -ERR, LS+, LS-, LMSG, EOF
	arg     string
	subject string
	payload string
}

func dialRawLeaf(t *testing.T, bus *natsbus.Bus, id identity) *rawLeaf {
	t.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(bus.LeafPort())), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(2 * wait))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		t.Fatalf("the hub's leafnode port sent %q, %v; want INFO", line, err)
	}
	var info struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(line), "INFO ")), &info); err != nil || info.Nonce == "" {
		t.Fatalf("INFO %q: nonce %q, %v", line, info.Nonce, err)
	}
	sig, err := id.keyPair(t).Sign([]byte(info.Nonce))
	if err != nil {
		t.Fatal(err)
	}
	connect, _ := json.Marshal(map[string]any{
		"jwt":      id.jwt,
		"sig":      base64.RawURLEncoding.EncodeToString(sig),
		"name":     "raw-" + id.cluster,
		"headers":  false,
		"protocol": 1,
	})
	l := &rawLeaf{conn: conn, events: make(chan rawEvent, 4096)}
	go l.read(r)
	l.send(t, "CONNECT "+string(connect)+"\r\nPING\r\n")
	l.expect(t, func(e rawEvent) bool {
		if e.op == "-ERR" || e.op == "EOF" {
			t.Fatalf("the hub refused the raw leaf connection: %s %s", e.op, e.arg)
		}
		return e.op == "PONG"
	}, "PONG after CONNECT")
	return l
}

func (l *rawLeaf) read(r *bufio.Reader) {
	defer close(l.events)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			l.events <- rawEvent{op: "EOF", arg: err.Error()}
			return
		}
		line = strings.TrimRight(line, "\r\n")
		op, arg, _ := strings.Cut(line, " ")
		e := rawEvent{op: op, arg: arg}
		switch op {
		case "PING":
			l.write("PONG\r\n")
		case "LMSG":
			// LMSG <subject> [+ <reply> | <reply>] [queues] <size>
			f := strings.Fields(arg)
			n, _ := strconv.Atoi(f[len(f)-1])
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				l.events <- rawEvent{op: "EOF", arg: err.Error()}
				return
			}
			e.subject, e.payload = f[0], string(buf[:n])
		}
		l.events <- e
	}
}

func (l *rawLeaf) write(s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.conn.Write([]byte(s))
	return err
}

func (l *rawLeaf) send(t *testing.T, s string) {
	t.Helper()
	if err := l.write(s); err != nil {
		t.Fatalf("write to the hub: %v", err)
	}
}

func (l *rawLeaf) publish(t *testing.T, subject, payload string) {
	t.Helper()
	l.send(t, fmt.Sprintf("LMSG %s %d\r\n%s\r\n", subject, len(payload), payload))
}

// expect reads events until match says yes; it fails on timeout and when
// the connection ends first.
func (l *rawLeaf) expect(t *testing.T, match func(rawEvent) bool, what string) rawEvent {
	t.Helper()
	deadline := time.After(wait)
	var seen []string
	for {
		select {
		case e, ok := <-l.events:
			if !ok {
				t.Fatalf("waiting for %s: the connection ended; seen %q", what, seen)
			}
			if match(e) {
				return e
			}
			seen = append(seen, strings.TrimSpace(e.op+" "+e.arg))
		case <-deadline:
			t.Fatalf("waiting for %s: nothing within %v; seen %q", what, wait, seen)
		}
	}
}
