package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// JoinTokenPrefix starts every join token.
const JoinTokenPrefix = "atollj_"

// JoinToken is what a join token carries besides its secret: where the hub
// is and, when its API uses TLS, the SHA-256 fingerprint of the CA (or
// self-signed) certificate, so a member verifies the hub before it sends
// anything secret.
type JoinToken struct {
	Hub    string `json:"hub"`
	CA     string `json:"ca,omitempty"`
	Secret string `json:"s"`
}

// Encode renders the token as one string.
func (j JoinToken) Encode() string {
	b, _ := json.Marshal(j)
	return JoinTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseJoinToken reads a token made by Encode.
func ParseJoinToken(s string) (JoinToken, error) {
	var j JoinToken
	body, ok := strings.CutPrefix(strings.TrimSpace(s), JoinTokenPrefix)
	if !ok {
		return j, errors.New("not a join token (join tokens start with " + JoinTokenPrefix + ")")
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || json.Unmarshal(raw, &j) != nil || j.Secret == "" || j.Hub == "" {
		return JoinToken{}, errors.New("the join token is damaged: copy it again from 'atoll token create --join'")
	}
	return j, nil
}
