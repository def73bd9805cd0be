package members

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/tokens"
	"github.com/atollhq/atoll/protocol"
	"github.com/atollhq/atoll/telemetry"
)

// Registrar admits member clusters and removes them: a member asks for a
// challenge and joins with a join token and its signature of the nonce
// (its Cluster, member token and NATS identity are created in one
// transaction), comes back after a restart with its member token (signing
// again), and is deregistered by an admin (its identity revoked in the
// store and on the running NATS server). An admin may also re-issue a
// cluster's identity: the next member to join under its name sets a new
// one.
type Registrar struct {
	store         RegistryStore
	bus           *natsbus.Bus // nil: members cannot join
	monitor       *Monitor
	log           *slog.Logger
	now           func() time.Time
	leafURLs      []string
	registrations metric.Int64Counter
}

// RegistryStore is what registration reads and writes (*pgstore.Store
// has it).
type RegistryStore interface {
	InTx(ctx context.Context, actor pgstore.Actor, fn func(tx *pgstore.Tx) error) error
	TokenByHash(ctx context.Context, hash []byte) (*pgstore.Record, error)
	AuditRefusal(ctx context.Context, actor pgstore.Actor, verb, kind, name, result, detail string)
	NATSRevocations(ctx context.Context) (map[string]map[string]time.Time, error)
	NATSRevoked(ctx context.Context, userKey string) (bool, error)
	PutRegisterNonce(ctx context.Context, n pgstore.RegisterNonce, keep int) error
	TakeRegisterNonce(ctx context.Context, hash []byte, tokenUID, cluster string, now time.Time) error
}

// ChallengeTTL is how long a registration nonce may be used: a member
// asks for it right before registering. Hubs behind one load balancer
// compare it with their own clocks, so it leaves room for some skew.
const ChallengeTTL = 2 * time.Minute

// ChallengesPerToken is how many unused nonces one token may have (the
// newest): a member needs one at a time, but a fleet may join at once
// with one join token.
const ChallengesPerToken = 256

// NewRegistrar makes a registrar. leafURLs are the NATS leafnode URLs
// members connect to (empty: the hub's leafnode port on the host each
// member registered through).
func NewRegistrar(store RegistryStore, bus *natsbus.Bus, monitor *Monitor, log *slog.Logger, now func() time.Time, meter metric.Meter, leafURLs []string) *Registrar {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	r := &Registrar{store: store, bus: bus, monitor: monitor, log: log, now: now, leafURLs: leafURLs}
	r.registrations, _ = meter.Int64Counter("registrations", metric.WithUnit("{registration}"), metric.WithDescription("Member registrations, by result."))
	return r
}

// Authenticate checks the token of a registration or of its challenge (a
// join or member token), before anything of the request's body is read.
// authorization is the request's Authorization header. Anonymous knocking
// is counted, not audited.
func (s *Registrar) Authenticate(ctx context.Context, authorization string) (*api.Token, error) {
	if s.bus == nil {
		return nil, api.Errorf(api.CodeUnavailable, "this hub runs without NATS, so members cannot join it")
	}
	tok, err := s.registrationToken(ctx, authorization)
	if err != nil {
		s.registrations.Add(ctx, 1, metric.WithAttributes(attribute.String("result", api.ErrorCode(err))))
		return nil, err
	}
	return tok, nil
}

// Challenge issues a registration nonce to tok for the cluster req names.
func (s *Registrar) Challenge(ctx context.Context, tok *api.Token, req *api.RegisterChallengeRequest) (*api.RegisterChallenge, error) {
	if fe := req.Validate(); fe != nil {
		return nil, fe
	}
	switch tok.Spec.TypeOrDefault() {
	case api.TokenMember:
		if tok.Spec.Cluster != req.Name {
			return nil, api.Errorf(api.CodeForbidden, "this member token belongs to cluster %s, not %s", tok.Spec.Cluster, req.Name)
		}
	case api.TokenJoin:
		if tok.Spec.Uses > 0 && tok.Status.Used >= tok.Spec.Uses {
			return nil, api.Errorf(api.CodeUnauthorized, "the join token is used up (%d of %d registrations)", tok.Status.Used, tok.Spec.Uses)
		}
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	nonce := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now().UTC()
	expires := now.Add(ChallengeTTL).Truncate(time.Millisecond)
	if err := s.store.PutRegisterNonce(ctx, pgstore.RegisterNonce{Hash: tokens.Hash(nonce), TokenUID: tok.Metadata.UID, Cluster: req.Name,
		Created: now, Expires: expires}, ChallengesPerToken); err != nil {
		return nil, err
	}
	return &api.RegisterChallenge{Nonce: nonce, ExpiresAt: expires}, nil
}

// takeover marks a refusal that may be an attempt to take over a cluster
// (a bad proof of the key, or another key than the cluster's): when the
// cluster exists, the refusal is a Warning event on it.
type takeover struct{ error }

func (t takeover) Unwrap() error { return t.error }

// Register admits a member that tok authenticated (Authenticate): with a
// join token the first time (creating its Cluster and member token), with
// its member token afterwards. Either way the request must carry a
// nonce issued to tok for this name and the signature of it by the NATS
// key registered. host is the host name the request came in on (members
// connect their leaf node there when no leaf URL is configured). Errors
// are domain errors (package api).
func (s *Registrar) Register(ctx context.Context, tok *api.Token, host string, req *api.RegisterRequest) (*api.RegisterResponse, error) {
	if s.bus == nil {
		return nil, api.Errorf(api.CodeUnavailable, "this hub runs without NATS, so members cannot join it")
	}
	who := pgstore.Actor{Name: tok.Spec.TypeOrDefault() + ":" + tok.Metadata.Name, RequestID: telemetry.RequestIDFrom(ctx)}
	refuse := func(err error) error {
		code := api.ErrorCode(err)
		var fe api.FieldErrors
		if errors.As(err, &fe) {
			code = api.CodeInvalid
		}
		if code != api.CodeUnavailable {
			s.store.AuditRefusal(ctx, who, "register", "Cluster", req.Name, code, err.Error())
		}
		var t takeover
		if errors.As(err, &t) {
			s.warnRefused(ctx, who, tok, req, err)
		}
		s.registrations.Add(ctx, 1, metric.WithAttributes(attribute.String("result", code)))
		return err
	}
	if fe := req.Validate(); fe != nil {
		return nil, refuse(fe)
	}
	// The proof first, then the nonce: a bad signature does not use up
	// the real member's nonce.
	if err := req.Verify(); err != nil {
		return nil, refuse(takeover{api.Errorf(api.CodeForbidden, "%v: the signature is not %s's over the nonce (this member does not hold the key it registers)", err, req.NATSPublicKey)})
	}
	if err := s.store.TakeRegisterNonce(ctx, tokens.Hash(req.Nonce), tok.Metadata.UID, req.Name, s.now()); err != nil {
		if api.ErrorCode(err) == api.CodeNotFound {
			err = takeover{api.Errorf(api.CodeUnauthorized, "the nonce is unknown, used, expired, or was issued for another token or cluster: ask for a new one (POST /api/v1/clusters/register/challenge) right before registering")}
		}
		return nil, refuse(err)
	}
	if gone, err := s.store.NATSRevoked(ctx, req.NATSPublicKey); err != nil {
		return nil, refuse(err)
	} else if gone {
		return nil, refuse(takeover{api.Errorf(api.CodeConflict, "NATS key %s was revoked (its cluster was deregistered or its identity re-issued): register with a new key", req.NATSPublicKey)})
	}
	var resp api.RegisterResponse
	var cluster *pgstore.Record
	err := s.store.InTx(ctx, who, func(tx *pgstore.Tx) error {
		var err error
		switch tok.Spec.TypeOrDefault() {
		case api.TokenJoin:
			cluster, resp.MemberToken, err = s.join(ctx, tx, tok, req)
		default:
			cluster, err = s.rejoin(ctx, tx, tok, req)
		}
		if err != nil {
			return err
		}
		// Signed before commit: if it fails, nothing was written. The
		// member's account carries every revocation of the cluster, also
		// those other hubs made.
		revoked, err := s.store.NATSRevocations(ctx)
		if err != nil {
			return err
		}
		resp.NATSUserJWT, err = s.bus.MemberJWT(req.Name, req.NATSPublicKey, revoked[req.Name])
		return err
	})
	if err != nil {
		return nil, refuse(err)
	}
	if err := cluster.Decode(&resp.Cluster); err != nil {
		return nil, err
	}
	resp.LeafURLs = s.leafURLsFor(host)
	resp.HeartbeatInterval = api.Duration(s.monitor.Config().Interval.String())
	resp.ProtocolVersion = protocol.Version
	s.monitor.Add(req.Name)
	s.registrations.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "ok")))
	return &resp, nil
}

// warnRefused writes a refused registration of an existing cluster as a
// Warning event on it (the audit row is written too, by the caller). A
// registration of a cluster that does not exist has nothing to take over:
// the audit row is all.
func (s *Registrar) warnRefused(ctx context.Context, who pgstore.Actor, tok *api.Token, req *api.RegisterRequest, cause error) {
	err := s.store.InTx(ctx, who, func(tx *pgstore.Tx) error {
		cluster, err := tx.Get(ctx, "Cluster", req.Name)
		if err != nil {
			return err
		}
		return events.Record(ctx, tx, s.now(), api.ObjectReference{Kind: "Cluster", Name: req.Name, UID: cluster.Meta.UID}, api.EventWarning, "RegistrationRefused",
			fmt.Sprintf("a registration with %s token %s and NATS key %s was refused: %v", tok.Spec.TypeOrDefault(), tok.Metadata.Name, req.NATSPublicKey, cause), "hub/register")
	})
	if err != nil && api.ErrorCode(err) != api.CodeNotFound {
		s.log.WarnContext(ctx, "recording a refused registration as an event failed", "cluster", req.Name, "err", err)
	}
}

// registrationToken authenticates a registration: a join or member token.
func (s *Registrar) registrationToken(ctx context.Context, header string) (*api.Token, error) {
	scheme, secret, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return nil, api.Errorf(api.CodeUnauthorized, "registration needs a join token: send 'Authorization: Bearer atollj_...'")
	}
	rec, err := s.store.TokenByHash(ctx, tokens.Hash(strings.TrimSpace(secret)))
	if err != nil {
		if api.ErrorCode(err) == api.CodeUnauthorized {
			return nil, api.Errorf(api.CodeUnauthorized, "the token is not valid: unknown, revoked, or the member token of a deregistered cluster (such a member must join again with a new join token)")
		}
		return nil, err
	}
	var t api.Token
	if err := rec.Decode(&t); err != nil {
		return nil, err
	}
	if t.Spec.ExpiresAt != nil && !s.now().Before(*t.Spec.ExpiresAt) {
		return nil, api.Errorf(api.CodeUnauthorized, "the join token expired at %s", t.Spec.ExpiresAt.Format(time.RFC3339))
	}
	if t.Metadata.DeletionTimestamp != nil {
		return nil, api.Errorf(api.CodeUnauthorized, "the token is being revoked")
	}
	if typ := t.Spec.TypeOrDefault(); typ != api.TokenJoin && typ != api.TokenMember {
		return nil, api.Errorf(api.CodeUnauthorized, "an API token cannot register members: use a join token ('atoll token create NAME --join')")
	}
	return &t, nil
}

// MemberTokenName names the member token of a cluster.
func MemberTokenName(cluster string) string { return "member-" + cluster }

// join registers with a join token: the cluster must be new, or be this
// same member (same key, which it proved it holds) retrying, or have had
// its identity re-issued by an admin.
func (s *Registrar) join(ctx context.Context, tx *pgstore.Tx, tok *api.Token, req *api.RegisterRequest) (*pgstore.Record, string, error) {
	if tok.Spec.Region != "" && tok.Spec.Region != req.Region {
		return nil, "", api.Errorf(api.CodeForbidden, "this join token is for region %s, not %s", tok.Spec.Region, req.Region)
	}
	// Count the use under the token's row lock, so concurrent joins cannot
	// overspend it.
	_, err := tx.Mutate(ctx, "use", "Token", tok.Metadata.Name, func(cur *pgstore.Record) error {
		var st api.TokenStatus
		_ = json.Unmarshal(cur.Status, &st)
		if tok.Spec.Uses > 0 && st.Used >= tok.Spec.Uses {
			return api.Errorf(api.CodeUnauthorized, "the join token is used up (%d of %d registrations)", st.Used, tok.Spec.Uses)
		}
		st.Used++
		b, err := json.Marshal(st)
		cur.Status = b
		return err
	})
	if err != nil {
		return nil, "", err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	cluster, err := tx.Get(ctx, "Cluster", req.Name)
	switch {
	case err == nil:
		var st api.ClusterStatus
		_ = json.Unmarshal(cluster.Status, &st)
		reissued := st.Identity == ""
		if !reissued && st.Identity != req.NATSPublicKey {
			return nil, "", takeover{api.Errorf(api.CodeConflict, "cluster %q is already registered with another identity: only its member can register it again; if that member lost its key, an admin re-issues the identity first ('atoll cluster reissue %s')", req.Name, req.Name)}
		}
		if _, _, err := tx.Delete(ctx, "Token", MemberTokenName(req.Name), ""); err != nil && api.ErrorCode(err) != api.CodeNotFound {
			return nil, "", err
		}
		if cluster, err = s.updateRegistration(ctx, tx, req, reissued); err != nil {
			return nil, "", err
		}
		if reissued {
			if err := events.Record(ctx, tx, now, api.ObjectReference{Kind: "Cluster", Name: req.Name, UID: cluster.Meta.UID}, api.EventNormal, "ClusterRegistered",
				fmt.Sprintf("registered again after its identity was re-issued, in region %s with join token %s and NATS key %s", req.Region, tok.Metadata.Name, req.NATSPublicKey), "hub/register"); err != nil {
				return nil, "", err
			}
		}
	case api.ErrorCode(err) == api.CodeNotFound:
		st := api.ClusterStatus{Health: api.HealthUnknown, Identity: req.NATSPublicKey, RegisteredAt: &now,
			MemberVersion: req.MemberVersion, ProtocolVersion: req.ProtocolVersion}
		status, _ := json.Marshal(st)
		cluster, err = tx.Create(ctx, &pgstore.Record{Kind: "Cluster", Meta: api.ObjectMeta{Name: req.Name, Labels: clusterLabels(nil, req)}, Spec: []byte("{}"), Status: status})
		if err != nil {
			return nil, "", err
		}
		if err := events.Record(ctx, tx, now, api.ObjectReference{Kind: "Cluster", Name: req.Name, UID: cluster.Meta.UID}, api.EventNormal, "ClusterRegistered",
			fmt.Sprintf("registered in region %s with join token %s", req.Region, tok.Metadata.Name), "hub/register"); err != nil {
			return nil, "", err
		}
	default:
		return nil, "", err
	}
	secret, prefix := tokens.NewSecret()
	spec, _ := json.Marshal(api.TokenSpec{Type: api.TokenMember, Cluster: req.Name, Description: "credential of member " + req.Name})
	status, _ := json.Marshal(api.TokenStatus{Prefix: prefix})
	if _, err := tx.CreateToken(ctx, &pgstore.Record{Kind: "Token", Meta: api.ObjectMeta{Name: MemberTokenName(req.Name)}, Spec: spec, Status: status}, tokens.Hash(secret)); err != nil {
		return nil, "", err
	}
	return cluster, secret, nil
}

// rejoin re-registers a member with its member token.
func (s *Registrar) rejoin(ctx context.Context, tx *pgstore.Tx, tok *api.Token, req *api.RegisterRequest) (*pgstore.Record, error) {
	if tok.Spec.Cluster != req.Name {
		return nil, api.Errorf(api.CodeForbidden, "this member token belongs to cluster %s, not %s", tok.Spec.Cluster, req.Name)
	}
	cluster, err := tx.Get(ctx, "Cluster", req.Name)
	if err != nil {
		if api.ErrorCode(err) == api.CodeNotFound {
			return nil, api.Errorf(api.CodeUnauthorized, "cluster %s was deregistered: join again with a new join token", req.Name)
		}
		return nil, err
	}
	var st api.ClusterStatus
	_ = json.Unmarshal(cluster.Status, &st)
	if st.Identity != req.NATSPublicKey {
		return nil, takeover{api.Errorf(api.CodeConflict, "cluster %q is registered with another NATS identity", req.Name)}
	}
	return s.updateRegistration(ctx, tx, req, false)
}

// updateRegistration refreshes what the member reports about itself: its
// topology labels and versions; with identity, also its NATS key and the
// time it registered (after a re-issue).
func (s *Registrar) updateRegistration(ctx context.Context, tx *pgstore.Tx, req *api.RegisterRequest, identity bool) (*pgstore.Record, error) {
	return tx.Mutate(ctx, "register", "Cluster", req.Name, func(cur *pgstore.Record) error {
		cur.Meta.Labels = clusterLabels(cur.Meta.Labels, req)
		var st api.ClusterStatus
		_ = json.Unmarshal(cur.Status, &st)
		st.MemberVersion, st.ProtocolVersion = req.MemberVersion, req.ProtocolVersion
		if identity {
			now := s.now().UTC().Truncate(time.Millisecond)
			st.Identity, st.RegisteredAt = req.NATSPublicKey, &now
		}
		b, err := json.Marshal(st)
		cur.Status = b
		return err
	})
}

// clusterLabels merges what the member reports into the labels it has:
// region, zone and provider come from their fields, custom labels from
// the member override the same keys.
func clusterLabels(have map[string]string, req *api.RegisterRequest) map[string]string {
	out := map[string]string{}
	for k, v := range have {
		out[k] = v
	}
	for k, v := range req.Labels {
		out[k] = v
	}
	out[api.LabelRegion] = req.Region
	for k, v := range map[string]string{api.LabelZone: req.Zone, api.LabelProvider: req.Provider} {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// Deregister removes a cluster: its NATS identity is revoked, its member
// token deleted and the Cluster object with them, in one transaction; then
// the running NATS server drops the member's connections. A cluster whose
// member still heartbeats (Ready or Suspect) is refused (409) unless
// force: deregistering cuts a running region off for good.
func (s *Registrar) Deregister(ctx context.Context, a pgstore.Actor, name, precondition string, force bool) (*pgstore.Record, error) {
	// Live: Ready or Suspect, or heard within the grace (a member that
	// just joined is heartbeating before the monitor's next pass says so).
	l, ok := s.monitor.Live(name)
	heard := ok && !l.Seen.IsZero() && s.now().Sub(l.Seen) < s.monitor.Config().UnreachableAfter
	if ok && !force && (heard || l.Health == api.HealthReady || l.Health == api.HealthSuspect) {
		state := l.Health
		if state != api.HealthReady && state != api.HealthSuspect {
			state = "heartbeating"
		}
		err := api.Errorf(api.CodeConflict, "cluster %s is %s (its member heartbeated %s ago): deregistering cuts a running region off for good; stop its member first, or force it (atoll cluster deregister %s --force)",
			name, state, s.now().Sub(l.Seen).Round(100*time.Millisecond), name)
		s.store.AuditRefusal(ctx, a, pgstore.VerbDelete, "Cluster", name, api.CodeConflict, err.Error())
		return nil, err
	}
	var last *pgstore.Record
	var identity string
	now := s.now().UTC()
	err := s.store.InTx(ctx, a, func(tx *pgstore.Tx) error {
		cur, err := tx.Get(ctx, "Cluster", name)
		if err != nil {
			return err
		}
		if err := pgstore.CheckVersion(cur, precondition); err != nil {
			return err
		}
		if identity, err = revokeIdentity(ctx, tx, cur, now); err != nil {
			return err
		}
		// Deregistration is final: finalizers do not hold it (the member's
		// identity is already revoked).
		last, err = tx.Mutate(ctx, pgstore.VerbDelete, "Cluster", name, func(c *pgstore.Record) error {
			c.Meta.Finalizers = nil
			if c.Meta.DeletionTimestamp == nil {
				at := now.Truncate(time.Microsecond)
				c.Meta.DeletionTimestamp = &at
			}
			return nil
		})
		if err != nil {
			return err
		}
		return events.Record(ctx, tx, now, api.ObjectReference{Kind: "Cluster", Name: name, UID: cur.Meta.UID}, api.EventNormal, "ClusterDeregistered",
			fmt.Sprintf("deregistered by %s; its NATS identity and member token are revoked", a.Name), "hub/register")
	})
	if err != nil {
		return nil, err
	}
	s.monitor.Forget(name)
	s.pushRevocations(ctx, name, identity)
	return last, nil
}

// Reissue clears a cluster's identity, for a member that lost its key (its
// data folder) or whose key is no longer trusted: its NATS identity is
// revoked and its member token deleted, and the next member to register
// under its name with a join token sets a new key. The cluster stays, with
// its spec and placements; until a member registers again it is silent,
// and becomes Unreachable as any silent cluster does.
func (s *Registrar) Reissue(ctx context.Context, a pgstore.Actor, name, precondition string) (*pgstore.Record, error) {
	var last *pgstore.Record
	var identity string
	now := s.now().UTC()
	err := s.store.InTx(ctx, a, func(tx *pgstore.Tx) error {
		cur, err := tx.Get(ctx, "Cluster", name)
		if err != nil {
			return err
		}
		if err := pgstore.CheckVersion(cur, precondition); err != nil {
			return err
		}
		if cur.Meta.DeletionTimestamp != nil {
			return api.Errorf(api.CodeConflict, "cluster %s is being deregistered", name)
		}
		if identity, err = revokeIdentity(ctx, tx, cur, now); err != nil {
			return err
		}
		last, err = tx.Mutate(ctx, "reissue", "Cluster", name, func(c *pgstore.Record) error {
			var st api.ClusterStatus
			_ = json.Unmarshal(c.Status, &st)
			st.Identity = ""
			b, err := json.Marshal(st)
			c.Status = b
			return err
		})
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("identity re-issued by %s: the next member to register with a join token sets a new NATS key", a.Name)
		if identity != "" {
			msg = fmt.Sprintf("identity re-issued by %s: NATS key %s and the member token are revoked; the next member to register with a join token sets a new key", a.Name, identity)
		}
		return events.Record(ctx, tx, now, api.ObjectReference{Kind: "Cluster", Name: name, UID: cur.Meta.UID}, api.EventNormal, "IdentityReissued", msg, "hub/register")
	})
	if err != nil {
		return nil, err
	}
	s.pushRevocations(ctx, name, identity)
	return last, nil
}

// revokeIdentity revokes a cluster's NATS key (when it has one) and
// deletes its member token, inside tx; it returns the key.
func revokeIdentity(ctx context.Context, tx *pgstore.Tx, cluster *pgstore.Record, now time.Time) (string, error) {
	var st api.ClusterStatus
	_ = json.Unmarshal(cluster.Status, &st)
	if st.Identity != "" {
		if err := tx.RevokeNATSUser(ctx, st.Identity, cluster.Meta.Name, now); err != nil {
			return "", err
		}
	}
	if _, _, err := tx.Delete(ctx, "Token", MemberTokenName(cluster.Meta.Name), ""); err != nil && api.ErrorCode(err) != api.CodeNotFound {
		return "", err
	}
	return st.Identity, nil
}

// pushRevocations makes the running NATS server drop a revoked member.
func (s *Registrar) pushRevocations(ctx context.Context, name, identity string) {
	if identity == "" || s.bus == nil {
		return
	}
	// Push every revocation of the cluster the store holds, not only this
	// one: other hubs revoked its keys too, and the member account's JWT
	// pushed here replaces theirs.
	revoked, err := s.store.NATSRevocations(ctx)
	if err == nil {
		err = s.bus.RevokeAll(map[string]map[string]time.Time{name: revoked[name]})
	}
	if err != nil {
		s.log.ErrorContext(ctx, "revoking a member's NATS identity failed; it is revoked in the store and will be at the next hub start", "cluster", name, "err", err)
	}
}

// leafURLsFor lists where members connect their leaf node: the configured
// URLs, else the leafnode port on the host this request came in on.
func (s *Registrar) leafURLsFor(host string) []string {
	if len(s.leafURLs) > 0 {
		return s.leafURLs
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return []string{s.bus.LeafURL(host)}
}
