package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// errorRecords keeps the hub's log records at level ERROR.
type errorRecords struct {
	mu      sync.Mutex
	records []string
}

func (h *errorRecords) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorRecords) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *errorRecords) WithGroup(string) slog.Handler                { return h }
func (h *errorRecords) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	h.mu.Lock()
	h.records = append(h.records, line)
	h.mu.Unlock()
	return nil
}

func (h *errorRecords) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.records...)
}

// Hostile strings. badAnywhere are refused in every string (NUL, invalid
// UTF-8, control characters); tab, newline and carriage return are
// refused in names, path segments and query parameters but may be in
// values (an annotation may span lines). odd ones are text: they must
// never cause a 5xx, whatever else they cause.
var (
	badAnywhere = []string{"a\x00b", "\x00", "\xff", "\xc3\x28", "\xed\xa0\x80", "ok\xfe", "a\x01", "\x1b[2J", "\x08", "\x7f", "\u0085", "\u009b"}
	badInParams = append([]string{"a\tb", "a\nb", "\r\n"}, badAnywhere...)
	odd         = []string{"'; DROP TABLE objects; --", "\u202e", "\ufeff", "\u2028", strings.Repeat("x", 5000), "%", "..", "a/b", "<script>", "\U0001F600", "-1", "9223372036854775808", "1e400", "{{.}}"}
)

// hostile is one request of TestHostileInput and what must come of it.
type hostile struct {
	name, method, path, token, ctype, accept, cookie string
	body                                             []byte
	location                                         string // a problem located here is expected ("" when any answer below 500 will do)
	prefix                                           bool   // location is a prefix
}

// TestHostileInput sends hundreds of hostile requests across the routes
// of a real hub (with NATS, so that every route is served): bad bytes in
// path and query parameters and in every kind of string of a body, as
// escaped and as raw JSON and as YAML; odd numbers; malformed chunked and
// truncated bodies; the console's pages with the same. It fails on any
// 5xx, on any ERROR log line, and where bad text is not refused with a
// 400 located at the field.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	logs := &errorRecords{}
	dbURL := pgtest.NewDatabase(t)
	e := newEnvWith(t, dbURL, newBus(t, dbURL), members.HealthConfig{}, true, func(c *hub.Config) {
		c.Logger = slog.New(logs)
		c.AuthThrottle.Burst = 1 << 20 // the wrong tokens sent here must not slow the rest (TestFailedTokensAreThrottled)
	})
	e.create(workload("existing", 1, nil))
	if _, err := e.store.Create(context.Background(), pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster",
		Meta: api.ObjectMeta{Name: "c1", Labels: map[string]string{api.LabelRegion: "eu"}}, Spec: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	cookie := signIn(t, e.url, adminSecret)

	var reqs []hostile
	add := func(h hostile) { reqs = append(reqs, h) }

	// Path parameters.
	pathRoutes := []struct{ method, path, ctype, body string }{
		{"GET", "/api/v1/workloads/{name}", "", ""},
		{"GET", "/api/v1/tokens/{name}", "", ""},
		{"GET", "/api/v1/clusters/{name}", "", ""},
		{"GET", "/api/v1/events/{name}", "", ""},
		{"GET", "/api/v1/drills/{name}", "", ""},
		{"PUT", "/api/v1/workloads/{name}", "application/json", `{"spec":{"replicas":1,"template":{"driver":"sim"}}}`},
		{"PATCH", "/api/v1/workloads/{name}", "application/merge-patch+json", `{"spec":{"replicas":2}}`},
		{"PATCH", "/api/v1/clusters/{name}", "application/merge-patch+json", `{"spec":{"unschedulable":true}}`},
		{"DELETE", "/api/v1/workloads/{name}", "", ""},
		{"DELETE", "/api/v1/tokens/{name}", "", ""},
		{"DELETE", "/api/v1/clusters/{name}", "", ""},
		{"DELETE", "/api/v1/drills/{name}", "", ""},
		{"GET", "/api/v1/workloads/{name}/logs", "", ""},
		{"POST", "/api/v1/drills/{name}/abort", "", ""},
		{"GET", "/api/v1/drills/{name}/timeline", "", ""},
	}
	for _, r := range pathRoutes {
		for _, h := range badInParams {
			add(hostile{name: "path " + r.method + " " + r.path, method: r.method, path: strings.Replace(r.path, "{name}", url.PathEscape(h), 1),
				token: adminSecret, ctype: r.ctype, body: []byte(r.body), location: "path.name"})
		}
		for _, h := range odd {
			add(hostile{name: "odd path " + r.method + " " + r.path, method: r.method, path: strings.Replace(r.path, "{name}", url.PathEscape(h), 1),
				token: adminSecret, ctype: r.ctype, body: []byte(r.body)})
		}
	}

	// Query parameters.
	queryRoutes := []struct{ method, path, param string }{
		{"GET", "/api/v1/workloads", "labelSelector"},
		{"GET", "/api/v1/workloads", "continue"},
		{"GET", "/api/v1/workloads", "limit"},
		{"GET", "/api/v1/events", "labelSelector"},
		{"GET", "/api/v1/watch/workloads", "labelSelector"},
		{"GET", "/api/v1/watch/workloads", "resourceVersion"},
		{"GET", "/api/v1/audit", "kind"},
		{"GET", "/api/v1/audit", "name"},
		{"DELETE", "/api/v1/workloads/existing", "resourceVersion"},
		{"GET", "/api/v1/workloads/existing/logs", "replica"},
		{"GET", "/api/v1/workloads/existing/logs", "cluster"},
		{"GET", "/api/v1/drills/x/timeline", "after"},
		{"GET", "/api/v1/replicas", "workload"},
		{"GET", "/api/v1/replicas", "cluster"},
		{"GET", "/api/v1/replicas", "node"},
		{"GET", "/api/v1/replicas", "limit"},
		{"GET", "/api/v1/nodes", "cluster"},
	}
	for _, r := range queryRoutes {
		for _, h := range badInParams {
			add(hostile{name: "query " + r.method + " " + r.path + " " + r.param, method: r.method, path: r.path + "?" + r.param + "=" + url.QueryEscape(h),
				token: adminSecret, location: "query." + r.param})
		}
		for _, h := range odd {
			add(hostile{name: "odd query " + r.path + " " + r.param, method: r.method, path: r.path + "?" + r.param + "=" + url.QueryEscape(h), token: adminSecret})
		}
	}
	for _, h := range badInParams {
		add(hostile{name: "query parameter name", method: "GET", path: "/api/v1/workloads?" + url.QueryEscape(h) + "=1", token: adminSecret, location: "query"})
	}

	// Strings in bodies: each hostile string in each kind of field, as an
	// escaped JSON string, as raw bytes, and in YAML.
	n := 0
	unique := func() string { n++; return fmt.Sprintf("h%d", n) }
	bodies := []struct {
		name, method, path, ctype, template, location string
	}{
		{"workload name", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":%s},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, "body.metadata.name"},
		{"label value", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"@","labels":{"k":%s}},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, "body.metadata.labels.k"},
		{"label key", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"@","labels":{%s:"v"}},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, "body.metadata.labels"},
		{"annotation", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"@","annotations":{"note":%s}},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, "body.metadata.annotations.note"},
		{"finalizer", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"@","finalizers":[%s]},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, "body.metadata.finalizers[0]"},
		{"command", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"@"},"spec":{"replicas":1,"template":{"driver":"process","command":["sleep",%s]}}}`, "body.spec.template.command[1]"},
		{"env value", "POST", "/api/v1/workloads", "application/json", `{"metadata":{"name":"@"},"spec":{"replicas":1,"template":{"driver":"process","command":["sleep"],"env":[{"name":"E","value":%s}]}}}`, "body.spec.template.env[0].value"},
		{"replace", "PUT", "/api/v1/workloads/existing", "application/json", `{"metadata":{"annotations":{"a":%s}},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, "body.metadata.annotations.a"},
		{"merge patch", "PATCH", "/api/v1/workloads/existing", "application/merge-patch+json", `{"metadata":{"annotations":{"a":%s}}}`, "body.metadata.annotations.a"},
		{"taint", "PATCH", "/api/v1/clusters/c1", "application/merge-patch+json", `{"spec":{"taints":[{"key":%s,"effect":"NoSchedule"}]}}`, "body.spec.taints[0].key"},
		{"JSON patch value", "PATCH", "/api/v1/workloads/existing", "application/json-patch+json", `[{"op":"add","path":"/metadata/annotations","value":{"a":%s}}]`, "body[0].value.a"},
		{"JSON patch path", "PATCH", "/api/v1/workloads/existing", "application/json-patch+json", `[{"op":"add","path":%s,"value":"x"}]`, "body[0].path"},
		{"token annotation", "POST", "/api/v1/tokens", "application/json", `{"metadata":{"name":"@","annotations":{"a":%s}},"spec":{"role":"viewer"}}`, "body.metadata.annotations.a"},
		{"drill target", "POST", "/api/v1/drills", "application/json", `{"metadata":{"name":"@"},"spec":{"kind":"outage","target":{"cluster":%s}}}`, "body.spec.target.cluster"},
		{"drill plan", "POST", "/api/v1/drills/plan", "application/json", `{"kind":"outage","target":{"region":%s}}`, "body.target.region"},
	}
	for _, b := range bodies {
		for _, h := range badAnywhere {
			mk := func(lit string) []byte {
				return []byte(strings.Replace(fmt.Sprintf(b.template, lit), `"@"`, `"`+unique()+`"`, 1))
			}
			escaped, _ := json.Marshal(h) // controls escaped; invalid UTF-8 would become U+FFFD
			if strings.ToValidUTF8(h, "") == h {
				add(hostile{name: "escaped " + b.name, method: b.method, path: b.path, token: adminSecret, ctype: b.ctype, body: mk(string(escaped)), location: b.location})
			}
			raw := hostile{name: "raw " + b.name, method: b.method, path: b.path, token: adminSecret, ctype: b.ctype, body: mk(`"` + h + `"`), location: b.location}
			if h[0] < 0x20 || strings.ContainsAny(h, "\x00\x01\x08\x1b") {
				raw.location, raw.prefix = "body", true // not JSON: refused as such
			}
			add(raw)
		}
		for _, h := range odd {
			lit, _ := json.Marshal(h)
			add(hostile{name: "odd " + b.name, method: b.method, path: b.path, token: adminSecret, ctype: b.ctype,
				body: []byte(strings.Replace(fmt.Sprintf(b.template, lit), `"@"`, `"`+unique()+`"`, 1))})
		}
	}
	for _, h := range badAnywhere {
		if strings.ToValidUTF8(h, "") != h {
			continue
		}
		var q strings.Builder
		for _, r := range h {
			fmt.Fprintf(&q, `\U%08x`, r)
		}
		add(hostile{name: "YAML annotation", method: "POST", path: "/api/v1/workloads", token: adminSecret, ctype: "application/yaml",
			body:     []byte("metadata:\n  name: " + unique() + "\n  annotations:\n    note: \"" + q.String() + "\"\nspec:\n  replicas: 1\n  template: {driver: sim}\n"),
			location: "body.metadata.annotations.note"})
		// YAML refuses most raw control characters itself and reads NEL
		// as a line break: anything below 500 will do.
		add(hostile{name: "raw bytes in YAML", method: "POST", path: "/api/v1/workloads", token: adminSecret, ctype: "application/yaml",
			body: []byte("metadata:\n  name: " + unique() + "\n  annotations:\n    note: a" + h + "\nspec: {replicas: 1, template: {driver: sim}}\n")})
	}
	// Registration (its authentication is another part of issue 14): no 5xx.
	for _, h := range append(append([]string{}, badAnywhere...), odd...) {
		lit, _ := json.Marshal(h)
		add(hostile{name: "register", method: "POST", path: "/api/v1/clusters/register", token: "atollj_bogus", ctype: "application/json",
			body: []byte(`{"name":` + string(lit) + `,"region":"eu","natsPublicKey":"UABC","protocolVersion":1}`)})
	}

	// Odd numbers.
	for _, num := range []string{"1e400", "-1e400", "1e-400", "9223372036854775808", "-9223372036854775809", "1.5", "-0", "1e2", "100000000000000000000000000000", "0x10", "NaN", "Infinity", `"1"`, "null", "[]", "{}", "1" + strings.Repeat("0", 5000)} {
		add(hostile{name: "replicas " + num[:min(len(num), 20)], method: "POST", path: "/api/v1/workloads", token: adminSecret, ctype: "application/json",
			body: []byte(`{"metadata":{"name":"` + unique() + `"},"spec":{"replicas":` + num + `,"template":{"driver":"sim"}}}`)})
		add(hostile{name: "patch replicas " + num[:min(len(num), 20)], method: "PATCH", path: "/api/v1/workloads/existing", token: adminSecret, ctype: "application/merge-patch+json",
			body: []byte(`{"spec":{"replicas":` + num + `}}`)})
		add(hostile{name: "drill duration " + num[:min(len(num), 20)], method: "POST", path: "/api/v1/drills/plan", token: adminSecret, ctype: "application/json",
			body: []byte(`{"kind":"outage","target":{"cluster":"c1"},"duration":` + num + `}`)})
		add(hostile{name: "limit " + num[:min(len(num), 20)], method: "GET", path: "/api/v1/workloads?limit=" + url.QueryEscape(num), token: adminSecret})
	}
	for _, d := range []string{"999999999999h", "-1s", "1e400s", "1.5.5s", "9223372036854775807ns", "P1D"} {
		add(hostile{name: "drill duration " + d, method: "POST", path: "/api/v1/drills/plan", token: adminSecret, ctype: "application/json",
			body: []byte(`{"kind":"outage","target":{"cluster":"c1"},"duration":"` + d + `"}`)})
	}

	// The console, signed in, as a browser and as a script.
	for _, h := range badInParams {
		for _, p := range []string{"/workloads/", "/clusters/", "/drills/"} {
			add(hostile{name: "console page " + p, method: "GET", path: p + url.PathEscape(h), accept: "text/html", cookie: cookie})
			add(hostile{name: "console page as JSON " + p, method: "GET", path: p + url.PathEscape(h), accept: "application/json", cookie: cookie, location: "path.name"})
		}
		add(hostile{name: "console action", method: "POST", path: "/workloads/" + url.PathEscape(h) + "/scale", ctype: "application/x-www-form-urlencoded",
			body: []byte("replicas=2"), accept: "application/json", cookie: cookie, location: "path.name"})
		add(hostile{name: "console form value", method: "POST", path: "/clusters/c1/taints", ctype: "application/x-www-form-urlencoded",
			body: []byte("key=" + url.QueryEscape(h) + "&effect=NoSchedule"), accept: "text/html", cookie: cookie})
		add(hostile{name: "console query", method: "GET", path: "/workloads?q=" + url.QueryEscape(h), accept: "application/json", cookie: cookie, location: "query.q"})
		add(hostile{name: "sign-in next", method: "GET", path: "/signin?next=" + url.QueryEscape("/"+h), accept: "text/html"})
		add(hostile{name: "sign-in token", method: "POST", path: "/signin", ctype: "application/x-www-form-urlencoded", accept: "text/html",
			body: []byte("token=" + url.QueryEscape(h))})
		add(hostile{name: "live page", method: "GET", path: "/live?page=" + url.QueryEscape("/workloads/"+h), accept: "text/event-stream", cookie: cookie})
	}

	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fails := 0
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
		if fails++; fails == 40 {
			t.Fatal("too many failures; stopping")
		}
	}
	for _, h := range reqs {
		status, header, body := h.send(t, client, e.url)
		what := fmt.Sprintf("%s (%s %.120q)", h.name, h.method, h.path)
		switch {
		case status >= 500:
			fail("%s: %d %.300s", what, status, body)
		case h.location == "":
		case status != http.StatusBadRequest && status != http.StatusUnprocessableEntity:
			fail("%s, body %.200q: want 400 located at %s, got %d %.300s", what, h.body, h.location, status, body)
		default:
			var p api.Problem
			if ct := header.Get("Content-Type"); ct != "application/problem+json" || json.Unmarshal(body, &p) != nil {
				fail("%s: want a problem+json, got %q %.300s", what, ct, body)
				break
			}
			found := false
			for _, d := range p.Errors {
				found = found || d.Location == h.location || h.prefix && strings.HasPrefix(d.Location, h.location)
			}
			if !found {
				fail("%s, body %.200q: want a problem located at %s, got %.400s", what, h.body, h.location, body)
			}
		}
	}
	raw := malformedBodies(t, e.url, cookie)
	if got := logs.all(); len(got) > 0 {
		t.Errorf("the hub logged %d ERROR lines, want none; the first: %.500s", len(got), got[0])
	}
	t.Logf("%d hostile requests and %d malformed bodies sent", len(reqs), raw)
}

// send makes one request and reads the answer (only the headers of a
// stream that started).
func (h hostile) send(t *testing.T, client *http.Client, base string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, h.method, base+h.path, strings.NewReader(string(h.body)))
	if err != nil {
		t.Fatalf("%s: %v", h.name, err)
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	if h.ctype != "" {
		req.Header.Set("Content-Type", h.ctype)
	}
	if h.accept != "" {
		req.Header.Set("Accept", h.accept)
	}
	if h.cookie != "" {
		req.Header.Set("Cookie", h.cookie)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s (%s %q): %v", h.name, h.method, h.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, resp.Header, nil
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// signIn signs in to the console and returns its session cookie.
func signIn(t *testing.T, base, token string) string {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(base+"/signin", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "atoll_session" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("sign-in: %d and no session cookie", resp.StatusCode)
	return ""
}

// malformedBodies writes broken HTTP/1.1 requests on raw connections:
// bad chunk sizes, chunks shorter than they say, no last chunk, bodies
// shorter than their Content-Length (the client then stops sending).
// Each must get a 4xx. It returns how many it sent.
func malformedBodies(t *testing.T, base, cookie string) int {
	t.Helper()
	u, _ := url.Parse(base)
	targets := []struct{ method, path, headers string }{
		{"POST", "/api/v1/workloads", "Authorization: Bearer " + adminSecret + "\r\nContent-Type: application/json\r\n"},
		{"POST", "/api/v1/workloads", "Authorization: Bearer " + adminSecret + "\r\nContent-Type: application/yaml\r\n"},
		{"PATCH", "/api/v1/workloads/existing", "Authorization: Bearer " + adminSecret + "\r\nContent-Type: application/merge-patch+json\r\n"},
		{"POST", "/api/v1/drills/plan", "Authorization: Bearer " + adminSecret + "\r\nContent-Type: application/json\r\n"},
		{"POST", "/api/v1/clusters/register", "Content-Type: application/json\r\n"},
		{"POST", "/signin", "Content-Type: application/x-www-form-urlencoded\r\nAccept: text/html\r\n"},
		{"POST", "/workloads/existing/scale", "Cookie: " + cookie + "\r\nContent-Type: application/x-www-form-urlencoded\r\n"},
	}
	bodies := []struct{ name, framing, body string }{
		{"chunk size not hex", "Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"},
		{"chunk shorter than its size", "Transfer-Encoding: chunked\r\n", "10\r\n{\"a\"\r\n0\r\n\r\n"},
		{"chunk size overflows", "Transfer-Encoding: chunked\r\n", "ffffffffffffffffff\r\n{}\r\n0\r\n\r\n"},
		{"no last chunk", "Transfer-Encoding: chunked\r\n", "2\r\n{}\r\n"},
		{"truncated", "Content-Length: 100\r\n", `{"metadata":{"name":"x"`},
		{"negative length", "Content-Length: -1\r\n", "{}"},
		// Go reads the chunks and drops the length (RFC 9112 6.3); the body
		// is broken JSON either way, so every target must refuse it. (A
		// valid "{}" here is a valid merge patch: the PATCH of the existing
		// workload answered 200 or a 4xx depending on what the hostile
		// requests before it had left of that workload.)
		{"length and chunked", "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", "2\r\n{\"\r\n0\r\n\r\n"},
	}
	n := 0
	for _, tg := range targets {
		for _, b := range bodies {
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n%s", tg.method, tg.path, u.Host, tg.headers, b.framing, b.body)
			_ = conn.(*net.TCPConn).CloseWrite() // the client stops sending
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			n++
			switch {
			case err != nil:
				t.Errorf("%s to %s %s: no answer: %v", b.name, tg.method, tg.path, err)
			case resp.StatusCode < 400 || resp.StatusCode >= 500:
				body, _ := io.ReadAll(resp.Body)
				t.Errorf("%s to %s %s: want a 4xx, got %d %.300s", b.name, tg.method, tg.path, resp.StatusCode, body)
			}
			conn.Close()
		}
	}
	return n
}
