package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nkeys"
)

// signedRequest is a valid, signed registration and its key pair.
func signedRequest(t testing.TB) (RegisterRequest, nkeys.KeyPair) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	r := RegisterRequest{Name: "edge-a", Region: "eu-west", Zone: "eu-west-1a", Provider: "metal", Labels: map[string]string{"tier": "gold"},
		NATSPublicKey: pub, MemberVersion: "v1.2.3 (abc)", ProtocolVersion: 4, Nonce: "bm9uY2Utbm9uY2Utbm9uY2Utbm9uY2Utbm9uY2UtMTIz"}
	if err := r.Sign(kp); err != nil {
		t.Fatal(err)
	}
	return r, kp
}

// TestRegistrationProof: a signature verifies for exactly the nonce, name
// and key it was made over, and only by the key's own seed.
func TestRegistrationProof(t *testing.T) {
	t.Parallel()
	good, kp := signedRequest(t)
	if fe := good.Validate(); fe != nil {
		t.Fatalf("a signed request must be valid; got %v", fe)
	}
	if err := good.Verify(); err != nil {
		t.Fatalf("want the signature to verify; got %v", err)
	}
	other, _ := nkeys.CreateUser()
	otherPub, _ := other.PublicKey()
	cases := []struct {
		name   string
		change func(r *RegisterRequest)
	}{
		{"another nonce", func(r *RegisterRequest) { r.Nonce += "x" }},
		{"another name", func(r *RegisterRequest) { r.Name = "edge-b" }},
		{"another key named", func(r *RegisterRequest) { r.NATSPublicKey = otherPub }},
		{"signed by another key", func(r *RegisterRequest) {
			// The attacker names the victim's key and signs with its own.
			pub := r.NATSPublicKey
			r.NATSPublicKey = otherPub
			if err := r.Sign(other); err != nil {
				t.Fatal(err)
			}
			r.NATSPublicKey = pub
		}},
		{"no signature", func(r *RegisterRequest) { r.Signature = "" }},
		{"signature of the bare nonce", func(r *RegisterRequest) {
			sig, _ := kp.Sign([]byte(r.Nonce))
			r.Signature = encodeSig(sig)
		}},
	}
	for _, c := range cases {
		r := good
		c.change(&r)
		if err := r.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: want ErrBadSignature, got %v", c.name, err)
		}
	}
	r := good
	r.NATSPublicKey = otherPub
	if err := r.Sign(kp); err == nil {
		t.Error("Sign with a key pair that is not the request's key: want an error, got none")
	}
}

// TestRegisterRequestWithoutProof: an old member's body (protocol 3, no
// nonce or signature) decodes and is refused by Validate, with a message
// that says to upgrade.
func TestRegisterRequestWithoutProof(t *testing.T) {
	t.Parallel()
	r, _ := signedRequest(t)
	r.Nonce, r.Signature, r.ProtocolVersion = "", "", 3
	body, _ := json.Marshal(r)
	got, err := DecodeRegisterRequest(body)
	if err != nil {
		t.Fatalf("want an old member's body to decode; got %v", err)
	}
	fe := got.Validate()
	if len(fe) != 2 || fe[0].Field != "nonce" || fe[1].Field != "signature" || !strings.Contains(fe[0].Message, "upgrade") {
		t.Errorf("want nonce and signature required with a word on upgrading; got %v", fe)
	}
}

func TestDecodeRegisterRequest(t *testing.T) {
	t.Parallel()
	good, _ := signedRequest(t)
	body, _ := json.Marshal(good)
	got, err := DecodeRegisterRequest(body)
	if err != nil || !reflect.DeepEqual(*got, good) {
		t.Fatalf("want %+v back; got %+v, %v", good, got, err)
	}
	for _, c := range []struct{ name, body, want string }{
		{"YAML", "name: edge-a\nregion: eu-west\n", "JSON object"},
		{"YAML alias bomb", "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "JSON object"},
		{"unknown field", `{"name":"a","extra":1}`, `unknown field "extra"`},
		{"wrong type", `{"name":1}`, `field "name"`},
		{"two objects", `{"name":"a"} {"name":"b"}`, "data after"},
		{"trailing garbage", `{"name":"a"}x`, "data after"},
		{"truncated", `{"name":"a"`, "not valid"},
		{"array", `[{"name":"a"}]`, "JSON object"},
		{"null", `null`, "JSON object"},
		{"empty", ``, "JSON object"},
		{"invalid UTF-8", "{\"name\":\"\xff\"}", "UTF-8"},
		{"too large", `{"name":"` + strings.Repeat("a", MaxRegisterBody) + `"}`, "larger than"},
	} {
		r, err := DecodeRegisterRequest([]byte(c.body))
		if err == nil || r != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error mentioning %q; got %+v, %v", c.name, c.want, r, err)
			continue
		}
		if code := ErrorCode(err); code != CodeBadRequest && code != CodePayloadTooLarge {
			t.Errorf("%s: want code BadRequest (or PayloadTooLarge); got %q", c.name, code)
		}
	}
	// A NUL escaped in JSON decodes, and Validate refuses it: the store
	// (jsonb) could not hold it.
	r, err := DecodeRegisterRequest([]byte(`{"name":"edge-a","region":"eu-west","memberVersion":"v1\u0000"}`))
	if err != nil {
		t.Fatal(err)
	}
	if fe := r.Validate(); !hasField(fe, "memberVersion") {
		t.Errorf("want memberVersion with a NUL refused; got %v", fe)
	}
}

func encodeSig(sig []byte) string { return base64.RawURLEncoding.EncodeToString(sig) }

func hasField(fe FieldErrors, field string) bool {
	for _, e := range fe {
		if e.Field == field {
			return true
		}
	}
	return false
}

// FuzzRegisterRequest: the registration decoder never panics, fails
// without a value, and what it accepts and Validate passes holds only
// printable UTF-8 without NUL (what the store can keep) and survives a
// round trip unchanged.
//
//	go test ./api -run '^$' -fuzz FuzzRegisterRequest -fuzztime 60s
func FuzzRegisterRequest(f *testing.F) {
	good, _ := signedRequest(f)
	body, _ := json.Marshal(good)
	f.Add(body)
	old := good
	old.Nonce, old.Signature, old.ProtocolVersion = "", "", 3
	body, _ = json.Marshal(old)
	f.Add(body)
	for _, seed := range []string{
		// What a member of this build sends, and the challenge request.
		`{"name":"edge-a","region":"eu-west","natsPublicKey":"` + good.NATSPublicKey + `","memberVersion":"dev","protocolVersion":4,"nonce":"` + good.Nonce + `","signature":"` + good.Signature + `"}`,
		`{"name":"edge-a"}`,
		`{"name":"edge-a","region":"eu-west","labels":{"tier":"gold","example.com/x":"y"},"zone":"z","provider":"p"}`,
		`{"name":"edge-a","labels":{"region":"x"}}`,
		`{"name":"edge-a","labels":null,"zone":null}`,
		`{"name":"\u0000","region":"\ud800","memberVersion":"\u001b[31m"}`,
		`{"name":"a","name":"b"}`,
		`{"protocolVersion":1e400}`,
		`{"protocolVersion":-1,"signature":"` + strings.Repeat("A", 86) + `"}`,
		`  {"name":"a"}  ` + "\n",
		`{"name":"a"}{}`,
		"a: &a [*a]\n",
		`[]`,
		`{`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRegisterRequest(data)
		if err != nil {
			if r != nil {
				t.Fatalf("DecodeRegisterRequest returned %+v with the error %v", r, err)
			}
			if code := ErrorCode(err); code != CodeBadRequest && code != CodePayloadTooLarge {
				t.Fatalf("a decoding error must be BadRequest or PayloadTooLarge; got %q (%v)", code, err)
			}
			return
		}
		again, err := DecodeRegisterRequest(data)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("decoding again: want %+v, got %+v, %v", r, again, err)
		}
		if r.Validate() != nil {
			return
		}
		for _, s := range r.strings() {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || !printable(s) {
				t.Fatalf("a valid request holds %q: not printable UTF-8", s)
			}
		}
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("cannot encode %+v: %v", r, err)
		}
		back, err := DecodeRegisterRequest(js)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", js, err)
		}
		if len(back.Labels) == 0 && len(r.Labels) == 0 {
			back.Labels = r.Labels // null, {} and absent all mean none
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip changed the request:\nfirst  %+v\nsecond %+v", r, back)
		}
		if back.Validate() != nil {
			t.Fatalf("the re-decoded request %s is no longer valid: %v", js, back.Validate())
		}
	})
}

// strings lists every string a request holds.
func (r *RegisterRequest) strings() []string {
	out := []string{r.Name, r.Region, r.Zone, r.Provider, r.NATSPublicKey, r.MemberVersion, r.Nonce, r.Signature}
	for k, v := range r.Labels {
		out = append(out, k, v)
	}
	return out
}
