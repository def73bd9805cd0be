//go:build linux

package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// drillRunTimeout bounds `atoll drill run` of the test's outage: a 20 s
// fault, detection and failover within it, then failback or the 20 s
// failback timeout (the dev stack's demo workloads that land in the
// test's region fail back after their default 30 s window).
const drillRunTimeout = 90 * time.Second

// TestDrillCLI runs `atoll drill plan` and `atoll drill run` against the
// shared dev stack, with an outage of a region of the test's own (one
// `atoll member` process and one `atoll node`, so the dev regions other
// tests use are left alone): the run follows the drill to its report and
// exits 0; the report reads back; a drill that misses its SLO exits 1.
func TestDrillCLI(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	region := d.drillRegion(t, "drill", "")

	// A workload over the test's region and us-east, failing over and
	// back within a second.
	web := uniqueName("drill-web")
	d.mustAtoll(t, drillWorkload(web, region, ""), "apply", "-f", "-")
	d.waitWorkload(t, web, "4 Ready replicas, at least 2 on the test's region (all 4 when us-east looked busy as it was placed: nothing rebalances yet)", workloadReadyTimeout, nil, func(w api.Workload) bool {
		return w.Status.ReadyReplicas == 4 && w.Status.Placement != nil && w.Status.Placement.Clusters[region] >= 2
	})

	r := d.mustAtoll(t, "", "drill", "plan", "--kind", "outage", "--region", region)
	for _, want := range []string{"Plan: outage of region " + region, "Absorbed by the rest: yes", web, "us-east=4"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("want `atoll drill plan` to show %q; got %s", want, r)
		}
	}

	name := uniqueName("outage")
	r = d.atollWithin(t, drillRunTimeout, nil, "", "drill", "run", "--kind", "outage", "--region", region, "--name", name,
		"--duration", "20s", "--max-rto", "20s", "--failback-timeout", "20s")
	if r.code != 0 {
		t.Fatalf("want `atoll drill run` of a passing outage drill to exit 0; got %s", r)
	}
	for _, want := range []string{"drill/" + name + " created", "Fault in place:", "Detected:", "Recovered:", "Fault lifted:",
		"ready", "Phase:", api.DrillCompleted, "Verdict:", "Passed: every objective met", "RTO:", "maxRTO"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("want the run's progress and report to show %q; got %s", want, r)
		}
	}

	r = d.mustAtoll(t, "", "drill", "report", name, "-o", "json")
	var view struct {
		Phase   string          `json:"phase"`
		Verdict string          `json:"verdict"`
		Targets []string        `json:"targets"`
		Report  api.DrillReport `json:"report"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &view); err != nil {
		t.Fatalf("want `atoll drill report -o json` to print JSON; got %v in %s", err, r)
	}
	rep := view.Report
	if view.Phase != api.DrillCompleted || view.Verdict != api.DrillVerdictPassed || !rep.Passed || len(view.Targets) != 1 || view.Targets[0] != region || rep.AffectedReplicas < 2 ||
		rep.DetectionSeconds == nil || rep.RTOSeconds == nil || rep.ExclusiveDuplicates != 0 || rep.PeakUnavailableReplicas < 1 {
		t.Errorf("want the kept report: Completed, Passed, target %s, at least web's 2 replicas affected, detection, an RTO, no duplicates, some unavailable; got %s", region, r.stdout)
	}
	t.Logf("outage of %s: %s", region, r.stdout)
	if r := d.mustAtoll(t, "", "get", "drills"); !strings.Contains(r.stdout, name) || !strings.Contains(r.stdout, api.DrillCompleted) || !strings.Contains(r.stdout, api.DrillVerdictPassed) {
		t.Errorf("want `atoll get drills` to list %s as Completed and Passed; got %s", name, r)
	}
	if r := d.mustAtoll(t, "", "drill", "status", name); !strings.Contains(r.stdout, "Timeline:") || !strings.Contains(r.stdout, api.DrillEventFinished) {
		t.Errorf("want `atoll drill status` to show the timeline; got %s", r)
	}

	// An SLO no evacuation can meet (replacements take more than a
	// millisecond to start): the run exits 1 and says which.
	missed := uniqueName("evacuate")
	r = d.atollWithin(t, drillRunTimeout, nil, "", "drill", "run", "--kind", "evacuate", "--cluster", region, "--name", missed,
		"--duration", "3s", "--max-rto", "1ms", "--failback-timeout", "3s")
	if r.code != 1 || !strings.Contains(r.stderr, "completed and failed: missed maxRTO") || !strings.Contains(r.stdout, "Failed: missed maxRTO") {
		t.Errorf("want `atoll drill run` with a missed SLO to exit 1 naming maxRTO; got %s", r)
	}
	// A drill on a cluster that does not exist is refused with its plan.
	r = d.atoll(t, nil, "", "drill", "run", "--kind", "outage", "--cluster", "no-such-cluster")
	if r.code != 1 || !strings.Contains(r.stderr, "body.spec.target.cluster") {
		t.Errorf("want a drill on a missing cluster refused (exit 1, naming spec.target.cluster); got %s", r)
	}
}

// drillWorkload is a workload of 4 sim replicas on region and us-east,
// with a 1 s failover grace and stabilisation window, tolerating the
// NoExecute taint key=only when tolerate is a key.
func drillWorkload(name, region, tolerate string) string {
	toleration := ""
	if tolerate != "" {
		toleration = fmt.Sprintf("\n    tolerations:\n    - {key: %s, operator: Equal, value: only, effect: NoExecute}", tolerate)
	}
	return fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata: {name: %s}
spec:
  replicas: 4
  template:
    driver: sim
    sim: {startLatency: 50ms}
    resources: {cpu: 100m, memory: 32Mi}
  placement:
    clusterSelector:
      matchExpressions:
      - {key: region, operator: In, values: [%s, us-east]}%s
  failover: {gracePeriod: 1s, stabilizationWindow: 1s}
`, name, region, toleration)
}

// drillRegion starts a region of the test's own to drill: one `atoll
// member` and one `atoll node` (4 cores, 4 GiB) joined to the shared dev
// stack, so the dev regions other tests use are left alone. With a taint
// (key=value:Effect), the cluster is tainted before its node brings any
// room, so only workloads that tolerate it are ever placed there. It
// returns once the node's capacity shows in the cluster's heartbeats;
// the region and its cluster share the name it returns, and the cluster
// is deregistered when the test ends.
func (d *devStack) drillRegion(t *testing.T, prefix, taint string) string {
	t.Helper()
	region := uniqueName(prefix)
	t.Cleanup(func() {
		status, body, err := d.request(http.MethodDelete, "/api/v1/clusters/"+region+"?force=true", d.token, nil)
		if err != nil || (status/100 != 2 && status != http.StatusNotFound) {
			t.Errorf("want cluster %s deregistered after the test; got %d %s (%v)", region, status, body, err)
		}
	})
	join := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName(prefix+"-join"), "--join", "--uses", "1").stdout)
	natsAddr := freeAddr(t)
	memberDir := filepath.Join(t.TempDir(), "member")
	m := startAtollProc(t, "member "+region, "member", "--name", region, "--region", region,
		"--data-dir", memberDir, "--nats-listen", natsAddr, "--join-token", join)
	if _, ok := m.out.waitLine(0, regionUpTimeout, func(l string) bool { return strings.Contains(l, "member running") }); !ok {
		t.Fatalf("want member %s to log \"member running\" within %s; its standard error:\n%s", region, regionUpTimeout, m.out.tail(30))
	}
	if taint != "" {
		d.mustAtoll(t, "", "cluster", "taint", region, taint)
	}
	startAtollProc(t, "node of "+region, "node", "--member", "nats://"+natsAddr, "--join-token-file", filepath.Join(memberDir, "node-join-token"), "--name", "n1", "--zone", "z1",
		"--data-dir", filepath.Join(t.TempDir(), "n1"), "--cpu", "4", "--memory", "4Gi")
	d.waitHealth(t, nil, region, "Ready", healthTimeout)
	d.waitHealth(t, nil, "us-east", "Ready", healthTimeout)
	// Placement gives a cluster replicas only with room for them: wait for
	// the node's capacity in the member's heartbeats.
	deadline := time.Now().Add(regionUpTimeout)
	for {
		var c api.Cluster
		status, body, err := d.request(http.MethodGet, "/api/v1/clusters/"+region, d.token, nil)
		if err == nil && status == http.StatusOK && json.Unmarshal(body, &c) == nil && c.Status.Capacity != nil && c.Status.Capacity.NodesReady == 1 {
			return region
		}
		if time.Now().After(deadline) {
			t.Fatalf("want cluster %s to report its node ready within %s; last answer %d %s (%v)", region, regionUpTimeout, status, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
