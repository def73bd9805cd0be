package hub_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
)

// TestRegisterAuthenticatesBeforeParsing: the registration route reads no
// body before the token is checked, so an anonymous YAML alias bomb gets
// a 401 for the cost of a request; with a token it takes JSON only, and
// bodies up to 64 KiB. (Not parallel: it measures the process's
// allocations.)
func TestRegisterAuthenticatesBeforeParsing(t *testing.T) {
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("eu", api.TokenSpec{})
	// A 32 KiB string, aliased 1000 times through three levels of ten,
	// after enough plain nodes that yaml.v3's alias ratio lets it through:
	// a 34 KiB body that a YAML reader turns into over 300 MiB (the same
	// with four levels costs a hub 3.6 GB of allocations).
	var bomb bytes.Buffer
	fmt.Fprintf(&bomb, "p: [%s1]\n", strings.Repeat("1, ", 400))
	fmt.Fprintf(&bomb, "s: &a0 %q\n", strings.Repeat("x", 32<<10))
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&bomb, "a%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				bomb.WriteString(", ")
			}
			fmt.Fprintf(&bomb, "*a%d", i-1)
		}
		bomb.WriteString("]\n")
	}
	paths := []string{"/api/v1/clusters/register"}
	// Warm up the routes, then measure.
	for _, p := range paths {
		e.do("POST", p, "", "application/yaml", []byte("{}"))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const rounds = 5
	for range rounds {
		for _, p := range paths {
			for _, token := range []string{"", "atollj_nonsense"} {
				r := e.do("POST", p, token, "application/yaml", bomb.Bytes())
				if r.status != 401 {
					t.Fatalf("POST %s with an alias bomb and token %q: want 401, got %d %s", p, token, r.status, r.body)
				}
				if r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("POST %s: a 401 without WWW-Authenticate", p)
				}
			}
		}
	}
	runtime.ReadMemStats(&after)
	// Each request costs the HTTP round trip (both ends are in this
	// process) and a token lookup: tens of KiB. Parsing the bomb would
	// cost gigabytes.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("%d anonymous alias bombs allocated %d MiB; want under 64 MiB (the body must not be parsed)", rounds*2*len(paths), grew>>20)
	}
	t.Logf("%d anonymous alias bombs: %d KiB allocated, heap %d -> %d KiB", rounds*2*len(paths), (after.TotalAlloc-before.TotalAlloc)>>10, before.HeapAlloc>>10, after.HeapAlloc>>10)

	// With a token: JSON only, so the bomb is no bomb.
	if r := e.do("POST", paths[0], join, "application/yaml", bomb.Bytes()); r.status != 415 || !strings.Contains(r.problem.Detail, "application/json only") {
		t.Errorf("YAML with a join token: want 415, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", paths[0], join, "", bomb.Bytes()); r.status != 400 {
		t.Errorf("the bomb as JSON with a join token: want 400, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", paths[0], join, "application/json", []byte(`{"name":`+strings.Repeat(" ", 64<<10)+`"a"}`)); r.status != 413 {
		t.Errorf("a body over 64 KiB: want 413, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", paths[0], join, "application/json", []byte(`{"name":"a","extra":1}`)); r.status != 400 || !strings.Contains(r.problem.Detail, "unknown field") {
		t.Errorf("an unknown field: want 400, got %d %s", r.status, r.body)
	}
	if r := e.do("POST", paths[0], join, "application/json", nil); r.status != 400 {
		t.Errorf("an empty body: want 400, got %d %s", r.status, r.body)
	}

	// The OpenAPI document still shows the body's schema.
	r := e.do("GET", "/openapi.json", "", "", nil)
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if ref, _ := doc.Paths[p]["post"].RequestBody.Content["application/json"].Schema["$ref"].(string); !strings.Contains(ref, "Register") {
			t.Errorf("openapi: POST %s: want the JSON body's schema, got %+v", p, doc.Paths[p]["post"].RequestBody)
		}
	}
	if r.status != http.StatusOK {
		t.Errorf("openapi.json: %d", r.status)
	}
}
