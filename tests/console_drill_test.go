//go:build linux

package tests

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/atollhq/atoll/api"
)

// consoleDrillFault is how long the console's outage drill lasts, and
// consoleDrillEnd bounds the wait for its report: the fault, then
// failback (the workload fails back after a 1 s window) or the drill's
// 10 s failback timeout, and a margin for a loaded machine.
const (
	consoleDrillFault = 10 * time.Second
	consoleDrillEnd   = consoleDrillFault + 10*time.Second + 15*time.Second
)

// TestConsoleDrill runs a short outage drill from the web console in real
// headless Chromium, on a region of the test's own (tainted so that only
// the test's workload lands there): g d opens the drills page, the form
// plans the drill (the workload's replicas move to us-east), Run asks
// for the region's name, and the drill's page follows it live through
// its timeline and recovery chart to the report and its SLO verdicts,
// which must be the API's; the form attaches a probe (service, rate,
// entry point, request objectives) whose counts the report shows. The drill is then in the history; a viewer
// sees no way to start or abort one, and is refused (403) when it posts
// the form anyway.
func TestConsoleDrill(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	const taintKey = "console-drill-test"
	region := d.drillRegion(t, "webdrill", taintKey+"=only:NoExecute")

	web := uniqueName("drill-console")
	d.mustAtoll(t, drillWorkload(web, region, taintKey), "apply", "-f", "-")
	t.Cleanup(func() { d.atoll(t, nil, "", "delete", "workload", web) })
	d.waitWorkload(t, web, "4 Ready replicas, at least 2 on the test's region (all 4 when us-east looked busy as it was placed: nothing rebalances yet)", workloadReadyTimeout, nil, func(w api.Workload) bool {
		return w.Status.ReadyReplicas == 4 && w.Status.Placement != nil && w.Status.Placement.Clusters[region] >= 2
	})
	operator := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName("console-operator"), "--role", api.RoleOperator).stdout)
	viewer := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName("console-viewer"), "--role", api.RoleViewer).stdout)

	a := &tab{t: t, ctx: startBrowser(t), name: "operator", dir: artifactsDir(t)}
	a.do("sign in as an operator", chromedp.Navigate(d.url+"/signin"), chromedp.WaitVisible(`#token`),
		chromedp.SendKeys(`#token`, operator), chromedp.Submit(`#token`), chromedp.WaitVisible(`.topbar`))
	a.scriptReady()
	a.do("press g d to open the drills page", chromedp.KeyEvent("g"), chromedp.KeyEvent("d"), chromedp.WaitVisible(`table[aria-label="Drills"]`))
	if loc := a.eval(`location.pathname`); loc != "/drills" {
		t.Errorf("want g d to open /drills; got %s", loc)
	}
	a.shot("drill-01-list")

	// Plan: the region's two replicas go to us-east, and the rest absorbs them.
	name := uniqueName("console-outage")
	a.do("open the new-drill form", chromedp.Click(`[data-action="new-drill"]`), chromedp.WaitVisible(`#drill-form`))
	a.do("fill in an outage of the test's region", chromedp.Click(`input[name="kind"][value="outage"]`),
		chromedp.SetValue(`#drill-target`, "region:"+region),
		chromedp.SendKeys(`#drill-duration`, consoleDrillFault.String()), chromedp.SendKeys(`#drill-failbackTimeout`, "10s"),
		chromedp.SendKeys(`#drill-maxRTO`, consoleDrillFault.String()), chromedp.SendKeys(`#drill-maxUnavailable`, "2"),
		chromedp.SendKeys(`#drill-name`, name))
	// A probe of the dev stack's demo-web through us-east's gateway (the
	// region the workload fails over to): the objectives are loose, the
	// report must show what was counted.
	a.do("attach a probe", chromedp.SetValue(`#drill-probeService`, "demo-web"), chromedp.SendKeys(`#drill-probeRate`, "20"),
		chromedp.Click(`input[name="probeThrough"][value="us-east"]`), chromedp.SendKeys(`#drill-maxFailedRequests`, "1000"),
		chromedp.SendKeys(`#drill-minSuccessRatio`, "50%"))
	a.do("plan it", chromedp.Click(`[data-action="plan"]`), chromedp.WaitVisible(`#plan`))
	a.waitJS("the plan: the workload's replicas all in us-east after the fault, absorbed", fmt.Sprintf(
		`(() => {
			const after = [...document.querySelectorAll('[data-plan-workload=%q] td:nth-of-type(3) li')];
			return document.querySelector('[data-absorbed]')?.dataset.absorbed === 'true' && after.length === 1 &&
				after[0].querySelector('.split-name').textContent === 'us-east' && after[0].querySelector('.split-n').textContent === '4';
		})()`, web))
	a.shot("drill-02-plan")

	// Run: only with the region's name typed.
	a.do("open the run dialog", chromedp.Click(`[data-action="run"]`), chromedp.WaitVisible(`#run-confirm`))
	if a.eval(`String(document.querySelector('[data-action="run-confirm"]').disabled)`) != "true" {
		t.Errorf("want Run disabled until the region's name is typed")
	}
	if got := a.eval(`[...document.querySelectorAll('#run-dialog input[name^="probe"], #run-dialog input[name="minSuccessRatio"]')].map(i => i.name + '=' + i.value).join('&')`); got != "probeService=demo-web&probeRate=20&probeThrough=us-east&minSuccessRatio=50%" {
		t.Errorf("want the run to carry the planned probe and its objective; its form has %q", got)
	}
	a.do("type the region's name", chromedp.SendKeys(`#run-confirm`, region))
	a.waitJS("Run enabled by the typed name", `document.querySelector('[data-action="run-confirm"]')?.disabled === false`)
	a.shot("drill-03-confirm")
	a.do("run it", chromedp.Click(`[data-action="run-confirm"]`), chromedp.WaitVisible(`[data-action="abort"]`))
	if loc := a.eval(`location.pathname`); loc != "/drills/"+name {
		t.Fatalf("want the run to open /drills/%s; got %s", name, loc)
	}
	a.waitJS("the live stream connected", `document.getElementById('conn')?.dataset.state === 'live'`)

	// The page follows the drill without a reload. Each timeline entry's
	// delay, from the hub's clock at the milestone to the page showing it,
	// is logged (BENCHMARKS.md).
	a.eval(`window.atollMarker = 'no reload';
		window.atollSeen = {};
		new MutationObserver(() => {
			for (const li of document.querySelectorAll('.tl-item')) {
				if (!(li.dataset.type in window.atollSeen)) window.atollSeen[li.dataset.type] = Date.now() - Number(li.dataset.at);
			}
		}).observe(document.body, {subtree: true, childList: true}); ''`)
	a.waitJSWithin(consoleDrillFault, "the hub's detection in the timeline, live", `!!document.querySelector('.tl-item[data-type="Detected"]')`)
	a.waitJSWithin(consoleDrillFault, "the recovery chart drawn from samples", `!!document.querySelector('svg.recovery path.chart-ready')`)
	a.shot("drill-04-running")
	a.waitJSWithin(consoleDrillEnd, "the report", `!!document.querySelector('.report[data-verdict]')`)
	a.waitJS("the abort button gone once the drill ended", `!document.querySelector('[data-action="abort"]')`)
	if got := a.eval(`window.atollMarker ?? 'reloaded'`); got != "no reload" {
		t.Errorf("want the drill's page updated in place, not reloaded; its marker is %q", got)
	}
	t.Logf("console drill: from each milestone to the page showing it (ms): %s",
		a.eval(`['Detected', 'Recovered', 'Restored', 'FailedBack', 'Finished'].map(k => k + ' ' + (window.atollSeen[k] ?? '-')).join(', ')`))
	a.shot("drill-05-report")
	a.eval(`document.documentElement.dataset.theme = 'dark'; ''`)
	a.shot("drill-05-report-dark")
	a.eval(`document.documentElement.dataset.theme = 'system'; ''`)

	// The verdicts on the page are the API's.
	var dr api.Drill
	status, body, err := d.request(http.MethodGet, "/api/v1/drills/"+name, d.token, nil)
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &dr) != nil || dr.Status.Report == nil {
		t.Fatalf("want drill %s and its report from the API; got %d %s (%v)", name, status, body, err)
	}
	rep := dr.Status.Report
	t.Logf("console drill %s: %s, detection %s, RTO %s, peak unavailable %d, failback %s", name, dr.Status.Phase,
		secs(rep.DetectionSeconds), secs(rep.RTOSeconds), rep.PeakUnavailableReplicas, rep.Failback)
	verdict := cmp.Or(dr.Status.Verdict, "none")
	if got := a.eval(`document.querySelector('.report').dataset.verdict`); got != verdict {
		t.Errorf("want the page's verdict %s, as the API's report says; got %s", verdict, got)
	}
	if len(rep.SLOs) != 5 {
		t.Errorf("want 5 SLOs in the report (maxRTO, maxUnavailableReplicas, exclusiveDuplicates, maxFailedRequests, minSuccessRatio); got %+v", rep.SLOs)
	}
	if dr.Spec.Probe == nil || dr.Spec.Probe.Service != "demo-web" || dr.Spec.Probe.Rate != 20 || rep.Probe == nil || len(rep.Probe.Through) != 1 || rep.Probe.Through[0].Name != "us-east" {
		t.Errorf("want the drill's probe of demo-web at 20/s through us-east, as the form gave it, and its counts in the report; got %+v, report %+v", dr.Spec.Probe, rep.Probe)
	} else {
		fault := rep.Probe.Through[0].Fault
		t.Logf("console drill's probe through us-east during the fault: %s", fault.Text())
		if got := a.eval(`document.querySelector('tr[data-through="us-east"][data-phase="fault"] [data-testid="probe-failed"]')?.textContent ?? ''`); got != fmt.Sprint(fault.Failed) || fault.Requests == 0 {
			t.Errorf("want the page's failed requests through us-east during the fault to be the report's %d (of %d); the page says %q", fault.Failed, fault.Requests, got)
		}
	}
	for _, s := range rep.SLOs {
		want := map[bool]string{true: "Met", false: "Missed"}[s.Passed]
		got := a.eval(fmt.Sprintf(`document.querySelector('tr[data-slo=%q]')?.textContent ?? ''`, s.Name))
		if !strings.Contains(got, want) || !strings.Contains(got, s.Actual) {
			t.Errorf("want the SLO %s shown %s with %s measured; the row says %q", s.Name, want, s.Actual, got)
		}
	}
	if rep.DetectionSeconds == nil || rep.PeakUnavailableReplicas < 2 || dr.Status.Phase == api.DrillAborted {
		t.Errorf("want the outage detected, at least the region's 2 replicas unavailable, and the drill run to its end; got %s with %+v", dr.Status.Phase, rep)
	}
	if !a.evalBool(`document.querySelectorAll('.tl-item[data-type="Restored"], .tl-item[data-type="Finished"]').length === 2`) {
		t.Errorf("want the timeline to show the fault lifted and the drill finished")
	}
	// Each affected workload's own recovery, as the API's report gives it.
	for _, w := range rep.Workloads {
		row := a.eval(fmt.Sprintf(`document.querySelector('tr[data-workload=%q]')?.textContent ?? ''`, w.Workload))
		if w.RTOSeconds != nil && !strings.Contains(row, api.SecondsText(w.RTOSeconds)) {
			t.Errorf("want workload %s's RTO %s on the report; the row says %q", w.Workload, api.SecondsText(w.RTOSeconds), row)
		}
	}

	a.do("open the history", chromedp.Navigate(d.url+"/drills"), chromedp.WaitVisible(fmt.Sprintf(`tr[data-drill=%q]`, name)))
	if phase := a.eval(fmt.Sprintf(`document.querySelector('tr[data-drill=%q]').dataset.phase`, name)); phase != dr.Status.Phase {
		t.Errorf("want the history to list %s as %s; got %s", name, dr.Status.Phase, phase)
	}
	// Its target's RTO over past drills, as a trend.
	if dr.Status.Phase == api.DrillCompleted && !rep.RTONotApplicable {
		sel := fmt.Sprintf(`tr[data-trend=%q] svg.spark`, dr.Spec.Kind+" "+dr.Spec.Target.String())
		if !a.evalBool(fmt.Sprintf(`!!document.querySelector(%q)`, sel)) {
			t.Errorf("want the history to show %s's RTO trend (%s)", dr.Spec.Target, sel)
		}
	}
	a.shot("drill-06-history")
	// The API's refusals read next to the fields they are about.
	a.do("plan a drill the API refuses", chromedp.Navigate(d.url+"/drills/new?kind=outage&target=region:"+region+"&duration=soon&maxRTO=5s&plan=1"),
		chromedp.WaitVisible(`#err-duration`))
	if got := a.eval(`document.getElementById('err-duration').textContent`); !strings.Contains(got, "not a duration") {
		t.Errorf("want the refused duration explained at its field; got %q", got)
	}
	a.shot("drill-06-refused")

	// A viewer: no New drill, no Plan or Run, no Abort; the API says no.
	a.do("sign out", chromedp.Click(`form[action="/signout"] button`), chromedp.WaitVisible(`#token`))
	a.do("sign in as a viewer", chromedp.SendKeys(`#token`, viewer), chromedp.Submit(`#token`), chromedp.WaitVisible(`.topbar`))
	a.do("open the drills page as a viewer", chromedp.Navigate(d.url+"/drills"), chromedp.WaitVisible(fmt.Sprintf(`tr[data-drill=%q]`, name)))
	if a.evalBool(`!!document.querySelector('[data-action="new-drill"]')`) {
		t.Errorf("want no New drill button for a viewer")
	}
	a.do("open the new-drill form as a viewer", chromedp.Navigate(d.url+"/drills/new?kind=outage&target=region:"+region+"&plan=1"), chromedp.WaitVisible(`.notice`))
	if a.evalBool(`!!document.querySelector('[data-action="plan"], [data-action="run"]')`) {
		t.Errorf("want no Plan or Run for a viewer")
	}
	a.shot("drill-07-viewer")
	got, err := chromedp.Run(a.ctx, chromedp.Evaluate[float64](fmt.Sprintf(`fetch('/drills', {method: 'POST', headers: {Accept: 'application/json'},
		body: new URLSearchParams({kind: 'outage', target: 'region:%s', duration: '5s', name: 'viewer-drill', confirm: '%s'})}).then(r => r.status)`, region, region),
		chromedp.EvalAwaitPromise))
	if err != nil || got != http.StatusForbidden {
		t.Errorf("want a viewer's drill posted from the console refused with 403; got %v (%v)", got, err)
	}
	if status, _, _ := d.request(http.MethodGet, "/api/v1/drills/viewer-drill", d.token, nil); status != http.StatusNotFound {
		t.Errorf("want no drill made by the viewer; GET answers %d", status)
	}
}

func secs(s *float64) string {
	if s == nil {
		return "not reached"
	}
	return fmt.Sprintf("%.3fs", *s)
}

func (b *tab) evalBool(expr string) bool {
	b.t.Helper()
	return b.eval(`String(`+expr+`)`) == "true"
}
