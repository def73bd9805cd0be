package httpapi

import (
	"encoding/json"
	"maps"
	"reflect"
	"testing"
)

func TestEscapeKeysRoundTrips(t *testing.T) {
	t.Parallel()
	var v any
	if err := json.Unmarshal([]byte(`{"a.b":{"c[0]":1,"plain":[{"d%e.f":2}]},"x":"y.z"}`), &v); err != nil {
		t.Fatal(err)
	}
	escapeKeys(v)
	want := map[string]any{"a%2Eb": map[string]any{"c%5B0]": 1.0, "plain": []any{map[string]any{"d%25e%2Ef": 2.0}}}, "x": "y.z"}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("escapeKeys = %#v, want %#v", v, want)
	}
	// A key and another that is the first escaped: both kept, apart.
	var both any
	if err := json.Unmarshal([]byte(`{"a.b":1,"a%2Eb":2}`), &both); err != nil {
		t.Fatal(err)
	}
	for range 20 { // map order varies: a one-at-a-time rename lost one in some orders
		v := map[string]any{}
		maps.Copy(v, both.(map[string]any))
		escapeKeys(v)
		if want := map[string]any{"a%2Eb": 1.0, "a%252Eb": 2.0}; !reflect.DeepEqual(v, want) {
			t.Fatalf("escapeKeys = %#v, want %#v", v, want)
		}
	}
	for esc, loc := range map[string]string{
		"body.metadata.labels.a%2Eb": "body.metadata.labels.a.b",
		"body.x.d%25e%2Ef":           "body.x.d%e.f",
		"body.c%5B0]":                "body.c[0]",
		"body.spec.replicas":         "body.spec.replicas",
		"body.k%252E":                "body.k%2E",
	} {
		if got := unescapeLocation(esc); got != loc {
			t.Errorf("unescapeLocation(%q) = %q, want %q", esc, got, loc)
		}
	}
}
