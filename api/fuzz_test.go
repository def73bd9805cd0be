package api

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

func FuzzDecodeManifests(f *testing.F) {
	if web, err := os.ReadFile("../deploy/examples/web.yaml"); err == nil {
		f.Add(web)
	}
	for _, seed := range []string{
		tokenYAML,
		simYAML,
		tokenJSON,
		tokenYAML + "---\n" + simYAML,
		"---\n# comment\n---\n" + tokenJSON + "\n",
		tokenJSON + "\n" + tokenJSON,
		tokenYAML + "...\n" + simYAML,
		"apiVersion: atoll.dev/v1\nkind: Workload\nmetadata: {name: a, annotations: {a: b}}\nspec:\n  template: {driver: sim}\n  update: {maxSurge: '00', maxUnavailable: 0%}\nstatus: {conditions: []}\n",
		"apiVersion: atoll.dev/v1\nkind: Workload\nmetadata: {name: a, labels: {}}\nspec:\n  template: {driver: sim, env: []}\n  update: {maxSurge: '+1', maxUnavailable: 0%}\nstatus: {conditions: []}\n",
		"apiVersion: atoll.dev/v1\nkind: Workload\nmetadata: {name: a, creationTimestamp: 2024-01-02T03:04:05+01:00}\nspec: {template: {driver: sim, sim: {failureRate: 0.5}}}\n",
		"apiVersion: atoll.dev/v1\nkind: Token\nmetadata: {name: a, annotations: {d: 2024-01-02, t: !!timestamp 2024-01-02}}\nspec: {role: admin, expiresAt: 2024-01-02T03:04:05.5Z}\n",
		"apiVersion: atoll.dev/v1\nkind: Pod\n",
		"apiVersion: v1\nkind: Token\n",
		"apiVersion: atoll.dev/v1\nkind: Token\nmetadata: {name: a}\nspec: {role: admin, nope: 1}\n",
		"a: &a [*a]\n",
		"a: &a [x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b, *b]\n",
		"a: &a {k: v}\nb: {<<: *a, l: w}\n---\nc: &c x\nd: [*c]\n",
		"apiVersion: atoll.dev/v1\nkind: Token\nmetadata: {name: a, annotations: {1: a, 2.0: b}}\nspec: {role: admin}\n",
		"{1: 2, [3]: 4}\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := DecodeManifests("fuzz", data)
		if err != nil {
			if ms != nil {
				t.Fatalf("DecodeManifests returned %d manifests with the error %v", len(ms), err)
			}
			return
		}
		// Decoding is deterministic.
		again, err := DecodeManifests("fuzz", data)
		if err != nil || len(again) != len(ms) {
			t.Fatalf("decoding again: want %d manifests, got %d and error %v", len(ms), len(again), err)
		}
		for i, m := range ms {
			a, _ := json.Marshal(m.Object)
			b, _ := json.Marshal(again[i].Object)
			if string(a) != string(b) {
				t.Fatalf("manifest %d: decoding twice gave\n%s\nthen\n%s", i, a, b)
			}
		}
		for i, m := range ms {
			if m.Object == nil || m.Object.GetTypeMeta().Kind != m.Kind.Name {
				t.Fatalf("manifest %d: object %T does not match kind %q", i, m.Object, m.Kind.Name)
			}
			if fe := m.Object.Validate(); fe != nil {
				t.Fatalf("manifest %d: returned an invalid object: %v", i, fe)
			}
			js, err := json.Marshal(m.Object)
			if err != nil {
				t.Fatalf("manifest %d: cannot encode %+v: %v", i, m.Object, err)
			}
			back, err := DecodeManifests("again", js)
			if err != nil {
				t.Fatalf("manifest %d: re-decoding %s: want it back, got error %v", i, js, err)
			}
			if len(back) != 1 {
				t.Fatalf("manifest %d: re-decoding %s: want 1 manifest, got %d", i, js, len(back))
			}
			js2, err := json.Marshal(back[0].Object)
			if err != nil {
				t.Fatalf("manifest %d: cannot encode the re-decoded %+v: %v", i, back[0].Object, err)
			}
			if a, b := normalObject(t, js), normalObject(t, js2); !reflect.DeepEqual(a, b) {
				t.Fatalf("manifest %d: round trip changed the object:\nfirst  %s\nsecond %s", i, js, js2)
			}
		}
	})
}

// normalObject decodes an encoded object for comparison. An empty status
// is dropped: a manifest's "status: {conditions: []}" decodes to an empty,
// non-nil Conditions slice, which omitzero on Status keeps (as "status":{})
// while omitempty on Conditions drops; decoded again it is the zero status,
// left out. Both say the same thing: no status.
func normalObject(t *testing.T, data []byte) any {
	t.Helper()
	v := jsonValue(t, data)
	if m, ok := v.(map[string]any); ok {
		if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
			delete(m, "status")
		}
	}
	return v
}

func FuzzParseSelector(f *testing.F) {
	for _, seed := range []string{
		"",
		"a=b",
		"a==b",
		"a!=b",
		"a in (x,y)",
		"a notin (x)",
		"a",
		"!a",
		"app=web,tier!=db,region in (eu-west,us-east),gpu,!legacy",
		" a = b , c in ( x , y ) ",
		"example.com/app=web",
		"a in (x",
		"=b",
		"a=b,",
		"a b",
		"a in (,)",
		"in in (in)",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSelector(text)
		if err != nil {
			if !s.Empty() {
				t.Fatalf("ParseSelector(%q): returned %+v with the error %v", text, s, err)
			}
			return
		}
		out := s.String()
		back, err := ParseSelector(out)
		if err != nil {
			t.Fatalf("ParseSelector(%q) = %+v, whose String %q does not parse: %v", text, s, out, err)
		}
		if !reflect.DeepEqual(back, s) {
			t.Fatalf("ParseSelector(%q) = %+v; its String %q parses to %+v", text, s, out, back)
		}
		if again := back.String(); again != out {
			t.Fatalf("String is not stable: %q, then %q", out, again)
		}
		// Matches holds exactly when every requirement holds, on labels
		// built from the selector's own keys and values.
		for _, labels := range []map[string]string{nil, labelsFrom(s, 0), labelsFrom(s, 1)} {
			want := true
			for _, r := range s.Requirements {
				want = want && requirementHolds(r, labels)
			}
			if got := s.Matches(labels); got != want {
				t.Fatalf("%q.Matches(%v) = %v, want %v", out, labels, got, want)
			}
		}
	})
}

// labelsFrom gives each key of s its first value (or "x" when it has none),
// skipping every other requirement from skip on.
func labelsFrom(s Selector, skip int) map[string]string {
	labels := map[string]string{}
	for i, r := range s.Requirements {
		if i%2 == skip {
			continue
		}
		labels[r.Key] = "x"
		if len(r.Values) > 0 {
			labels[r.Key] = r.Values[0]
		}
	}
	return labels
}

func requirementHolds(r Requirement, labels map[string]string) bool {
	v, ok := labels[r.Key]
	in := false
	for _, x := range r.Values {
		in = in || (ok && x == v)
	}
	switch r.Operator {
	case "In":
		return in
	case "NotIn":
		return !in
	case "Exists":
		return ok
	case "DoesNotExist":
		return !ok
	}
	return false
}
