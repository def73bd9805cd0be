package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// clusterEvents lists the events of a cluster, oldest first.
func (e *env) clusterEvents(name string) []api.Event {
	e.t.Helper()
	var events api.EventList
	if err := e.admin.List(context.Background(), "events", client.ListOptions{LabelSelector: api.LabelEventName + "=" + name}, &events); err != nil {
		e.t.Fatal(err)
	}
	return events.Items
}

// warnings are the RegistrationRefused events of a cluster.
func (e *env) warnings(name string) []api.Event {
	e.t.Helper()
	var out []api.Event
	for _, ev := range e.clusterEvents(name) {
		if ev.Reason == "RegistrationRefused" {
			out = append(out, ev)
		}
	}
	return out
}

func (e *env) cluster(name string) api.Cluster {
	e.t.Helper()
	var c api.Cluster
	if err := e.admin.Get(context.Background(), "clusters", name, &c); err != nil {
		e.t.Fatalf("get cluster %s: %v", name, err)
	}
	return c
}

// auditResults are the results of the register audit rows of a cluster,
// newest first.
func (e *env) auditResults(name, verb string) []pgstore.AuditEntry {
	e.t.Helper()
	entries, err := e.store.AuditLog(context.Background(), "Cluster", name, 0, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []pgstore.AuditEntry
	for _, a := range entries {
		if a.Verb == verb {
			out = append(out, a)
		}
	}
	return out
}

// TestRegisterTakeover: the holder of a join token cannot take over a
// registered cluster, neither by naming its public key (which any viewer
// reads) without its private key, nor with a key of its own; each try is
// refused, audited and a Warning event on the cluster. The real member
// keeps its registration and registers again after a restart, with its
// member token or, when it was killed before it saved that, with the join
// token.
func TestRegisterTakeover(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("eu", api.TokenSpec{Region: "eu-west"})
	kpA := newKey(t)
	keyA, _ := kpA.PublicKey()
	r, a := e.register(join, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west", Labels: map[string]string{"tier": "gold"}})
	if r.status != 200 {
		t.Fatalf("first registration: want 200, got %d %s", r.status, r.body)
	}
	before := e.cluster("edge-a")
	// The attacker holds a one-use token of another region, as in the
	// report, and reads the key from the cluster.
	stolen := e.joinToken("intruder", api.TokenSpec{Uses: 1, Region: "us-east"})
	viewer := e.token("peek", api.RoleViewer)
	var seen api.Cluster
	if err := client.New(e.url, viewer, nil).Get(context.Background(), "clusters", "edge-a", &seen); err != nil || seen.Status.Identity != keyA {
		t.Fatalf("a viewer reads the key: want %s, got %q (%v)", keyA, seen.Status.Identity, err)
	}
	attacker := newKey(t)

	// Same public key, signed with the attacker's own key.
	r, _ = e.register(stolen, attacker, api.RegisterRequest{Name: "edge-a", Region: "us-east", NATSPublicKey: keyA})
	if r.status != 403 || !strings.Contains(r.problem.Detail, "does not hold the key") {
		t.Errorf("same public key without its private key: want 403 (no proof of the key), got %d %s", r.status, r.body)
	}
	// Same public key, a signature copied from elsewhere (the real
	// member's, over another nonce).
	_, ch := e.challenge(stolen, "edge-a")
	req := api.RegisterRequest{Name: "edge-a", Region: "us-east", NATSPublicKey: keyA, Nonce: ch.Nonce}
	req.Signature = sign(t, kpA, api.RegisterRequest{Name: "edge-a", NATSPublicKey: keyA, Nonce: "another-nonce"})
	if r, _ = e.postRegister(stolen, req); r.status != 403 {
		t.Errorf("a signature over another nonce: want 403, got %d %s", r.status, r.body)
	}
	// Same public key, no signature at all.
	req.Signature = ""
	if r, _ = e.postRegister(stolen, req); r.status != 422 || !strings.Contains(string(r.body), "signature") {
		t.Errorf("no signature: want 422 about the signature, got %d %s", r.status, r.body)
	}
	// A key of its own.
	r, _ = e.register(stolen, attacker, api.RegisterRequest{Name: "edge-a", Region: "us-east"})
	if r.status != 409 || !strings.Contains(r.problem.Detail, "atoll cluster reissue edge-a") {
		t.Errorf("another key: want 409 naming the re-issue, got %d %s", r.status, r.body)
	}

	after := e.cluster("edge-a")
	if after.Metadata.ResourceVersion != before.Metadata.ResourceVersion || after.Status.Identity != keyA || after.Metadata.Labels["region"] != "eu-west" {
		t.Errorf("refused takeovers changed the cluster: before %+v, after %+v", before, after)
	}
	warnings := e.warnings("edge-a")
	if len(warnings) != 3 {
		t.Fatalf("want 3 RegistrationRefused events (two bad proofs, one other key); got %d: %+v", len(warnings), warnings)
	}
	for _, w := range warnings {
		if w.Type != api.EventWarning || !strings.Contains(w.Message, "join token intruder") {
			t.Errorf("want a Warning naming the join token intruder; got %s %q", w.Type, w.Message)
		}
	}
	results := map[string]int{}
	for _, a := range e.auditResults("edge-a", "register") {
		if a.Actor == "join:intruder" {
			results[a.Result]++
		}
	}
	if results[api.CodeForbidden] != 2 || results[api.CodeConflict] != 1 || results[api.CodeInvalid] != 1 {
		t.Errorf("want the refusals audited as join:intruder (2 Forbidden, 1 Conflict, 1 Invalid); got %v", results)
	}
	// None of them spent the one use: the token still registers another
	// cluster.
	if r, _ := e.register(stolen, attacker, api.RegisterRequest{Name: "edge-us", Region: "us-east"}); r.status != 200 {
		t.Errorf("the one-use token after its refusals: want 200, got %d %s", r.status, r.body)
	}
	if w := e.warnings("edge-us"); len(w) != 0 {
		t.Errorf("a registration that was not refused wrote warnings: %+v", w)
	}

	// The real member restarts: member token, same key.
	r, back := e.register(a.MemberToken, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west"})
	if r.status != 200 || back.Cluster.Metadata.UID != a.Cluster.Metadata.UID || back.NATSUserJWT == "" {
		t.Errorf("restart with the member token: want 200 for the same cluster, got %d %s", r.status, r.body)
	}
	// Killed before it saved its member token: the join token, same key.
	r, again := e.register(join, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west"})
	if r.status != 200 || again.MemberToken == "" || again.Cluster.Metadata.UID != a.Cluster.Metadata.UID {
		t.Errorf("retry with the join token and the same key: want 200 with a new member token, got %d %s", r.status, r.body)
	}
	if r, _ := e.register(a.MemberToken, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west"}); r.status != 401 {
		t.Errorf("the member token replaced by the retry: want 401, got %d %s", r.status, r.body)
	}
	if r, _ := e.register(again.MemberToken, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west"}); r.status != 200 {
		t.Errorf("the new member token: want 200, got %d %s", r.status, r.body)
	}
}

// TestRegisterNonces: a nonce is good once, for the token that asked for
// it and the name it named, until it expires; one misused by another
// token is not used up by that.
func TestRegisterNonces(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	join, other := e.joinToken("eu", api.TokenSpec{}), e.joinToken("other", api.TokenSpec{})
	kpA := newKey(t)
	_, a := e.register(join, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west"})
	if a.MemberToken == "" {
		t.Fatal("first registration failed")
	}
	kpB := newKey(t)
	signed := func(nonce, name string, kp nkeys.KeyPair) api.RegisterRequest {
		pub, _ := kp.PublicKey()
		req := api.RegisterRequest{Name: name, Region: "eu-west", NATSPublicKey: pub, Nonce: nonce, ProtocolVersion: 4}
		req.Signature = sign(t, kp, req)
		return req
	}
	nonceOf := func(token, name string) string {
		r, ch := e.challenge(token, name)
		if r.status != 200 {
			t.Fatalf("challenge for %s: want 200, got %d %s", name, r.status, r.body)
		}
		if ttl := ch.ExpiresAt.Sub(e.clock.Now()); ttl <= 0 || ttl > members.ChallengeTTL+time.Minute {
			t.Errorf("challenge expiresAt %s: want within %s", ch.ExpiresAt, members.ChallengeTTL)
		}
		return ch.Nonce
	}
	refused := func(what, token string, req api.RegisterRequest) {
		t.Helper()
		if r, _ := e.postRegister(token, req); r.status != 401 || !strings.Contains(r.problem.Detail, "nonce") {
			t.Errorf("%s: want 401 about the nonce, got %d %s", what, r.status, r.body)
		}
	}

	// Replayed: the same request twice.
	req := signed(nonceOf(join, "edge-b"), "edge-b", kpB)
	if r, _ := e.postRegister(join, req); r.status != 200 {
		t.Fatalf("registration: want 200, got %d %s", r.status, r.body)
	}
	refused("replayed", join, req)
	// A nonce asked for with one token, sent with another.
	n := nonceOf(join, "edge-c")
	refused("another token's nonce", other, signed(n, "edge-c", newKey(t)))
	// ... which did not use it up for its own token.
	if r, _ := e.postRegister(join, signed(n, "edge-c", newKey(t))); r.status != 200 {
		t.Errorf("the nonce after another token tried it: want 200, got %d %s", r.status, r.body)
	}
	// A nonce for one name, sent for another.
	refused("another name's nonce", join, signed(nonceOf(join, "edge-d"), "edge-e", newKey(t)))
	// The member token's nonce is its own too.
	refused("a join token's nonce with the member token", a.MemberToken, signed(nonceOf(join, "edge-a"), "edge-a", kpA))
	if r, _ := e.challenge(a.MemberToken, "edge-b"); r.status != 403 {
		t.Errorf("a member token's challenge for another cluster: want 403, got %d %s", r.status, r.body)
	}
	// Made up.
	refused("made-up nonce", join, signed("bm9uY2U", "edge-f", newKey(t)))
	// Expired.
	late := nonceOf(join, "edge-g")
	e.clock.Advance(members.ChallengeTTL + time.Second)
	refused("expired nonce", join, signed(late, "edge-g", newKey(t)))
	if r, _ := e.register(join, newKey(t), api.RegisterRequest{Name: "edge-g", Region: "eu-west"}); r.status != 200 {
		t.Errorf("with a fresh nonce after the expired one: want 200, got %d %s", r.status, r.body)
	}
	// A token asking without end keeps a bounded number of nonces.
	for i := range members.ChallengesPerToken + 10 {
		nonceOf(other, fmt.Sprintf("n-%d", i))
	}
	var tok api.Token
	if err := e.admin.Get(context.Background(), "tokens", "other", &tok); err != nil {
		t.Fatal(err)
	}
	var kept int
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM register_nonces WHERE token_uid = $1`, tok.Metadata.UID).Scan(&kept); err != nil {
		t.Fatalf("count nonces: %v", err)
	}
	if kept != members.ChallengesPerToken {
		t.Errorf("after %d challenges: want the newest %d nonces kept for the token, got %d", members.ChallengesPerToken+10, members.ChallengesPerToken, kept)
	}
}

// TestRegisterChallengeAcrossHubs: two hubs on one database (behind one
// load balancer) accept each other's nonces, and a nonce used through one
// is used up for the other.
func TestRegisterChallengeAcrossHubs(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	one := newEnvWith(t, dbURL, newBus(t, dbURL), members.HealthConfig{}, true)
	two := newEnvWith(t, dbURL, newBus(t, dbURL), members.HealthConfig{}, true)
	join := one.joinToken("eu", api.TokenSpec{})
	kp := newKey(t)
	pub, _ := kp.PublicKey()
	_, ch := one.challenge(join, "edge-a")
	req := api.RegisterRequest{Name: "edge-a", Region: "eu-west", NATSPublicKey: pub, Nonce: ch.Nonce, ProtocolVersion: 4}
	req.Signature = sign(t, kp, req)
	if r, _ := two.postRegister(join, req); r.status != 200 {
		t.Fatalf("a nonce from hub one, registering through hub two: want 200, got %d %s", r.status, r.body)
	}
	if r, _ := one.postRegister(join, req); r.status != 401 {
		t.Errorf("the same nonce again through hub one: want 401, got %d %s", r.status, r.body)
	}
}

// TestReissue: only an admin re-issues a cluster's identity; it revokes
// the old key and member token (audited, with an event), and the next
// member to join under the name with a new key takes it, as the same
// cluster.
func TestReissue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("eu", api.TokenSpec{})
	kpA := newKey(t)
	keyA, _ := kpA.PublicKey()
	_, a := e.register(join, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west"})
	if a.MemberToken == "" {
		t.Fatal("first registration failed")
	}
	kpNew := newKey(t)
	keyNew, _ := kpNew.PublicKey()
	if r, _ := e.register(join, kpNew, api.RegisterRequest{Name: "edge-a", Region: "eu-west"}); r.status != 409 {
		t.Fatalf("a new key before the re-issue: want 409, got %d %s", r.status, r.body)
	}
	operator := e.token("o", api.RoleOperator)
	if r := e.do("POST", "/api/v1/clusters/edge-a/reissue", operator, "", nil); r.status != 403 {
		t.Errorf("operator re-issue: want 403, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/clusters/edge-a/reissue", join, "", nil); r.status != 401 {
		t.Errorf("re-issue with a join token: want 401, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/clusters/nope/reissue", adminSecret, "", nil); r.status != 404 {
		t.Errorf("re-issue of an unknown cluster: want 404, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/clusters/edge-a/reissue?resourceVersion=1", adminSecret, "", nil); r.status != 409 {
		t.Errorf("re-issue at a stale version: want 409, got %d %s", r.status, r.body)
	}
	r := e.do("POST", "/api/v1/clusters/edge-a/reissue", adminSecret, "", nil)
	var reissued api.Cluster
	if r.status != 200 || json.Unmarshal(r.body, &reissued) != nil || reissued.Status.Identity != "" || reissued.Metadata.UID != a.Cluster.Metadata.UID {
		t.Fatalf("admin re-issue: want 200 with the same cluster and no identity, got %d %s", r.status, r.body)
	}
	revoked, err := e.store.NATSRevocations(ctx)
	if err != nil || revoked["edge-a"][keyA].IsZero() {
		t.Errorf("want the old key %s revoked; got %v %v", keyA, revoked, err)
	}
	if got := e.auditResults("edge-a", "reissue"); len(got) != 2 || got[0].Actor != "token:bootstrap-admin" || got[0].Result != "ok" ||
		got[1].Actor != "token:o" || got[1].Result != api.CodeForbidden {
		t.Errorf("want the re-issue audited: the operator's refused, the admin's done; got %+v", got)
	}
	var found bool
	for _, ev := range e.clusterEvents("edge-a") {
		found = found || ev.Reason == "IdentityReissued" && strings.Contains(ev.Message, keyA)
	}
	if !found {
		t.Errorf("want an IdentityReissued event naming the revoked key; got %+v", e.clusterEvents("edge-a"))
	}
	// The old member is out: its member token, and its key even with a
	// join token.
	if r, _ := e.register(a.MemberToken, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west"}); r.status != 401 {
		t.Errorf("the old member token after the re-issue: want 401, got %d %s", r.status, r.body)
	}
	if r, _ := e.register(join, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west"}); r.status != 409 || !strings.Contains(r.problem.Detail, "revoked") {
		t.Errorf("the old key with a join token after the re-issue: want 409 (revoked), got %d %s", r.status, r.body)
	}
	// The new key takes the name, as the same cluster.
	r, n := e.register(join, kpNew, api.RegisterRequest{Name: "edge-a", Region: "eu-west", Zone: "z1"})
	if r.status != 200 || n.MemberToken == "" || n.Cluster.Status.Identity != keyNew || n.Cluster.Metadata.UID != a.Cluster.Metadata.UID || n.Cluster.Metadata.Labels["zone"] != "z1" {
		t.Fatalf("a new key after the re-issue: want 200 with identity %s, got %d %s", keyNew, r.status, r.body)
	}
	// ... and holds it against the next one.
	if r, _ := e.register(join, newKey(t), api.RegisterRequest{Name: "edge-a", Region: "eu-west"}); r.status != 409 {
		t.Errorf("a third key after the new one registered: want 409, got %d %s", r.status, r.body)
	}
	if r, _ := e.register(n.MemberToken, kpNew, api.RegisterRequest{Name: "edge-a", Region: "eu-west"}); r.status != 200 {
		t.Errorf("the new member restarts: want 200, got %d %s", r.status, r.body)
	}
}

// TestRegisterOldMember: a member of protocol 3 (no nonce, no signature)
// is refused with a message that says to upgrade it.
func TestRegisterOldMember(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("eu", api.TokenSpec{})
	pub, _ := newKey(t).PublicKey()
	body := []byte(`{"name":"edge-a","region":"eu-west","natsPublicKey":"` + pub + `","memberVersion":"v0.3","protocolVersion":3}`)
	r := e.do("POST", "/api/v1/clusters/register", join, "application/json", body)
	if r.status != 422 || !strings.Contains(string(r.body), "upgrade this member") {
		t.Errorf("a protocol 3 registration: want 422 saying to upgrade, got %d %s", r.status, r.body)
	}
}

// TestRegisterAuthenticatesBeforeParsing: the registration routes read no
// body before the token is checked, so an anonymous YAML alias bomb gets
// a 401 for the cost of a request; with a token they take JSON only, and
// bodies up to 64 KiB. (Not parallel: it measures the process's
// allocations.)
func TestRegisterAuthenticatesBeforeParsing(t *testing.T) {
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("eu", api.TokenSpec{})
	// A 32 KiB string, aliased 1000 times through three levels of ten,
	// after enough plain nodes that yaml.v3's alias ratio lets it through:
	// a 34 KiB body that a YAML reader turns into over 300 MiB (the same
	// with four levels costs a hub 3.6 GB of allocations).
	var bomb bytes.Buffer
	fmt.Fprintf(&bomb, "p: [%s1]\n", strings.Repeat("1, ", 400))
	fmt.Fprintf(&bomb, "s: &a0 %q\n", strings.Repeat("x", 32<<10))
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&bomb, "a%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				bomb.WriteString(", ")
			}
			fmt.Fprintf(&bomb, "*a%d", i-1)
		}
		bomb.WriteString("]\n")
	}
	paths := []string{"/api/v1/clusters/register", "/api/v1/clusters/register/challenge"}
	// Warm up the routes, then measure.
	for _, p := range paths {
		e.do("POST", p, "", "application/yaml", []byte("{}"))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const rounds = 5
	for range rounds {
		for _, p := range paths {
			for _, token := range []string{"", "atollj_nonsense"} {
				r := e.do("POST", p, token, "application/yaml", bomb.Bytes())
				if r.status != 401 {
					t.Fatalf("POST %s with an alias bomb and token %q: want 401, got %d %s", p, token, r.status, r.body)
				}
				if r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("POST %s: a 401 without WWW-Authenticate", p)
				}
			}
		}
	}
	runtime.ReadMemStats(&after)
	// Each request costs the HTTP round trip (both ends are in this
	// process) and a token lookup: tens of KiB. Parsing the bomb would
	// cost gigabytes.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("%d anonymous alias bombs allocated %d MiB; want under 64 MiB (the body must not be parsed)", rounds*4, grew>>20)
	}
	t.Logf("%d anonymous alias bombs: %d KiB allocated, heap %d -> %d KiB", rounds*4, (after.TotalAlloc-before.TotalAlloc)>>10, before.HeapAlloc>>10, after.HeapAlloc>>10)

	// With a token: JSON only, so the bomb is no bomb.
	if r := e.do("POST", paths[0], join, "application/yaml", bomb.Bytes()); r.status != 415 || !strings.Contains(r.problem.Detail, "application/json only") {
		t.Errorf("YAML with a join token: want 415, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", paths[0], join, "", bomb.Bytes()); r.status != 400 {
		t.Errorf("the bomb as JSON with a join token: want 400, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", paths[0], join, "application/json", []byte(`{"name":`+strings.Repeat(" ", 64<<10)+`"a"}`)); r.status != 413 {
		t.Errorf("a body over 64 KiB: want 413, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", paths[1], join, "application/json", []byte(`{"name":"a","extra":1}`)); r.status != 400 || !strings.Contains(r.problem.Detail, "unknown field") {
		t.Errorf("an unknown field in a challenge request: want 400, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", paths[1], join, "application/json", nil); r.status != 400 {
		t.Errorf("an empty challenge request: want 400, got %d %s", r.status, r.body)
	}

	// The OpenAPI document still shows the bodies' schemas.
	r := e.do("GET", "/openapi.json", "", "", nil)
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if ref, _ := doc.Paths[p]["post"].RequestBody.Content["application/json"].Schema["$ref"].(string); !strings.Contains(ref, "Register") {
			t.Errorf("openapi: POST %s: want the JSON body's schema, got %+v", p, doc.Paths[p]["post"].RequestBody)
		}
	}
	if r.status != http.StatusOK {
		t.Errorf("openapi.json: %d", r.status)
	}
}
