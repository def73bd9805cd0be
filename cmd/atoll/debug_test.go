package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestHubRefusesADebugListenerOffLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		_, _, err := runAtoll(t, "hub", "--database-url", "postgres://atoll@127.0.0.1:1/none", "--data-dir", t.TempDir(),
			"--listen", "127.0.0.1:0", "--debug-listen", addr)
		if err == nil || !strings.Contains(err.Error(), "--debug-listen") || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("atoll hub --debug-listen %s: %v; want a refusal naming the flag and loopback", addr, err)
		}
	}
}

// The profiles are the debug listener's alone: importing net/http/pprof
// registers them on http.DefaultServeMux, which the API must not serve.
func TestHubAPIDoesNotServeProfiles(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdminSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "profile") {
			t.Errorf("GET %s on the API: %d %.200q; want 404 and no profile", path, resp.StatusCode, body)
		}
	}
}

func TestHubRefusesAMemoryLimitRatioOutOfRange(t *testing.T) {
	t.Parallel()
	for _, ratio := range []string{"1.5", "-0.1", "NaN"} {
		_, _, err := runAtoll(t, "hub", "--database-url", "postgres://atoll@127.0.0.1:1/none", "--data-dir", t.TempDir(),
			"--listen", "127.0.0.1:0", "--memory-limit-ratio", ratio)
		if err == nil || !strings.Contains(err.Error(), "--memory-limit-ratio") {
			t.Errorf("atoll hub --memory-limit-ratio %s: %v; want a refusal naming the flag", ratio, err)
		}
	}
}

func TestHubRefusesAnUnknownLeafCompression(t *testing.T) {
	t.Parallel()
	_, _, err := runAtoll(t, "hub", "--database-url", "postgres://atoll@127.0.0.1:1/none", "--data-dir", t.TempDir(),
		"--listen", "127.0.0.1:0", "--leaf-compression", "s2")
	if err == nil || !strings.Contains(err.Error(), "--leaf-compression") {
		t.Errorf("atoll hub --leaf-compression s2: %v; want a refusal naming the flag", err)
	}
}
