package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/telemetry"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// navPage is one entry of the navigation: a top-level page, its keyboard
// shortcut (g then key) and the routes it owns. Adding a page is one
// entry here plus its template.
type navPage struct {
	key    string
	path   string
	title  string
	routes []pageRoute
}

// pageRoute is a URL pattern ("/clusters/{name}") and the view that
// answers it.
type pageRoute struct {
	pattern string
	view    viewFunc
}

// navigation lists the console's pages, in the order of the navigation bar.
func navigation() []navPage {
	return []navPage{
		{key: "o", path: "/", title: "Overview", routes: []pageRoute{{"/", overviewView}}},
		{key: "c", path: "/clusters", title: "Clusters", routes: []pageRoute{{"/clusters", clustersView}, {"/clusters/{name}", clusterView}}},
		{key: "w", path: "/workloads", title: "Workloads", routes: []pageRoute{{"/workloads", workloadsView}, {"/workloads/{name}", workloadView}}},
		{key: "d", path: "/drills", title: "Drills", routes: []pageRoute{{"/drills", drillsView}, {"/drills/{name}", drillView}}},
		{key: "s", path: "/secrets", title: "Configs & secrets", routes: []pageRoute{{"/secrets", dataView}, {"/secrets/{name}", dataOneView("Secret")}, {"/configs/{name}", dataOneView("Config")}}},
	}
}

// viewRequest is what a view reads: the page's URL and the signed-in
// session.
type viewRequest struct {
	ctx     context.Context
	path    string
	query   url.Values
	params  map[string]string
	session *session
}

// viewFunc builds a page.
type viewFunc func(c *Console, req viewRequest) (*view, error)

// view is a page ready to render.
type view struct {
	template string // the page's template set
	title    string
	active   string // the navigation entry to highlight
	data     any
	// ticks: the page shows ages, so its live regions are redrawn every
	// second even without changes.
	ticks bool
	// live: the page has regions that live updates redraw.
	live bool
}

// match finds the route for a path, and its parameters.
func match(nav []navPage, p string) (pageRoute, map[string]string, bool) {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	for _, np := range nav {
		for _, rt := range np.routes {
			want := strings.Split(strings.Trim(rt.pattern, "/"), "/")
			if len(want) != len(segs) {
				continue
			}
			params := map[string]string{}
			ok := true
			for i, w := range want {
				if strings.HasPrefix(w, "{") {
					if segs[i] == "" {
						ok = false
						break
					}
					params[strings.Trim(w, "{}")] = segs[i]
				} else if w != segs[i] {
					ok = false
					break
				}
			}
			if ok {
				return rt, params, true
			}
		}
	}
	return pageRoute{}, nil, false
}

// pages are the parsed templates: one set per page, each with the layout.
type pages struct {
	sets    map[string]*template.Template
	regions map[string][]string // per page, its live regions ("live-..." templates)
	nav     []navPage
}

var pageNames = []string{"overview", "clusters", "cluster", "workloads", "workload", "drills", "drill", "drillnew", "rebalance", "services", "service", "data", "signin", "error"}

func mustPages() *pages {
	p := &pages{sets: map[string]*template.Template{}, regions: map[string][]string{}, nav: navigation()}
	for _, name := range pageNames {
		var set *template.Template
		funcs := templateFuncs()
		funcs["live"] = func(id string, data any) (template.HTML, error) {
			html, sum, err := renderRegion(set, id, data)
			if err != nil {
				return "", err
			}
			return template.HTML(`<div id="`+template.HTMLEscapeString(id)+`" class="live" data-live="`+sum+`">`) + html + "</div>", nil
		}
		set = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html"))
		p.sets[name] = set
		for _, t := range set.Templates() {
			if strings.HasPrefix(t.Name(), "live-") {
				p.regions[name] = append(p.regions[name], t.Name())
			}
		}
		slices.Sort(p.regions[name])
	}
	return p
}

// renderRegion renders one live region and a short hash of it.
func renderRegion(set *template.Template, id string, data any) (template.HTML, string, error) {
	var buf bytes.Buffer
	if err := set.ExecuteTemplate(&buf, id, data); err != nil {
		return "", "", err
	}
	h := fnv.New64a()
	h.Write(buf.Bytes())
	return template.HTML(buf.String()), hex.EncodeToString(h.Sum(nil)), nil
}

// pageData is what every page template gets.
type pageData struct {
	Title      string
	Nav        []navLink
	User       Principal
	CanOperate bool
	Theme      string
	Flash      *flash
	LiveURL    string
	Now        time.Time
	Path       string
	Query      url.Values
	View       any
}

type navLink struct {
	Key, Path, Title string
	Active           bool
}

func (c *Console) pageData(r *http.Request, w http.ResponseWriter, title, active string, data any) *pageData {
	pd := &pageData{Title: title, Now: c.now(), Path: r.URL.Path, Query: r.URL.Query(), View: data, Theme: "system"}
	if cookie, err := r.Cookie(themeCookie); err == nil && (cookie.Value == "light" || cookie.Value == "dark") {
		pd.Theme = cookie.Value
	}
	ss := current(r.Context())
	if ss != nil {
		pd.User, pd.CanOperate = ss.principal, canOperate(ss)
		for _, p := range c.pages.nav {
			pd.Nav = append(pd.Nav, navLink{Key: p.key, Path: p.path, Title: p.title, Active: p.title == active})
		}
	}
	if w != nil {
		pd.Flash = takeFlash(w, r)
	}
	return pd
}

// render writes a whole page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	c.renderPage(w, r, status, &view{template: page, title: title, data: data})
}

func (c *Console) renderPage(w http.ResponseWriter, r *http.Request, status int, v *view) {
	pd := c.pageData(r, w, v.title, v.active, v.data)
	if v.live {
		pd.LiveURL = "/live?" + url.Values{"page": {r.URL.RequestURI()}}.Encode()
	}
	var buf bytes.Buffer
	if err := c.pages.sets[v.template].ExecuteTemplate(&buf, "layout", pd); err != nil {
		c.log.ErrorContext(r.Context(), "console: rendering a page failed", "page", v.template, "err", err, "request_id", telemetry.RequestID(r))
		http.Error(w, "internal error; quote request id "+telemetry.RequestID(r), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// page serves one route of the navigation.
func (c *Console) page(rt pageRoute) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		params := map[string]string{}
		if rc := chi.RouteContext(r.Context()); rc != nil {
			for i, k := range rc.URLParams.Keys {
				params[k] = rc.URLParams.Values[i]
			}
		}
		v, err := rt.view(c, viewRequest{ctx: r.Context(), path: r.URL.Path, query: r.URL.Query(), params: params, session: current(r.Context())})
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		c.renderPage(w, r, http.StatusOK, v)
	}
}

// errorView is the error page.
type errorView struct {
	Status    int
	Code      string
	Detail    string
	Errors    []api.ProblemDetail
	RequestID string
	Back      string
}

// fail answers with an error: a page for browsers, problem+json for
// everyone else.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, code, detail string, details []api.ProblemDetail) {
	rid := telemetry.RequestID(r)
	if !wantsHTML(r) {
		writeProblem(w, api.Problem{Type: "https://atoll.dev/problems/" + strings.ToLower(code), Title: http.StatusText(status),
			Status: status, Code: code, Detail: detail, Instance: r.URL.Path, RequestID: rid, Errors: details})
		return
	}
	back := r.Referer()
	if u, err := url.Parse(back); err != nil || u.Host != r.Host {
		back = "/"
	}
	c.render(w, r, status, "error", http.StatusText(status), errorView{Status: status, Code: code, Detail: detail, Errors: details, RequestID: rid, Back: back})
}

func writeProblem(w http.ResponseWriter, p api.Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = jsonEncode(w, p)
}

// failErr answers with a view's error.
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, err error) {
	switch api.ErrorCode(err) {
	case api.CodeNotFound:
		c.fail(w, r, http.StatusNotFound, api.CodeNotFound, err.Error(), nil)
	case api.CodeBadRequest:
		c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, err.Error(), nil)
	case api.CodeInvalid:
		c.fail(w, r, http.StatusUnprocessableEntity, api.CodeInvalid, err.Error(), nil)
	case api.CodeUnavailable:
		c.fail(w, r, http.StatusServiceUnavailable, api.CodeUnavailable, errUnavailable.Error(), nil)
	default:
		c.log.ErrorContext(r.Context(), "console: page failed", "err", err, "request_id", telemetry.RequestID(r))
		c.fail(w, r, http.StatusInternalServerError, api.CodeInternal, "internal error; quote the request id when reporting it", nil)
	}
}

// Static files are served under a content hash, so browsers may keep
// them for good.
var staticHashes = func() map[string]string {
	m := map[string]string{}
	_ = fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := staticFS.ReadFile(p)
		sum := sha256.Sum256(b)
		m[path.Base(p)] = hex.EncodeToString(sum[:6])
		return nil
	})
	return m
}()

// staticPath is the URL of a static file, with its version.
func staticPath(name string) string {
	return "/static/" + name + "?v=" + staticHashes[name]
}

var contentTypes = map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}

func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "file")
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentTypes[path.Ext(name)])
	if r.URL.Query().Get("v") == staticHashes[name] {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(b)
}

func itoa(n int) string { return fmt.Sprint(n) }
