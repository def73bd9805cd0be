package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nkeys"
)

// MaxRegisterBody is the largest registration body the hub reads.
const MaxRegisterBody = 64 << 10

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
}

// maxMemberVersion bounds the free-text version a member reports.
const maxMemberVersion = 128

// Validate checks a registration.
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
	return e.result()
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
