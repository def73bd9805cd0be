//go:build linux

package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestDrainIsPlannedAndGuarded: on a region of the test's own running a
// workload confined to it, `atoll cluster drain --dry-run` shows the plan
// and changes nothing; a plain drain is refused because the workload
// would have no replica anywhere, naming it; --force drains, and the
// cluster's events say who cordoned and drained it.
func TestDrainIsPlannedAndGuarded(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	region := d.drillRegion(t, "drain", "")
	web := uniqueName("drain-only")
	manifest := confinedWorkload(web, region, "")
	d.mustAtoll(t, manifest, "apply", "-f", "-")
	t.Cleanup(func() { d.atoll(t, nil, "", "delete", "workload", web) })
	d.waitWorkload(t, web, "2 Ready replicas on its region", workloadReadyTimeout, nil, func(w api.Workload) bool {
		return w.Status.ReadyReplicas == 2
	})

	unschedulable := func() bool { return d.apiCluster(t, region).Spec.Unschedulable }
	r := d.mustAtoll(t, "", "cluster", "drain", region, "--dry-run")
	if !strings.Contains(r.stdout, "would move its replicas") || !strings.Contains(r.stdout, web) {
		t.Errorf("want the drain's plan naming %s; got %s", web, r)
	}
	if unschedulable() {
		t.Fatalf("a drain's --dry-run cordoned %s", region)
	}
	r = d.atoll(t, nil, "", "cluster", "drain", region)
	if r.code != 1 || !strings.Contains(r.stderr, "would leave "+web+" with no replica anywhere") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("want the drain refused naming %s and --force; got %s", web, r)
	}
	if unschedulable() {
		t.Fatalf("a refused drain cordoned %s", region)
	}
	if r := d.mustAtoll(t, "", "cluster", "drain", region, "--force"); !strings.Contains(r.stdout, "draining") {
		t.Errorf("want the forced drain to go; got %s", r)
	}
	if !unschedulable() {
		t.Errorf("the forced drain did not cordon %s", region)
	}
	c := d.apiCluster(t, region)
	reasons := map[string]bool{}
	for _, e := range d.eventsOf(t, c.Metadata.UID) {
		reasons[e.Reason] = true
	}
	if !reasons["Cordoned"] || !reasons["DrainStarted"] {
		t.Errorf("want Cordoned and DrainStarted events on %s; got %v", region, reasons)
	}
}

// TestDrainRefusedByBudget: a workload running one replica in the test's
// region and one in us-east, whose disruption budget needs both placed,
// keeps a replica after a drain of the region, yet the drain would break
// its budget: --dry-run says so, a plain drain is refused naming the
// workload and its budget and changes nothing (no cordon, no taint, no
// event, both replicas still placed and ready); with a budget that allows
// one replica away, the same drain goes.
func TestDrainRefusedByBudget(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	region := d.drillRegion(t, "budget", "")
	web := uniqueName("budgeted")
	manifest := func(budget string) string {
		return fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata: {name: %s}
spec:
  replicas: 1
  disruptionBudget: {%s}
  template:
    driver: sim
    sim: {startLatency: 50ms}
    resources: {cpu: 100m, memory: 32Mi}
  placement:
    replicaMode: Duplicated
    clusterSelector:
      matchExpressions:
      - {key: region, operator: In, values: [%s, us-east]}
`, web, budget, region)
	}
	d.mustAtoll(t, manifest("minAvailable: 100%"), "apply", "-f", "-")
	t.Cleanup(func() { d.atoll(t, nil, "", "delete", "workload", web) })
	onBoth := func(w api.Workload) bool {
		clusters := map[string]bool{}
		for _, c := range w.Status.Clusters {
			if c.Desired > 0 {
				clusters[c.Cluster] = true
			}
		}
		return w.Status.ReadyReplicas == 2 && clusters[region] && clusters["us-east"]
	}
	d.waitWorkload(t, web, "2 Ready replicas, one on its region and one on us-east", workloadReadyTimeout, nil, onBoth)

	getCluster := func() api.Cluster { return d.apiCluster(t, region) }
	before := getCluster()
	r := d.mustAtoll(t, "", "cluster", "drain", region, "--dry-run")
	if !strings.Contains(r.stdout, "minAvailable 100%: BREAKS") || !strings.Contains(r.stdout, web+": budget minAvailable 100% breaks") {
		t.Errorf("want the drain's plan to say %s's budget breaks; got %s", web, r)
	}
	r = d.atoll(t, nil, "", "cluster", "drain", region)
	if r.code != 1 || !strings.Contains(r.stderr, "would break disruption budgets ("+web+": budget minAvailable 100% breaks: 1 of 2 replicas") ||
		!strings.Contains(r.stderr, "--force") || strings.Contains(r.stderr, "no replica anywhere") {
		t.Errorf("want the drain refused naming %s and its budget, and --force; got %s", web, r)
	}
	// The refusal changed nothing.
	c := getCluster()
	if c.Spec.Unschedulable || len(c.Spec.Taints) != len(before.Spec.Taints) {
		t.Fatalf("a refused drain changed %s: unschedulable %v, taints %v", region, c.Spec.Unschedulable, c.Spec.Taints)
	}
	for _, e := range d.eventsOf(t, c.Metadata.UID) {
		if e.Reason == "Cordoned" || e.Reason == "DrainStarted" {
			t.Errorf("a refused drain left a %s event on %s", e.Reason, region)
		}
	}
	if w, status, err := d.getWorkload(web); err != nil || !onBoth(w) {
		t.Errorf("after a refused drain: want %s still ready on %s and us-east; got %d %v %+v", web, region, status, err, w.Status)
	}

	// A budget that allows one replica away lets the drain go.
	d.mustAtoll(t, manifest("maxUnavailable: 1"), "apply", "-f", "-")
	d.waitWorkload(t, web, "the new budget in the spec", workloadReadyTimeout, nil, func(w api.Workload) bool {
		return w.Spec.DisruptionBudget != nil && w.Spec.DisruptionBudget.MaxUnavailable.String() == "1"
	})
	if r := d.mustAtoll(t, "", "cluster", "drain", region); !strings.Contains(r.stdout, "draining") {
		t.Errorf("want the drain within the budget to go; got %s", r)
	}
	if !getCluster().Spec.Unschedulable {
		t.Errorf("the drain within the budget did not cordon %s", region)
	}
}

// TestForcedDrainKeepsTheBudget: a forced drain of the only region a
// workload may run in takes away at once only what its disruption budget
// allows: with minAvailable 1 of 2, the placer keeps one replica on the
// drained cluster (there is nowhere for a replacement to become ready),
// says so in the placement's explanation, and it stays Ready.
func TestForcedDrainKeepsTheBudget(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	region := d.drillRegion(t, "keep", "")
	web := uniqueName("kept")
	manifest := confinedWorkload(web, region, "disruptionBudget: {minAvailable: 1}")
	d.mustAtoll(t, manifest, "apply", "-f", "-")
	t.Cleanup(func() { d.atoll(t, nil, "", "delete", "workload", web) })
	d.waitWorkload(t, web, "2 Ready replicas on its region", workloadReadyTimeout, nil, func(w api.Workload) bool {
		return w.Status.ReadyReplicas == 2
	})
	r := d.atoll(t, nil, "", "cluster", "drain", region)
	if r.code != 1 || !strings.Contains(r.stderr, "no replica anywhere") || !strings.Contains(r.stderr, web+": budget minAvailable 1 breaks") {
		t.Errorf("want the drain refused for both reasons, naming %s; got %s", web, r)
	}
	d.mustAtoll(t, "", "cluster", "drain", region, "--force")
	sawNone := false
	d.waitWorkload(t, web, "one replica kept on the drained "+region+" by its budget, Ready", workloadReadyTimeout, func(w api.Workload) {
		if p := w.Status.Placement; p != nil && p.Clusters[region] == 0 {
			sawNone = true
		}
	}, func(w api.Workload) bool {
		p := w.Status.Placement
		return p != nil && p.Clusters[region] == 1 && w.Status.ReadyReplicas >= 1 &&
			strings.Contains(strings.Join(p.Explanation, "\n"), "disruption budget minAvailable 1: keeping 1 on "+region)
	})
	if sawNone {
		t.Errorf("the drain took every replica of %s off %s at some point, below its budget", web, region)
	}
}

// confinedWorkload is a workload of 2 sim replicas that may run in region
// only, with extra (one spec line) when not empty.
func confinedWorkload(name, region, extra string) string {
	if extra != "" {
		extra = "\n  " + extra
	}
	return fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata: {name: %s}
spec:
  replicas: 2%s
  template:
    driver: sim
    sim: {startLatency: 50ms}
    resources: {cpu: 100m, memory: 32Mi}
  placement:
    clusterSelector:
      matchExpressions:
      - {key: region, operator: In, values: [%s]}
`, name, extra, region)
}

// apiCluster reads one cluster, spec and all, as the admin.
func (d *devStack) apiCluster(t *testing.T, name string) api.Cluster {
	t.Helper()
	status, body, err := d.request(http.MethodGet, "/api/v1/clusters/"+name, d.token, nil)
	var c api.Cluster
	if err != nil || status != http.StatusOK || jsonInto(body, &c) != nil {
		t.Fatalf("GET cluster %s: %d %s %v", name, status, body, err)
	}
	return c
}
