//go:build linux

package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/internal/ports"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/protocol"
)

// Region tests: one `atoll member` joined to the shared dev stack, three
// `atoll node` agents (zones z1-z3) on the member's NATS, and real
// `atoll demo-http` replica processes. The test feeds desired state to the
// member directly (a request on protocol.DesiredSubject, as the hub would)
// and observes the region through the node agents' heartbeats (every
// 500 ms and on every change: each replica's phase, readiness, restarts
// and generation; a list left out while unchanged is the last one heard) and the member's status reports (every 2 s), and the
// replica processes themselves through /proc.

const (
	// regionTagEnv is set in every template of a region to the region's
	// cluster name, so the test finds its own replica processes in /proc
	// (the runtime passes a template's env to the process).
	regionTagEnv = "ATOLL_E2E_REGION"
	// regionUpTimeout bounds the start-up of a region: member joined,
	// three node agents heard from.
	regionUpTimeout = 20 * time.Second
	// replicasUpTimeout bounds desired state in -> replicas Ready: process
	// start plus a 1 s readiness probe period.
	replicasUpTimeout = 15 * time.Second
	// failoverWithin is the promise: a node agent killed, its
	// replicas Ready on other nodes (the member's node grace is 3 s).
	failoverWithin = 5 * time.Second
	// restartTimeout bounds a killed replica's restart: the first restart
	// waits the runtime's initial backoff (10 s).
	restartTimeout = 20 * time.Second
	// goneWithin bounds waiting for processes that are not our children
	// to disappear from /proc.
	goneWithin = 5 * time.Second
)

// TestRegionRunsRealProcesses places 3 replicas of a demo-http template
// in a region of three nodes in three zones: one Ready replica per zone,
// each a real process, child of the agent that reports it, answering on
// its PORT; and the member's status report agrees.
func TestRegionRunsRealProcesses(t *testing.T) {
	t.Parallel()
	r := startRegion(t)
	w := uniqueName("web")
	ready, procs := r.runDemo(t, w, 1, 1, 3)

	zones := map[string]string{} // zone -> replica
	for _, rep := range ready {
		if other, dup := zones[rep.zone]; dup {
			t.Errorf("want the 3 replicas spread over the 3 zones (zoneSpread); %s and %s are both in %s:\n%s", other, rep.ID, rep.zone, r.view())
		}
		zones[rep.zone] = rep.ID
	}
	for _, rep := range ready {
		p := procs[rep.ID]
		if want := r.nodes[rep.node].cmd.Process.Pid; p.ppid != want {
			t.Errorf("want replica %s's process (pid %d) to be a child of node agent %s (pid %d), which reports it; its parent is pid %d (%s)",
				rep.ID, p.pid, rep.node, want, p.ppid, cmdline(p.ppid))
		}
		checkServes(t, p, "hello from atoll")
	}

	st := r.waitStatus(t, w, "desired 3, scheduled 3, running 3, ready 3, updated 3", func(s protocol.WorkloadStatus) bool {
		return s.Desired == 3 && s.Scheduled == 3 && s.Running == 3 && s.Ready == 3 && s.Updated == 3
	})
	if st.Epoch != 1 || st.Generation != 1 || st.Pending != "" {
		t.Errorf("want the status report at epoch 1, generation 1, nothing pending; got %+v", st)
	}
}

// TestRegionRestartsKilledReplica kills one replica process with SIGKILL:
// its node agent restarts the same replica, after a backoff, as a new
// process that becomes Ready; the other replicas are untouched.
func TestRegionRestartsKilledReplica(t *testing.T) {
	t.Parallel()
	r := startRegion(t)
	w := uniqueName("web")
	ready, procs := r.runDemo(t, w, 1, 1, 3)

	victim := ready[0]
	old := procs[victim.ID]
	if err := syscall.Kill(old.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("want SIGKILL delivered to replica %s (pid %d); got %v", victim.ID, old.pid, err)
	}
	killed := time.Now()
	var phases []string
	_, seen := r.waitFor(t, restartTimeout, fmt.Sprintf("replica %s restarted on %s (restarts > %d) and Ready", victim.ID, victim.node, victim.Restarts), func(v regionView) bool {
		rep, ok := v.replica(w, victim.ID)
		if !ok {
			return false
		}
		if label := rep.Phase + readyMark(rep.Ready); len(phases) == 0 || phases[len(phases)-1] != label {
			phases = append(phases, label)
		}
		return rep.node == victim.node && rep.Restarts > victim.Restarts && rep.Ready && rep.Phase == "Running"
	})
	took := seen.Sub(killed)
	t.Logf("replica %s on %s: SIGKILL to pid %d; Ready again %s later; phases seen: %s", victim.ID, victim.node, old.pid, took.Round(time.Millisecond), strings.Join(phases, " -> "))
	if !slices.Contains(phases, "Backoff") {
		t.Errorf("want the killed replica to go through Backoff before its restart (restart with backoff); phases seen: %s", strings.Join(phases, " -> "))
	}
	if old.running() {
		t.Errorf("want the killed process (pid %d) gone; it still runs: %s", old.pid, cmdline(old.pid))
	}

	now := demoProcsByReplica(t, r.name)
	p, ok := now[victim.ID]
	switch {
	case !ok:
		t.Errorf("want a process for the restarted replica %s; found processes only for %v", victim.ID, sortedKeys(now))
	case p.pid == old.pid && p.start == old.start:
		t.Errorf("want the restarted replica %s in a new process; it is still pid %d", victim.ID, p.pid)
	default:
		checkServes(t, p, "hello from atoll")
	}
	for _, rep := range ready[1:] {
		if p, q := procs[rep.ID], now[rep.ID]; p.pid != q.pid || p.start != q.start {
			t.Errorf("want replica %s untouched by another replica's death (pid %d); now pid %d", rep.ID, p.pid, q.pid)
		}
	}
	r.waitStatus(t, w, "restarts >= 1 and ready 3", func(s protocol.WorkloadStatus) bool { return s.Restarts >= 1 && s.Ready == 3 })
}

// TestRegionNodeLoss kills one node agent with SIGKILL: its replica
// processes die with it (parent-death signal), and the member places
// replicas on the other nodes, Ready within failoverWithin of the kill.
func TestRegionNodeLoss(t *testing.T) {
	t.Parallel()
	r := startRegion(t)
	w := uniqueName("web")
	ready, procs := r.runDemo(t, w, 1, 1, 3)

	lost := ready[0].node
	agent := r.nodes[lost]
	var orphans []demoProc // the lost node's replica processes
	for _, rep := range ready {
		if rep.node == lost {
			orphans = append(orphans, procs[rep.ID])
		}
	}
	agent.kill()
	killed := time.Now()
	if left := waitProcsGone(orphans, goneWithin); len(left) > 0 {
		t.Errorf("want node %s's replica processes to die with its agent (parent-death signal); still running %s after %s: %v", lost, goneWithin, time.Since(killed).Round(time.Millisecond), left)
	} else {
		t.Logf("node %s: SIGKILL to its agent; its %d replica process(es) gone after %s", lost, len(orphans), time.Since(killed).Round(time.Millisecond))
	}

	v, seen := r.waitFor(t, 3*failoverWithin, fmt.Sprintf("3 Ready replicas of %s on nodes other than %s", w, lost), func(v regionView) bool {
		n := 0
		for _, rep := range v.replicas(w) {
			if rep.node != lost && rep.Ready && rep.seen.After(killed) {
				n++
			}
		}
		return n >= 3
	})
	took := seen.Sub(killed)
	t.Logf("node %s lost: 3 replicas Ready on the other nodes %s after the SIGKILL (node grace 3 s)", lost, took.Round(time.Millisecond))
	if took >= failoverWithin {
		t.Errorf("want replicas Ready on the other nodes within %s of killing node agent %s; it took %s:\n%s", failoverWithin, lost, took.Round(time.Millisecond), v)
	}

	now := demoProcsByReplica(t, r.name)
	if len(now) != 3 {
		t.Errorf("want exactly 3 replica processes after the failover; found %d: %v", len(now), sortedKeys(now))
	}
	for _, rep := range v.replicas(w) {
		if rep.node == lost || !rep.Ready {
			continue
		}
		p, ok := now[rep.ID]
		if !ok {
			t.Errorf("want a process for Ready replica %s on %s; found none", rep.ID, rep.node)
			continue
		}
		if want := r.nodes[rep.node].cmd.Process.Pid; p.ppid != want {
			t.Errorf("want replica %s's process to be a child of node agent %s (pid %d); its parent is pid %d", rep.ID, rep.node, want, p.ppid)
		}
		checkServes(t, p, "hello from atoll")
	}
}

// TestRegionNodeStopsReplicasOnExit: a node agent told to stop (SIGTERM,
// as systemd or Kubernetes would) stops its replicas itself, each with its
// stop signal and grace, before it exits: it logs each one stopped, and
// none is left to the parent-death signal.
func TestRegionNodeStopsReplicasOnExit(t *testing.T) {
	t.Parallel()
	r := startRegion(t)
	w := uniqueName("web")
	ready, procs := r.runDemo(t, w, 1, 1, 3)
	node := ready[0].node
	agent := r.nodes[node]
	var mine []demoProc
	for _, rep := range ready {
		if rep.node == node {
			mine = append(mine, procs[rep.ID])
		}
	}
	if err := agent.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-agent.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("want node agent %s to exit within 30 s of SIGTERM; its standard error:\n%s", node, agent.out.tail(30))
	}
	if left := waitProcsGone(mine, goneWithin); len(left) > 0 {
		t.Errorf("want node %s's replica processes gone after its agent exited; still running: %v", node, left)
	}
	out := agent.out.tail(200)
	if strings.Contains(out, "stopping replicas on exit") || strings.Count(out, "replica stopped") < len(mine) {
		t.Errorf("want node agent %s to stop its %d replica(s) itself on SIGTERM and log each stopped; its standard error:\n%s", node, len(mine), out)
	}
}

// TestRegionRollingUpdate changes the template (GREETING=v2, generation
// 2) with maxSurge 1 and maxUnavailable 0, sampling the Ready count from
// the node heartbeats every 100 ms: it never drops below 3, and the update
// ends with every replica at generation 2, Ready, serving v2, and none of
// the old processes left.
func TestRegionRollingUpdate(t *testing.T) {
	t.Parallel()
	r := startRegion(t)
	w := uniqueName("web")
	_, before := r.runDemo(t, w, 1, 1, 3)

	d := r.desired(w, 2, 2, 3, api.EnvVar{Name: "GREETING", Value: "v2"})
	d.Update = &api.UpdateStrategy{MaxSurge: api.IntOrPercentOf("1"), MaxUnavailable: api.IntOrPercentOf("0")}
	r.mustAccept(t, d)
	started := time.Now()

	var samples []rolloutSample
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := started.Add(30 * time.Second)
	var last regionView
	for now := started; ; now = <-tick.C {
		last = r.view()
		s := rolloutSample{at: now.Sub(started)}
		for _, rep := range last.replicas(w) {
			if rep.Phase != "Stopping" {
				s.live++
			}
			if !rep.Ready {
				continue
			}
			s.ready++
			if rep.Generation == 2 {
				s.readyNew++
			}
		}
		samples = append(samples, s)
		if s.ready == 3 && s.readyNew == 3 && len(last.replicas(w)) == 3 {
			break
		}
		if now.After(deadline) {
			t.Fatalf("want every replica at generation 2 and Ready within 30 s of the update; not so. samples (ready/ready at gen 2/not stopping): %s\nlast seen:\n%s\nmember's standard error:\n%s",
				rolloutTimeline(samples), last, r.member.out.tail(20))
		}
	}
	t.Logf("rolling update of %s: done in %s; samples every 100 ms (ready/ready at gen 2/not stopping): %s",
		w, samples[len(samples)-1].at.Round(time.Millisecond), rolloutTimeline(samples))
	minReady, maxLive := samples[0].ready, 0
	for _, s := range samples {
		minReady, maxLive = min(minReady, s.ready), max(maxLive, s.live)
	}
	if minReady < 3 {
		for _, s := range samples {
			if s.ready < 3 {
				t.Errorf("want at least 3 Ready replicas throughout a rolling update with maxUnavailable 0; %d at %s after it started. samples (ready/ready at gen 2/not stopping): %s",
					s.ready, s.at.Round(time.Millisecond), rolloutTimeline(samples))
				break
			}
		}
	}
	if maxLive > 4 {
		t.Errorf("want at most 4 replicas (3 + maxSurge 1) not being stopped at any sample; saw %d: %s", maxLive, rolloutTimeline(samples))
	}

	now := demoProcsByReplica(t, r.name)
	for id, p := range before {
		if p.running() {
			t.Errorf("want every generation-1 process gone after the update; replica %s (pid %d) still runs", id, p.pid)
		}
	}
	for _, rep := range last.replicas(w) {
		p, ok := now[rep.ID]
		if !ok {
			t.Errorf("want a process for updated replica %s on %s; found processes only for %v", rep.ID, rep.node, sortedKeys(now))
			continue
		}
		if p.greeting != "v2" {
			t.Errorf("want replica %s's process to have GREETING=v2 from the new template; it has %q", rep.ID, p.greeting)
		}
		checkServes(t, p, "v2 (replica "+rep.ID+")")
	}
	r.waitStatus(t, w, "generation 2, updated 3, ready 3", func(s protocol.WorkloadStatus) bool {
		return s.Generation == 2 && s.Updated == 3 && s.Ready == 3 && s.Scheduled == 3
	})
}

// TestRegionEpochsAndTombstone checks the member's fencing: an older
// epoch and invalid desired state are refused with a reason and change
// nothing; a tombstone at a higher epoch stops every replica process.
func TestRegionEpochsAndTombstone(t *testing.T) {
	t.Parallel()
	r := startRegion(t)
	w := uniqueName("web")
	_, procs := r.runDemo(t, w, 5, 1, 3)

	stale := r.desired(w, 4, 2, 1)
	ack := r.send(t, stale)
	if ack.Accepted || ack.Current != 5 || !strings.Contains(ack.Reason, "epoch") {
		t.Errorf("want desired state at epoch 4 refused (accepted false, current 5, a reason naming the epoch) after epoch 5; got %+v", ack)
	}
	invalid := r.desired(w, 6, 2, -1)
	if ack := r.send(t, invalid); ack.Accepted || !strings.Contains(ack.Reason, "replicas") {
		t.Errorf("want desired state with replicas -1 refused with a reason naming replicas; got %+v", ack)
	}
	// A status report from a controller pass after the refusals (passes
	// run every second, reports every 2 s: a report 1.1 s later comes from
	// a pass after them) still shows epoch 5, 3 replicas.
	st := r.waitStatusAfter(t, w, time.Now().Add(1100*time.Millisecond), "any content", func(protocol.WorkloadStatus) bool { return true })
	if st.Epoch != 5 || st.Desired != 3 || st.Generation != 1 {
		t.Errorf("want the refused messages to change nothing (epoch 5, generation 1, desired 3); the member reports %+v", st)
	}
	for id, p := range procs {
		if !p.running() {
			t.Errorf("want replica %s (pid %d) untouched by refused desired state; it is gone", id, p.pid)
		}
	}

	tomb := protocol.DesiredWorkload{Version: protocol.Version, Workload: w, Epoch: 6, Deleted: true}
	r.mustAccept(t, tomb)
	deleted := time.Now()
	_, seen := r.waitFor(t, 15*time.Second, "no replica of "+w+" on any node after its tombstone", func(v regionView) bool {
		for _, n := range v.nodes {
			if !n.at.After(deleted) {
				return false
			}
		}
		return len(v.replicas(w)) == 0
	})
	var all []demoProc
	for _, p := range procs {
		all = append(all, p)
	}
	if left := waitProcsGone(all, goneWithin); len(left) > 0 {
		t.Errorf("want every replica process stopped by the tombstone; still running: %v", left)
	}
	if left := demoProcsByReplica(t, r.name); len(left) > 0 {
		t.Errorf("want no replica process of %s after the tombstone; found %v", w, sortedKeys(left))
	}
	t.Logf("tombstone at epoch 6: no replica of %s on any node %s later", w, seen.Sub(deleted).Round(time.Millisecond))
	if ack := r.send(t, r.desired(w, 5, 1, 3)); ack.Accepted {
		t.Errorf("want desired state at epoch 5 refused after the tombstone at epoch 6 (a late message must not resurrect the workload); got %+v", ack)
	}
}

// region is a running region: a member and its node agents.
type region struct {
	name   string // the member's cluster name
	member *memberProc
	nodes  map[string]*memberProc // by node name
	nc     *nats.Conn             // on the member's NATS
	obs    *regionObserver
}

// startRegion starts a member joined to the shared dev stack, with its
// NATS on a free port, and three node agents n1-n3 in zones z1-z3 (2 CPU,
// 2Gi each), and returns once every agent has heartbeated. Everything it
// starts is killed when the test ends, and the test fails if a replica
// process of the region survives that.
func startRegion(t *testing.T) *region {
	t.Helper()
	d := sharedStack(t)
	r := &region{name: uniqueName("region"), nodes: map[string]*memberProc{}}
	// Cleanups run last-registered first: the processes go, then this
	// checks for survivors, then the cluster is deregistered.
	t.Cleanup(func() {
		status, body, err := d.request(http.MethodDelete, "/api/v1/clusters/"+r.name+"?force=true", d.token, nil)
		if err != nil || (status/100 != 2 && status != http.StatusNotFound) {
			t.Errorf("want cluster %s deregistered (or already gone) after the test; got %d %s (%v)", r.name, status, body, err)
		}
	})
	t.Cleanup(func() {
		var left []demoProc
		for _, p := range demoProcsByReplica(t, r.name) {
			left = append(left, p)
		}
		if left = waitProcsGone(left, goneWithin); len(left) > 0 {
			t.Errorf("want no demo-http process of region %s left once its node agents are killed; still running %s later: %v", r.name, goneWithin, left)
			for _, p := range left {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
	})

	join := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName("region-join"), "--join", "--uses", "1").stdout)
	natsAddr := freeAddr(t)
	memberDir := filepath.Join(t.TempDir(), "member")
	r.member = startAtollProc(t, "member "+r.name, "member", "--name", r.name, "--region", memberRegion,
		"--data-dir", memberDir, "--nats-listen", natsAddr, "--join-token", join)
	select {
	case <-r.member.exited:
		t.Fatalf("want member %s running; it exited (%v):\n%s", r.name, r.member.waitErr, r.member.out.tail(30))
	default:
	}
	if _, ok := r.member.out.waitLine(0, regionUpTimeout, func(l string) bool { return strings.Contains(l, "member running") }); !ok {
		t.Fatalf("want member %s to log \"member running\" within %s; its standard error:\n%s", r.name, regionUpTimeout, r.member.out.tail(30))
	}
	url := "nats://" + natsAddr
	// The test watches the region as its admin would, with the region's
	// admin key from the member's data folder.
	admin, err := os.ReadFile(filepath.Join(memberDir, "admin.nk"))
	if err != nil {
		t.Fatalf("want the member's admin key; got %v", err)
	}
	auth, err := member.NkeyOption(strings.TrimSpace(string(admin)))
	if err != nil {
		t.Fatal(err)
	}
	// The region's NATS lets nobody in without a key: a stranger on the
	// machine is refused.
	if anon, err := nats.Connect(url, nats.Name("atoll-e2e-stranger")); err == nil {
		anon.Close()
		t.Errorf("member %s's NATS: want an anonymous connection refused; it was accepted", r.name)
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("member %s's NATS: want an anonymous connection refused as unauthorized; got %v", r.name, err)
	}
	nc, err := nats.Connect(url, nats.Name("atoll-e2e-"+r.name), auth)
	if err != nil {
		t.Fatalf("want a connection to member %s's NATS at %s; got %v", r.name, url, err)
	}
	t.Cleanup(nc.Close)
	r.nc = nc
	if r.obs, err = observeRegion(nc, r.name); err != nil {
		t.Fatalf("want subscriptions on member %s's NATS; got %v", r.name, err)
	}

	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		r.nodes[name] = startAtollProc(t, "node "+name+" of "+r.name, "node", "--member", url, "--join-token-file", filepath.Join(memberDir, "node-join-token"), "--name", name,
			"--zone", fmt.Sprintf("z%d", i), "--data-dir", filepath.Join(t.TempDir(), name), "--cpu", "2", "--memory", "2Gi")
	}
	r.waitFor(t, regionUpTimeout, "heartbeats from n1, n2 and n3", func(v regionView) bool { return len(v.nodes) == 3 })
	// The member schedules with its own view of the nodes, which may lag
	// the heartbeats the test saw (more so on a busy machine): wait until
	// it counts all three Ready, or a zone spread could miss a node.
	deadline := time.Now().Add(regionUpTimeout)
	for {
		var nodes api.NodeInfoList
		status, body, err := d.request(http.MethodGet, "/api/v1/nodes?cluster="+r.name, d.token, nil)
		ready := 0
		if err == nil && status == http.StatusOK && json.Unmarshal(body, &nodes) == nil {
			for _, n := range nodes.Items {
				if n.Ready {
					ready++
				}
			}
		}
		if ready == 3 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("want member %s to count n1, n2 and n3 Ready within %s; last answer %d %s (%v)", r.name, regionUpTimeout, status, body, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the API for the member's view
	}
}

// startAtollProc starts the atoll binary with args in its own process
// group; the test's cleanup SIGKILLs the group and waits for the exit.
func startAtollProc(t *testing.T, label string, args ...string) *memberProc {
	t.Helper()
	return startProc(t, t, label, args...)
}

// freeAddr is 127.0.0.1 and a port that was free a moment ago (package
// ports: below the ephemeral range, which outgoing connections on this
// busy machine take from meanwhile).
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// desired is desired state for workload w: replicas of the demo-http
// template (plus env), at epoch and generation, spread over zones.
func (r *region) desired(w string, epoch, generation int64, replicas int32, env ...api.EnvVar) protocol.DesiredWorkload {
	return protocol.DesiredWorkload{
		Version: protocol.Version, Workload: w, Epoch: epoch, Generation: generation, Replicas: replicas,
		Template: api.ReplicaTemplate{
			Driver:        "process",
			Command:       atollBin,
			Args:          []string{"demo-http"},
			Env:           append([]api.EnvVar{{Name: regionTagEnv, Value: r.name}}, env...),
			Readiness:     &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz"}, PeriodSeconds: 1},
			RestartPolicy: "Always",
		},
		Scheduling: protocol.Scheduling{ZoneSpread: true},
	}
}

// send asks the member to take d and returns its answer.
func (r *region) send(t *testing.T, d protocol.DesiredWorkload) protocol.DesiredAck {
	t.Helper()
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := r.nc.Request(protocol.DesiredSubject(r.name), data, 5*time.Second)
	if err != nil {
		t.Fatalf("want member %s to answer desired state for %s (epoch %d) within 5 s; got %v\nits standard error:\n%s", r.name, d.Workload, d.Epoch, err, r.member.out.tail(20))
	}
	var ack protocol.DesiredAck
	if err := json.Unmarshal(msg.Data, &ack); err != nil {
		t.Fatalf("want a DesiredAck as JSON; got %q (%v)", msg.Data, err)
	}
	return ack
}

func (r *region) mustAccept(t *testing.T, d protocol.DesiredWorkload) {
	t.Helper()
	if ack := r.send(t, d); !ack.Accepted || ack.Current != d.Epoch {
		t.Fatalf("want desired state for %s at epoch %d accepted; got %+v", d.Workload, d.Epoch, ack)
	}
}

// runDemo makes w run n demo-http replicas and waits until n are Ready,
// each with its process: it returns the Ready replicas (by ID) and their
// processes by replica ID.
func (r *region) runDemo(t *testing.T, w string, epoch, generation int64, n int) ([]replicaView, map[string]demoProc) {
	t.Helper()
	r.mustAccept(t, r.desired(w, epoch, generation, int32(n)))
	sent := time.Now()
	v, seen := r.waitFor(t, replicasUpTimeout, fmt.Sprintf("%d Ready replicas of %s", n, w), func(v regionView) bool {
		reps := v.replicas(w)
		return len(reps) == n && len(readyOnly(reps)) == n
	})
	t.Logf("region %s: %d replicas of %s Ready %s after the desired state was accepted", r.name, n, w, seen.Sub(sent).Round(time.Millisecond))
	ready := v.replicas(w)
	procs := demoProcsByReplica(t, r.name)
	for _, rep := range ready {
		if _, ok := procs[rep.ID]; !ok {
			t.Fatalf("want a demo-http process with ATOLL_REPLICA=%s (Ready on %s); found processes for %v", rep.ID, rep.node, sortedKeys(procs))
		}
	}
	if len(procs) != n {
		t.Fatalf("want exactly %d demo-http processes of region %s; found %d: %v", n, r.name, len(procs), sortedKeys(procs))
	}
	return ready, procs
}

// waitFor waits until ok holds for the region as its node heartbeats
// show it, and returns that view and when it was seen.
func (r *region) waitFor(t *testing.T, timeout time.Duration, what string, ok func(regionView) bool) (regionView, time.Time) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		v, changed := r.obs.snapshot()
		if ok(v) {
			return v, time.Now()
		}
		select {
		case <-changed:
		case <-r.member.exited:
			t.Fatalf("want %s; member %s exited (%v) first. its standard error:\n%s", what, r.name, r.member.waitErr, r.member.out.tail(30))
		case <-deadline.C:
			var tails []string
			for _, name := range sortedKeys(r.nodes) {
				tails = append(tails, fmt.Sprintf("node %s's standard error:\n%s", name, r.nodes[name].out.tail(10)))
			}
			t.Fatalf("want %s within %s; last seen:\n%s\nmember's standard error:\n%s\n%s", what, timeout, v, r.member.out.tail(20), strings.Join(tails, "\n"))
		}
	}
}

// waitStatus waits for a status report from the member in which workload
// w satisfies ok (reports come every 2 s).
func (r *region) waitStatus(t *testing.T, w, what string, ok func(protocol.WorkloadStatus) bool) protocol.WorkloadStatus {
	t.Helper()
	return r.waitStatusAfter(t, w, time.Time{}, what, ok)
}

// waitStatusAfter is waitStatus for a report that arrived after after.
func (r *region) waitStatusAfter(t *testing.T, w string, after time.Time, what string, ok func(protocol.WorkloadStatus) bool) protocol.WorkloadStatus {
	t.Helper()
	var got protocol.WorkloadStatus
	var have bool
	r.waitFor(t, 10*time.Second, "a status report of "+w+" with "+what, func(v regionView) bool {
		got, have = v.status[w]
		return have && v.statusAt.After(after) && ok(got)
	})
	return got
}

func (r *region) view() regionView {
	v, _ := r.obs.snapshot()
	return v
}

// regionObserver keeps the latest heartbeat of every node and the
// latest status report of the member.
type regionObserver struct {
	mu       sync.Mutex
	nodes    map[string]heardNode
	status   map[string]protocol.WorkloadStatus
	statusAt time.Time     // when the last status report arrived
	changed  chan struct{} // closed and replaced on every message
}

type heardNode struct {
	hb protocol.NodeHeartbeat
	at time.Time // when it arrived
}

func observeRegion(nc *nats.Conn, cluster string) (*regionObserver, error) {
	o := &regionObserver{nodes: map[string]heardNode{}, status: map[string]protocol.WorkloadStatus{}, changed: make(chan struct{})}
	if _, err := nc.Subscribe(protocol.NodeHeartbeatWildcard, func(m *nats.Msg) {
		var hb protocol.NodeHeartbeat
		if json.Unmarshal(m.Data, &hb) != nil {
			return
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		// A heartbeat that leaves its replica list out (the member holds
		// it) keeps the list last heard under the same number, as the
		// member does.
		if prev := o.nodes[hb.Node].hb; hb.ReplicasSame && prev.ReplicasSeq == hb.ReplicasSeq {
			hb.Replicas = prev.Replicas
		}
		o.nodes[hb.Node] = heardNode{hb, time.Now()}
		close(o.changed)
		o.changed = make(chan struct{})
	}); err != nil {
		return nil, err
	}
	if _, err := nc.Subscribe(protocol.StatusSubject(cluster), func(m *nats.Msg) {
		var rep protocol.StatusReport
		if json.Unmarshal(m.Data, &rep) != nil {
			return
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		o.status, o.statusAt = map[string]protocol.WorkloadStatus{}, time.Now()
		for _, s := range rep.Workloads {
			o.status[s.Workload] = s
		}
		close(o.changed)
		o.changed = make(chan struct{})
	}); err != nil {
		return nil, err
	}
	// A member whose hub takes deltas sends what changed: folded here as
	// the hub folds them (a resend begins anew).
	if _, err := nc.Subscribe(protocol.StatusDeltaSubject(cluster), func(m *nats.Msg) {
		d, err := protocol.DecodeStatusDelta(m.Subject, m.Data)
		if err != nil {
			return
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if d.Reset {
			o.status = map[string]protocol.WorkloadStatus{}
		}
		for _, s := range d.Workloads {
			o.status[s.Workload] = s
		}
		for _, w := range d.Removed {
			delete(o.status, w)
		}
		o.statusAt = time.Now()
		close(o.changed)
		o.changed = make(chan struct{})
	}); err != nil {
		return nil, err
	}
	// The whole status now, not only what changes from here on.
	ask, _ := json.Marshal(protocol.StatusFullRequest{Version: protocol.Version})
	if err := nc.Publish(protocol.StatusFullSubject(cluster), ask); err != nil {
		return nil, err
	}
	return o, nc.Flush()
}

func (o *regionObserver) snapshot() (regionView, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := regionView{nodes: make(map[string]heardNode, len(o.nodes)), status: make(map[string]protocol.WorkloadStatus, len(o.status)), statusAt: o.statusAt}
	for k, n := range o.nodes {
		v.nodes[k] = n
	}
	for k, s := range o.status {
		v.status[k] = s
	}
	return v, o.changed
}

// regionView is the region as the last heartbeats and report show it.
type regionView struct {
	nodes    map[string]heardNode
	status   map[string]protocol.WorkloadStatus
	statusAt time.Time
}

// replicaView is one replica as its node's last heartbeat shows it.
type replicaView struct {
	protocol.ReplicaState
	node, zone string
	seen       time.Time
}

// replicas lists workload w's replicas on every node, by ID.
func (v regionView) replicas(w string) []replicaView {
	var out []replicaView
	for _, n := range v.nodes {
		for _, rs := range n.hb.Replicas {
			if rs.Workload == w {
				out = append(out, replicaView{rs, n.hb.Node, n.hb.Zone, n.at})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (v regionView) replica(w, id string) (replicaView, bool) {
	for _, rep := range v.replicas(w) {
		if rep.ID == id {
			return rep, true
		}
	}
	return replicaView{}, false
}

func readyOnly(reps []replicaView) []replicaView {
	var out []replicaView
	for _, r := range reps {
		if r.Ready {
			out = append(out, r)
		}
	}
	return out
}

func readyMark(ready bool) string {
	if ready {
		return "(ready)"
	}
	return ""
}

func (v regionView) String() string {
	var b strings.Builder
	for _, name := range sortedKeys(v.nodes) {
		n := v.nodes[name]
		fmt.Fprintf(&b, "  node %s (zone %s, heard %s ago):", name, n.hb.Zone, time.Since(n.at).Round(time.Millisecond))
		if len(n.hb.Replicas) == 0 {
			b.WriteString(" no replicas")
		}
		for _, rs := range n.hb.Replicas {
			fmt.Fprintf(&b, " [%s gen %d %s%s restarts %d %q]", rs.ID, rs.Generation, rs.Phase, readyMark(rs.Ready), rs.Restarts, rs.Message)
		}
		b.WriteString("\n")
	}
	for _, w := range sortedKeys(v.status) {
		fmt.Fprintf(&b, "  status %+v\n", v.status[w])
	}
	return strings.TrimRight(b.String(), "\n")
}

// rolloutSample is the region's readiness at one moment of an update.
type rolloutSample struct {
	at                    time.Duration // since the update was accepted
	ready, readyNew, live int
}

// rolloutTimeline renders samples as runs of equal counts:
// "3/0/4 0s-0.9s, 4/1/4 1s-1.2s, ...".
func rolloutTimeline(samples []rolloutSample) string {
	var runs []string
	key := func(s rolloutSample) string { return fmt.Sprintf("%d/%d/%d", s.ready, s.readyNew, s.live) }
	for i := 0; i < len(samples); {
		j := i
		for j+1 < len(samples) && key(samples[j+1]) == key(samples[i]) {
			j++
		}
		runs = append(runs, fmt.Sprintf("%s %s-%s", key(samples[i]), samples[i].at.Round(10*time.Millisecond), samples[j].at.Round(10*time.Millisecond)))
		i = j + 1
	}
	return strings.Join(runs, ", ")
}

// demoProc is a running replica process of a region, read from /proc.
type demoProc struct {
	proc
	ppid     int
	replica  string // ATOLL_REPLICA
	port     string // PORT
	greeting string // GREETING
}

func (p demoProc) String() string {
	return fmt.Sprintf("pid %d (replica %s, port %s)", p.pid, p.replica, p.port)
}

// demoProcsByReplica finds the running processes whose environment has
// regionTagEnv=tag, by their ATOLL_REPLICA.
func demoProcsByReplica(t *testing.T, tag string) map[string]demoProc {
	t.Helper()
	return taggedProcs(t, regionTagEnv, tag)
}

// taggedProcs finds the running processes whose environment has key=tag,
// by their ATOLL_REPLICA; two for one replica fail the test (a double
// start).
func taggedProcs(t *testing.T, key, tag string) map[string]demoProc {
	t.Helper()
	out := map[string]demoProc{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		env := map[string]string{}
		for kv := range strings.SplitSeq(string(raw), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		if env[key] != tag {
			continue
		}
		ppid, state, start, ok := procStat(pid)
		if !ok || state == 'Z' || state == 'X' {
			continue
		}
		p := demoProc{proc: proc{pid, start}, ppid: ppid, replica: env["ATOLL_REPLICA"], port: env["PORT"], greeting: env["GREETING"]}
		if other, dup := out[p.replica]; dup {
			t.Errorf("want one process per replica; replica %s has two: %s and %s", p.replica, other, p)
		}
		out[p.replica] = p
	}
	return out
}

// waitProcsGone waits up to timeout for procs to stop running and returns
// those still running. They are not our children: this polls /proc.
func waitProcsGone(procs []demoProc, timeout time.Duration) []demoProc {
	deadline := time.Now().Add(timeout)
	for {
		var left []demoProc
		for _, p := range procs {
			if p.running() {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkServes fails the test unless p answers GET / on its PORT with a
// body holding want, and GET /healthz with 200.
func checkServes(t *testing.T, p demoProc, want string) {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second}
	for _, path := range []string{"/", "/healthz"} {
		url := "http://127.0.0.1:" + p.port + path
		resp, err := client.Get(url)
		if err != nil {
			t.Errorf("want replica %s (pid %d) to answer GET %s; got %v", p.replica, p.pid, url, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("want GET %s to answer 200; got %d %q", url, resp.StatusCode, body)
		}
		if path == "/" && !strings.Contains(string(body), want) {
			t.Errorf("want GET %s (replica %s) to answer %q; got %q", url, p.replica, want, body)
		}
	}
}
