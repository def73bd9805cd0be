package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nkeys"
)

// Registration is two requests, both with a join token (the first time)
// or the member's own token (afterwards):
//
//  1. POST /api/v1/clusters/register/challenge with the cluster's name:
//     the hub answers with a nonce, bound to that token and name, that
//     expires within minutes and is good for one registration.
//  2. POST /api/v1/clusters/register with the nonce and the member's
//     signature of RegistrationProof (nonce, name, NATS public key) made
//     with its NATS key's seed: proof that it holds the key it registers.
//
// The public key of a cluster is readable by any viewer; the signature is
// what a member shows that nobody else can. Both routes take JSON only
// and read no body before the token is checked.

// MaxRegisterBody is the largest registration body the hub reads.
const MaxRegisterBody = 64 << 10

// RegisterChallengeRequest asks for a registration nonce.
type RegisterChallengeRequest struct {
	Name string `json:"name" doc:"The cluster the member is about to register."`
}

// RegisterChallenge is a registration nonce: good once, for the token
// that asked for it and the cluster it named, until it expires.
type RegisterChallenge struct {
	Nonce     string    `json:"nonce" doc:"Sign RegistrationProof(nonce, name, natsPublicKey) with the NATS key and send both with the registration."`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Validate checks a challenge request.
func (r *RegisterChallengeRequest) Validate() FieldErrors {
	var e errs
	if !isDNSLabel(r.Name) {
		e.addValue("name", r.Name, "must be a DNS-1123 label")
	}
	return e.result()
}

// RegisterRequest is what a member sends to join (with a join token) or to
// come back after a restart (with its member token).
type RegisterRequest struct {
	Name            string            `json:"name" doc:"The cluster's name: a DNS-1123 label."`
	Region          string            `json:"region" doc:"The cluster's region, e.g. eu-west."`
	Zone            string            `json:"zone,omitempty"`
	Provider        string            `json:"provider,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	NATSPublicKey   string            `json:"natsPublicKey" doc:"The member's NATS user public key (U...). Its seed never leaves the member."`
	MemberVersion   string            `json:"memberVersion,omitempty"`
	ProtocolVersion int               `json:"protocolVersion"`
	Nonce           string            `json:"nonce" doc:"The nonce of POST /api/v1/clusters/register/challenge, asked for with the same token and name (protocol 4)."`
	Signature       string            `json:"signature" doc:"The ed25519 signature of RegistrationProof(nonce, name, natsPublicKey) by the NATS key, base64url without padding (protocol 4)."`
}

// maxMemberVersion bounds the free-text version a member reports.
const maxMemberVersion = 128

// Validate checks a registration's fields (not its signature: Verify
// does).
func (r *RegisterRequest) Validate() FieldErrors {
	var e errs
	if !isDNSLabel(r.Name) {
		e.addValue("name", r.Name, "must be a DNS-1123 label")
	}
	if !isDNSLabel(r.Region) {
		e.addValue("region", r.Region, "must be a DNS-1123 label")
	}
	for _, f := range []struct{ name, v string }{{"zone", r.Zone}, {"provider", r.Provider}} {
		if err := checkLabelValue(f.v); err != nil {
			e.addValue(f.name, f.v, "%v", err)
		}
	}
	validateLabels(&e, "labels", r.Labels)
	for _, k := range []string{LabelRegion, LabelZone, LabelProvider} {
		if _, ok := r.Labels[k]; ok {
			e.addValue("labels", k, "%q comes from its own field", k)
		}
	}
	if !nkeys.IsValidPublicUserKey(r.NATSPublicKey) {
		e.addValue("natsPublicKey", r.NATSPublicKey, "must be a NATS user public key (56 characters starting with U, with a valid checksum)")
	}
	if len(r.MemberVersion) > maxMemberVersion || !printable(r.MemberVersion) {
		e.addValue("memberVersion", r.MemberVersion, "must be at most %d printable characters", maxMemberVersion)
	}
	const upgrade = "is required: since protocol 4 a member proves that it holds its NATS key by signing the hub's challenge (upgrade this member)"
	switch {
	case r.Nonce == "":
		e.add("nonce", upgrade)
	case len(r.Nonce) > 128 || !base64URL(r.Nonce):
		e.add("nonce", "must be the nonce the hub's challenge answered with")
	}
	switch sig, err := base64.RawURLEncoding.DecodeString(r.Signature); {
	case r.Signature == "":
		e.add("signature", upgrade)
	case err != nil || len(sig) != 64:
		e.add("signature", "must be an ed25519 signature (64 bytes) in base64url without padding")
	}
	return e.result()
}

// RegistrationProof is what a member signs to register: a fixed context,
// then the nonce, the cluster's name and the public key, each after a NUL
// (none can hold one). The context keeps the signature from meaning
// anything elsewhere: a NATS server's connect nonce is signed bare.
func RegistrationProof(nonce, name, natsPublicKey string) []byte {
	return []byte("atoll-register-v1\x00" + nonce + "\x00" + name + "\x00" + natsPublicKey)
}

// Sign signs the registration with the seed's key pair, which must be the
// one of NATSPublicKey.
func (r *RegisterRequest) Sign(kp nkeys.KeyPair) error {
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("sign registration: %w", err)
	}
	if pub != r.NATSPublicKey {
		return fmt.Errorf("sign registration: the key pair is %s, the request names %s", pub, r.NATSPublicKey)
	}
	sig, err := kp.Sign(RegistrationProof(r.Nonce, r.Name, r.NATSPublicKey))
	if err != nil {
		return fmt.Errorf("sign registration: %w", err)
	}
	r.Signature = base64.RawURLEncoding.EncodeToString(sig)
	return nil
}

// ErrBadSignature is a registration whose signature is not NATSPublicKey's
// over its proof.
var ErrBadSignature = errors.New("the signature does not prove possession of the NATS key")

// Verify checks the signature of a validated registration.
func (r *RegisterRequest) Verify() error {
	kp, err := nkeys.FromPublicKey(r.NATSPublicKey)
	if err != nil {
		return ErrBadSignature
	}
	sig, err := base64.RawURLEncoding.DecodeString(r.Signature)
	if err != nil {
		return ErrBadSignature
	}
	if err := kp.Verify(RegistrationProof(r.Nonce, r.Name, r.NATSPublicKey), sig); err != nil {
		return ErrBadSignature
	}
	return nil
}

// RegisterResponse tells a member who it is and how to reach the hub's
// NATS.
type RegisterResponse struct {
	Cluster           Cluster  `json:"cluster"`
	MemberToken       string   `json:"memberToken,omitempty" doc:"The member's own API credential; only in the answer to a first registration."`
	NATSUserJWT       string   `json:"natsUserJwt" doc:"The member's NATS identity, for its key."`
	LeafURLs          []string `json:"leafUrls" doc:"Hub NATS leafnode URLs to connect to, in order of preference."`
	HeartbeatInterval Duration `json:"heartbeatInterval"`
	ProtocolVersion   int      `json:"protocolVersion"`
}

// DecodeRegisterRequest reads a registration body. It takes JSON only
// (unlike the rest of the API, no YAML: members send JSON), one object,
// no unknown fields, at most MaxRegisterBody bytes of valid UTF-8. It does
// not validate the fields (Validate does). Errors have code BadRequest.
func DecodeRegisterRequest(data []byte) (*RegisterRequest, error) {
	var r RegisterRequest
	if err := decodeJSONObject("registration", data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeRegisterChallengeRequest reads a challenge request body, as
// DecodeRegisterRequest does a registration's.
func DecodeRegisterChallengeRequest(data []byte) (*RegisterChallengeRequest, error) {
	var r RegisterChallengeRequest
	if err := decodeJSONObject("challenge request", data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// decodeJSONObject decodes one JSON object into v strictly.
func decodeJSONObject(what string, data []byte, v any) error {
	if len(data) > MaxRegisterBody {
		return Errorf(CodePayloadTooLarge, "the %s body is larger than %d bytes", what, MaxRegisterBody)
	}
	if !utf8.Valid(data) {
		return Errorf(CodeBadRequest, "the %s body is not valid UTF-8", what)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Errorf(CodeBadRequest, "the %s body must be a JSON object", what)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeBadRequest, "the %s body is not valid: %s", what, jsonErrorText(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(CodeBadRequest, "the %s body has data after its JSON object", what)
	}
	return nil
}

// jsonErrorText is a decoding error without Go type names.
func jsonErrorText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q has the wrong type (%s)", te.Field, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// printable reports whether s holds only printable characters (spaces
// included).
func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func base64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
