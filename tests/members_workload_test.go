//go:build linux

package tests

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// The members workload test: a dedicated `atoll dev` as the hub, three
// `atoll member` processes (regions r-a, r-b and r-c) with two `atoll
// node` processes each, every one a separate OS process. A Divided
// workload of demo-http replicas selected onto those three members by a
// custom cluster label (the dev stack's own in-process regions must get
// none) runs, scales, rolls and is deleted; the test reads Workload.status
// through the API and the replica processes through /proc.

// membersUpTimeout bounds the start of the three members and their nodes,
// up to the hub seeing each member Ready with both nodes.
const membersUpTimeout = 30 * time.Second

// e2eMember is one `atoll member` process and its node agents.
type e2eMember struct {
	name, region string
	proc         *memberProc
	nodes        []*memberProc
}

// TestMembersWorkload applies a Divided workload of 9 demo-http replicas
// over three member processes (spread over 3 regions), scales it to 15,
// rolls a template change and deletes it.
func TestMembersWorkload(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	// One value for the clusters' e2e label and the replicas' marker env:
	// no other test or run uses it.
	tag := fmt.Sprintf("mw-%d-%d", os.Getpid(), nameSeq.Add(1))
	// Registered first, so it runs last: after the node agents, the
	// members and the hub are gone.
	t.Cleanup(func() {
		var left []demoProc
		for _, p := range workloadProcs(t, tag) {
			left = append(left, p)
		}
		if left = waitProcsGone(left, goneWithin); len(left) > 0 {
			t.Errorf("want no demo-http process of this test (%s=%s) left once its node agents were killed; still running %s later: %v", workloadTagEnv, tag, goneWithin, left)
			for _, p := range left {
				_ = syscall.Kill(-p.pid, syscall.SIGKILL) // the runtime makes each replica a process group leader
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
	})

	d := startDevNoDemo(t)
	var list api.WorkloadList
	status, body, err := d.request(http.MethodGet, "/api/v1/workloads", d.token, nil)
	if err == nil && status == http.StatusOK {
		err = json.Unmarshal(body, &list)
	}
	if err != nil || status != http.StatusOK || len(list.Items) > 0 {
		t.Fatalf("want no workload on the hub before the test applies its own (no demo workloads); got %d %s (%v)", status, body, err)
	}

	// Three members, each with two node agents, all their own processes.
	members := make([]*e2eMember, 3)
	nodeOf := map[int]string{} // node agent pid -> member name
	for i, suffix := range []string{"a", "b", "c"} {
		members[i] = startE2EMember(t, d, "member-"+suffix, "r-"+suffix, tag, 2, nodeOf)
	}
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = m.name
		waitMemberCluster(t, d, m, tag)
	}
	t.Logf("hub, 3 members and 6 node agents up, every member Ready with 2 nodes at the hub: %s", time.Since(begin).Round(time.Millisecond))

	const name = "hello"
	spec := helloSpec{tag: tag, replicas: 9, greeting: "v1", selectLabel: "e2e: " + strconv.Quote(tag)}

	// Apply: 9 replicas, 3 per member.
	applied := time.Now()
	if r := d.mustAtoll(t, spec.manifest(name), "apply", "-f", "-"); !hasLine(r.stdout, "workload/"+name+" created") {
		t.Errorf("want %q; got %s", "workload/"+name+" created", r)
	}
	w, seen := d.waitWorkload(t, name, "9 Ready replicas, 3 desired and 3 Ready on each of "+strings.Join(names, ", ")+", none elsewhere", workloadReadyTimeout, nil,
		func(w api.Workload) bool { return w.Status.ReadyReplicas == 9 && splitOver(w, names, 3, 0) })
	t.Logf("apply -> 9 replicas Ready over 3 member processes: %s (%s)", seen.Sub(applied).Round(time.Millisecond), summary(w))
	first := d.waitProcs(t, tag, 9, "v1")
	checkMemberProcs(t, first, nodeOf, names, 3, "v1")

	// Scale to 15: 5 per member, the 9 running processes kept.
	spec.replicas = 15
	scaled := time.Now()
	if r := d.mustAtoll(t, spec.manifest(name), "apply", "-f", "-"); !hasLine(r.stdout, "workload/"+name+" configured") {
		t.Errorf("want %q; got %s", "workload/"+name+" configured", r)
	}
	gen := d.generation(t, name)
	var samples []readySample
	w, seen = d.waitWorkload(t, name, fmt.Sprintf("15 Ready replicas at observedGeneration %d, 5 on each member", gen), workloadReadyTimeout, recordSamples(&samples, scaled),
		func(w api.Workload) bool {
			return w.Status.ReadyReplicas == 15 && w.Status.Replicas == 15 && w.Status.ObservedGeneration == gen && splitOver(w, names, 5, 0)
		})
	t.Logf("scale 9 -> 15: 15 Ready %s later; least Ready seen %d; samples every %s (ready/updated): %s",
		seen.Sub(scaled).Round(time.Millisecond), minReady(samples), workloadSample, readyTimeline(samples))
	if m := minReady(samples); m < 9 {
		t.Errorf("want the 9 Ready replicas kept while scaling up to 15; Ready went down to %d: %s", m, readyTimeline(samples))
	}
	now := d.waitProcs(t, tag, 15, "v1")
	checkMemberProcs(t, now, nodeOf, names, 5, "v1")
	for id, p := range first {
		if q, ok := now[id]; !ok || !p.running() || q.pid != p.pid {
			t.Errorf("want replica %s's process (pid %d) untouched by a scale up; it is gone or replaced (now %v)", id, p.pid, q)
		}
	}

	// Template change: every replica rolls to GREETING=v2.
	spec.greeting = "v2"
	changed := time.Now()
	if r := d.mustAtoll(t, spec.manifest(name), "apply", "-f", "-"); !hasLine(r.stdout, "workload/"+name+" configured") {
		t.Errorf("want %q; got %s", "workload/"+name+" configured", r)
	}
	gen = d.generation(t, name)
	samples = nil
	w, seen = d.waitWorkload(t, name, fmt.Sprintf("every replica at generation %d, 15 Ready and updated, 5 on each member", gen), rolloutTimeout, recordSamples(&samples, changed),
		func(w api.Workload) bool {
			return w.Status.ObservedGeneration == gen && w.Status.UpdatedReplicas == 15 && w.Status.ReadyReplicas == 15 && w.Status.Replicas == 15 && splitOver(w, names, 5, gen)
		})
	t.Logf("rollout to GREETING=v2 (generation %d, maxSurge 1, maxUnavailable 0): done %s after the apply; least Ready seen %d; samples every %s (ready/updated): %s",
		gen, seen.Sub(changed).Round(time.Millisecond), minReady(samples), workloadSample, readyTimeline(samples))
	if m := minReady(samples); m < 15 {
		t.Errorf("want at least 15 Ready replicas throughout the rollout (maxUnavailable 0); Ready went down to %d: %s", m, readyTimeline(samples))
	}
	rolled := d.waitProcs(t, tag, 15, "v2")
	checkMemberProcs(t, rolled, nodeOf, names, 5, "v2")
	for id, p := range now {
		if p.running() {
			t.Errorf("want every process of the old template gone after the rollout; replica %s (pid %d) still runs", id, p.pid)
		}
	}

	// Delete: every process gone, then the object.
	deleted := time.Now()
	d.mustAtoll(t, "", "delete", "workload", name)
	var gone []demoProc
	for _, p := range rolled {
		gone = append(gone, p)
	}
	if left := waitProcsGone(gone, deleteTimeout); len(left) > 0 {
		t.Errorf("want every replica process stopped within %s of `atoll delete`; still running: %v", deleteTimeout, left)
	} else {
		t.Logf("delete -> %d replica processes gone: %s", len(gone), time.Since(deleted).Round(time.Millisecond))
	}
	if left := workloadProcs(t, tag); len(left) > 0 {
		t.Errorf("want no replica process of %s after the delete; found %v", name, sortedKeys(left))
	}
	waitWorkloadGone(t, d, name, deleted)
	t.Logf("whole test before cleanup: %s", time.Since(begin).Round(time.Millisecond))
}

// startDevNoDemo starts a dedicated `atoll dev` without its demo
// workloads: it applies them only at a first start, which it marks with a
// file; with the mark already there it starts as `atoll dev --no-demo`
// would (startDev takes no flags).
func startDevNoDemo(t *testing.T) *devStack {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "demo-applied"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDevT(t, dir, "127.0.0.1:0")
	d.checkReady(t)
	return d
}

// startE2EMember starts `atoll member` name in region, labelled e2e=tag,
// joined to d with a single-use join token, and its node agent processes
// (2 CPUs, 2 GiB each, zones <region>-z<j>), recording each node agent's
// pid in nodeOf.
func startE2EMember(t *testing.T, d *devStack, name, region, tag string, nodes int, nodeOf map[int]string, extra ...string) *e2eMember {
	t.Helper()
	m := &e2eMember{name: name, region: region}
	join := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName("e2e-join"), "--join", "--uses", "1").stdout)
	natsAddr := freeAddr(t)
	memberDir := filepath.Join(t.TempDir(), m.name)
	args := append([]string{"member", "--name", m.name, "--region", m.region,
		"--data-dir", memberDir, "--nats-listen", natsAddr, "--join-token", join, "--label", "e2e=" + tag}, extra...)
	m.proc = startAtollProc(t, "member "+m.name, args...)
	if _, ok := m.proc.out.waitLine(0, membersUpTimeout, func(l string) bool { return strings.Contains(l, "member running") }); !ok {
		t.Fatalf("want member %s to log \"member running\" within %s; its standard error:\n%s", m.name, membersUpTimeout, m.proc.out.tail(30))
	}
	for j := 1; j <= nodes; j++ {
		node := fmt.Sprintf("%s-n%d", m.name, j)
		p := startAtollProc(t, "node "+node, "node", "--member", "nats://"+natsAddr, "--join-token-file", filepath.Join(memberDir, "node-join-token"), "--name", node, "--zone", fmt.Sprintf("%s-z%d", m.region, j),
			"--data-dir", filepath.Join(t.TempDir(), node), "--cpu", "2", "--memory", "2Gi")
		m.nodes = append(m.nodes, p)
		nodeOf[p.cmd.Process.Pid] = m.name
	}
	return m
}

// waitMemberCluster waits until the hub shows m's cluster Ready, in its
// region, with the e2e label tag and both node agents ready: only then
// does a placement see all three members with room.
func waitMemberCluster(t *testing.T, d *devStack, m *e2eMember, tag string) {
	t.Helper()
	deadline := time.Now().Add(membersUpTimeout)
	for {
		var c api.Cluster
		status, body, err := d.request(http.MethodGet, "/api/v1/clusters/"+m.name, d.token, nil)
		if err == nil && status == http.StatusOK {
			err = json.Unmarshal(body, &c)
		}
		if err == nil && status == http.StatusOK && c.Status.Health == api.HealthReady && c.Metadata.Labels["e2e"] == tag &&
			c.Metadata.Labels[api.LabelRegion] == m.region && c.Status.Capacity != nil && c.Status.Capacity.NodesReady == len(m.nodes) {
			return
		}
		select {
		case <-m.proc.exited:
			t.Fatalf("want member %s Ready at the hub; it exited (%v):\n%s", m.name, m.proc.waitErr, m.proc.out.tail(30))
		case <-time.After(workloadSample):
		}
		if time.Now().After(deadline) {
			var tails []string
			for _, n := range m.nodes {
				tails = append(tails, fmt.Sprintf("%s's standard error:\n%s", n.name, n.out.tail(10)))
			}
			t.Fatalf("want cluster %s Ready at the hub with labels e2e=%s and region=%s and %d nodes ready within %s; last seen %d %s (%v)\nmember's standard error:\n%s\n%s",
				m.name, tag, m.region, len(m.nodes), membersUpTimeout, status, body, err, m.proc.out.tail(20), strings.Join(tails, "\n"))
		}
	}
}

// splitOver: status.placement and status.clusters give each of clusters
// (and no other cluster) n replicas, Ready (and at generation gen unless
// 0).
func splitOver(w api.Workload, clusters []string, n int32, gen int64) bool {
	pl := w.Status.Placement
	if pl == nil || pl.Unplaced != 0 || len(w.Status.Clusters) != len(clusters) {
		return false
	}
	want := map[string]int32{}
	for _, c := range clusters {
		want[c] = n
	}
	if !maps.Equal(pl.Clusters, want) {
		return false
	}
	for _, c := range w.Status.Clusters {
		if want[c.Cluster] != n || c.Desired != n || c.Ready != n || c.Scheduled != n || (gen != 0 && (c.Generation != gen || c.Updated != n)) {
			return false
		}
	}
	return true
}

// checkMemberProcs checks that every replica process is a child of one of
// the test's node agents, that each member's nodes run perMember of them,
// and that each answers on its PORT with greeting.
func checkMemberProcs(t *testing.T, procs map[string]demoProc, nodeOf map[int]string, members []string, perMember int, greeting string) {
	t.Helper()
	count := map[string]int{}
	for _, id := range sortedKeys(procs) {
		p := procs[id]
		m, ok := nodeOf[p.ppid]
		if !ok {
			t.Errorf("want replica %s's process (pid %d) to be a child of one of the test's node agents; its parent is pid %d (%s)", id, p.pid, p.ppid, cmdline(p.ppid))
			continue
		}
		count[m]++
		checkServes(t, p, greeting+" (replica "+id+")")
	}
	for _, m := range members {
		if count[m] != perMember {
			t.Errorf("want %d replica processes on member %s's node agents; found %d (per member: %v)", perMember, m, count[m], count)
		}
	}
	if extra := slices.DeleteFunc(sortedKeys(count), func(m string) bool { return slices.Contains(members, m) }); len(extra) > 0 {
		t.Errorf("want replica processes only on the test's members; found some on %v", extra)
	}
}
