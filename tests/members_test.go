//go:build linux

package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	memberRegion = "eu-central"
	// healthTimeout bounds waiting for a cluster to reach a health state
	// where the product promises nothing faster (first join, start-up).
	healthTimeout = 20 * time.Second
	// memberExitTimeout bounds waiting for a refused member to exit.
	memberExitTimeout = 20 * time.Second
	// pollEvery is how often a test reads a cluster's health from the hub:
	// the state lives in other processes, so there is no event to wait on
	// but the API's answer.
	pollEvery = 20 * time.Millisecond

	// The promises under test (hub defaults: heartbeats every 500 ms,
	// Unreachable after 1.5 s of silence).
	detectWithin = 3 * time.Second // from SIGKILL to Unreachable
	// unreachableAfter is the hub's default silence before Unreachable.
	unreachableAfter = 1500 * time.Millisecond
	recoverWithin    = 3 * time.Second // from restarting a member to Ready
)

// TestMembersJoinAndHealth runs `atoll member` processes against the
// shared dev stack: joining with a limited join token, refusals, health
// through SIGKILL, restart and SIGSTOP, a name taken by another identity,
// and deregistration.
func TestMembersJoinAndHealth(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	d.checkReady(t)
	// The shared stack outlives this test (-count > 1): leave no cluster
	// of this test registered. Registered first, so it runs after the
	// members are killed.
	t.Cleanup(func() {
		for _, name := range []string{"edge-a", "edge-b"} {
			status, body, err := d.request(http.MethodDelete, "/api/v1/clusters/"+name+"?force=true", d.token, nil)
			if err != nil || (status/100 != 2 && status != http.StatusNotFound) {
				t.Errorf("want cluster %s deregistered (or already gone) after the test; got %d %s (%v)", name, status, body, err)
			}
		}
	})

	dirA := filepath.Join(t.TempDir(), "edge-a")
	dirB := filepath.Join(t.TempDir(), "edge-b")
	var edgeA, edgeB *memberProc
	var before clusterView // edge-a as registered by its first start
	owner := t             // the members outlive the subtest that starts them

	ok := t.Run("join", func(t *testing.T) {
		join := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName("edges"), "--join", "--uses", "2").stdout)
		edgeA = d.startMember(t, owner, "edge-a", dirA, join)
		edgeB = d.startMember(t, owner, "edge-b", dirB, join)
		before, _ = d.waitHealth(t, edgeA, "edge-a", "Ready", healthTimeout)
		d.waitHealth(t, edgeB, "edge-b", "Ready", healthTimeout)
		for _, dir := range []string{dirA, dirB} {
			for _, f := range []string{"identity.json", "hub.creds"} {
				fi, err := os.Stat(filepath.Join(dir, f))
				if err != nil {
					t.Errorf("want %s in the member's data folder; got %v", filepath.Join(dir, f), err)
				} else if fi.Mode().Perm() != 0o600 {
					t.Errorf("want %s with mode 0600 (it holds secrets); got %v", filepath.Join(dir, f), fi.Mode().Perm())
				}
			}
		}
		if before.Status.Identity == "" || before.Metadata.UID == "" {
			t.Errorf("want edge-a to have status.identity and a uid once Ready; got %+v", before)
		}
		if got := before.Metadata.Labels["region"]; got != memberRegion {
			t.Errorf("want edge-a labelled region=%s as its --region says; got labels %v", memberRegion, before.Metadata.Labels)
		}

		d.refusedMember(t, "edge-c", filepath.Join(t.TempDir(), "edge-c"), join, "join token", "used up")
		if status, _, err := d.request(http.MethodGet, "/api/v1/clusters/edge-c", d.token, nil); err != nil || status != http.StatusNotFound {
			t.Errorf("want no cluster edge-c after its join was refused (GET 404); got %d (%v)", status, err)
		}

		expired := createJoinToken(t, d, "--ttl", "1s")
		for _, tc := range []struct {
			name, token string
			want        []string
		}{
			{"garbage", "not-a-join-token", []string{"join token"}},
			{"unknown secret", forgeJoinToken(t, join), []string{"join token", "not valid"}},
			{"expired", expired.secret, []string{"join token", "expired"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.name == "expired" {
					// The hub compares with its clock, which is this machine's.
					for now := time.Now(); now.Before(expired.expiresAt); now = time.Now() {
						time.Sleep(expired.expiresAt.Sub(now))
					}
				}
				d.refusedMember(t, "edge-x", filepath.Join(t.TempDir(), "edge-x"), tc.token, tc.want...)
			})
		}
	})
	if !ok {
		return
	}

	ok = t.Run("SIGKILL and restart", func(t *testing.T) {
		d.waitHealth(t, edgeA, "edge-a", "Ready", healthTimeout)
		killed := time.Now()
		edgeA.kill()
		unreachable, seen := d.waitHealth(t, nil, "edge-a", "Unreachable", 10*time.Second)
		took := seen.Sub(killed)
		t.Logf("edge-a: Unreachable %s after SIGKILL (last heartbeat %.3fs before the observation)", took.Round(time.Millisecond), deref(unreachable.Status.HeartbeatAgeSeconds))
		if age := deref(unreachable.Status.HeartbeatAgeSeconds); age < unreachableAfter.Seconds() {
			t.Errorf("want Unreachable only after %s without a heartbeat; edge-a was Unreachable with a heartbeat %.3fs old", unreachableAfter, age)
		}
		if took >= detectWithin {
			t.Errorf("want edge-a Unreachable within %s of SIGKILL; it took %s", detectWithin, took)
		}

		restarted := time.Now()
		edgeA = d.startMember(t, owner, "edge-a", dirA, "") // no join token: its own credentials
		after, seen := d.waitHealth(t, edgeA, "edge-a", "Ready", 10*time.Second)
		took = seen.Sub(restarted)
		t.Logf("edge-a: Ready %s after the restart", took.Round(time.Millisecond))
		if took >= recoverWithin {
			t.Errorf("want edge-a Ready within %s of restarting it; it took %s\nits standard error:\n%s", recoverWithin, took, edgeA.out.tail(30))
		}
		if after.Status.Identity != before.Status.Identity || after.Metadata.UID != before.Metadata.UID {
			t.Errorf("want edge-a to come back as the same cluster (identity %s, uid %s); got identity %s, uid %s",
				before.Status.Identity, before.Metadata.UID, after.Status.Identity, after.Metadata.UID)
		}
	})
	if !ok {
		return
	}

	t.Run("SIGSTOP 1s", func(t *testing.T) {
		// Start from a fresh heartbeat, so the pause is what the hub sees.
		b := d.waitFor(t, edgeB, "edge-b", "Ready with a heartbeat less than 150 ms old", healthTimeout, func(c clusterView) bool {
			return c.Status.Health == "Ready" && c.Status.HeartbeatAgeSeconds != nil && *c.Status.HeartbeatAgeSeconds < 0.15
		})
		if err := syscall.Kill(-edgeB.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("want SIGSTOP delivered to edge-b; got %v", err)
		}
		stopped := time.Now()
		resumed := time.Time{}
		defer func() {
			if resumed.IsZero() {
				_ = syscall.Kill(-edgeB.cmd.Process.Pid, syscall.SIGCONT)
			}
		}()

		var samples []sample
		oldest := 0.0 // heartbeat age, seconds
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for now := time.Now(); resumed.IsZero() || now.Sub(resumed) < 2*time.Second; now = <-tick.C {
			if resumed.IsZero() && now.Sub(stopped) >= time.Second {
				if err := syscall.Kill(-edgeB.cmd.Process.Pid, syscall.SIGCONT); err != nil {
					t.Fatalf("want SIGCONT delivered to edge-b; got %v", err)
				}
				resumed = time.Now()
			}
			c, status, err := d.cluster("edge-b")
			if err != nil || status != http.StatusOK {
				t.Fatalf("want GET cluster edge-b to answer 200 while it is paused; got %d (%v)", status, err)
			}
			samples = append(samples, sample{time.Since(stopped), c.Status.Health})
			oldest = max(oldest, deref(c.Status.HeartbeatAgeSeconds))
		}
		t.Logf("edge-b, SIGSTOP at 0s, SIGCONT at %s: %s; oldest heartbeat seen %.3fs", resumed.Sub(stopped).Round(time.Millisecond), timeline(samples), oldest)
		if oldest < 0.8 {
			t.Errorf("want the pause to show as heartbeat silence (a heartbeat age near 1 s); the oldest seen was %.3fs: was edge-b stopped at all?", oldest)
		}
		for _, s := range samples {
			if s.health == "Unreachable" {
				t.Errorf("want edge-b never Unreachable through a 1 s pause (Unreachable needs 1.5 s of silence); it was at %s: %s", s.at.Round(time.Millisecond), timeline(samples))
				break
			}
		}
		if last := samples[len(samples)-1]; last.health != "Ready" {
			t.Errorf("want edge-b Ready 2 s after SIGCONT; got %s: %s\nits standard error:\n%s", last.health, timeline(samples), edgeB.out.tail(30))
		}
		events := d.eventsOf(t, b.Metadata.UID)
		var reasons []string
		for _, e := range events {
			reasons = append(reasons, e.Reason)
		}
		t.Logf("edge-b's events: %v", reasons)
		for _, e := range events {
			if e.Reason == "ClusterUnreachable" {
				t.Errorf("want no ClusterUnreachable event for edge-b (uid %s) after a 1 s pause; got one at %s: %s", b.Metadata.UID, e.EventTime, e.Message)
			}
		}
	})

	t.Run("name taken by another identity", func(t *testing.T) {
		b, status, err := d.cluster("edge-b")
		if err != nil || status != http.StatusOK {
			t.Fatalf("want GET cluster edge-b to answer 200; got %d (%v)", status, err)
		}
		join := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName("impostor"), "--join", "--uses", "1").stdout)
		dir := filepath.Join(t.TempDir(), "impostor")
		d.refusedMember(t, "edge-b", dir, join, "edge-b", "already registered|another identity")
		refused := time.Now()
		if _, err := os.Stat(filepath.Join(dir, "identity.json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("want no identity kept by a refused member in %s; got %v", dir, err)
		}
		// A heartbeat of the real edge-b after the refusal, and Ready.
		after := d.waitFor(t, edgeB, "edge-b", "Ready with a heartbeat after the refused join", 5*time.Second, func(c clusterView) bool {
			return c.Status.Health == "Ready" && c.Status.LastHeartbeatTime != nil && c.Status.LastHeartbeatTime.After(refused)
		})
		if after.Status.Identity != b.Status.Identity || after.Metadata.UID != b.Metadata.UID {
			t.Errorf("want edge-b unchanged by the refused join (identity %s, uid %s); got identity %s, uid %s",
				b.Status.Identity, b.Metadata.UID, after.Status.Identity, after.Metadata.UID)
		}
	})

	t.Run("deregister", func(t *testing.T) {
		d.waitHealth(t, edgeA, "edge-a", "Ready", healthTimeout)
		mark := edgeA.out.len()
		// Guards: no confirmation, no deregistration; a live member's
		// cluster needs --force.
		if r := d.atoll(t, nil, "", "cluster", "deregister", "edge-a"); r.code != 1 || !strings.Contains(r.stderr, "pass --yes to confirm") {
			t.Errorf("want `atoll cluster deregister edge-a` without --yes refused, exit 1; got %s", r)
		}
		if r := d.atoll(t, nil, "", "cluster", "deregister", "edge-a", "--yes"); r.code != 1 || !strings.Contains(r.stderr, "is Ready") || !strings.Contains(r.stderr, "--force") {
			t.Errorf("want deregistering edge-a while its member heartbeats refused, naming --force; got %s", r)
		}
		if r := d.mustAtoll(t, "", "cluster", "deregister", "edge-a", "--yes", "--force"); !hasLine(r.stdout, "cluster/edge-a deregistered") {
			t.Errorf("want %q; got %s", "cluster/edge-a deregistered", r)
		}
		if names := clusterNames(t, d.mustAtoll(t, "", "get", "clusters", "-o", "json")); slices.Contains(names, "edge-a") {
			t.Errorf("want edge-a gone from `atoll get clusters` once deregistered; got %v", names)
		}
		if status, body, err := d.request(http.MethodGet, "/api/v1/clusters/edge-a", d.token, nil); err != nil || status != http.StatusNotFound {
			t.Errorf("want GET cluster edge-a to answer 404 once deregistered; got %d %s (%v)", status, body, err)
		}
		// Revocation is pushed to the running NATS server: the member's
		// leaf connection is cut (its NATS logs say so).
		if _, ok := edgeA.out.waitLine(mark, 5*time.Second, func(l string) bool {
			return strings.Contains(l, "Leafnode") && (strings.Contains(l, "Authorization Violation") || strings.Contains(l, "connection closed"))
		}); !ok {
			t.Errorf("want the running edge-a to lose its leaf connection within 5 s of deregistration; its standard error since:\n%s", edgeA.out.since(mark, 30))
		}
		edgeA.kill()
		d.refusedMember(t, "edge-a", dirA, "", "deregistered|not valid")
		if status, body, err := d.request(http.MethodGet, "/api/v1/clusters/edge-a", d.token, nil); err != nil || status != http.StatusNotFound {
			t.Errorf("want edge-a to stay deregistered after its refused restart (GET 404); got %d %s (%v)", status, body, err)
		}
		if c, status, err := d.cluster("edge-b"); err != nil || status != http.StatusOK || c.Status.Health != "Ready" {
			t.Errorf("want edge-b Ready, untouched by edge-a's deregistration; got %d %+v (%v)", status, c.Status, err)
		}
	})
}

// TestDevRegionsReady checks that the three regions `atoll dev` runs show
// Ready in `atoll get clusters`.
func TestDevRegionsReady(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	want := []string{"us-east", "eu-west", "ap-south"}
	deadline := time.Now().Add(healthTimeout)
	for {
		r := d.mustAtoll(t, "", "get", "clusters")
		health, region := map[string]string{}, map[string]string{}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		head := strings.Fields(lines[0])
		hi, ri := slices.Index(head, "HEALTH"), slices.Index(head, "REGION")
		if (hi < 0 || ri < 0) && lines[0] != "No clusters found." { // none has registered yet
			t.Fatalf("want NAME, REGION and HEALTH columns in `atoll get clusters`; got %s", r)
		}
		for _, l := range lines[1:] {
			// Columns before HEALTH hold no spaces (name, region, zone).
			if f := strings.Fields(l); len(f) > hi {
				health[f[0]], region[f[0]] = f[hi], f[ri]
			}
		}
		var notReady []string
		for _, name := range want {
			if health[name] != "Ready" || region[name] != name {
				notReady = append(notReady, fmt.Sprintf("%s (region %q, health %q)", name, region[name], health[name]))
			}
		}
		if len(notReady) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the dev regions %v Ready in their own region within %s; not so: %s\n%s\natoll dev's standard error:\n%s",
				want, healthTimeout, strings.Join(notReady, ", "), r, d.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clusterView is the part of a Cluster the tests look at.
type clusterView struct {
	Metadata struct {
		Name   string            `json:"name"`
		UID    string            `json:"uid"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Status struct {
		Health              string     `json:"health"`
		Identity            string     `json:"identity"`
		HeartbeatAgeSeconds *float64   `json:"heartbeatAgeSeconds"`
		LastHeartbeatTime   *time.Time `json:"lastHeartbeatTime"`
		Capacity            *struct {
			NodesReady int32 `json:"nodesReady"`
			NodesTotal int32 `json:"nodesTotal"`
		} `json:"capacity"`
	} `json:"status"`
}

// cluster reads one cluster from the API as the admin.
func (d *devStack) cluster(name string) (clusterView, int, error) {
	var c clusterView
	status, body, err := d.request(http.MethodGet, "/api/v1/clusters/"+name, d.token, nil)
	if err == nil && status == http.StatusOK {
		err = json.Unmarshal(body, &c)
	}
	return c, status, err
}

// waitHealth waits until the hub reports cluster name with health want, and
// returns the cluster and when that was first seen. m, when not nil, is the
// member process behind the cluster: its exit ends the wait.
func (d *devStack) waitHealth(t *testing.T, m *memberProc, name, want string, timeout time.Duration) (clusterView, time.Time) {
	t.Helper()
	c := d.waitFor(t, m, name, want, timeout, func(c clusterView) bool { return c.Status.Health == want })
	return c, time.Now()
}

// waitFor polls cluster name until ok holds, for at most timeout; what
// says what ok looks for, for the failure message.
func (d *devStack) waitFor(t *testing.T, m *memberProc, name, what string, timeout time.Duration, ok func(clusterView) bool) clusterView {
	t.Helper()
	what = name + " " + what
	deadline := time.Now().Add(timeout)
	var last string
	for {
		c, status, err := d.cluster(name)
		if err == nil && status == http.StatusOK && ok(c) {
			return c
		}
		last = fmt.Sprintf("GET answered %d, health %q, heartbeat age %v s (%v)", status, c.Status.Health, deref(c.Status.HeartbeatAgeSeconds), err)
		var exited <-chan struct{}
		if m != nil {
			exited = m.exited
		}
		select {
		case <-exited:
			t.Fatalf("want %s; its member exited (%v) first; last seen: %s\nits standard error:\n%s", what, m.waitErr, last, m.out.tail(30))
		case <-time.After(pollEvery):
		}
		if time.Now().After(deadline) {
			tail := ""
			if m != nil {
				tail = "\nits member's standard error:\n" + m.out.tail(30)
			} else if d.stderr != nil {
				// One of atoll dev's own regions: what dev warned of (a
				// region whose member stopped says why).
				tail = "\natoll dev's warnings and errors:\n" + d.stderr.grep(20, `"level":"WARN"`, `"level":"ERROR"`)
			}
			t.Fatalf("want %s within %s; last seen: %s%s", what, timeout, last, tail)
		}
	}
}

type eventView struct {
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	EventTime string `json:"eventTime"`
}

// eventsOf lists, with `atoll get events`, the events about the object
// with uid.
func (d *devStack) eventsOf(t *testing.T, uid string) []eventView {
	t.Helper()
	r := d.mustAtoll(t, "", "get", "events", "-o", "json")
	var list struct {
		Items []struct {
			eventView
			InvolvedObject struct {
				UID string `json:"uid"`
			} `json:"involvedObject"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("want an event list as JSON; got %v from %s", err, r)
	}
	var out []eventView
	for _, e := range list.Items {
		if e.InvolvedObject.UID == uid {
			out = append(out, e.eventView)
		}
	}
	return out
}

func clusterNames(t *testing.T, r cliResult) []string {
	t.Helper()
	var list struct {
		Kind  string        `json:"kind"`
		Items []clusterView `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || list.Kind != "ClusterList" {
		t.Fatalf("want a ClusterList as JSON; got %v from %s", err, r)
	}
	var names []string
	for _, c := range list.Items {
		names = append(names, c.Metadata.Name)
	}
	return names
}

type joinToken struct {
	secret    string
	expiresAt time.Time
}

// createJoinToken makes a join token with `atoll token create --join`
// plus args.
func createJoinToken(t *testing.T, d *devStack, args ...string) joinToken {
	t.Helper()
	r := d.mustAtoll(t, "", append([]string{"token", "create", uniqueName("join"), "--join", "-o", "json"}, args...)...)
	var tok struct {
		Spec struct {
			ExpiresAt *time.Time `json:"expiresAt"`
		} `json:"spec"`
		Status struct {
			Secret string `json:"secret"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &tok); err != nil || tok.Status.Secret == "" || tok.Spec.ExpiresAt == nil {
		t.Fatalf("want the token with status.secret and spec.expiresAt as JSON; got %v from %s", err, r)
	}
	return joinToken{tok.Status.Secret, *tok.Spec.ExpiresAt}
}

// forgeJoinToken is a well-formed join token for the same hub whose secret
// the hub never issued.
func forgeJoinToken(t *testing.T, real string) string {
	t.Helper()
	prefix, body, _ := strings.Cut(real, "_")
	raw, err := base64.RawURLEncoding.DecodeString(body)
	var fields map[string]any
	if err != nil || json.Unmarshal(raw, &fields) != nil {
		t.Fatalf("want a join token to be a prefix and base64url JSON; got %q (%v)", real, err)
	}
	forged := 0
	for k, v := range fields {
		if s, ok := v.(string); ok && strings.HasPrefix(s, "atoll_") {
			fields[k] = "atoll_" + strings.Repeat("x", len(s)-len("atoll_"))
			forged++
		}
	}
	if forged != 1 {
		t.Fatalf("want exactly one secret (atoll_...) in the join token %s; found %d", raw, forged)
	}
	raw, _ = json.Marshal(fields)
	return prefix + "_" + base64.RawURLEncoding.EncodeToString(raw)
}

// memberProc is an `atoll member` process.
type memberProc struct {
	name string
	cmd  *exec.Cmd
	out  *procOutput // standard error: its logs and its error line
	child
}

// startMember starts `atoll member` for cluster name on dir, with joinToken
// unless empty. owner's cleanup kills its process group; t fails if it
// does not start.
func (d *devStack) startMember(t, owner *testing.T, name, dir, joinToken string) *memberProc {
	t.Helper()
	args := []string{"member", "--name", name, "--region", memberRegion, "--data-dir", dir, "--nats-listen", "127.0.0.1:0"}
	if joinToken != "" {
		args = append(args, "--join-token", joinToken)
	}
	return startProc(t, owner, name, args...)
}

// startProc starts `atoll args...` in its own process group, with a
// parent-death signal so it cannot outlive the test; owner's cleanup
// SIGKILLs the group and waits for the exit; t fails if it does not start.
func startProc(t, owner testing.TB, label string, args ...string) *memberProc {
	t.Helper()
	return startProcIn(t, owner, "", label, args...)
}

// startProcIn is startProc inside network namespace netns ("" for the
// test's own): `ip netns exec` execs atoll, so the pid is atoll's.
func startProcIn(t, owner testing.TB, netns, label string, args ...string) *memberProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &memberProc{name: label, out: newProcOutput()}
	if netns == "" {
		m.cmd = exec.CommandContext(ctx, atollBin, args...)
	} else {
		m.cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns, atollBin}, args...)...)
	}
	m.cmd.Env = append(os.Environ(), "ATOLL_JOIN_TOKEN=") // only what the test passes
	m.cmd.Stderr = m.out
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	m.cmd.Cancel = func() error { return syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL) }
	m.cmd.WaitDelay = 5 * time.Second
	if err := m.start(m.cmd); err != nil {
		cancel()
		t.Fatalf("want `atoll %s` started; got %v", strings.Join(args, " "), err)
	}
	owner.Cleanup(func() {
		cancel()
		<-m.exited
	})
	return m
}

// kill SIGKILLs the member's process group and waits for it to exit.
func (m *memberProc) kill() {
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
}

// refusedMember runs a member that the hub must refuse: it must exit 1
// with one line "error: ..." holding, for each want, one of its
// |-separated alternatives.
func (d *devStack) refusedMember(t *testing.T, name, dir, joinToken string, want ...string) {
	t.Helper()
	m := d.startMember(t, t, name, dir, joinToken)
	r := cliResult{args: m.cmd.Args[1:], code: -1}
	select {
	case <-m.exited:
		r.code = m.cmd.ProcessState.ExitCode()
	case <-time.After(memberExitTimeout):
		m.kill()
	}
	r.stderr = m.out.String()
	if r.code == -1 {
		t.Fatalf("want a refused member to exit; it still ran after %s. %s", memberExitTimeout, r)
	}
	checkFailure(t, r)
	for _, w := range want {
		if !slices.ContainsFunc(strings.Split(w, "|"), func(alt string) bool { return strings.Contains(r.stderr, alt) }) {
			t.Errorf("want the refusal to mention %s; got %s", strings.ReplaceAll(w, "|", " or "), r)
		}
	}
}

// procOutput keeps every line a process writes, for the tests to wait on
// and to quote.
type procOutput struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	grew    chan struct{} // closed and replaced on every new line
}

func newProcOutput() *procOutput { return &procOutput{grew: make(chan struct{})} }

func (o *procOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, p...)
	for {
		i := slices.Index(o.partial, '\n')
		if i < 0 {
			break
		}
		o.lines = append(o.lines, string(o.partial[:i]))
		o.partial = o.partial[i+1:]
		close(o.grew)
		o.grew = make(chan struct{})
	}
	return len(p), nil
}

// len is how many complete lines there are.
func (o *procOutput) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.lines)
}

// waitLine waits up to timeout for a line from index from on that
// matches.
func (o *procOutput) waitLine(from int, timeout time.Duration, match func(string) bool) (string, bool) {
	deadline := time.After(timeout)
	for {
		o.mu.Lock()
		for ; from < len(o.lines); from++ {
			if match(o.lines[from]) {
				o.mu.Unlock()
				return o.lines[from], true
			}
		}
		grew := o.grew
		o.mu.Unlock()
		select {
		case <-grew:
		case <-deadline:
			return "", false
		}
	}
}

// since is up to n lines from index from on.
func (o *procOutput) since(from, n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	lines := o.lines[min(from, len(o.lines)):]
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// tail is the last n lines, and any unfinished one.
func (o *procOutput) tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	lines := append(slices.Clone(o.lines[max(0, len(o.lines)-n):]), string(o.partial))
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// String is everything written.
func (o *procOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := strings.Join(o.lines, "\n")
	if len(o.lines) > 0 {
		s += "\n"
	}
	return s + string(o.partial)
}

// sample is a cluster's health at a time after some start.
type sample struct {
	at     time.Duration
	health string
}

// timeline renders samples as runs: "Ready 0s-0.3s, Suspect 0.4s-1.2s".
func timeline(samples []sample) string {
	var runs []string
	for i := 0; i < len(samples); {
		j := i
		for j+1 < len(samples) && samples[j+1].health == samples[i].health {
			j++
		}
		runs = append(runs, fmt.Sprintf("%s %s-%s", samples[i].health, samples[i].at.Round(10*time.Millisecond), samples[j].at.Round(10*time.Millisecond)))
		i = j + 1
	}
	return strings.Join(runs, ", ")
}

func deref(f *float64) float64 {
	if f == nil {
		return -1
	}
	return *f
}
