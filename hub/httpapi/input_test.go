package httpapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/atollhq/atoll/api"
)

// badStrings tells whether any string of a JSON value, keys included, is
// not text.
func badStrings(v any) bool {
	switch x := v.(type) {
	case string:
		return api.TextProblem(x, true) != ""
	case map[string]any:
		for k, e := range x {
			if api.TextProblem(k, true) != "" || badStrings(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if badStrings(e) {
				return true
			}
		}
	}
	return false
}

// FuzzBodyText: the allocation-free scan of a JSON body agrees with
// decoding it and checking every string, and a body it refuses is
// located.
func FuzzBodyText(f *testing.F) {
	for _, seed := range []string{
		`{"a":"b"}`, `{"a":"\u0000"}`, `{"a\u0001":1}`, `["x","\b"]`, `{"a":"line\nline\ttab"}`, "{\"a\":\"\x7f\"}",
		"{\"a\":\"\u0085\"}", `{"a":"\u0085"}`, "{\"a\":\"\xff\"}", `{"a":"\ud800"}`, `{"a":{"b":[1,"\u001b"]}}`, `"\\"`, `{"\\\"":"\\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		clean := cleanJSONText(data)
		if !clean {
			if loc, msg := findBadText(data); !strings.HasPrefix(loc, "body") || msg == "" {
				t.Fatalf("findBadText(%q) = %q, %q: want a location under body and a message", data, loc, msg)
			}
		}
		if !json.Valid(data) {
			return
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // numbers out of float64's range are JSON too
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if want := utf8.Valid(data) && !badStrings(v); clean != want {
			t.Fatalf("cleanJSONText(%q) = %v, but decoding and checking each string says %v", data, clean, want)
		}
	})
}

func TestFindBadText(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`{"metadata":{"name":"a\u0000"}}`, "body.metadata.name"},
		{`{"spec":{"command":["sleep","\u0007"]}}`, "body.spec.command[1]"},
		{`{"spec":{"env":[{"name":"A","value":"1"},{"name":"B","value":"\b"}]}}`, "body.spec.env[1].value"},
		{`{"metadata":{"labels":{"a\u0001":"v"}}}`, "body.metadata.labels"},
		{"{\"a\":[[],{},\"ok\",\"\xff\"]}", "body.a[3]"},
		{`["\u001f"]`, "body[0]"},
	}
	for _, tt := range tests {
		if cleanJSONText([]byte(tt.in)) {
			t.Errorf("cleanJSONText(%q) = true, want false", tt.in)
		}
		if got, _ := findBadText([]byte(tt.in)); got != tt.want {
			t.Errorf("findBadText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
