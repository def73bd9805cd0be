package telemetry

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
)

// The debug listener: Go's profiles (net/http/pprof) on a listener of
// their own, for an engineer on the machine (`go tool pprof
// http://127.0.0.1:6060/debug/pprof/heap`). Profiles tell a reader the
// process's code paths, its allocations and, through goroutine stacks,
// names of what it is working on, and a CPU profile or trace costs the
// process while it runs: they are no part of the API's listener, carry no
// authentication, and DebugListen refuses any address but loopback unless
// told otherwise. /debug/pprof/cmdline is not served: a command line may
// hold a database URL with its password.
//
// Importing net/http/pprof registers its handlers on
// http.DefaultServeMux as a side effect; no server of this binary serves
// that mux (the hub's API test checks /debug/pprof/ is not found there).

// ErrDebugNotLoopback is DebugListen's refusal of an address that is not
// loopback.
var ErrDebugNotLoopback = errors.New("not a loopback address")

// CheckDebugAddr says whether addr (host:port) may carry the debug
// listener: with allowRemote any address; otherwise only a loopback IP
// literal or "localhost" (an empty host means every interface, a host
// name could resolve anywhere).
func CheckDebugAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if allowRemote || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	what := "host " + host
	if host == "" {
		what = "every interface"
	}
	return fmt.Errorf("%q (%s): %w", addr, what, ErrDebugNotLoopback)
}

// DebugListen checks addr with CheckDebugAddr and listens on it; without
// allowRemote the address bound must be loopback too (what "localhost"
// resolved to).
func DebugListen(addr string, allowRemote bool) (net.Listener, error) {
	if err := CheckDebugAddr(addr, allowRemote); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !allowRemote && (!ok || !tcp.IP.IsLoopback()) {
		ln.Close()
		return nil, fmt.Errorf("%q bound %s: %w", addr, ln.Addr(), ErrDebugNotLoopback)
	}
	return ln, nil
}

// DebugHandler serves Go's profiles under /debug/pprof/ (the index, every
// runtime/pprof profile such as heap, allocs and goroutine, CPU profiles,
// execution traces, symbols) and nothing else.
func DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", http.NotFound)
	return mux
}
