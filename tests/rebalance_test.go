//go:build linux

package tests

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/atollhq/atoll/api"
)

// TestRebalance: a workload placed while the test's region was tainted
// stays on us-east when the taint goes; `atoll rebalance --dry-run` plans
// the move and changes nothing; the console's rebalance page (Chromium)
// shows the same plan and its button moves two replicas to the region
// (make-before-break: all stay Ready); then `atoll rebalance` and
// `--all --dry-run` find it balanced. Other kinds are refused.
func TestRebalance(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	region := d.drillRegion(t, "rebal", "hold=1:NoSchedule")
	web := uniqueName("rebal")
	d.mustAtoll(t, fmt.Sprintf(`apiVersion: atoll.dev/v1
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
      - {key: region, operator: In, values: [%s, us-east]}
`, web, region), "apply", "-f", "-")
	t.Cleanup(func() { d.atoll(t, nil, "", "delete", "workload", web) })
	split := func(here, east int32) func(api.Workload) bool {
		return func(w api.Workload) bool {
			p := w.Status.Placement
			return p != nil && p.Clusters[region] == here && p.Clusters["us-east"] == east && w.Status.ReadyReplicas == 4
		}
	}
	d.waitWorkload(t, web, "4 Ready replicas on us-east", workloadReadyTimeout, nil, split(0, 4))
	d.mustAtoll(t, "", "cluster", "taint", region, "hold:NoSchedule-")

	r := d.mustAtoll(t, "", "rebalance", "workload", web, "--dry-run")
	if !strings.Contains(r.stdout, "workload/"+web+" would move 2 us-east→"+region) || !strings.Contains(r.stdout, "nothing changed") {
		t.Errorf("dry run: want the plan of 2 replicas from us-east to %s; got %s", region, r)
	}
	if w, _, err := d.getWorkload(web); err != nil || w.Metadata.Annotations[api.AnnotationRebalanceRequestedAt] != "" || !split(0, 4)(w) {
		t.Fatalf("a dry run changed %s: %+v %v", web, w.Metadata, err)
	}

	a := &tab{t: t, ctx: startBrowser(t), name: "console", dir: artifactsDir(t)}
	a.do("sign in", chromedp.Navigate(d.url+"/signin"), chromedp.WaitVisible(`#token`), chromedp.SendKeys(`#token`, d.token), chromedp.Submit(`#token`), chromedp.WaitVisible(`.topbar`))
	a.do("open the workload", chromedp.Navigate(d.url+"/workloads/"+web), chromedp.WaitVisible(`[data-action="rebalance-plan"]`))
	a.do("open its rebalance plan", chromedp.Click(`[data-action="rebalance-plan"]`), chromedp.WaitVisible(`[data-plan]`))
	if plan := a.eval(`document.querySelector('[data-plan]').textContent`); !strings.Contains(plan, "gains 2 from us-east") || !strings.Contains(plan, "gives 2 to "+region) {
		t.Errorf("console plan: want %s to gain 2 from us-east; got %q", region, plan)
	}
	a.shot("rebalance-plan")
	a.do("rebalance", chromedp.Click(`[data-action="rebalance"]`), chromedp.WaitVisible(`.flash`))
	if flash := a.eval(`document.querySelector('.flash').textContent`); !strings.Contains(flash, "Rebalancing "+web+": moving 2 us-east → "+region) {
		t.Errorf("console: want the flash to say the move; got %q", flash)
	}
	notReady := false
	d.waitWorkload(t, web, "2 Ready replicas on "+region+" and 2 on us-east", workloadReadyTimeout, func(w api.Workload) {
		if w.Status.ReadyReplicas < 4 && w.Status.ObservedGeneration == w.Metadata.Generation {
			notReady = true
		}
	}, split(2, 2))
	if notReady {
		t.Errorf("the rebalance took %s below 4 ready replicas: it must start each replacement before it stops the old one", web)
	}
	r = d.mustAtoll(t, "", "rebalance", "workload/"+web)
	if !strings.Contains(r.stdout, "workload/"+web+": balanced already") {
		t.Errorf("rebalance of a balanced workload: want it to say so; got %s", r)
	}
	r = d.mustAtoll(t, "", "rebalance", "workload", "--all", "--dry-run")
	if !strings.Contains(r.stdout, "workload/"+web+": balanced already") {
		t.Errorf("--all --dry-run: want %s balanced; got %s", web, r)
	}
	if r := d.atoll(t, nil, "", "rebalance", "drill", "x"); r.code != 1 || !strings.Contains(r.stderr, "only workloads") {
		t.Errorf("rebalance of a drill: want refused, exit 1; got %s", r)
	}
}
