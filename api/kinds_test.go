package api

import (
	"os"
	"strings"
	"testing"
)

const (
	tokenYAML = `apiVersion: atoll.dev/v1
kind: Token
metadata:
  name: ci
spec:
  role: operator
  ttl: 720h
`
	simYAML = `apiVersion: atoll.dev/v1
kind: Workload
metadata:
  name: ledger
  labels: {app: ledger}
spec:
  replicas: 2
  template:
    driver: sim
    sim: {startLatency: 200ms}
`
	tokenJSON = `{"apiVersion":"atoll.dev/v1","kind":"Token","metadata":{"name":"ci"},"spec":{"role":"admin"}}`
)

func TestDecodeManifests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		kinds []string // Kind.Name of each manifest, in order
		names []string // metadata.name of each manifest
	}{
		{"one YAML document", tokenYAML, []string{"Token"}, []string{"ci"}},
		{"two YAML documents", tokenYAML + "---\n" + simYAML, []string{"Token", "Workload"}, []string{"ci", "ledger"}},
		{"leading and trailing separators", "---\n" + tokenYAML + "---\n" + simYAML + "---\n", []string{"Token", "Workload"}, []string{"ci", "ledger"}},
		{"empty documents skipped", "---\n---\n" + tokenYAML + "---\n\n---\n# only a comment\n---\n" + simYAML, []string{"Token", "Workload"}, []string{"ci", "ledger"}},
		{"separator with a comment", tokenYAML + "--- # next\n" + simYAML, []string{"Token", "Workload"}, []string{"ci", "ledger"}},
		{"CRLF line ends", strings.ReplaceAll(tokenYAML+"---\n"+simYAML, "\n", "\r\n"), []string{"Token", "Workload"}, []string{"ci", "ledger"}},
		{"JSON", tokenJSON, []string{"Token"}, []string{"ci"}},
		{"indented JSON", "{\n  \"apiVersion\": \"atoll.dev/v1\",\n  \"kind\": \"Workload\",\n  \"metadata\": {\"name\": \"a\"},\n  \"spec\": {\"replicas\": 1, \"template\": {\"driver\": \"sim\"}}\n}\n", []string{"Workload"}, []string{"a"}},
		{"JSON and YAML documents", tokenJSON + "\n---\n" + simYAML, []string{"Token", "Workload"}, []string{"ci", "ledger"}},
		{"empty input", "", nil, nil},
		{"only separators and comments", "---\n# nothing\n---\n", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms, err := DecodeManifests("f.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeManifests: want %d manifests, got error %v", len(tt.kinds), err)
			}
			if len(ms) != len(tt.kinds) {
				t.Fatalf("DecodeManifests: want %d manifests, got %d: %+v", len(tt.kinds), len(ms), ms)
			}
			for i, m := range ms {
				if m.Kind.Name != tt.kinds[i] || m.Object.GetTypeMeta().Kind != tt.kinds[i] {
					t.Errorf("manifest %d: want kind %s, got Kind %q and object kind %q", i, tt.kinds[i], m.Kind.Name, m.Object.GetTypeMeta().Kind)
				}
				if got := m.Object.GetMetadata().Name; got != tt.names[i] {
					t.Errorf("manifest %d: want name %q, got %q", i, tt.names[i], got)
				}
				if !strings.HasPrefix(m.Source, "f.yaml#") {
					t.Errorf("manifest %d: want a source like f.yaml#N, got %q", i, m.Source)
				}
			}
		})
	}
}

func TestDecodeManifestsTyped(t *testing.T) {
	t.Parallel()
	ms, err := DecodeManifests("f.yaml", []byte(tokenYAML+"---\n"+simYAML))
	if err != nil {
		t.Fatalf("DecodeManifests: %v", err)
	}
	if len(ms) != 2 {
		t.Fatalf("DecodeManifests: want 2 manifests, got %d", len(ms))
	}
	tok, ok := ms[0].Object.(*Token)
	if !ok {
		t.Fatalf("manifest 1: want a *Token, got %T", ms[0].Object)
	}
	if tok.Spec.Role != RoleOperator || tok.Spec.TTL != "720h" {
		t.Errorf("token spec: want role operator and ttl 720h, got %+v", tok.Spec)
	}
	w, ok := ms[1].Object.(*Workload)
	if !ok {
		t.Fatalf("manifest 2: want a *Workload, got %T", ms[1].Object)
	}
	if w.Spec.Replicas != 2 || w.Spec.Template.Sim == nil || w.Spec.Template.Sim.StartLatency != "200ms" || w.Metadata.Labels["app"] != "ledger" {
		t.Errorf("workload: want 2 replicas, sim startLatency 200ms and label app=ledger, got %+v", w)
	}
	if ms[0].Source != "f.yaml#1" || ms[1].Source != "f.yaml#2" {
		t.Errorf("sources: want f.yaml#1 and f.yaml#2, got %q and %q", ms[0].Source, ms[1].Source)
	}
}

// The shipped examples must stay valid.
func TestDecodeManifestsExamples(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../deploy/examples/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := DecodeManifests("web.yaml", data)
	if err != nil {
		t.Fatalf("DecodeManifests(web.yaml): %v", err)
	}
	if len(ms) != 2 {
		t.Fatalf("DecodeManifests(web.yaml): want 2 workloads, got %d", len(ms))
	}
	w := ms[0].Object.(*Workload)
	if w.Spec.Update == nil || w.Spec.Update.MaxSurge.String() != "1" || w.Spec.Update.MaxUnavailable.String() != "25%" {
		t.Errorf("web: want maxSurge 1 and maxUnavailable 25%%, got %+v", w.Spec.Update)
	}
}

func TestDecodeManifestsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{"unknown kind", "apiVersion: atoll.dev/v1\nkind: Pod\nmetadata: {name: a}\n", []string{"f.yaml#1", `unknown kind "Pod"`}},
		{"kind in lower case", strings.Replace(tokenYAML, "kind: Token", "kind: token", 1), []string{`unknown kind "token"`}},
		{"kind plural", strings.Replace(tokenYAML, "kind: Token", "kind: tokens", 1), []string{`unknown kind "tokens"`}},
		{"kind missing", "apiVersion: atoll.dev/v1\nmetadata: {name: a}\n", []string{`unknown kind ""`}},
		{"cluster", "apiVersion: atoll.dev/v1\nkind: Cluster\nmetadata: {name: eu-1}\nspec: {unschedulable: true}\n", []string{"f.yaml#1", "Cluster objects are not applied"}},
		{"event", "apiVersion: atoll.dev/v1\nkind: Event\nmetadata: {name: e}\n", []string{"Event objects are not applied"}},
		{"wrong apiVersion", strings.Replace(tokenYAML, "atoll.dev/v1", "v1", 1), []string{"apiVersion must be atoll.dev/v1", `"v1"`}},
		{"apiVersion missing", "kind: Token\nmetadata: {name: a}\nspec: {role: admin}\n", []string{"apiVersion must be atoll.dev/v1"}},
		{"unknown field", strings.Replace(simYAML, "replicas: 2", "replicaz: 2", 1), []string{"f.yaml#1", "replicaz"}},
		{"unknown nested field", strings.Replace(simYAML, "startLatency", "startDelay", 1), []string{"startDelay"}},
		{"unknown top-level field", tokenYAML + "extra: 1\n", []string{"extra"}},
		{"wrong type", strings.Replace(simYAML, "replicas: 2", "replicas: two", 1), []string{"f.yaml#1", "replicas"}},
		{"invalid object", strings.Replace(simYAML, "replicas: 2", "replicas: -2", 1), []string{"f.yaml#1", "Workload ledger", "spec.replicas"}},
		{"invalid token", strings.Replace(tokenYAML, "role: operator", "role: root", 1), []string{"spec.role"}},
		{"invalid JSON object", `{"apiVersion":"atoll.dev/v1","kind":"Token","metadata":{"name":"ci"},"spec":{"role":"admin","ttl":"-1h"}}`, []string{"spec.ttl"}},
		{"not YAML", "apiVersion: [atoll.dev/v1\n", []string{"f.yaml"}},
		{"truncated JSON", `{"apiVersion":"atoll.dev/v1",`, []string{"f.yaml"}},
		{"a list", "- a\n- b\n", []string{"f.yaml#1"}},
		{"a scalar", "hello\n", []string{"f.yaml#1"}},
		{"bad second document", tokenYAML + "---\n" + strings.Replace(simYAML, "kind: Workload", "kind: Pod", 1), []string{"f.yaml#2", "Pod"}},
		{"bad first document", strings.Replace(tokenYAML, "role: operator", "role: ''", 1) + "---\n" + simYAML, []string{"f.yaml#1", "spec.role"}},
		{"bad document between good ones", tokenYAML + "---\nkind: Token\n---\n" + simYAML, []string{"f.yaml#2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms, err := DecodeManifests("f.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeManifests: want an error mentioning %q, got %d manifests", tt.want, len(ms))
			}
			if ms != nil {
				t.Errorf("DecodeManifests: want no manifests with the error, got %d", len(ms))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("DecodeManifests: want the error to mention %q, got %q", w, err)
				}
			}
		})
	}
}

// A stream must never lose a document silently: each object in it is
// either returned or the cause of an error.
func TestDecodeManifestsNeverDropsDocuments(t *testing.T) {
	t.Parallel()
	tokenB := strings.Replace(tokenJSON, `"ci"`, `"cd"`, 1)
	tests := []struct {
		name string
		in   string
	}{
		{"concatenated JSON objects", tokenJSON + "\n" + tokenB + "\n"},
		{"JSON objects on one line", tokenJSON + tokenB},
		{"document end marker", tokenYAML + "...\n" + strings.Replace(tokenYAML, "name: ci", "name: cd", 1)},
		{"document on the separator line", "--- " + tokenJSON + "\n--- " + tokenB + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms, err := DecodeManifests("f", []byte(tt.in))
			if err != nil {
				return // refusing the stream is fine
			}
			var names []string
			for _, m := range ms {
				names = append(names, m.Object.GetMetadata().Name)
			}
			if strings.Join(names, ",") != "ci,cd" {
				t.Errorf("DecodeManifests: want tokens ci and cd (or an error), got %q", names)
			}
		})
	}
}

func TestLookupKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"Workload", "Workload"},
		{"workload", "Workload"},
		{"WORKLOADS", "Workload"},
		{"workloads", "Workload"},
		{"wl", "Workload"},
		{"Token", "Token"},
		{"tokens", "Token"},
		{"token", "Token"},
		{"cl", "Cluster"},
		{"events", "Event"},
		{"pod", ""},
		{"", ""},
	}
	for _, tt := range tests {
		k, ok := LookupKind(tt.in)
		if ok != (tt.want != "") || k.Name != tt.want {
			t.Errorf("LookupKind(%q) = %q, %v; want %q", tt.in, k.Name, ok, tt.want)
		}
	}
}

// Manifests are read as YAML 1.2: plain scalars that YAML 1.1 would turn
// into booleans or times stay the strings they look like.
func TestDecodeManifestsYAML12Scalars(t *testing.T) {
	t.Parallel()
	in := `apiVersion: atoll.dev/v1
kind: Workload
metadata:
  name: y
  labels: {release: 2024-01-02, enabled: no}
  annotations: {released: 2024-01-02T03:04:05Z, quoted: "2024-01-02"}
spec:
  template:
    driver: sim
    env:
      - {name: DAY, value: 2024-01-02}
      - {name: FLAG, value: off}
      - {name: WHEN, value: 2001-12-14 21:59:43.10 -5}
`
	ms, err := DecodeManifests("f.yaml", []byte(in))
	if err != nil {
		t.Fatalf("DecodeManifests: %v", err)
	}
	w := ms[0].Object.(*Workload)
	checks := []struct{ what, got, want string }{
		{"name", w.Metadata.Name, "y"},
		{"label release", w.Metadata.Labels["release"], "2024-01-02"},
		{"label enabled", w.Metadata.Labels["enabled"], "no"},
		{"annotation released", w.Metadata.Annotations["released"], "2024-01-02T03:04:05Z"},
		{"annotation quoted", w.Metadata.Annotations["quoted"], "2024-01-02"},
		{"env DAY", w.Spec.Template.Env[0].Value, "2024-01-02"},
		{"env FLAG", w.Spec.Template.Env[1].Value, "off"},
		{"env WHEN", w.Spec.Template.Env[2].Value, "2001-12-14 21:59:43.10 -5"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: want %q, got %q", c.what, c.want, c.got)
		}
	}
}
