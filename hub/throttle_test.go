package hub_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/hub/throttle"
)

// clientFrom is an HTTP client whose connections come from ip (any
// 127.0.0.0/8 address reaches the test server on Linux).
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func send(t *testing.T, c *http.Client, method, url, token string, form url.Values, accept string) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, url, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// TestFailedTokensAreThrottled: an address whose tokens fail Burst times
// is refused with 429 and Retry-After, valid tokens from it included,
// until its bucket refills; other addresses are not slowed; console
// sign-ins count against the same bucket; refusals are counted.
func TestFailedTokensAreThrottled(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, pgtest.NewDatabase(t), nil, members.HealthConfig{}, false, func(c *hub.Config) {
		c.AuthThrottle = throttle.Config{Burst: 5, Every: time.Minute}
	})
	a, b := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	list := e.url + "/api/v1/workloads"
	const wrong = "atoll_wrongwrongwrongwrongwrongwrong"

	for i := range 5 {
		if r := send(t, a, "GET", list, wrong, nil, ""); r.status != http.StatusUnauthorized {
			t.Fatalf("failed attempt %d: want 401, got %d %s", i+1, r.status, r.body)
		}
	}
	r := send(t, a, "GET", list, wrong, nil, "")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "60" || !strings.Contains(r.body, `"code":"TooManyRequests"`) {
		t.Fatalf("the 6th failed attempt: want 429 TooManyRequests with Retry-After: 60, got %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	// The address is refused before its token is looked at: a right
	// guess must not be told from a wrong one.
	if r := send(t, a, "GET", list, adminSecret, nil, ""); r.status != http.StatusTooManyRequests {
		t.Errorf("a valid token from the throttled address: want 429, got %d", r.status)
	}
	// No token is no attempt.
	if r := send(t, a, "GET", list, "", nil, ""); r.status != http.StatusUnauthorized {
		t.Errorf("no token from the throttled address: want 401, got %d", r.status)
	}
	// Another address is not slowed.
	if r := send(t, b, "GET", list, adminSecret, nil, ""); r.status != http.StatusOK {
		t.Errorf("a valid token from another address: want 200, got %d %s", r.status, r.body)
	}
	if r := send(t, b, "GET", list, wrong, nil, ""); r.status != http.StatusUnauthorized {
		t.Errorf("a wrong token from another address: want 401 (its own count), got %d", r.status)
	}

	// Console sign-ins share the address's count: 1 failure above, 4 here.
	signin := e.url + "/signin"
	for i := range 4 {
		if r := send(t, b, "POST", signin, "", url.Values{"token": {wrong}}, "text/html"); r.status != http.StatusUnauthorized {
			t.Fatalf("failed sign-in %d: want 401, got %d", i+1, r.status)
		}
	}
	r = send(t, b, "POST", signin, "", url.Values{"token": {wrong}}, "text/html")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "60" || !strings.Contains(r.body, "Too many failed sign-ins") {
		t.Errorf("the 6th failed sign-in: want 429 with Retry-After: 60 and the page saying why, got %d %q", r.status, r.header.Get("Retry-After"))
	}
	r = send(t, b, "POST", signin, "", url.Values{"token": {adminSecret}}, "application/json")
	if r.status != http.StatusTooManyRequests || !strings.Contains(r.body, `"code":"TooManyRequests"`) {
		t.Errorf("a sign-in from the throttled address as an API client: want a 429 problem, got %d %s", r.status, r.body)
	}

	// A minute on, one attempt is back.
	e.clock.Advance(time.Minute)
	if r := send(t, a, "GET", list, adminSecret, nil, ""); r.status != http.StatusOK {
		t.Errorf("a minute later, a valid token: want 200, got %d %s", r.status, r.body)
	}
	send(t, a, "GET", list, wrong, nil, "")
	if r := send(t, a, "GET", list, wrong, nil, ""); r.status != http.StatusTooManyRequests {
		t.Errorf("after the one attempt earned back failed: want 429 again, got %d", r.status)
	}

	metrics := send(t, a, "GET", e.url+"/metrics", "", nil, "").body
	for _, want := range []string{`atoll_auth_throttled_total{`, `surface="api"`, `surface="console"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
