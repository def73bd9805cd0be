//go:build linux

package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/atollhq/atoll/api"
)

// The phone the console must fit: an iPhone 12 to 15's viewport, in CSS
// pixels.
const phoneW, phoneH = 390, 844

// minChartLabelPx is the smallest a chart label may be drawn on the
// phone, in CSS pixels (the SVG scales to its card).
const minChartLabelPx = 11

// TestConsolePhone opens every page of the console in headless Chromium
// emulating a phone (390×844, mobile viewport, touch) against the shared
// dev stack with real data: a region of the test's own, a workload over
// it and us-east, and a finished outage drill of that region. Each page
// must fit the phone's width (no sideways scrolling of the page: wide
// tables scroll inside their card or stack), and the recovery chart's
// labels must be legible. The same pages are then opened on a 1440 px
// desktop: they fit, and the chart keeps its wide drawing and label size.
// A screenshot of each page is saved under artifacts/console, as
// phone-*.png and desktop-*.png.
func TestConsolePhone(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	const taintKey = "console-phone-test"
	region := d.drillRegion(t, "phone", taintKey+"=only:NoExecute")

	web := uniqueName("phone-checkout-frontend")
	d.mustAtoll(t, drillWorkload(web, region, taintKey), "apply", "-f", "-")
	t.Cleanup(func() { d.atoll(t, nil, "", "delete", "workload", web) })
	// Where its replicas land does not matter here, so long as some are in
	// the region the drill takes down.
	d.waitWorkload(t, web, "4 Ready replicas, some in "+region, workloadReadyTimeout, nil, func(w api.Workload) bool {
		return w.Status.ReadyReplicas == 4 && w.Status.Placement != nil && w.Status.Placement.Clusters[region] > 0
	})

	// A finished drill, for the history and the report. Whether it met its
	// objectives on a busy machine does not matter here: its report does.
	drill := uniqueName("phone-outage")
	r := d.atollWithin(t, drillRunTimeout, nil, "", "drill", "run", "--kind", "outage", "--region", region, "--name", drill,
		"--duration", "4s", "--max-rto", "4s", "--failback-timeout", "5s")
	var dr api.Drill
	status, body, err := d.request(http.MethodGet, "/api/v1/drills/"+drill, d.token, nil)
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &dr) != nil || dr.Status.Report == nil || len(dr.Status.Samples) == 0 {
		t.Fatalf("want drill %s finished with samples and a report; `atoll drill run` gave %s; the API %d %s (%v)", drill, r, status, body, err)
	}

	ctx := startBrowser(t)
	p := &tab{t: t, ctx: ctx, name: "phone", dir: artifactsDir(t)}
	p.do("emulate a phone", chromedp.EmulateViewport(phoneW, phoneH, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait, chromedp.EmulateScale(2)))

	p.do("open the sign-in page", chromedp.Navigate(d.url+"/signin"), chromedp.WaitVisible(`#token`))
	p.fits("phone-signin", phoneW)
	p.do("sign in", chromedp.SendKeys(`#token`, d.token), chromedp.Submit(`#token`), chromedp.WaitVisible(`.topbar`))

	pages := []struct {
		name, path, ready string
	}{
		{"overview", "/", fmt.Sprintf(`.tile[data-cluster=%q][data-health="Ready"]`, region)},
		{"clusters", "/clusters", fmt.Sprintf(`tr[data-cluster=%q]`, region)},
		{"cluster", "/clusters/" + region, `[data-action="cordon"]`},
		{"workloads", "/workloads", fmt.Sprintf(`tr[data-workload=%q]`, web)},
		{"workload", "/workloads/" + web, fmt.Sprintf(`[data-candidate=%q]`, region)},
		{"drills", "/drills", fmt.Sprintf(`tr[data-drill=%q]`, drill)},
		{"drill", "/drills/" + drill, `.report[data-verdict]`},
		{"service", "/services/demo-web", `[data-service-traffic="demo-web"]`},
		{"drill-new", "/drills/new?" + url.Values{"kind": {"outage"}, "target": {"region:" + region}, "duration": {"1m"}, "plan": {"1"}}.Encode(), `#plan`},
		{"not-found", "/no-such-page", `.error-page`},
	}
	for _, pg := range pages {
		p.do("open the "+pg.name+" page", chromedp.Navigate(d.url+pg.path), chromedp.WaitVisible(pg.ready))
		// Every link of the navigation is on screen, not cut off.
		if out := p.eval(fmt.Sprintf(`[...document.querySelectorAll('.topbar nav a')].filter(a => { const r = a.getBoundingClientRect(); return r.width === 0 || r.left < 0 || r.right > %d; }).map(a => a.textContent).join(', ')`, phoneW)); out != "" {
			t.Errorf("%s page: want every navigation link within the phone's %d px; cut off or hidden: %s", pg.name, phoneW, out)
		}
		p.fits("phone-"+pg.name, phoneW)
		p.legible(pg.name)
	}

	// The drill's recovery chart is drawn, with its labels (checked above
	// with every other drawing's).
	p.do("open the drill's report again", chromedp.Navigate(d.url+"/drills/"+drill), chromedp.WaitVisible(`.chart figcaption`))
	if !p.evalBool(`[...document.querySelectorAll('svg.recovery text')].some(e => e.getClientRects().length > 0)`) {
		t.Errorf("want the drill's recovery chart drawn with labels on the phone; none shows")
	}

	// The keyboard shortcuts dialog fits too (phones have keyboards). Its
	// button works once the page's script runs.
	p.scriptReady()
	p.do("open the shortcuts", chromedp.Click(`[data-open="shortcuts"]`))
	p.waitJS("the shortcuts open", `document.getElementById('shortcuts')?.open === true`)
	p.fits("phone-shortcuts", phoneW)

	// The desktop keeps its layout: the wide chart, with its labels as
	// large as before, and no page scrolling sideways.
	p.do("emulate a desktop", chromedp.EmulateViewport(desktopW, desktopH))
	for _, pg := range pages {
		p.do("open the "+pg.name+" page on a desktop", chromedp.Navigate(d.url+pg.path), chromedp.WaitVisible(pg.ready))
		p.fits("desktop-"+pg.name, desktopW)
	}
	p.do("open the drill's report on a desktop", chromedp.Navigate(d.url+"/drills/"+drill), chromedp.WaitVisible(`svg.recovery.wide`))
	if p.evalBool(`document.querySelector('svg.recovery.narrow').getClientRects().length > 0`) {
		t.Errorf("want only the wide recovery chart shown on a %d px desktop; the narrow one shows too", desktopW)
	}
	got := p.eval(`(() => {
		const e = document.querySelector('svg.recovery.wide text.chart-axis'), m = e.getScreenCTM();
		return (parseFloat(getComputedStyle(e).fontSize) * Math.hypot(m.a, m.b)).toFixed(1);
	})()`)
	if f, err := strconv.ParseFloat(got, 64); err != nil || f < 10 {
		t.Errorf("want the wide chart's axis labels at least 10 CSS px on a %d px desktop, as before; got %s px", desktopW, got)
	}
}

// The desktop the console was designed on, in CSS pixels.
const desktopW, desktopH = 1440, 1000

// fits checks that the page in the tab does not scroll sideways (its
// width is the viewport's, width), naming the elements that stick out
// when it does, and saves a screenshot as <name>.png.
func (b *tab) fits(name string, width int) {
	b.t.Helper()
	b.waitJS(name+" page's fonts loaded", `document.fonts.status === 'loaded'`)
	b.shot(name)
	got := b.eval(fmt.Sprintf(`(() => {
		const w = document.documentElement.scrollWidth, vw = window.innerWidth;
		if (w <= vw && w <= %d) return '';
		const out = [];
		for (const e of document.body.querySelectorAll('*')) {
			const r = e.getBoundingClientRect();
			if (r.right > %d + 0.5 && e.getClientRects().length) {
				let inside = false;
				for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
					const s = getComputedStyle(p);
					if (s.overflowX !== 'visible' && p.getBoundingClientRect().right <= %d + 0.5) { inside = true; break; }
				}
				if (!inside) out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().replace(/\s+/g, '.') : '') + ' right=' + Math.round(r.right));
			}
		}
		return 'scrollWidth ' + w + ', innerWidth ' + vw + '; sticking out: ' + out.slice(0, 12).join(', ');
	})()`, width, width, width))
	if got != "" {
		b.t.Errorf("%s: want the page to fit the viewport's %d px width (no sideways scrolling); %s", name, width, got)
	}
}

// svgText is every text of the page's drawings (the map, the recovery
// chart) that shows, as its size in CSS pixels (the SVG scales to its
// card), a space and the text, a line each.
func (b *tab) svgText() string {
	b.t.Helper()
	return b.eval(`[...document.querySelectorAll('svg text')].filter(e => e.getClientRects().length > 0).map(e => {
		const m = e.getScreenCTM();
		return (parseFloat(getComputedStyle(e).fontSize) * Math.hypot(m.a, m.b)).toFixed(1) + ' ' + e.textContent;
	}).join('\n')`)
}

// legible checks that every text of the page's drawings is at least
// minChartLabelPx, and returns how many there are.
func (b *tab) legible(name string) int {
	b.t.Helper()
	texts := b.svgText()
	if texts == "" {
		return 0
	}
	lines := strings.Split(texts, "\n")
	for _, l := range lines {
		px, label, _ := strings.Cut(l, " ")
		if f, err := strconv.ParseFloat(px, 64); err != nil || f < minChartLabelPx {
			b.t.Errorf("%s page: want the drawing's label %q at least %d CSS px on a %d px wide phone; it is drawn at %s px", name, label, minChartLabelPx, phoneW, px)
		}
	}
	return len(lines)
}
