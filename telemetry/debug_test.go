package telemetry

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckDebugAddrAllowsOnlyLoopbackUnlessTold(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:6060", false, true},
		{"127.0.0.2:6060", false, true},
		{"[::1]:6060", false, true},
		{"localhost:6060", false, true},
		{":6060", false, false},
		{"0.0.0.0:6060", false, false},
		{"[::]:6060", false, false},
		{"10.0.0.5:6060", false, false},
		{"debug.example:6060", false, false},
		{":6060", true, true},
		{"10.0.0.5:6060", true, true},
		{"6060", false, false}, // no port: not host:port
		{"6060", true, false},
	} {
		err := CheckDebugAddr(tc.addr, tc.remote)
		if (err == nil) != tc.ok {
			t.Errorf("CheckDebugAddr(%q, %v) = %v; want ok %v", tc.addr, tc.remote, err, tc.ok)
		}
		if !tc.ok && !tc.remote && strings.Contains(tc.addr, ":") && !errors.Is(err, ErrDebugNotLoopback) {
			t.Errorf("CheckDebugAddr(%q): %v; want ErrDebugNotLoopback", tc.addr, err)
		}
	}
}

func TestDebugListenBindsLoopbackOnly(t *testing.T) {
	t.Parallel()
	if _, err := DebugListen("0.0.0.0:0", false); !errors.Is(err, ErrDebugNotLoopback) {
		t.Fatalf("DebugListen(0.0.0.0:0) = %v; want ErrDebugNotLoopback", err)
	}
	ln, err := DebugListen("localhost:0", false)
	if err != nil {
		t.Fatalf("DebugListen(localhost:0): %v", err)
	}
	defer ln.Close()
	if got := ln.Addr().String(); !strings.HasPrefix(got, "127.") && !strings.HasPrefix(got, "[::1]") {
		t.Fatalf("bound %s; want a loopback address", got)
	}
}

func TestDebugHandlerServesProfilesButNotTheCommandLine(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(DebugHandler())
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "# HeapInuse = ") {
		t.Errorf("heap?debug=1: %d %.200q; want 200 with the MemStats", code, body)
	}
	if code, body := get("/debug/pprof/heap?gc=1"); code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Errorf("heap?gc=1: %d %.20q; want 200 with a gzipped profile", code, body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("goroutine?debug=1: %d %.200q; want 200 with the goroutines", code, body)
	}
	if code, body := get("/debug/pprof/cmdline"); code != http.StatusNotFound {
		t.Errorf("cmdline: %d %.200q; want 404 (a command line may hold a password)", code, body)
	}
	if code, _ := get("/"); code != http.StatusNotFound {
		t.Errorf("/: %d; want 404, the debug listener serves only /debug/pprof/", code)
	}
}
