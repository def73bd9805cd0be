package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nkeys"
)

// validRequest is a valid registration.
func validRequest(t testing.TB) RegisterRequest {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return RegisterRequest{Name: "edge-a", Region: "eu-west", Zone: "eu-west-1a", Provider: "metal", Labels: map[string]string{"tier": "gold"},
		NATSPublicKey: pub, MemberVersion: "v1.2.3 (abc)", ProtocolVersion: 3}
}

func TestDecodeRegisterRequest(t *testing.T) {
	t.Parallel()
	good := validRequest(t)
	if fe := good.Validate(); fe != nil {
		t.Fatalf("want %+v valid; got %v", good, fe)
	}
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
	good := validRequest(f)
	body, _ := json.Marshal(good)
	f.Add(body)
	for _, seed := range []string{
		// What a member of this build sends.
		`{"name":"edge-a","region":"eu-west","natsPublicKey":"` + good.NATSPublicKey + `","memberVersion":"dev","protocolVersion":3}`,
		`{"name":"edge-a"}`,
		`{"name":"edge-a","region":"eu-west","labels":{"tier":"gold","example.com/x":"y"},"zone":"z","provider":"p"}`,
		`{"name":"edge-a","labels":{"region":"x"}}`,
		`{"name":"edge-a","labels":null,"zone":null}`,
		`{"name":"\u0000","region":"\ud800","memberVersion":"\u001b[31m"}`,
		`{"name":"a","name":"b"}`,
		`{"protocolVersion":1e400}`,
		`{"protocolVersion":-1,"natsPublicKey":"` + strings.Repeat("A", 56) + `"}`,
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
	out := []string{r.Name, r.Region, r.Zone, r.Provider, r.NATSPublicKey, r.MemberVersion}
	for k, v := range r.Labels {
		out = append(out, k, v)
	}
	return out
}
