package api

import (
	"strings"
	"testing"
)

func TestYAMLToJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"", "null"},
		{"# nothing\n", "null"},
		{"a: 1\n", `{"a":1}`},
		{"---\na: 1\n", `{"a":1}`},
		{`{"a": [1, "x", null, true]}`, `{"a":[1,"x",null,true]}`},
		{"a: y\nb: no\nc: off\n", `{"a":"y","b":"no","c":"off"}`}, // YAML 1.2: not booleans
		{"a: 2024-01-02\n", `{"a":"2024-01-02"}`},                 // nor times
		{"a: !!timestamp 2024-01-02\n", `{"a":"2024-01-02T00:00:00Z"}`},
		{"1: a\ntrue: b\n", `{"1":"a","true":"b"}`},
		{"a: {2: x}\n", `{"a":{"2":"x"}}`},
		{"a: &x {b: 1}\nc: *x\n", `{"a":{"b":1},"c":{"b":1}}`},
	}
	for _, tt := range tests {
		got, err := YAMLToJSON([]byte(tt.in))
		if err != nil {
			t.Errorf("YAMLToJSON(%q): want %s, got error %v", tt.in, tt.want, err)
			continue
		}
		if !jsonEqual(t, got, []byte(tt.want)) {
			t.Errorf("YAMLToJSON(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestYAMLToJSONErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"several documents", "a: 1\n---\nb: 2\n", "several"},
		{"not YAML", "a: [1\n", "document 1"},
		{"duplicate key", "a: 1\na: 2\n", "already defined"},
		{"keys equal as strings", "{1: a, 1.0: b}\n", `"1"`},
		{"nested keys equal as strings", "x: [{1: a, 1.0: b}]\n", `"1"`},
		{"infinity", "a: .inf\n", "document 1"},
	}
	for _, tt := range tests {
		got, err := YAMLToJSON([]byte(tt.in))
		if err == nil {
			t.Errorf("%s: YAMLToJSON(%q) = %s, want an error", tt.name, tt.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: YAMLToJSON(%q): want an error mentioning %q, got %q", tt.name, tt.in, tt.want, err)
		}
	}
}
