package hub_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/protocol"
)

// newKey is a member's NATS key pair.
func newKey(t testing.TB) nkeys.KeyPair {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// joinToken creates a join token and returns its secret.
func (e *env) joinToken(name string, spec api.TokenSpec) string {
	e.t.Helper()
	spec.Type = api.TokenJoin
	var created api.Token
	if err := e.admin.Create(context.Background(), "tokens", api.Token{Metadata: api.ObjectMeta{Name: name}, Spec: spec}, &created); err != nil {
		e.t.Fatalf("create join token: %v", err)
	}
	return created.Status.Secret
}

// challenge asks for a registration nonce for name with token.
func (e *env) challenge(token, name string) (response, api.RegisterChallenge) {
	e.t.Helper()
	b, _ := json.Marshal(api.RegisterChallengeRequest{Name: name})
	r := e.do("POST", "/api/v1/clusters/register/challenge", token, "application/json", b)
	var ch api.RegisterChallenge
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &ch); err != nil || ch.Nonce == "" {
			e.t.Fatalf("challenge answer without a nonce: %s (%v)", r.body, err)
		}
	}
	return r, ch
}

// register registers as a member does: a challenge for req.Name with
// token, then the registration signed by kp. A refused challenge is the
// answer. req's key defaults to kp's; a nonce or signature already in req
// is sent as it is.
func (e *env) register(token string, kp nkeys.KeyPair, req api.RegisterRequest) (response, api.RegisterResponse) {
	e.t.Helper()
	if req.ProtocolVersion == 0 {
		req.ProtocolVersion = protocol.Version
	}
	if req.NATSPublicKey == "" {
		req.NATSPublicKey, _ = kp.PublicKey()
	}
	if req.Nonce == "" {
		r, ch := e.challenge(token, req.Name)
		if r.status != 200 {
			return r, api.RegisterResponse{}
		}
		req.Nonce = ch.Nonce
	}
	if req.Signature == "" {
		req.Signature = sign(e.t, kp, req)
	}
	return e.postRegister(token, req)
}

// sign is kp's signature of req's proof (whatever key req names).
func sign(t testing.TB, kp nkeys.KeyPair, req api.RegisterRequest) string {
	t.Helper()
	sig, err := kp.Sign(api.RegistrationProof(req.Nonce, req.Name, req.NATSPublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sig)
}

// postRegister sends req to the registration route as it is.
func (e *env) postRegister(token string, req api.RegisterRequest) (response, api.RegisterResponse) {
	e.t.Helper()
	b, _ := json.Marshal(req)
	r := e.do("POST", "/api/v1/clusters/register", token, "application/json", b)
	var out api.RegisterResponse
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &out); err != nil {
			e.t.Fatalf("register answer: %v", err)
		}
	}
	return r, out
}

// TestRegistration walks a member through joining, coming back, being
// refused for every wrong reason, and being deregistered.
func TestRegistration(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := context.Background()
	join := e.joinToken("eu", api.TokenSpec{Uses: 2, Region: "eu-west"})
	jt, err := api.ParseJoinToken(join)
	if err != nil || jt.Hub != e.url {
		t.Fatalf("join token must carry the hub's address %s: %+v, %v", e.url, jt, err)
	}
	kpA := newKey(t)
	keyA, _ := kpA.PublicKey()
	r, a := e.register(join, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west", Zone: "eu-west-1a", Labels: map[string]string{"tier": "gold"}})
	if r.status != 200 || a.MemberToken == "" || a.NATSUserJWT == "" || len(a.LeafURLs) == 0 || a.HeartbeatInterval == "" {
		t.Fatalf("first registration: %d %s", r.status, r.body)
	}
	if a.Cluster.Metadata.Labels["region"] != "eu-west" || a.Cluster.Metadata.Labels["zone"] != "eu-west-1a" || a.Cluster.Metadata.Labels["tier"] != "gold" || a.Cluster.Status.Identity != keyA {
		t.Errorf("registered cluster: %+v", a.Cluster)
	}

	cases := []struct {
		name, token string
		kp          nkeys.KeyPair
		req         api.RegisterRequest
		status      int
		detail      string
	}{
		{"no token", "", newKey(t), api.RegisterRequest{Name: "x", Region: "eu-west"}, 401, "join token"},
		{"garbage token", "atollj_nonsense", newKey(t), api.RegisterRequest{Name: "x", Region: "eu-west"}, 401, "not valid"},
		{"API token", adminSecret, newKey(t), api.RegisterRequest{Name: "x", Region: "eu-west"}, 401, "cannot register"},
		{"wrong region", join, newKey(t), api.RegisterRequest{Name: "x", Region: "us-east"}, 403, "region eu-west"},
		{"name taken by another identity", join, newKey(t), api.RegisterRequest{Name: "edge-a", Region: "eu-west"}, 409, "another identity"},
		{"bad key", join, newKey(t), api.RegisterRequest{Name: "x", Region: "eu-west", NATSPublicKey: "not-a-key"}, 422, ""},
		{"key with a bad checksum", join, newKey(t), api.RegisterRequest{Name: "squat", Region: "eu-west", NATSPublicKey: "U" + strings.Repeat("A", 55)}, 422, ""},
		{"bad name", join, newKey(t), api.RegisterRequest{Name: "Edge_A", Region: "eu-west"}, 422, ""},
		{"member token of another cluster", a.MemberToken, kpA, api.RegisterRequest{Name: "edge-z", Region: "eu-west"}, 403, "belongs to cluster edge-a"},
		{"member token with another key", a.MemberToken, newKey(t), api.RegisterRequest{Name: "edge-a", Region: "eu-west"}, 409, "another NATS identity"},
	}
	for _, c := range cases {
		r, _ := e.register(c.token, c.kp, c.req)
		if r.status != c.status || !strings.Contains(r.problem.Detail, c.detail) {
			t.Errorf("%s: want %d mentioning %q, got %d %s", c.name, c.status, c.detail, r.status, r.body)
		}
	}
	if err := e.admin.Get(ctx, "clusters", "squat", &api.Cluster{}); err == nil {
		t.Error("a refused registration left a cluster behind")
	}
	// None of the refusals spent a use: one registration is left.
	if r, _ := e.register(join, newKey(t), api.RegisterRequest{Name: "edge-b", Region: "eu-west"}); r.status != 200 {
		t.Fatalf("second registration: %d %s", r.status, r.body)
	}
	if r, _ := e.register(join, newKey(t), api.RegisterRequest{Name: "edge-c", Region: "eu-west"}); r.status != 401 || !strings.Contains(r.problem.Detail, "used up") {
		t.Errorf("third registration with a 2-use token: want 401 used up, got %d %s", r.status, r.body)
	}
	// The join token is no API token.
	if r := e.do("GET", "/api/v1/clusters", join, "", nil); r.status != 401 {
		t.Errorf("join token used on the API: want 401, got %d", r.status)
	}
	// Coming back with the member token: same cluster, no new token.
	r, back := e.register(a.MemberToken, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west", Zone: "eu-west-1b"})
	if r.status != 200 || back.MemberToken != "" || back.Cluster.Metadata.UID != a.Cluster.Metadata.UID || back.Cluster.Metadata.Labels["zone"] != "eu-west-1b" {
		t.Errorf("re-registration: %d %s", r.status, r.body)
	}
	// An expired join token.
	late := e.joinToken("late", api.TokenSpec{TTL: "1h"})
	e.clock.Advance(2 * time.Hour)
	if r, _ := e.register(late, newKey(t), api.RegisterRequest{Name: "edge-d", Region: "eu-west"}); r.status != 401 || !strings.Contains(r.problem.Detail, "expired") {
		t.Errorf("expired join token: want 401 expired, got %d %s", r.status, r.body)
	}

	// Roles on clusters: viewers read, operators cordon, admins deregister.
	viewer, operator := e.token("v", api.RoleViewer), e.token("o", api.RoleOperator)
	// (with a finalizer, which must not hold a deregistration)
	cordon := []byte(`{"metadata":{"finalizers":["example.com/hold"]},"spec":{"unschedulable":true,"taints":[{"key":"maintenance","effect":"NoSchedule"}]}}`)
	if r := e.do("PATCH", "/api/v1/clusters/edge-a", viewer, "application/merge-patch+json", cordon); r.status != 403 {
		t.Errorf("viewer cordon: want 403, got %d", r.status)
	}
	if r := e.do("PATCH", "/api/v1/clusters/edge-a", operator, "application/merge-patch+json", cordon); r.status != 200 {
		t.Errorf("operator cordon: want 200, got %d %s", r.status, r.body)
	}
	if r := e.do("PATCH", "/api/v1/clusters/edge-a", operator, "application/merge-patch+json", []byte(`{"spec":{"taints":[{"key":"x","effect":"Sometimes"}]}}`)); r.status != 422 {
		t.Errorf("bad taint effect: want 422, got %d %s", r.status, r.body)
	}
	if r := e.do("PATCH", "/api/v1/clusters/edge-a", operator, "application/merge-patch+json", []byte(`{"status":{"health":"Ready"}}`)); r.status != 422 {
		t.Errorf("patching cluster status: want 422, got %d", r.status)
	}
	if r := e.do("POST", "/api/v1/clusters", adminSecret, "application/json", []byte(`{"metadata":{"name":"fake"},"spec":{}}`)); r.status != 405 {
		t.Errorf("creating a cluster through the API: want 405 (clusters register), got %d", r.status)
	}
	if r := e.do("DELETE", "/api/v1/clusters/edge-a", operator, "", nil); r.status != 403 {
		t.Errorf("operator deregister: want 403, got %d", r.status)
	}
	if r := e.do("DELETE", "/api/v1/clusters/edge-a", adminSecret, "", nil); r.status != 200 {
		t.Fatalf("admin deregister: %d %s", r.status, r.body)
	}
	var got api.Cluster
	if err := e.admin.Get(ctx, "clusters", "edge-a", &got); err == nil {
		t.Error("a deregistered cluster is still there")
	}
	if r, _ := e.register(a.MemberToken, kpA, api.RegisterRequest{Name: "edge-a", Region: "eu-west"}); r.status != 401 {
		t.Errorf("member token after deregistration: want 401, got %d %s", r.status, r.body)
	}
	revoked, err := e.store.NATSRevocations(ctx)
	if err != nil || revoked["edge-a"][keyA].IsZero() {
		t.Errorf("deregistration did not record the NATS revocation of %s: %v %v", keyA, revoked, err)
	}
	// Events tell the story.
	var events api.EventList
	if err := e.admin.List(ctx, "events", client.ListOptions{LabelSelector: api.LabelEventName + "=edge-a"}, &events); err != nil {
		t.Fatal(err)
	}
	if len(events.Items) == 0 || events.Items[0].Reason != "ClusterRegistered" {
		t.Errorf("events of edge-a: %+v", events.Items)
	}
	// Refusals are audited.
	audit := e.do("GET", "/api/v1/audit?kind=Cluster&name=edge-a", adminSecret, "", nil)
	if !strings.Contains(string(audit.body), `"verb":"register"`) || !strings.Contains(string(audit.body), `"result":"Conflict"`) {
		t.Errorf("registration refusals are not audited: %s", audit.body)
	}
}
