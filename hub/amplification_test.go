package hub_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// bodyLimit is the API's request body limit (hub/httpapi's maxBody).
const bodyLimit = 1 << 20

// laughsYAML is the "billion laughs" as a workload: width aliases of the
// level below, depth levels deep, in a few kilobytes.
func laughsYAML(width, depth int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: atoll.dev/v1\nkind: Workload\nmetadata: {name: lol}\nspec:\n  replicas: 1\n  template: {driver: sim}\n  l0: &l0 [lol]\n")
	for d := 1; d <= depth; d++ {
		fmt.Fprintf(&b, "  l%d: &l%d [*l%d%s]\n", d, d, d-1, strings.Repeat(fmt.Sprintf(", *l%d", d-1), width-1))
	}
	return []byte(b.String())
}

// stringAliasYAML is one string of size bytes aliased 999 times, under the
// 1000 nodes below which go-yaml does not look at aliases at all.
func stringAliasYAML(size int) []byte {
	return []byte("metadata:\n  name: lol\n  annotations: {a: &s \"" + strings.Repeat("x", size) + "\"}\nspec:\n  l: [*s" + strings.Repeat(", *s", 998) + "]\n")
}

// memSample is what the process had allocated, and its resident set.
type memSample struct {
	totalAlloc, heapInuse uint64
	rss, hwm              uint64 // kB, from /proc/self/status
}

func sampleMem() memSample {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := memSample{totalAlloc: m.TotalAlloc, heapInuse: m.HeapInuse}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
				v, _ := strconv.ParseUint(f[1], 10, 64)
				if f[0] == "VmRSS:" {
					s.rss = v
				} else {
					s.hwm = v
				}
			}
		}
	}
	return s
}

// TestAmplificationIsBounded sends YAML alias bombs to the real API, with
// and without a token, and measures what the hub (this process) allocates
// for each: at most a small multiple of the body limit with a token, less
// than the body itself without one (the body is never parsed). It does not
// run in parallel: it measures the whole process. Run with -v for the
// figures BENCHMARKS.md records.
func TestAmplificationIsBounded(t *testing.T) {
	e := newEnv(t)
	e.create(workload("lol", 1, nil))
	const yamlLimit = 32 << 10 // hub/httpapi's maxYAMLBody
	laughs := laughsYAML(100, 4)
	strs := stringAliasYAML(yamlLimit - 8<<10)
	if len(strs) > yamlLimit {
		t.Fatalf("the string bomb is %d bytes, over the YAML body limit", len(strs))
	}
	big := stringAliasYAML(bodyLimit - 16<<10)
	// The costliest bodies that are parsed: as many values as each format
	// lets through, in as few bytes as they take.
	denseJSON := []byte(`{"metadata":{"name":"lol"},"spec":{"l":[` + strings.Repeat("1,", 99_990) + `1]}}`)
	denseYAML := []byte("metadata: {name: lol}\nspec:\n  l: [" + strings.Repeat("1,", yamlLimit/2-40) + "1]\n")
	tooDense := []byte(`{"metadata":{"name":"lol"},"spec":{"l":[` + strings.Repeat("1,", bodyLimit/2-100) + `1]}}`)
	const rounds = 5
	const yml, js = "application/yaml", "application/json"
	cases := []struct {
		name, method, path, token, ctype string
		body                             []byte
		status                           int
		says                             string
		perRequest                       uint64 // allocation bound per request
	}{
		{"laughs, anonymous", "POST", "/api/v1/workloads", "", yml, laughs, 401, "", 256 << 10},
		{"laughs, bad token", "POST", "/api/v1/workloads", "atoll_wrongwrongwrong", yml, laughs, 401, "", 256 << 10},
		{"laughs, admin", "POST", "/api/v1/workloads", adminSecret, yml, laughs, 400, "aliases expand it", 2 << 20},
		{"laughs as a patch, admin", "PATCH", "/api/v1/workloads/lol", adminSecret, yml, laughs, 400, "aliases expand it", 2 << 20},
		{"24 KiB string bomb, admin", "POST", "/api/v1/workloads", adminSecret, yml, strs, 400, "aliases expand it", 4 << 20},
		{"24 KiB string bomb as a patch, admin", "PATCH", "/api/v1/workloads/lol", adminSecret, yml, strs, 400, "aliases expand it", 4 << 20},
		{"1 MiB string bomb, anonymous", "POST", "/api/v1/workloads", "", yml, big, 401, "", bodyLimit / 4},
		{"1 MiB string bomb, bad token", "POST", "/api/v1/workloads", "atoll_wrongwrongwrong", yml, big, 401, "", bodyLimit / 4},
		{"1 MiB string bomb, admin", "POST", "/api/v1/workloads", adminSecret, yml, big, 400, "send it as JSON", 4 * bodyLimit},
		{"1 MiB string bomb as a patch, admin", "PATCH", "/api/v1/workloads/lol", adminSecret, yml, big, 400, "send it as JSON", 4 * bodyLimit},
		{"dense YAML (32 KiB), admin", "POST", "/api/v1/workloads", adminSecret, yml, denseYAML, 422, "", 12 * bodyLimit},
		{"dense JSON (100k values), admin", "POST", "/api/v1/workloads", adminSecret, js, denseJSON, 422, "", 12 * bodyLimit},
		{"dense JSON (500k values), anonymous", "POST", "/api/v1/workloads", "", js, tooDense, 401, "", bodyLimit / 4},
		{"dense JSON (500k values), admin", "POST", "/api/v1/workloads", adminSecret, js, tooDense, 400, "more than 100000 values", 4 * bodyLimit},
		{"dense JSON (500k values) as a patch", "PATCH", "/api/v1/workloads/lol", adminSecret, "application/merge-patch+json", tooDense, 400, "more than 100000 values", 4 * bodyLimit},
	}
	for _, c := range cases {
		runtime.GC()
		before := sampleMem()
		var mu sync.Mutex
		peak := before.heapInuse
		stop, sampled := make(chan struct{}), make(chan struct{})
		go func() { // the heap's high-water mark while the requests run
			defer close(sampled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				mu.Lock()
				peak = max(peak, m.HeapInuse)
				mu.Unlock()
			}
		}()
		for range rounds {
			r := e.do(c.method, c.path, c.token, c.ctype, c.body)
			if r.status != c.status {
				t.Errorf("%s: want %d, got %d %.300s", c.name, c.status, r.status, r.body)
			}
			if c.status == 400 && !hasLocation(r.problem, "body") {
				t.Errorf("%s: want the problem located at body; got %.300s", c.name, r.body)
			}
			if !strings.Contains(string(r.body), c.says) {
				t.Errorf("%s: want the problem to say %q; got %.300s", c.name, c.says, r.body)
			}
		}
		close(stop)
		<-sampled
		after := sampleMem()
		per := (after.totalAlloc - before.totalAlloc) / rounds
		t.Logf("%-38s %4d KiB: allocated %5.1f MiB per request (%4.1fx the body limit); heap in use peaked %+5.1f MiB; RSS %+5.1f MiB, peak RSS %+5.1f MiB",
			c.name, len(c.body)>>10, mib(per), float64(per)/bodyLimit, mib(peak)-mib(before.heapInuse),
			(float64(after.rss)-float64(before.rss))/1024, (float64(after.hwm)-float64(before.hwm))/1024)
		if per > c.perRequest {
			t.Errorf("%s: the hub allocated %d bytes per request, want at most %d", c.name, per, c.perRequest)
		}
	}
	// Refused bodies changed nothing.
	if r := e.do("GET", "/api/v1/workloads/lol", adminSecret, "", nil); r.status != 200 || bytes.Contains(r.body, []byte("xxxx")) {
		t.Errorf("a refused body changed the workload: %d %.200s", r.status, r.body)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// TestAnonymousBodiesAreNotParsed sends a 1 MiB YAML alias bomb without a
// token to every route of the OpenAPI document that takes a body: each is
// refused with 401 before the body is read, let alone parsed. Not in
// parallel: it measures the process.
func TestAnonymousBodiesAreNotParsed(t *testing.T) {
	e := newEnv(t)
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody any `json:"requestBody"`
		} `json:"paths"`
	}
	if r := e.do("GET", "/openapi.json", "", "", nil); r.status != 200 || json.Unmarshal(r.body, &doc) != nil {
		t.Fatalf("GET /openapi.json: %d", r.status)
	}
	bomb := stringAliasYAML(bodyLimit - 16<<10)
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if op.RequestBody == nil {
				continue
			}
			n++
			runtime.GC()
			before := sampleMem()
			r := e.do(strings.ToUpper(method), strings.ReplaceAll(path, "{name}", "x"), "", "application/yaml", bomb)
			after := sampleMem()
			// A hub without NATS (this one) refuses registration before
			// any token: 503, the body unread all the same.
			noNATS := strings.HasPrefix(path, "/api/v1/clusters/register") && r.status == http.StatusServiceUnavailable
			if r.status != http.StatusUnauthorized && !noNATS {
				t.Errorf("%s %s without a token: want 401, got %d %.200s", method, path, r.status, r.body)
			}
			if got := after.totalAlloc - before.totalAlloc; got > bodyLimit/4 {
				t.Errorf("%s %s without a token: the hub allocated %d bytes for a %d-byte body, want under %d (the body must not be read)", method, path, got, len(bomb), bodyLimit/4)
			}
		}
	}
	if n < 7 {
		t.Errorf("want at least the 7 routes with bodies (workload create, replace and patch, token create, cluster patch, drill create and plan); found %d", n)
	}
}
