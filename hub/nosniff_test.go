package hub_test

import (
	"context"
	"net/http"
	"testing"
)

// TestNoSniffOnEveryAnswer: API answers, problems, probes, metrics, the
// OpenAPI document, streams and console pages all carry
// X-Content-Type-Options: nosniff.
func TestNoSniffOnEveryAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create(workload("web", 1, nil))
	cases := []struct {
		name, method, path, token, accept string
	}{
		{"object", "GET", "/api/v1/workloads/web", adminSecret, ""},
		{"list", "GET", "/api/v1/workloads", adminSecret, ""},
		{"401 problem", "GET", "/api/v1/workloads", "", ""},
		{"404 problem", "GET", "/api/v1/workloads/missing", adminSecret, ""},
		{"unknown route", "GET", "/api/v1/nothing", adminSecret, ""},
		{"405", "PUT", "/api/v1/workloads", adminSecret, ""},
		{"healthz", "GET", "/healthz", "", ""},
		{"readyz", "GET", "/readyz", "", ""},
		{"metrics", "GET", "/metrics", "", ""},
		{"openapi", "GET", "/openapi.json", "", ""},
		{"sign-in page", "GET", "/signin", "", "text/html"},
		{"console redirect", "GET", "/workloads", "", "text/html"},
		{"console 404", "GET", "/no-such-page", "", "text/html"},
		{"watch stream", "GET", "/api/v1/watch/workloads", adminSecret, "text/event-stream"},
	}
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range cases {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, c.method, e.url+c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if c.accept != "" {
			req.Header.Set("Accept", c.accept)
		}
		resp, err := noRedirects.Do(req) // returns once the headers are in, streams included
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s (%s %s, %d): X-Content-Type-Options %q, want nosniff", c.name, c.method, c.path, resp.StatusCode, got)
		}
		cancel()
		resp.Body.Close()
	}
}
