package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestMergePatch(t *testing.T) {
	t.Parallel()
	// The examples of RFC 7386, appendix A, in order; then a few more.
	tests := []struct {
		doc, patch, want string
	}{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		// Beyond the RFC: a workload-shaped patch, and an empty patch.
		{
			`{"metadata":{"name":"web","labels":{"app":"web","tier":"fe"}},"spec":{"replicas":3,"template":{"driver":"sim"}}}`,
			`{"metadata":{"labels":{"tier":null,"team":"edge"}},"spec":{"replicas":5}}`,
			`{"metadata":{"name":"web","labels":{"app":"web","team":"edge"}},"spec":{"replicas":5,"template":{"driver":"sim"}}}`,
		},
		{`{"a":{"b":1}}`, `{}`, `{"a":{"b":1}}`},
		// Numbers the patch does not touch keep every digit.
		{`{"big":9007199254740993,"f":0.1,"n":1}`, `{"n":2}`, `{"big":9007199254740993,"f":0.1,"n":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.doc+" + "+tt.patch, func(t *testing.T) {
			t.Parallel()
			got, err := MergePatch([]byte(tt.doc), []byte(tt.patch))
			if err != nil {
				t.Fatalf("MergePatch: want %s, got error %v", tt.want, err)
			}
			if !jsonEqual(t, got, []byte(tt.want)) {
				t.Errorf("MergePatch(%s, %s):\nwant %s\ngot  %s", tt.doc, tt.patch, tt.want, got)
			}
		})
	}
}

func TestMergePatchErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, patch string
	}{
		{"patch not JSON", `{"a":1}`, `a: 2`},
		{"patch truncated", `{"a":1}`, `{"a":`},
		{"patch empty", `{"a":1}`, ``},
		{"patch with trailing data", `{"a":1}`, `{"a":2} {"b":3}`},
		{"document not JSON", `{a:1}`, `{"a":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := MergePatch([]byte(tt.doc), []byte(tt.patch))
			if err == nil {
				t.Fatalf("MergePatch(%q, %q): want an error, got %s", tt.doc, tt.patch, got)
			}
			if got != nil {
				t.Errorf("MergePatch(%q, %q): want no document with the error, got %s", tt.doc, tt.patch, got)
			}
		})
	}
}

// jsonEqual reports whether a and b hold the same JSON value, with numbers
// compared by their text so that no precision is lost.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(jsonValue(t, a), jsonValue(t, b))
}

func jsonValue(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := decodeJSON(data, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, data)
	}
	return v
}

// decodeJSON decodes one JSON value, keeping numbers as json.Number.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}
