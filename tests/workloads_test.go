//go:build linux

package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// Workload tests: a Workload applied to a dedicated `atoll dev` stack (the
// hub, three in-process regions us-east, eu-west and ap-south, three node
// agents each) runs as real `atoll demo-http` processes, placed by the hub,
// delivered to the members and folded back into Workload.status. The test
// reads the status through the API, as users' tools do, and the replica
// processes through /proc.

const (
	// workloadTagEnv is set in the test's templates to a value no other
	// test or run uses, so the test finds its own replica processes in
	// /proc (the runtime passes a template's env to the process).
	workloadTagEnv = "ATOLL_E2E_WORKLOAD"
	// workloadSample is how often the test reads Workload.status: it lives
	// in the hub, which announces nothing but the API's answer.
	workloadSample = 200 * time.Millisecond

	// Bounds for what the product promises nothing faster: the members
	// report status every 2 s, the folder writes every 1 s, the readiness
	// probe runs every 1 s.
	clustersReadyTimeout = 60 * time.Second // the three dev regions Ready after the banner (a bound, not a wait: the CI machine is busy)
	workloadReadyTimeout = 30 * time.Second // apply or scale -> every replica Ready
	rolloutTimeout       = 45 * time.Second // template change -> every replica updated and Ready
	deleteTimeout        = 15 * time.Second // delete -> processes gone, then the object
	conditionTimeout     = 10 * time.Second // apply -> the placement's conditions in status
)

// devRegionNames are the clusters `atoll dev` runs, one per region.
var devRegionNames = []string{"ap-south", "eu-west", "us-east"}

// TestWorkloadsAcrossRegions applies a Divided workload of 9 demo-http
// replicas spread over the three dev regions, scales it to 15, rolls a
// template change with maxSurge 1 and maxUnavailable 0, and deletes it;
// then applies a workload whose placement selects no cluster.
func TestWorkloadsAcrossRegions(t *testing.T) {
	t.Parallel()
	tag := fmt.Sprintf("%d-%s", os.Getpid(), uniqueName("hello"))
	// Registered before the stack: cleanups run last-registered first, so
	// this runs once the stack is stopped (and its node agents with it).
	t.Cleanup(func() {
		var left []demoProc
		for _, tg := range []string{tag, tag + "-nowhere"} {
			for _, p := range workloadProcs(t, tg) {
				left = append(left, p)
			}
		}
		if left = waitProcsGone(left, goneWithin); len(left) > 0 {
			t.Errorf("want no demo-http process of this test (%s=%s) left once atoll dev stopped; still running %s later: %v", workloadTagEnv, tag, goneWithin, left)
			for _, p := range left {
				_ = syscall.Kill(-p.pid, syscall.SIGKILL) // the runtime makes each replica a process group leader
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
	})
	d := startDevT(t, t.TempDir(), "127.0.0.1:0")
	d.checkReady(t)
	// A Divided placement decided while only some regions have joined
	// would rightly keep its replicas where they are: start from all three.
	// Ready is not enough: placement gives a cluster replicas only once
	// its nodes' capacity is heard (on a busy machine a region's nodes
	// join later than its member), so wait for every node Ready too.
	for _, name := range devRegionNames {
		d.waitFor(t, nil, name, "Ready with all its nodes Ready", clustersReadyTimeout, func(c clusterView) bool {
			cp := c.Status.Capacity
			return c.Status.Health == "Ready" && cp != nil && cp.NodesTotal > 0 && cp.NodesReady == cp.NodesTotal
		})
	}

	const name = "hello"
	hello := helloSpec{tag: tag, replicas: 9, greeting: "v1"}
	var first map[string]demoProc // the replica processes of the first apply
	var firstGen int64            // and its generation
	// Each step goes on from where the one before left the workload, and
	// runs if that step got the workload there, whatever else it found.
	var created, running, scaled bool

	t.Run("apply 9 over 3 regions", func(t *testing.T) {
		applied := time.Now()
		if r := d.mustAtoll(t, hello.manifest(name), "apply", "-f", "-"); !hasLine(r.stdout, "workload/"+name+" created") {
			t.Errorf("want %q; got %s", "workload/"+name+" created", r)
		}
		created = true
		w, seen := d.waitWorkload(t, name, "9 Ready replicas, 3 desired and 3 Ready in each region, placement 3/3/3", workloadReadyTimeout, nil,
			func(w api.Workload) bool { return w.Status.ReadyReplicas == 9 && evenlySplit(w, 3, 0) })
		t.Logf("apply -> 9 replicas Ready over 3 regions: %s (%s)", seen.Sub(applied).Round(time.Millisecond), summary(w))
		firstGen = w.Metadata.Generation
		if w.Status.Replicas != 9 || w.Status.UpdatedReplicas != 9 || w.Status.ObservedGeneration != w.Metadata.Generation {
			t.Errorf("want status replicas 9, updatedReplicas 9, observedGeneration %d once all are Ready; got %s", w.Metadata.Generation, summary(w))
		}
		if c := condition(w, "Available"); c.Status != "True" {
			t.Errorf("want condition Available=True once every replica is Ready; got %+v in %s", c, summary(w))
		}
		first = d.waitProcs(t, tag, 9, "v1")
		running = true
		for _, p := range first {
			checkServes(t, p, "v1 (replica "+p.replica+")")
		}

		r := d.mustAtoll(t, "", "get", "workloads", "-o", "wide")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if !slices.Contains(strings.Fields(lines[0]), "REGIONS") {
			t.Errorf("want a REGIONS column in `atoll get workloads -o wide`; got %s", r)
		}
		row := ""
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) > 0 && f[0] == name {
				row = l
			}
		}
		for _, region := range devRegionNames {
			if want := region + "=3/3"; !strings.Contains(row, want) {
				t.Errorf("want %s's row in `atoll get workloads -o wide` to show %q (ready/desired per region); its row is %q in %s", name, want, row, r)
			}
		}

		r = d.mustAtoll(t, "", "describe", "workload", name)
		// describe reads as words: the spec in human units, the
		// placement with its clusters and why, not a YAML dump.
		want := []string{"Placement:", "Why:", "Resources:", "Failover policy:", "Conditions:"}
		for _, region := range devRegionNames {
			want = append(want, region+": 3")
		}
		if w.Status.Placement != nil && len(w.Status.Placement.Explanation) > 0 {
			want = append(want, w.Status.Placement.Explanation[0])
		}
		for _, s := range want {
			if !strings.Contains(oneLine(r.stdout), oneLine(s)) {
				t.Errorf("want `atoll describe workload %s` to show the placement (clusters and explanation); it lacks %q:\n%s", name, s, r.stdout)
			}
		}
	})

	if running {
		t.Run("scale to 15", func(t *testing.T) {
			hello.replicas = 15
			scaleAt := time.Now()
			if r := d.mustAtoll(t, hello.manifest(name), "apply", "-f", "-"); !hasLine(r.stdout, "workload/"+name+" configured") {
				t.Errorf("want %q; got %s", "workload/"+name+" configured", r)
			}
			gen := d.generation(t, name)
			var samples []readySample
			_, seen := d.waitWorkload(t, name, fmt.Sprintf("15 Ready replicas at generation %d, 5 desired and 5 Ready in each region, placement 5/5/5", gen), workloadReadyTimeout,
				recordSamples(&samples, scaleAt),
				func(w api.Workload) bool {
					return w.Status.ReadyReplicas == 15 && w.Status.Replicas == 15 && w.Status.ObservedGeneration == gen && evenlySplit(w, 5, 0)
				})
			t.Logf("scale 9 -> 15 (generation %d): 15 Ready %s later; least Ready seen %d; samples every %s (ready/updated): %s",
				gen, seen.Sub(scaleAt).Round(time.Millisecond), minReady(samples), workloadSample, readyTimeline(samples))
			if m := minReady(samples); m < 9 {
				t.Errorf("want at least the 9 Ready replicas kept while scaling up to 15; Ready went down to %d: %s", m, readyTimeline(samples))
			}
			now := d.waitProcs(t, tag, 15, "v1")
			scaled = true
			for _, p := range now {
				checkServes(t, p, "v1 (replica "+p.replica+")")
			}
			var replaced []string
			for id, p := range first {
				if !p.running() {
					replaced = append(replaced, fmt.Sprintf("%s (pid %d)", id, p.pid))
				}
			}
			if len(replaced) > 0 {
				slices.Sort(replaced)
				t.Errorf("want a scale from 9 to 15 to add 6 replica processes and keep the 9 running ones; %d of the 9 were stopped: %s. "+
					"The scale moved generation from %d to %d (any spec change does) and the members replaced every replica of an older generation",
					len(replaced), strings.Join(replaced, ", "), firstGen, gen)
			}
		})
	}

	if scaled {
		t.Run("template change rolls", func(t *testing.T) {
			before := workloadProcs(t, tag)
			hello.greeting = "v2"
			changed := time.Now()
			if r := d.mustAtoll(t, hello.manifest(name), "apply", "-f", "-"); !hasLine(r.stdout, "workload/"+name+" configured") {
				t.Errorf("want %q; got %s", "workload/"+name+" configured", r)
			}
			gen := d.generation(t, name)
			var samples []readySample
			_, seen := d.waitWorkload(t, name, fmt.Sprintf("every replica at generation %d (updatedReplicas 15, observedGeneration %d) and 15 Ready", gen, gen), rolloutTimeout,
				recordSamples(&samples, changed),
				func(w api.Workload) bool {
					return w.Status.ObservedGeneration == gen && w.Status.UpdatedReplicas == 15 && w.Status.ReadyReplicas == 15 && w.Status.Replicas == 15 && evenlySplit(w, 5, gen)
				})
			least := minReady(samples)
			t.Logf("rollout to generation %d (GREETING=v2, maxSurge 1, maxUnavailable 0, rolled per cluster): done %s after the apply; least Ready seen %d; samples every %s (ready/updated): %s",
				gen, seen.Sub(changed).Round(time.Millisecond), least, workloadSample, readyTimeline(samples))
			if least < 15 {
				for _, s := range samples {
					if s.ready < 15 {
						t.Errorf("want at least 15 Ready replicas throughout the rollout (maxUnavailable 0 in each of the 3 clusters, so 15 - 0); status.readyReplicas was %d at %s after the apply (least seen %d). samples (ready/updated): %s",
							s.ready, s.at.Round(time.Millisecond), least, readyTimeline(samples))
						break
					}
				}
			}
			now := d.waitProcs(t, tag, 15, "v2")
			for _, p := range now {
				checkServes(t, p, "v2 (replica "+p.replica+")")
			}
			for id, p := range before {
				if p.running() {
					t.Errorf("want every process of the old template gone after the rollout; replica %s (pid %d) still runs", id, p.pid)
				}
			}
		})
	}

	if created {
		t.Run("delete", func(t *testing.T) {
			procs := workloadProcs(t, tag)
			deleted := time.Now()
			r := d.mustAtoll(t, "", "delete", "workload", name)
			if !strings.Contains(r.stdout, "workload/"+name+" deleting") || !strings.Contains(r.stdout, "atoll.dev/placement") {
				t.Errorf("want the delete held by the placement finalizer until the members confirm (%q); got %s", "workload/"+name+" deleting (waiting for atoll.dev/placement)", r)
			}
			var list []demoProc
			for _, p := range procs {
				list = append(list, p)
			}
			if left := waitProcsGone(list, deleteTimeout); len(left) > 0 {
				t.Errorf("want every replica process of %s stopped within %s of `atoll delete`; still running: %v", name, deleteTimeout, left)
			} else {
				t.Logf("delete -> %d replica processes gone: %s", len(list), time.Since(deleted).Round(time.Millisecond))
			}
			if left := workloadProcs(t, tag); len(left) > 0 {
				t.Errorf("want no replica process of %s after the delete; found %v", name, sortedKeys(left))
			}
			waitWorkloadGone(t, d, name, deleted)
		})
	}

	t.Run("unsatisfiable placement", func(t *testing.T) {
		nowhere := helloSpec{tag: tag + "-nowhere", replicas: 3, greeting: "nowhere", selectLabel: "region: nowhere"}
		status, body, err := d.request(http.MethodPost, "/api/v1/workloads", d.token, mustJSON(t, nowhere.manifest("nowhere")))
		if err != nil || status != http.StatusCreated {
			t.Fatalf("want a workload whose clusterSelector matches no cluster accepted (201); got %d %s (%v)", status, body, err)
		}
		w, _ := d.waitWorkload(t, "nowhere", "condition Unsatisfiable=True or Placed=False, with a reason", conditionTimeout, nil, func(w api.Workload) bool {
			u, p := condition(w, "Unsatisfiable"), condition(w, "Placed")
			return (u.Status == "True" && u.Reason != "") || (p.Status == "False" && p.Reason != "")
		})
		u, p := condition(w, "Unsatisfiable"), condition(w, "Placed")
		t.Logf("unsatisfiable placement: Unsatisfiable=%s (%s: %s), Placed=%s (%s: %s)", u.Status, u.Reason, u.Message, p.Status, p.Reason, p.Message)
		if u.Status != "True" || u.Reason != "NoMatchingClusters" || u.Message == "" {
			t.Errorf("want condition Unsatisfiable=True, reason NoMatchingClusters, with a message, for a clusterSelector matching no cluster; got %+v", u)
		}
		if p.Status != "False" || p.Message == "" {
			t.Errorf("want condition Placed=False with a message while 3 replicas have no cluster; got %+v", p)
		}
		if pl := w.Status.Placement; pl == nil || pl.Unplaced != 3 || pl.Reason == "" {
			t.Errorf("want status.placement to say 3 replicas are unplaced and why; got %s", summary(w))
		}
		r := d.mustAtoll(t, "", "describe", "workload", "nowhere")
		for _, s := range []string{"Unsatisfiable", u.Message} {
			if s != "" && !strings.Contains(oneLine(r.stdout), oneLine(s)) {
				t.Errorf("want `atoll describe workload nowhere` to say why it is not placed (%q); got:\n%s", s, r.stdout)
			}
		}
		if left := workloadProcs(t, nowhere.tag); len(left) > 0 {
			t.Errorf("want no process for a workload placed nowhere; found %v", sortedKeys(left))
		}
		d.mustAtoll(t, "", "delete", "workload", "nowhere")
		deadline := time.Now().Add(deleteTimeout)
		for {
			status, body, err := d.request(http.MethodGet, "/api/v1/workloads/nowhere", d.token, nil)
			if err == nil && status == http.StatusNotFound {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("want a workload placed nowhere gone (404) within %s of its delete (no member holds it); got %d %s (%v)", deleteTimeout, status, body, err)
			}
			time.Sleep(workloadSample)
		}
	})
}

// helloSpec is the test's demo-http workload.
type helloSpec struct {
	tag         string
	replicas    int
	greeting    string
	selectLabel string // when set, "key: value" of a clusterSelector
	noSpread    bool   // leave out the spread over 3 regions
	failover    string // when set, spec.failover as a YAML flow map
}

func (h helloSpec) manifest(name string) string {
	extra := ""
	if !h.noSpread {
		extra += "\n    spread:\n    - {topologyKey: region, minGroups: 3}"
	}
	if h.selectLabel != "" {
		extra += fmt.Sprintf("\n    clusterSelector:\n      matchLabels: {%s}", h.selectLabel)
	}
	if h.failover != "" {
		extra += "\n  failover: " + h.failover
	}
	return fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata:
  name: %s
spec:
  replicas: %d
  template:
    driver: process
    command: %s
    args: [demo-http]
    env:
    - {name: GREETING, value: %s}
    - {name: %s, value: %q}
    readinessProbe:
      http: {path: /healthz}
      periodSeconds: 1
    resources: {cpu: 100m, memory: 32Mi}
  update: {maxSurge: 1, maxUnavailable: 0}
  placement:
    replicaMode: Divided%s
`, name, h.replicas, strconv.Quote(atollBin), h.greeting, workloadTagEnv, h.tag, extra)
}

// getWorkload reads one workload from the API as the admin.
func (d *devStack) getWorkload(name string) (api.Workload, int, error) {
	var w api.Workload
	status, body, err := d.request(http.MethodGet, "/api/v1/workloads/"+name, d.token, nil)
	if err == nil && status == http.StatusOK {
		err = json.Unmarshal(body, &w)
	}
	return w, status, err
}

// generation is the workload's metadata.generation now.
func (d *devStack) generation(t *testing.T, name string) int64 {
	t.Helper()
	w, status, err := d.getWorkload(name)
	if err != nil || status != http.StatusOK {
		t.Fatalf("want GET workload %s to answer 200; got %d (%v)", name, status, err)
	}
	return w.Metadata.Generation
}

// waitWorkload reads the workload every workloadSample until ok holds, for
// at most timeout, handing every read to sample when not nil; what says
// what ok looks for. It returns the workload and when it was seen.
func (d *devStack) waitWorkload(t *testing.T, name, what string, timeout time.Duration, sample func(api.Workload), ok func(api.Workload) bool) (api.Workload, time.Time) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(workloadSample)
	defer tick.Stop()
	last := "nothing"
	for {
		w, status, err := d.getWorkload(name)
		if err == nil && status == http.StatusOK {
			if sample != nil {
				sample(w)
			}
			if ok(w) {
				return w, time.Now()
			}
			last = summary(w)
		} else {
			last = fmt.Sprintf("GET answered %d (%v)", status, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("want workload %s: %s, within %s; last seen: %s\natoll dev's standard error:\n%s", name, what, timeout, last, d.stderr)
		}
		<-tick.C
	}
}

// evenlySplit: status.placement and status.clusters both give each dev
// region n replicas, Ready (and at generation gen unless 0).
func evenlySplit(w api.Workload, n int32, gen int64) bool {
	return splitOver(w, devRegionNames, n, gen)
}

func condition(w api.Workload, typ string) api.Condition {
	for _, c := range w.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return api.Condition{Type: typ, Status: "(absent)"}
}

// summary is the part of a workload's status the failure messages quote.
func summary(w api.Workload) string {
	s := w.Status
	var b strings.Builder
	fmt.Fprintf(&b, "generation %d, observedGeneration %d, replicas %d, ready %d, updated %d; clusters:",
		w.Metadata.Generation, s.ObservedGeneration, s.Replicas, s.ReadyReplicas, s.UpdatedReplicas)
	if len(s.Clusters) == 0 {
		b.WriteString(" none")
	}
	for _, c := range s.Clusters {
		fmt.Fprintf(&b, " [%s gen %d desired %d scheduled %d ready %d updated %d", c.Cluster, c.Generation, c.Desired, c.Scheduled, c.Ready, c.Updated)
		if c.Pending != "" {
			fmt.Fprintf(&b, " pending %q", c.Pending)
		}
		b.WriteString("]")
	}
	if pl := s.Placement; pl != nil {
		fmt.Fprintf(&b, "; placement epoch %d: %v", pl.Epoch, pl.Clusters)
		if pl.Unplaced > 0 {
			fmt.Fprintf(&b, ", %d unplaced (%s)", pl.Unplaced, pl.Reason)
		}
		if len(pl.Filtered) > 0 {
			fmt.Fprintf(&b, ", filtered %v", pl.Filtered)
		}
	} else {
		b.WriteString("; no placement")
	}
	b.WriteString("; conditions:")
	for _, c := range s.Conditions {
		fmt.Fprintf(&b, " %s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message)
	}
	if w.Metadata.DeletionTimestamp != nil {
		fmt.Fprintf(&b, "; deleting, finalizers %v", w.Metadata.Finalizers)
	}
	return b.String()
}

// oneLine collapses runs of white space, so that text folded over lines
// (YAML folds long strings) compares with the text itself.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// readySample is a workload's folded status at one moment.
type readySample struct {
	at             time.Duration
	ready, updated int32
}

func recordSamples(samples *[]readySample, start time.Time) func(api.Workload) {
	return func(w api.Workload) {
		*samples = append(*samples, readySample{time.Since(start), w.Status.ReadyReplicas, w.Status.UpdatedReplicas})
	}
}

func minReady(samples []readySample) int32 {
	if len(samples) == 0 {
		return -1
	}
	m := samples[0].ready
	for _, s := range samples {
		m = min(m, s.ready)
	}
	return m
}

// readyTimeline renders samples as runs: "9/9 0s-0.8s, 10/9 1s-1.2s".
func readyTimeline(samples []readySample) string {
	var runs []string
	for i := 0; i < len(samples); {
		j := i
		for j+1 < len(samples) && samples[j+1].ready == samples[i].ready && samples[j+1].updated == samples[i].updated {
			j++
		}
		runs = append(runs, fmt.Sprintf("%d/%d %s-%s", samples[i].ready, samples[i].updated, samples[i].at.Round(10*time.Millisecond), samples[j].at.Round(10*time.Millisecond)))
		i = j + 1
	}
	return strings.Join(runs, ", ")
}

// waitProcs waits (the processes are not our children, so this polls
// /proc, for goneWithin) until exactly n replica processes with the tag
// run, all with GREETING=greeting, and returns them by replica.
func (d *devStack) waitProcs(t *testing.T, tag string, n int, greeting string) map[string]demoProc {
	t.Helper()
	deadline := time.Now().Add(goneWithin)
	for {
		procs := workloadProcs(t, tag)
		var other []string
		for id, p := range procs {
			if p.greeting != greeting {
				other = append(other, fmt.Sprintf("%s (pid %d) GREETING=%q", id, p.pid, p.greeting))
			}
		}
		if len(procs) == n && len(other) == 0 {
			return procs
		}
		if time.Now().After(deadline) {
			slices.Sort(other)
			t.Fatalf("want exactly %d demo-http processes with %s=%s, all with GREETING=%s, once the status says so; found %d: %v; with another greeting: %v",
				n, workloadTagEnv, tag, greeting, len(procs), sortedKeys(procs), other)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// workloadProcs finds the running processes whose environment has
// workloadTagEnv=tag, by their ATOLL_REPLICA.
func workloadProcs(t *testing.T, tag string) map[string]demoProc {
	t.Helper()
	return taggedProcs(t, workloadTagEnv, tag)
}

// waitWorkloadGone waits for GET workload name to answer 404: the object
// goes once every member confirmed its tombstone (the placement finalizer).
func waitWorkloadGone(t *testing.T, d *devStack, name string, deleted time.Time) {
	t.Helper()
	deadline := time.Now().Add(deleteTimeout)
	for {
		status, body, err := d.request(http.MethodGet, "/api/v1/workloads/"+name, d.token, nil)
		if err == nil && status == http.StatusNotFound {
			t.Logf("delete -> workload object gone (404): %s", time.Since(deleted).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want GET workload %s to answer 404 within %s of `atoll delete` (finalizer released once every member confirmed its tombstone); got %d %s (%v)\natoll dev's standard error:\n%s",
				name, deleteTimeout, status, body, err, d.stderr)
		}
		time.Sleep(workloadSample)
	}
}
