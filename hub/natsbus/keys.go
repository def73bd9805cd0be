package natsbus

import (
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
}

func newAuthority(s Seeds) (*authority, error) {
	a := &authority{}
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

// accountJWT is the ATOLL account with JetStream enabled and the given
// user keys revoked.
func (a *authority) accountJWT(revoked map[string]time.Time) (*jwt.AccountClaims, string, error) {
	ac := jwt.NewAccountClaims(a.accountPub)
	ac.Name = "ATOLL"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	for k, at := range revoked {
		// Every JWT issued for the key up to the revocation is invalid; one
		// issued later (the same key registered again) is not.
		ac.RevokeAt(k, at)
	}
	token, err := ac.Encode(a.operator)
	return ac, token, err
}

// userJWT signs a user of the ATOLL account. Nil permissions mean
// everything (the hub's own users).
func (a *authority) userJWT(name, userPub string, pub, sub []string) (string, error) {
	if !nkeys.IsValidPublicUserKey(userPub) {
		return "", fmt.Errorf("%q is not a NATS user public key", userPub)
	}
	uc := jwt.NewUserClaims(userPub)
	uc.Name = name
	if pub != nil {
		uc.Pub.Allow.Add(pub...)
		uc.Sub.Allow.Add(sub...)
	}
	return uc.Encode(a.account)
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
