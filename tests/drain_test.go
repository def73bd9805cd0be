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
	manifest := fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata: {name: %s}
spec:
  replicas: 2
  template:
    driver: sim
    sim: {startLatency: 50ms}
    resources: {cpu: 100m, memory: 32Mi}
  placement:
    clusterSelector:
      matchExpressions:
      - {key: region, operator: In, values: [%s]}
`, web, region)
	d.mustAtoll(t, manifest, "apply", "-f", "-")
	t.Cleanup(func() { d.atoll(t, nil, "", "delete", "workload", web) })
	d.waitWorkload(t, web, "2 Ready replicas on its region", workloadReadyTimeout, nil, func(w api.Workload) bool {
		return w.Status.ReadyReplicas == 2
	})

	unschedulable := func() bool {
		t.Helper()
		status, body, err := d.request(http.MethodGet, "/api/v1/clusters/"+region, d.token, nil)
		var c api.Cluster
		if err != nil || status != http.StatusOK || jsonInto(body, &c) != nil {
			t.Fatalf("GET cluster %s: %d %s %v", region, status, body, err)
		}
		return c.Spec.Unschedulable
	}
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
	status, body, err := d.request(http.MethodGet, "/api/v1/clusters/"+region, d.token, nil)
	var c api.Cluster
	if err != nil || status != http.StatusOK || jsonInto(body, &c) != nil {
		t.Fatalf("GET cluster %s: %d %s %v", region, status, body, err)
	}
	reasons := map[string]bool{}
	for _, e := range d.eventsOf(t, c.Metadata.UID) {
		reasons[e.Reason] = true
	}
	if !reasons["Cordoned"] || !reasons["DrainStarted"] {
		t.Errorf("want Cordoned and DrainStarted events on %s; got %v", region, reasons)
	}
}
