package api

import (
	"errors"
	"fmt"
	"runtime"
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

// laughs is the "billion laughs": width aliases of the level below, depth
// levels deep, under a manifest's first lines.
func laughs(width, depth int) string {
	var b strings.Builder
	b.WriteString("apiVersion: atoll.dev/v1\nkind: Workload\nmetadata: {name: lol}\nspec:\n  l0: &l0 [lol]\n")
	for d := 1; d <= depth; d++ {
		fmt.Fprintf(&b, "  l%d: &l%d [*l%d%s]\n", d, d, d-1, strings.Repeat(fmt.Sprintf(", *l%d", d-1), width-1))
	}
	return b.String()
}

// stringAliases is one long string aliased n times: the amplification
// go-yaml's own alias-ratio check lets through (it only looks at
// documents of more than 1000 nodes).
func stringAliases(size, n int) string {
	return "s: &s \"" + strings.Repeat("x", size) + "\"\nl: [*s" + strings.Repeat(", *s", n-1) + "]\n"
}

// TestYAMLAliasExpansionIsBounded refuses documents whose aliases would
// blow up, without spending more than a small multiple of their size on
// finding out. It does not run in parallel: it measures the allocations
// of the process.
func TestYAMLAliasExpansionIsBounded(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"laughs 9x9", laughs(9, 9)},
		{"laughs 100x4", laughs(100, 4)},
		{"string aliased 999 times", stringAliases(100<<10, 999)},
		{"string aliased 3 times", stringAliases(600<<10, 3)},
		{"keys aliased", "k: &k " + strings.Repeat("k", 100<<10) + "\nm: {*k : 1, x: *k, y: *k, z: *k}\n"},
		{"merge keys", "a: &a {x: " + strings.Repeat("y", 100<<10) + "}\nb: {<<: *a}\nc: {<<: *a}\nd: {<<: *a}\n"},
		// Each document alone is within bounds; the stream is not.
		{"one allowance per stream", strings.Repeat(smallAliases+"---\n", 4)},
	}
	for _, tt := range tests {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := YAMLDocuments([]byte(tt.in))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrAliasExpansion) {
			t.Errorf("%s (%d bytes): want ErrAliasExpansion, got %v", tt.name, len(tt.in), err)
		}
		// The yaml parser itself takes about 10 bytes per byte of input.
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(32*len(tt.in)+1<<20); got > limit {
			t.Errorf("%s (%d bytes): refusing it allocated %d bytes, want at most %d", tt.name, len(tt.in), got, limit)
		}
		if _, err := YAMLToJSON([]byte(tt.in)); err == nil {
			t.Errorf("%s: YAMLToJSON accepted it", tt.name)
		}
	}
}

// smallAliases is within the allowance of a stream, once.
var smallAliases = "a: &a " + strings.Repeat("x", 20<<10) + "\nb: [*a, *a, *a]\n"

func TestYAMLAliasesWithinBounds(t *testing.T) {
	t.Parallel()
	env := "env: &env [{name: A, value: '1'}, {name: B, value: '2'}]\n"
	tests := []struct {
		name, in string
	}{
		{"one block shared", env + "a: *env\nb: *env\nc: *env\n"},
		{"merge keys", "base: &base {driver: process, command: [sleep, '1']}\nweb: {<<: *base, replicas: 2}\napi: {<<: *base, replicas: 3}\n"},
		// Doubling what was written is allowed however large the document.
		{"a large document doubled", "a: &a [" + strings.Repeat("item, ", 20000) + "x]\nb: *a\n"},
		{"under the allowance", stringAliases(10<<10, 5)},
		{"under the allowance too", smallAliases},
	}
	for _, tt := range tests {
		if _, err := YAMLToJSON([]byte(tt.in)); err != nil {
			t.Errorf("%s: want it read, got %v", tt.name, err)
		}
	}
	// More than doubling is refused.
	if _, err := YAMLToJSON([]byte("a: &a [" + strings.Repeat("item, ", 20000) + "x]\nb: [*a, *a]\n")); !errors.Is(err, ErrAliasExpansion) {
		t.Errorf("a large document tripled: want ErrAliasExpansion, got %v", err)
	}
}

func TestYAMLAliasCycle(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [[[*a]]]\n"} {
		if _, err := YAMLToJSON([]byte(in)); err == nil {
			t.Errorf("YAMLToJSON(%q): want an error for the anchor containing itself", in)
		}
	}
}

func TestYAMLToJSONStopsAtTheSecondDocument(t *testing.T) {
	t.Parallel()
	// The second document is refused before it is resolved.
	in := "a: 1\n---\n" + laughs(100, 4)
	_, err := YAMLToJSON([]byte(in))
	if err == nil || !strings.Contains(err.Error(), "several") {
		t.Errorf("want 'found several', got %v", err)
	}
	for _, in := range []string{"a: 1\n---\n", "---\na: 1\n---\n# nothing\n", "~\n---\na: 1\n"} {
		if _, err := YAMLToJSON([]byte(in)); err != nil {
			t.Errorf("YAMLToJSON(%q): empty documents are skipped; got %v", in, err)
		}
	}
}
