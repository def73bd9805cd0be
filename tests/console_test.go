//go:build linux

package tests

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// consoleTimeout bounds each wait on the browser: for a page to show
// what the hub knows (live updates arrive well within a second).
const consoleTimeout = 30 * time.Second

// artifactsDir is where browser tests leave screenshots:
// $ATOLL_TEST_ARTIFACTS, else tests/artifacts (ignored by git).
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("ATOLL_TEST_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("want a folder for screenshots at %s; got %v", dir, err)
	}
	return dir
}

// startBrowser starts headless Chromium from the machine (tests/deps.sh
// installs Debian's) on a fresh profile and returns a tab's context.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatalf("want Chromium on PATH for the console's browser tests (run tests/deps.sh, which installs Debian's chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1440, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first action on a context starts the browser (or opens the tab)
	// for that context's lifetime: never a timed one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("want Chromium (%s) started; got %v", path, err)
	}
	return ctx
}

// tab is one browser tab on the console.
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string
	dir  string
}

func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, consoleTimeout)
	defer cancel()
	for {
		err := chromedp.Do(ctx, actions...)
		// A live update can replace a node between its query and the
		// click on it: the browser then no longer knows the node's id, and
		// nothing was clicked. Query again.
		if err != nil && strings.Contains(err.Error(), "Could not find node with given id") && ctx.Err() == nil {
			continue
		}
		if err != nil {
			b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
			b.t.Fatalf("%s: want to %s within %s; got %v\n%s", b.name, what, consoleTimeout, err, b.page())
		}
		return
	}
}

// scriptReady waits until the page's script runs (its keyboard
// shortcuts are listened for): the page's elements show before its module
// script has run, and a key pressed then is lost, more so on a busy
// machine. readyState is complete only after module scripts ran.
func (b *tab) scriptReady() {
	b.t.Helper()
	b.waitJS("the page's script to run", `document.readyState === 'complete'`)
}

// waitJS waits until a JavaScript expression is true, re-checking on
// every change of the page (a DOM mutation), for at most consoleTimeout.
func (b *tab) waitJS(what, expr string) {
	b.t.Helper()
	b.waitJSWithin(consoleTimeout, what, expr)
}

// waitJSWithin is waitJS for what may take longer than consoleTimeout
// (a drill's phases).
func (b *tab) waitJSWithin(timeout time.Duration, what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(timeout))); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: want %s within %s; got %v", b.name, what, timeout, err)
	}
}

func (b *tab) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, consoleTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.name, expr, err)
	}
	return v
}

// press clicks the button sel and waits for want to show. The page's
// live regions are redrawn in place (innerHTML) when what they show
// changes: a click whose press and release straddle a redraw lands on
// two different buttons and clicks neither, as a person's would. When
// want has not shown 5 s after a click and sel is still there, it
// clicks again (a cordon or an uncordon twice is the same), until
// consoleTimeout.
func (b *tab) press(what, sel, want string) {
	b.t.Helper()
	deadline := time.Now().Add(consoleTimeout)
	// shown asks whether want is on the page; a page still loading
	// answers with an error, taken as not yet.
	shown := func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, want)))
		return err == nil && v
	}
	for try := 1; ; try++ {
		if try > 1 && shown() { // the last click's page came late
			return
		}
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(sel), chromedp.WaitVisible(want))
		cancel()
		if err == nil {
			if try > 1 {
				b.t.Logf("%s: %s took %d clicks (a redraw took the first)", b.name, what, try)
			}
			return
		}
		if time.Now().After(deadline) {
			b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
			b.t.Fatalf("%s: want to %s within %s (%d clicks); got %v\n%s", b.name, what, consoleTimeout, try, err, b.page())
		}
	}
}

// page is where the tab is and what it shows (the start of its text),
// for a failure's message: a page that never showed what was awaited
// usually says why (a flash, a problem).
func (b *tab) page() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + location.search + '\n' + (document.body?.innerText ?? '').slice(0, 1500)`))
	if err != nil {
		return fmt.Sprintf("(the page could not be read: %v)", err)
	}
	return "the page at " + v
}

// shot saves a full-page screenshot as <dir>/<name>.png.
func (b *tab) shot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, consoleTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

// TestConsole drives the web console of the shared `atoll dev` in real
// headless Chromium: sign in, see the three dev regions Ready, see a
// member that joins appear, cordon it in one tab and watch a second tab
// change without a reload, read a workload's placement reasons, use the
// keyboard, and kill the member to see its tile turn Unreachable (the
// time that takes is logged; BENCHMARKS.md records it).
func TestConsole(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	d.checkReady(t)
	const edge = "console-edge"
	t.Cleanup(func() {
		status, body, err := d.request(http.MethodDelete, "/api/v1/clusters/"+edge+"?force=true", d.token, nil)
		if err != nil || (status/100 != 2 && status != http.StatusNotFound) {
			t.Errorf("want cluster %s deregistered after the test; got %d %s (%v)", edge, status, body, err)
		}
	})
	dir := artifactsDir(t)
	a := &tab{t: t, ctx: startBrowser(t), name: "tab A", dir: dir}

	a.do("open the console", chromedp.Navigate(d.url+"/"), chromedp.WaitVisible(`#token`))
	if loc := a.eval(`location.pathname + location.search`); loc != "/signin?next=%2F" {
		t.Errorf("want a signed-out visit sent to /signin?next=%%2F; got %s", loc)
	}
	a.shot("01-signin")
	a.do("sign in", chromedp.SendKeys(`#token`, d.token), chromedp.Submit(`#token`), chromedp.WaitVisible(`.topbar`))
	if cookies := a.eval(`document.cookie`); strings.Contains(cookies, "atoll_session") {
		t.Errorf("want the session cookie hidden from scripts (HttpOnly); document.cookie has %q", cookies)
	}

	regions := []string{"us-east", "eu-west", "ap-south"}
	var ready []string
	for _, r := range regions {
		ready = append(ready, fmt.Sprintf(`document.querySelector('.tile[data-cluster=%q]')?.dataset.health === 'Ready'`, r))
	}
	a.waitJS("the three dev regions Ready on the overview", strings.Join(ready, " && "))
	a.waitJS("the live stream connected", `document.getElementById('conn')?.dataset.state === 'live'`)
	a.shot("02-overview")

	// A member joins while the overview is open: its tile appears live.
	join := strings.TrimSpace(d.mustAtoll(t, "", "token", "create", uniqueName("console-join"), "--join", "--uses", "1").stdout)
	member := d.startMember(t, t, edge, filepath.Join(t.TempDir(), edge), join)
	a.waitJS("the joining member's tile Ready without a reload", fmt.Sprintf(`document.querySelector('.tile[data-cluster=%q]')?.dataset.health === 'Ready'`, edge))

	// A second tab of the same browser shares the session.
	bctx, cancelB := chromedp.NewContext(a.ctx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil { // opens the tab, for the test's lifetime
		t.Fatalf("want a second tab; got %v", err)
	}
	b := &tab{t: t, ctx: bctx, name: "tab B", dir: dir}
	b.do("open the clusters list", chromedp.Navigate(d.url+"/clusters"), chromedp.WaitVisible(fmt.Sprintf(`tr[data-cluster=%q]`, edge)))
	b.eval(`window.atollMarker = 'no reload'; ''`)
	b.shot("03-clusters")

	a.do("open the member's page", chromedp.Navigate(d.url+"/clusters/"+edge), chromedp.WaitVisible(`[data-action="cordon"]`))
	a.shot("04-cluster")
	a.press("cordon it", `[data-action="cordon"]`, `[data-action="uncordon"]`)
	if flash := a.eval(`document.querySelector('.flash')?.textContent ?? ''`); !strings.Contains(flash, "Cordoned "+edge) {
		t.Errorf("want the page after the cordon to say %q; got %q", "Cordoned "+edge, flash)
	}
	b.waitJS("the cordon shown in the other tab", fmt.Sprintf(`document.querySelector('tr[data-cluster=%q]')?.textContent.includes('Cordoned')`, edge))
	if got := b.eval(`window.atollMarker ?? 'reloaded'`); got != "no reload" {
		t.Errorf("want the other tab updated in place, not reloaded; its marker is %q", got)
	}
	b.shot("05-clusters-cordoned")
	if status, body, err := d.request(http.MethodGet, "/api/v1/clusters/"+edge, d.token, nil); err != nil || status != http.StatusOK || !strings.Contains(string(body), `"unschedulable":true`) {
		t.Errorf("want the API to show %s cordoned after the console's cordon; got %d %s (%v)", edge, status, body, err)
	}
	a.press("uncordon it", `[data-action="uncordon"]`, `[data-action="cordon"]`)

	// A workload only us-east may run: the page says why not elsewhere.
	name := uniqueName("console-wl")
	doc := fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata: {name: %s, labels: {app: console-test}}
spec:
  replicas: 2
  template: {driver: sim}
  placement: {clusterSelector: {matchLabels: {region: us-east}}}
`, name)
	d.mustAtoll(t, doc, "apply", "-f", "-")
	t.Cleanup(func() { d.atoll(t, nil, "", "delete", "workload", name) })
	a.do("open the workload", chromedp.Navigate(d.url+"/workloads/"+name), chromedp.WaitVisible(`h1`))
	a.waitJS("the placement's reason for leaving out eu-west", `document.querySelector('[data-candidate="eu-west"] .why-not')?.textContent.includes('why not eu-west: outside clusterSelector')`)
	a.waitJS("the workload Healthy", `document.querySelector('h1 .badge')?.textContent.includes('Healthy')`)
	a.shot("06-workload")

	a.do("search the workloads", chromedp.Navigate(d.url+"/workloads"), chromedp.WaitVisible(`[data-search]`))
	a.scriptReady()
	a.do("type a search", chromedp.KeyEvent("/"), chromedp.SendKeys(`[data-search]`, name))
	a.waitJS("the search applied in the list and the address", fmt.Sprintf(`location.search.includes('q=%s') && document.querySelectorAll('tr[data-workload]').length === 1`, name))
	a.shot("07-workloads-search")
	a.do("clear the search", chromedp.Navigate(d.url+"/workloads"), chromedp.WaitVisible(`tr[data-workload]`))
	a.shot("08-workloads")

	a.scriptReady()
	a.do("press g c to open the clusters page", chromedp.KeyEvent("g"), chromedp.KeyEvent("c"), chromedp.WaitVisible(`table[aria-label="Clusters"]`))
	if loc := a.eval(`location.pathname`); loc != "/clusters" {
		t.Errorf("want g c to open /clusters; got %s", loc)
	}
	a.scriptReady()
	a.do("press ?", chromedp.WaitVisible(`.topbar`), chromedp.KeyEvent("?"))
	a.waitJS("? to open the shortcuts", `document.getElementById('shortcuts')?.open === true`)
	a.shot("09-shortcuts")

	// A workload only the member's cluster may run, reported by it.
	pin := uniqueName("console-pin")
	d.mustAtoll(t, "", "label", "cluster", edge, "pin="+pin)
	pinned := uniqueName("console-pinned")
	d.mustAtoll(t, fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata: {name: %s}
spec:
  replicas: 1
  template: {driver: sim}
  placement: {clusterSelector: {matchLabels: {pin: %s}}}
`, pinned, pin), "apply", "-f", "-")
	t.Cleanup(func() { d.atoll(t, nil, "", "delete", "workload", pinned) })
	for deadline := time.Now().Add(30 * time.Second); ; {
		status, body, err := d.request(http.MethodGet, "/api/v1/workloads/"+pinned, d.token, nil)
		if err == nil && status == http.StatusOK && strings.Contains(string(body), `"reportedAt"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %s's report of %s within 30 s; got %d %s (%v)", edge, pinned, status, body, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the API for the member's report
	}

	// Kill the member: the overview's tile turns Unreachable by itself.
	b.do("open the overview", chromedp.Navigate(d.url+"/"), chromedp.WaitVisible(fmt.Sprintf(`.tile[data-cluster=%q][data-health="Ready"]`, edge)))
	b.waitJS("the live stream connected", `document.getElementById('conn')?.dataset.state === 'live'`)
	killed := time.Now()
	member.kill()
	b.waitJS("the killed member's tile Unreachable", fmt.Sprintf(`document.querySelector('.tile[data-cluster=%q]')?.dataset.health === 'Unreachable'`, edge))
	took := time.Since(killed)
	t.Logf("console: %s shown Unreachable on the overview %s after its member was killed (hub: Unreachable after 1.5 s of silence, heartbeats every 500 ms)", edge, took.Round(time.Millisecond))
	b.shot("10-overview-unreachable")
	if att := b.eval(`document.getElementById('live-c-attention')?.textContent ?? ''`); !strings.Contains(att, edge) || !strings.Contains(att, "Unreachable") {
		t.Errorf("want %s listed as Unreachable under Needs attention; got %q", edge, att)
	}

	// What it last reported is greyed and says how old it is, on the
	// overview, the clusters list, its page and in the CLI.
	lastKnown := `/^last known, \d+ (s|min) ago$/`
	b.waitJS("the tile's figures greyed and labelled", fmt.Sprintf(`(() => { const t = document.querySelector('.tile[data-cluster=%q]'); return t?.classList.contains('stale') && %s.test(t.querySelector('.last-known')?.textContent ?? '') })()`, edge, lastKnown))
	b.shot("11-overview-last-known")
	b.do("open the clusters list", chromedp.Navigate(d.url+"/clusters"), chromedp.WaitVisible(fmt.Sprintf(`tr[data-cluster=%q]`, edge)))
	b.waitJS("the row greyed and labelled", fmt.Sprintf(`(() => { const r = document.querySelector('tr[data-cluster=%q]'); return r?.classList.contains('stale') && %s.test(r.querySelector('.last-known')?.textContent ?? '') })()`, edge, lastKnown))
	if grey := b.eval(fmt.Sprintf(`getComputedStyle(document.querySelector('tr[data-cluster=%q] td')).filter`, edge)); !strings.Contains(grey, "grayscale") {
		t.Errorf("want the stale row greyed by the stylesheet; its filter is %q", grey)
	}
	b.do("open its page", chromedp.Navigate(d.url+"/clusters/"+edge), chromedp.WaitVisible(`h1`))
	b.waitJS("the page's figures labelled", `/The cluster is Unreachable: these figures are last known, \d+ (s|min) ago/.test(document.querySelector('.last-known')?.textContent ?? '')`)
	b.shot("12-cluster-last-known")
	b.do("open the pinned workload", chromedp.Navigate(d.url+"/workloads/"+pinned), chromedp.WaitVisible(`h1`))
	b.waitJS("its row of the lost cluster greyed and labelled", fmt.Sprintf(`(() => { const r = document.querySelector('tr[data-cluster=%q]'); return r?.classList.contains('stale') && %s.test(r.querySelector('.last-known')?.textContent ?? '') })()`, edge, lastKnown))
	b.shot("13-workload-last-known")
	if out := d.mustAtoll(t, "", "get", "workloads", pinned, "-o", "wide").stdout; !regexp.MustCompile(edge + `: last known, \d+ (s|min) ago`).MatchString(out) {
		t.Errorf("want get workloads -o wide to label %s's row of %s as last known; got:\n%s", pinned, edge, out)
	}
	if out := d.mustAtoll(t, "", "describe", "workload", pinned).stdout; !regexp.MustCompile(edge + `.*: \d+/\d+ ready.*\(Unreachable: last known, \d+ (s|min) ago\)`).MatchString(out) {
		t.Errorf("want describe to say %s's row is last known; got:\n%s", edge, out)
	}
	if out := d.mustAtoll(t, "", "get", "clusters").stdout; !regexp.MustCompile(edge + `\s.*Unreachable.*\(last known, \d+ (s|min) ago\)`).MatchString(out) {
		t.Errorf("want get clusters to label %s's figures as last known; got:\n%s", edge, out)
	}
}
