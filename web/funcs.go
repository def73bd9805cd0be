package web

import (
	"encoding/json"
	"html/template"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// stateClass maps a state to the CSS class that colours it. Every state
// is also written out (and has its own icon shape), never shown by
// colour alone.
var stateClass = map[string]string{
	api.HealthReady: "ok", api.HealthSuspect: "warn", api.HealthUnreachable: "crit", api.HealthUnknown: "unknown",
	api.WorkloadHealthy: "ok", api.WorkloadProgressing: "info", api.WorkloadDegraded: "warn", api.WorkloadUnavailable: "crit", api.WorkloadDeleting: "unknown",
	"Cordoned": "info", "Draining": "warn", "Nodes": "warn", "Normal": "neutral", "Warning": "warn", "All": "all",
	api.DrillPending: "unknown", api.DrillRunning: "info", api.DrillRestoring: "info", api.DrillSucceeded: "ok", api.DrillFailed: "crit", api.DrillAborted: "warn",
	api.DrillCompleted: "neutral", api.DrillError: "crit",
	"Passed": "ok", "Met": "ok", "Missed": "crit", "Absorbed": "ok", "Not absorbed": "crit",
	api.RolloutBaking: "info", api.RolloutWaiting: "warn", api.RolloutPaused: "warn", api.RolloutRolledBack: "crit",
	"Moves": "info", "Waits": "warn", "Balanced": "ok",
	"Warm": "ok", "Cold": "warn",
	"ok": "ok", "crit": "crit", "warn": "warn", "info": "info", "unknown": "unknown", "neutral": "neutral",
}

// icons are small shapes that tell states apart without colour: a check
// for good, a triangle for warnings, a cross for failures, a circle for
// unknown, arrows for work in progress.
var icons = map[string]string{
	"ok":      `<path d="M3.5 8.5l3 3 6-7" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/>`,
	"warn":    `<path d="M8 2l6.5 12h-13z" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linejoin="round"/><path d="M8 6.5v3.5M8 12v.3" stroke="currentColor" stroke-width="1.6" stroke-linecap="round"/>`,
	"crit":    `<path d="M4 4l8 8M12 4l-8 8" stroke="currentColor" stroke-width="2.2" stroke-linecap="round"/>`,
	"unknown": `<circle cx="8" cy="8" r="5.5" fill="none" stroke="currentColor" stroke-width="1.6" stroke-dasharray="2.5 2"/>`,
	"info":    `<path d="M3 8a5 5 0 0 1 9-3M13 8a5 5 0 0 1-9 3" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round"/><path d="M12 2v3h-3M4 14v-3h3" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"/>`,
	"all":     `<circle cx="8" cy="8" r="2.5" fill="currentColor"/>`,
	"neutral": `<circle cx="8" cy="8" r="2.5" fill="currentColor"/>`,
}

func classOf(state string) string {
	if c, ok := stateClass[state]; ok {
		return c
	}
	return "unknown"
}

func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"cls": classOf,
		"icon": func(state string) template.HTML {
			return template.HTML(`<svg class="icon" viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" focusable="false">` + icons[classOf(state)] + `</svg>`)
		},
		"static": staticPath,
		"when": func(t *time.Time) string {
			if t == nil || t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ago": func(t *time.Time, now time.Time) string {
			if t == nil || t.IsZero() {
				return "—"
			}
			return ageText(now.Sub(*t)) + " ago"
		},
		"mul100": func(f float64) float64 { return 100 * f },
		"num":    func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
		// percentText is a ratio (0..1) as a percent, one decimal.
		"percentText": func(r float64) string { return strconv.FormatFloat(r*100, 'f', 1, 64) + "%" },
		"ratio": func(a, b int32) float64 {
			if b <= 0 {
				if a > 0 {
					return 100
				}
				return 0
			}
			return min(100, float64(a)*100/float64(b))
		},
		"add": func(a, b int) int { return a + b },
		// condClass colours a condition by what its status means: True is
		// good for Ready, Available and Placed, bad for Unsatisfiable.
		"condClass": func(typ, status string) string {
			good, bad := "True", "False"
			switch typ {
			case "Ready", "Available", "Placed":
			case "Unsatisfiable":
				good, bad = "False", "True"
			default:
				return "neutral"
			}
			switch status {
			case good:
				return "ok"
			case bad:
				return "crit"
			}
			return "unknown"
		},
		"path":  url.PathEscape,
		"join":  strings.Join,
		"lower": strings.ToLower,
		"dataTable": func(title, path string, rows []dataRow) map[string]any {
			return map[string]any{"Title": title, "Path": path, "Rows": rows}
		},
		"upper1": upper1,
		"canOperate": func(pd *pageData) bool {
			return pd != nil && pd.CanOperate
		},
		"div40": func(pct float64) string { return strconv.FormatFloat(pct*0.4, 'f', 1, 64) },
		"add16": func(f float64) float64 { return f + 16 },
		"pct64": func(a, b int64) string { return strconv.FormatFloat(pct(a, b), 'f', 1, 64) },
		// stackX and stackW lay counts out as one stacked bar of width 100.
		"stackX": func(items []countItem, state string) string {
			total, before := 0, 0
			seen := false
			for _, it := range items {
				total += it.N
				if it.State == state {
					seen = true
				}
				if !seen {
					before += it.N
				}
			}
			return strconv.FormatFloat(pct(int64(before), int64(total)), 'f', 1, 64)
		},
		"stackW": func(items []countItem, state string) string {
			total, n := 0, 0
			for _, it := range items {
				total += it.N
				if it.State == state {
					n = it.N
				}
			}
			return strconv.FormatFloat(pct(int64(n), int64(total)), 'f', 1, 64)
		},
		"graticuleX": func() []int { return []int{125, 250, 375, 500, 625, 750, 875} },
		"graticuleY": func() []int { return []int{70, 130, 190, 310, 370, 430} },
		"drillField": drillField,
		"searchForm": func(action, what string, p listParams) searchForm {
			return searchForm{Action: action, What: what, By: "name or label", listParams: p}
		},
		"searchFormBy": func(action, what, by string, p listParams) searchForm {
			return searchForm{Action: action, What: what, By: by, listParams: p}
		},
	}
}

// searchForm is the search box of a list page.
type searchForm struct {
	Action, What, By string
	listParams
}

// upper1 capitalises the first letter.
func upper1(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func jsonEncode(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
