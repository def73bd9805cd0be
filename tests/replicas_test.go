package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/internal/syncbuf"
)

// TestMissingCommandReasonInTheCLI: on `atoll dev` (real hub, members,
// node agents and processes), a workload whose command does not exist
// shows the exec error in `atoll describe workload`, `atoll get events`
// and `atoll get replicas`, and `atoll get nodes` lists the regions'
// nodes.
func TestMissingCommandReasonInTheCLI(t *testing.T) {
	t.Parallel()
	d := startDevT(t, t.TempDir(), "127.0.0.1:0")
	d.checkReady(t)
	for _, name := range devRegionNames {
		d.waitHealth(t, nil, name, "Ready", clustersReadyTimeout)
	}
	const manifest = `apiVersion: atoll.dev/v1
kind: Workload
metadata:
  name: broken
spec:
  replicas: 2
  template:
    driver: process
    command: nope-atoll-missing
`
	d.mustAtoll(t, manifest, "apply", "-f", "-")
	const reason = `exec: "nope-atoll-missing": executable file not found in $PATH`

	// The console's workload page, open before anything failed, shows the
	// reason live (no reload).
	b := &tab{t: t, ctx: startBrowser(t), name: "console", dir: artifactsDir(t)}
	b.do("sign in", chromedp.Navigate(d.url+"/signin?next=%2Fworkloads%2Fbroken"), chromedp.WaitVisible(`#token`),
		chromedp.SendKeys(`#token`, d.token), chromedp.Submit(`#token`), chromedp.WaitVisible(`.topbar`))
	b.waitJS("the live stream connected", `document.getElementById('conn')?.dataset.state === 'live'`)
	// The member's first failure is seconds after the apply; 5 s after it
	// every view shows the reason (the deadline here allows for a busy
	// machine placing and starting the replicas first).
	_, seen := d.waitWorkload(t, "broken", "the exec error in the workload's status", workloadReadyTimeout, nil, func(w api.Workload) bool {
		for _, c := range w.Status.Clusters {
			for _, e := range c.Examples {
				if e.Message == reason {
					return true
				}
			}
		}
		return false
	})
	deadline := seen.Add(5 * time.Second)
	b.waitJSWithin(5*time.Second, "the reason in the console's replicas table",
		fmt.Sprintf(`[...document.querySelectorAll('tr[data-replica] .replica-error')].filter(e => e.textContent === %q).length === 2`, reason))
	b.shot("replicas-reason")
	var describe, events, replicas cliResult
	for {
		describe = d.mustAtoll(t, "", "describe", "workload", "broken")
		events = d.mustAtoll(t, "", "get", "events")
		replicas = d.mustAtoll(t, "", "get", "replicas", "--workload", "broken")
		if strings.Contains(describe.stdout, reason) && strings.Contains(describe.stdout, "ReplicaFailed") &&
			strings.Contains(events.stdout, "ReplicaFailed") && strings.Contains(events.stdout, reason) &&
			strings.Count(replicas.stdout, reason) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the reason %q in describe, get events and get replicas within 5s of the status showing it; got\n%s\n%s\n%s", reason, describe, events, replicas)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(describe.stdout, "127 (command not found)") || !strings.Contains(describe.stdout, "0/1 ready") {
		t.Errorf("want describe to say 0/1 ready per cluster and the exit in words; got %s", describe)
	}
	t.Logf("atoll get replicas --workload broken:\n%s", replicas.stdout)
	lines := strings.Split(strings.TrimSpace(replicas.stdout), "\n")
	if f := strings.Fields(lines[len(lines)-1]); len(f) > 3 {
		id, node := f[0], f[3]
		r := d.mustAtoll(t, "", "describe", "replica", id)
		for _, want := range []string{"Workload:", "broken", "Node:", node, "127 (command not found)", reason, "ExecFailed"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("want describe replica %s to show %q; got %s", id, want, r)
			}
		}
		if r := d.mustAtoll(t, "", "describe", "node", node); !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "Status:") {
			t.Errorf("want describe node %s to show its status and replica %s; got %s", node, id, r)
		}
	}
	// Watching: the listing comes as ADDED rows; Ctrl-C ends it cleanly.
	watch := exec.Command(atollBin, "get", "replicas", "-w", "--workload", "broken")
	watch.Env = append(os.Environ(), "ATOLL_CONFIG="+filepath.Join(t.TempDir(), "none.yaml"), "ATOLL_SERVER="+d.url, "ATOLL_TOKEN="+d.token)
	watched := &syncbuf.Buffer{}
	watch.Stdout, watch.Stderr = watched, watched
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil := time.Now().Add(cliTimeout)
	for strings.Count(watched.String(), "ADDED") < 2 && time.Now().Before(waitUntil) {
		time.Sleep(100 * time.Millisecond)
	}
	_ = watch.Process.Signal(os.Interrupt)
	if err := watch.Wait(); err != nil && !strings.Contains(err.Error(), "interrupt") {
		t.Errorf("atoll get replicas -w ended with %v", err)
	}
	if out := watched.String(); strings.Count(out, "ADDED") != 2 || !strings.Contains(out, reason) || !strings.HasPrefix(out, "EVENT") {
		t.Errorf("want get replicas -w to print a header and both replicas as ADDED with the reason; got:\n%s", out)
	}
	if r := d.atoll(t, nil, "", "describe", "replica", "nothing-here"); r.code == 0 || !strings.Contains(r.stderr, `replica "nothing-here" not found`) {
		t.Errorf("want describe of an unknown replica to fail saying so; got %s", r)
	}
	nodes := d.mustAtoll(t, "", "get", "nodes", "-o", "wide")
	t.Logf("atoll get nodes -o wide:\n%s", nodes.stdout)
	for _, region := range devRegionNames {
		if !strings.Contains(nodes.stdout, region) || !strings.Contains(nodes.stdout, "Ready") {
			t.Errorf("want get nodes to list Ready nodes of %s; got %s", region, nodes)
		}
	}
	if r := d.mustAtoll(t, "", "get", "nodes", "--cluster", devRegionNames[0]); strings.Contains(r.stdout, devRegionNames[1]) {
		t.Errorf("want get nodes --cluster %s to list that cluster only; got %s", devRegionNames[0], r)
	}
}
