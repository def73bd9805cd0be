package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/telemetry"
)

// Every change the console makes is an ordinary API request, made in
// process with the signed-in token: the API validates it, checks the
// token's role, writes the audit row (actor: the token; request id: the
// console request's), and refuses what it refuses for the CLI. The
// console adds no path of its own to the store.

// apiAnswer is what the API said.
type apiAnswer struct {
	status int
	body   []byte
}

func (a apiAnswer) ok() bool { return a.status >= 200 && a.status < 300 }

// problem decodes the API's error answer.
func (a apiAnswer) problem() api.Problem {
	var p api.Problem
	if json.Unmarshal(a.body, &p) != nil || p.Status == 0 {
		p = api.Problem{Status: a.status, Code: api.CodeInternal, Detail: http.StatusText(a.status)}
	}
	return p
}

// callAPI sends one request to the hub's API as the session's token.
func (c *Console) callAPI(r *http.Request, ss *session, method, path string, body any) apiAnswer {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := c.apiRequest(r, ss, method, path, rd)
	if err != nil {
		return apiAnswer{status: http.StatusInternalServerError}
	}
	switch {
	case body != nil && method == http.MethodPatch:
		req.Header.Set("Content-Type", "application/merge-patch+json")
	case body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
	c.cfg.API.ServeHTTP(rec, req)
	return apiAnswer{status: rec.status, body: rec.body.Bytes()}
}

// apiRequest is a request to the hub's API, in process, on behalf of the
// console request r, as the session's token.
func (c *Console) apiRequest(r *http.Request, ss *session, method, path string, body io.Reader) (*http.Request, error) {
	// A fresh routing context: the API's router must route this request
	// from the top, not as a sub-router of the console's.
	ctx := context.WithValue(r.Context(), chi.RouteCtxKey, nil)
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	req.Host, req.RemoteAddr, req.TLS = r.Host, r.RemoteAddr, r.TLS
	req.Header.Set("Authorization", "Bearer "+ss.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "atoll-console")
	if id := telemetry.RequestID(r); id != "" {
		req.Header.Set("X-Request-ID", id) // the audit row carries the console request's id
	}
	c.cfg.Telemetry.Propagator.Inject(r.Context(), propagation.HeaderCarrier(req.Header))
	return req, nil
}

// bufferedResponse keeps an in-process API answer.
type bufferedResponse struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}

// metricAttrs are the attributes of the console.actions counter.
func metricAttrs(action string, status int) metric.AddOption {
	return metric.WithAttributes(attribute.String("action", action), attribute.String("http.response.status_code", strconv.Itoa(status)))
}

// action is a console change.
type action struct {
	name     string // for metrics and spans
	kind     string // Cluster or Workload
	object   string
	done     string // what the flash says on success
	redirect string
}

// respond answers a change: back to the page with a note on success;
// the API's refusal otherwise (as a page for browsers, as the API's own
// problem+json for others).
func (c *Console) respond(w http.ResponseWriter, r *http.Request, a action, ans apiAnswer) {
	c.noteAction(r, a, ans)
	if ans.ok() {
		if !wantsHTML(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ans.status)
			_, _ = w.Write(ans.body)
			return
		}
		// Draw the next page from a cache that has the change.
		var obj struct {
			Metadata api.ObjectMeta `json:"metadata"`
		}
		if json.Unmarshal(ans.body, &obj) == nil {
			if rv, err := strconv.ParseInt(obj.Metadata.ResourceVersion, 10, 64); err == nil {
				ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
				c.fleet.caughtUp(ctx, a.kind, rv)
				cancel()
			}
		}
		setFlash(w, r, flash{Kind: "ok", Text: a.done})
		http.Redirect(w, r, a.redirect, http.StatusSeeOther)
		return
	}
	p := ans.problem()
	c.fail(w, r, p.Status, p.Code, p.Detail, p.Errors)
}

// readForm reads a small form body.
func (c *Console) readForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "the form could not be read: "+err.Error(), nil)
		return false
	}
	return true
}

type clusterAct string

const (
	actCordon   clusterAct = "cordon"
	actUncordon clusterAct = "uncordon"
	actDrain    clusterAct = "drain"
	actTaint    clusterAct = "taint"
	actUntaint  clusterAct = "untaint"
)

// clusterAction cordons, uncordons, drains or taints a cluster with a
// merge patch. Edits of the taint list carry the resourceVersion they
// were made from, so two operators cannot silently undo each other.
func (c *Console) clusterAction(act clusterAct) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		if !c.readForm(w, r) {
			return
		}
		if act == actDrain {
			if got := r.PostForm.Get("confirm"); got != name {
				c.fail(w, r, http.StatusUnprocessableEntity, api.CodeInvalid, "Draining moves every replica off the cluster: type its name to confirm.",
					[]api.ProblemDetail{{Location: "form.confirm", Message: fmt.Sprintf("must be the cluster's name, %q", name), Value: got}})
				return
			}
		}
		ss := current(r.Context())
		path := "/api/v1/clusters/" + url.PathEscape(name)
		patchPath := path
		if act == actDrain && r.PostForm.Get("force") == "on" {
			// The hub refuses a drain that leaves a workload with no
			// replica anywhere or below its budget, unless forced.
			patchPath += "?force=true"
		}
		a := action{name: "cluster." + string(act), kind: "Cluster", object: name, redirect: "/clusters/" + url.PathEscape(name)}
		// A status write between the read and the patch (the hub writes
		// a busy cluster's capacity every few seconds) moves the version
		// the patch is made from: read again and make it anew, a few
		// times. The patch is made from the newest spec each time, so
		// another operator's change is kept, never undone. A cordon is
		// not versioned: it reads nothing.
		for try := 1; ; try++ {
			var cur api.Cluster
			if act != actCordon {
				got := c.callAPI(r, ss, http.MethodGet, path, nil)
				if !got.ok() {
					c.respond(w, r, a, got)
					return
				}
				if err := json.Unmarshal(got.body, &cur); err != nil {
					c.fail(w, r, http.StatusInternalServerError, api.CodeInternal, "the cluster could not be read", nil)
					return
				}
			}
			patch, done, refused := clusterPatch(act, name, cur, r.PostForm)
			if refused != "" {
				c.fail(w, r, http.StatusConflict, api.CodeConflict, refused, nil)
				return
			}
			a.done = done
			ans := c.callAPI(r, ss, http.MethodPatch, patchPath, patch)
			if ans.status == http.StatusConflict && act != actCordon && try < 3 {
				continue
			}
			c.respond(w, r, a, ans)
			return
		}
	}
}

// clusterPatch is the merge patch an action makes of the cluster as read
// (cur; the zero Cluster for a cordon), what to tell the operator once it
// is done, or why it cannot be made (refused).
func clusterPatch(act clusterAct, name string, cur api.Cluster, form url.Values) (patch map[string]any, done, refused string) {
	versioned := func(spec map[string]any) map[string]any {
		return map[string]any{"metadata": map[string]any{"resourceVersion": cur.Metadata.ResourceVersion}, "spec": spec}
	}
	withoutDrain := slices.DeleteFunc(slices.Clone(cur.Spec.Taints), func(t api.Taint) bool { return t.Key == api.DrainTaintKey })
	switch act {
	case actCordon:
		return map[string]any{"spec": map[string]any{"unschedulable": true}}, fmt.Sprintf("Cordoned %s: it takes no new replicas; what runs there stays.", name), ""
	case actUncordon:
		done = fmt.Sprintf("Uncordoned %s: it takes new replicas again.", name)
		if cur.Draining() {
			done = fmt.Sprintf("Uncordoned %s and ended its drain.", name)
		}
		return versioned(map[string]any{"unschedulable": nil, "taints": orEmpty(withoutDrain)}), done, ""
	case actDrain:
		drainTaint := api.Taint{Key: api.DrainTaintKey, Value: "console", Effect: "NoExecute"}
		return versioned(map[string]any{"unschedulable": true, "taints": append(withoutDrain, drainTaint)}),
			fmt.Sprintf("Draining %s: cordoned, and its replicas move to other clusters.", name), ""
	case actTaint:
		t := api.Taint{Key: strings.TrimSpace(form.Get("key")), Value: strings.TrimSpace(form.Get("value")), Effect: form.Get("effect")}
		taints := slices.DeleteFunc(slices.Clone(cur.Spec.Taints), func(x api.Taint) bool { return x.Key == t.Key && x.Effect == t.Effect })
		return versioned(map[string]any{"taints": append(taints, t)}), fmt.Sprintf("Tainted %s with %s.", name, t), ""
	case actUntaint:
		key, effect := form.Get("key"), form.Get("effect")
		taints := slices.DeleteFunc(slices.Clone(cur.Spec.Taints), func(x api.Taint) bool { return x.Key == key && x.Effect == effect })
		if len(taints) == len(cur.Spec.Taints) {
			return nil, "", fmt.Sprintf("%s has no taint %s:%s (someone may have removed it).", name, key, effect)
		}
		return versioned(map[string]any{"taints": orEmpty(taints)}), fmt.Sprintf("Removed the taint %s:%s from %s.", key, effect, name), ""
	}
	return nil, "", fmt.Sprintf("no such action: %s", act)
}

func orEmpty(ts []api.Taint) []api.Taint {
	if ts == nil {
		return []api.Taint{}
	}
	return ts
}

// scale sets a workload's replicas.
func (c *Console) scale(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if !c.readForm(w, r) {
		return
	}
	a := action{name: "workload.scale", kind: "Workload", object: name, redirect: "/workloads/" + url.PathEscape(name)}
	raw := strings.TrimSpace(r.PostForm.Get("replicas"))
	n, err := strconv.ParseInt(raw, 10, 32)
	if err != nil {
		c.fail(w, r, http.StatusUnprocessableEntity, api.CodeInvalid, "The replica count must be a whole number.",
			[]api.ProblemDetail{{Location: "form.replicas", Message: "must be a whole number", Value: raw}})
		return
	}
	a.done = fmt.Sprintf("Scaled %s to %d replicas.", name, n)
	c.respond(w, r, a, c.callAPI(r, current(r.Context()), http.MethodPatch, "/api/v1/workloads/"+url.PathEscape(name),
		map[string]any{"spec": map[string]any{"replicas": n}}))
}
