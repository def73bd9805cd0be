package main

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api/client"
)

// silentHub accepts connections and never answers, like a paused hub.
func silentHub(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestRequestTimeout: a hub that does not answer ends a command, a plain
// request and a stream alike, after --request-timeout with one line that
// says so, instead of hanging until it is killed.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	server := silentHub(t)
	for _, args := range [][]string{{"get", "workloads"}, {"get", "workloads", "-w"}, {"hubs"}} {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(args, "--server", server, "--token", "atoll_x", "--request-timeout", "500ms"))
		start := time.Now()
		err := root.Execute()
		took := time.Since(start)
		if !errors.Is(err, client.ErrTimeout) || !strings.Contains(oneLine(err), "did not answer within 500ms (--request-timeout)") {
			t.Errorf("atoll %s against a silent hub: want a timeout naming --request-timeout; got %v", strings.Join(args, " "), err)
		}
		if took > 20*time.Second {
			t.Errorf("atoll %s against a silent hub took %s to give up, want about 500ms", strings.Join(args, " "), took)
		}
	}
}

// TestUnknownCommandsFail: an unknown subcommand of a command group is an
// error (exit 1 in main) in one line, not the group's help and exit 0.
func TestUnknownCommandsFail(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]string{
		"cluster list": `unknown command "list" for "atoll cluster"`,
		"config view2": `unknown command "view2" for "atoll config"`,
		"clustr":       `unknown command "clustr" for "atoll" (did you mean cluster?)`,
		"drill plans":  `unknown command "plans" for "atoll drill"`,
		"get --bogus":  "unknown flag: --bogus",
	} {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(strings.Fields(args))
		err := root.Execute()
		if err == nil || !strings.HasPrefix(oneLine(err), want) || strings.Contains(oneLine(err), "\n") {
			t.Errorf("atoll %s: want one line starting %q; got %v (output %q)", args, want, err, out.String())
		}
	}
	// The group alone still shows its help.
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"cluster"})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "Available Commands") {
		t.Errorf("atoll cluster: want its help and no error; got %v, %q", err, out.String())
	}
}

// TestClusterRemovalNeedsConfirmation: deregistering a cluster (delete
// cluster, cluster deregister) asks first: without a terminal it needs
// --yes, and nothing is sent before (no hub is reachable here). --force
// belongs to clusters.
func TestClusterRemovalNeedsConfirmation(t *testing.T) {
	t.Parallel()
	noHub := []string{"--server", "http://127.0.0.1:1", "--token", "atoll_x", "--request-timeout", "2s"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"delete", "cluster", "us-east"}, "deregistering cluster us-east revokes its member's identity at once and for good (it must join again with a new join token): pass --yes to confirm"},
		{[]string{"cluster", "deregister", "us-east"}, "pass --yes to confirm"},
		{[]string{"delete", "workload", "web", "--force"}, "--force applies to clusters only"},
		// Confirmed: the request is made (and fails here, with no hub).
		{[]string{"cluster", "deregister", "us-east", "--yes"}, "cannot reach the hub"},
	} {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetIn(strings.NewReader("us-east\n")) // not a terminal: typing is not confirming
		root.SetArgs(append(c.args, noHub...))
		if err := root.Execute(); err == nil || !strings.Contains(oneLine(err), c.want) {
			t.Errorf("atoll %s: want an error containing %q; got %v", strings.Join(c.args, " "), c.want, err)
		}
	}
}
