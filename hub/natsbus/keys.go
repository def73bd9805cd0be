package natsbus

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/protocol"
)

// Seeds are the signing keys' seeds, as the store keeps them.
type Seeds struct {
	Operator string
	System   string
	Account  string
}

// NewSeeds makes fresh signing keys.
func NewSeeds() (Seeds, error) {
	gen := func(f func() (nkeys.KeyPair, error)) (string, error) {
		kp, err := f()
		if err != nil {
			return "", err
		}
		seed, err := kp.Seed()
		return string(seed), err
	}
	var s Seeds
	var err error
	if s.Operator, err = gen(nkeys.CreateOperator); err != nil {
		return s, fmt.Errorf("make operator key: %w", err)
	}
	if s.System, err = gen(nkeys.CreateAccount); err != nil {
		return s, fmt.Errorf("make system account key: %w", err)
	}
	if s.Account, err = gen(nkeys.CreateAccount); err != nil {
		return s, fmt.Errorf("make account key: %w", err)
	}
	return s, nil
}

// authority signs the JWTs of the operator, the accounts and users.
type authority struct {
	operator, system, account nkeys.KeyPair
	operatorPub, systemPub    string
	accountPub                string
	operatorClaims            *jwt.OperatorClaims
	memberRoot                []byte // derives the member accounts' keys
}

func newAuthority(s Seeds) (*authority, error) {
	a := &authority{memberRoot: []byte(s.Account)}
	var err error
	for _, k := range []struct {
		seed string
		kp   *nkeys.KeyPair
		pub  *string
		want nkeys.PrefixByte
	}{
		{s.Operator, &a.operator, &a.operatorPub, nkeys.PrefixByteOperator},
		{s.System, &a.system, &a.systemPub, nkeys.PrefixByteAccount},
		{s.Account, &a.account, &a.accountPub, nkeys.PrefixByteAccount},
	} {
		if *k.kp, err = nkeys.FromSeed([]byte(k.seed)); err != nil {
			return nil, fmt.Errorf("load NATS signing key: %w", err)
		}
		if *k.pub, err = (*k.kp).PublicKey(); err != nil {
			return nil, err
		}
		if !nkeys.IsValidPublicKey(*k.pub) || (*k.pub)[0] != byte(prefixLetter(k.want)) {
			return nil, fmt.Errorf("load NATS signing key: wrong key type %q", (*k.pub)[:1])
		}
	}
	oc := jwt.NewOperatorClaims(a.operatorPub)
	oc.Name = "atoll"
	oc.SystemAccount = a.systemPub
	token, err := oc.Encode(a.operator)
	if err != nil {
		return nil, fmt.Errorf("sign operator: %w", err)
	}
	if a.operatorClaims, err = jwt.DecodeOperatorClaims(token); err != nil {
		return nil, err
	}
	return a, nil
}

func prefixLetter(p nkeys.PrefixByte) rune {
	switch p {
	case nkeys.PrefixByteOperator:
		return 'O'
	case nkeys.PrefixByteAccount:
		return 'A'
	}
	return 'U'
}

func (a *authority) systemAccountJWT() (string, error) {
	ac := jwt.NewAccountClaims(a.systemPub)
	ac.Name = "SYS"
	return ac.Encode(a.operator)
}

// accountJWT is the ATOLL account: JetStream enabled, the hub's side of
// the member spaces exported, and legacy member keys refused. Members
// live in accounts of their own (memberAccountJWT); each imports only its
// own space, so nothing a member sends reaches the ATOLL account except
// under atoll.m.<cluster>.>, whatever its connection's permissions allow
// or fail to check (nats-server lets a leaf publish on $JS.ACK.> and _R_.>
// unchecked: in a member's own account those reach nothing).
//
// legacy are member user keys that were once signed in the ATOLL account
// itself: JWTs this account issued for them are refused forever (the same
// keys stay valid in their member accounts).
func (a *authority) accountJWT(legacy []string) (*jwt.AccountClaims, string, error) {
	ac := jwt.NewAccountClaims(a.accountPub)
	ac.Name = "ATOLL"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ac.Exports.Add(
		&jwt.Export{Name: "members to the hub", Subject: jwt.Subject(protocol.MemberPublish("*")), Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton},
		&jwt.Export{Name: "the hub to members", Subject: jwt.Subject(protocol.MemberReceive("*")), Type: jwt.Stream},
	)
	for _, k := range legacy {
		ac.RevokeAt(k, legacyRevocation)
	}
	token, err := ac.Encode(a.operator)
	return ac, token, err
}

// legacyRevocation is later than any JWT's issue time: a key revoked at it
// is refused in that account for good.
var legacyRevocation = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// memberAccount derives cluster's account key from the ATOLL account's
// seed, so that every hub (and a restarted one) derives the same account
// with nothing more to store.
func (a *authority) memberAccount(cluster string) (nkeys.KeyPair, string, error) {
	mac := hmac.New(sha256.New, a.memberRoot)
	mac.Write([]byte("atoll member account v1\x00" + cluster))
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteAccount, mac.Sum(nil))
	if err != nil {
		return nil, "", fmt.Errorf("derive the account of member %q: %w", cluster, err)
	}
	pub, err := kp.PublicKey()
	return kp, pub, err
}

// memberAccountJWT is cluster's own account: it imports the hub's service
// for its space (heartbeats, status, replies: atoll.m.<cluster>.>) and the
// hub's stream of what is sent to it (atoll.h.<cluster>.>), and nothing
// else. It has no JetStream, exports nothing, and refuses the revoked
// keys (user key to when).
func (a *authority) memberAccountJWT(cluster string, revoked map[string]time.Time) (*jwt.AccountClaims, string, error) {
	_, pub, err := a.memberAccount(cluster)
	if err != nil {
		return nil, "", err
	}
	ac := jwt.NewAccountClaims(pub)
	ac.Name = "member:" + cluster
	ac.Imports.Add(
		&jwt.Import{Name: "to the hub", Subject: jwt.Subject(protocol.MemberPublish(cluster)), Account: a.accountPub, Type: jwt.Service},
		&jwt.Import{Name: "from the hub", Subject: jwt.Subject(protocol.MemberReceive(cluster)), Account: a.accountPub, Type: jwt.Stream},
	)
	// What one stolen identity may open: a member needs one leaf
	// connection per hub server it follows, and a few for tools.
	ac.Limits.Conn, ac.Limits.LeafNodeConn = memberConnLimit, memberConnLimit
	for k, at := range revoked {
		// Every JWT issued for the key up to the revocation is invalid; one
		// issued later (the same key registered again) is not.
		ac.RevokeAt(k, at)
	}
	token, err := ac.Encode(a.operator)
	return ac, token, err
}

// memberConnLimit bounds a member account's client and leaf connections.
const memberConnLimit = 16

// userJWT signs a user of the ATOLL account with every permission (the
// hub's own users).
func (a *authority) userJWT(name, userPub string) (string, error) {
	if !nkeys.IsValidPublicUserKey(userPub) {
		return "", fmt.Errorf("%q is not a NATS user public key", userPub)
	}
	uc := newUserClaims(userPub, name)
	return uc.Encode(a.account)
}

// memberUserJWT signs cluster's member key in the member's own account,
// limited to the member's own subjects there too.
func (a *authority) memberUserJWT(cluster, userPub string) (string, error) {
	if !nkeys.IsValidPublicUserKey(userPub) {
		return "", fmt.Errorf("%q is not a NATS user public key", userPub)
	}
	kp, _, err := a.memberAccount(cluster)
	if err != nil {
		return "", err
	}
	uc := newUserClaims(userPub, "member:"+cluster)
	pub, sub := memberPermissions(cluster)
	uc.Pub.Allow.Add(pub...)
	uc.Sub.Allow.Add(sub...)
	return uc.Encode(kp)
}

func newUserClaims(pub, name string) *jwt.UserClaims {
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	return uc
}

// memberPermissions are what a member may publish and subscribe to.
func memberPermissions(cluster string) (pub, sub []string) {
	return []string{protocol.MemberPublish(cluster)},
		[]string{protocol.MemberReceive(cluster), protocol.MemberInbox(cluster)}
}
