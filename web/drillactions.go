package web

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// Starting and aborting drills. The new-drill form plans with GET (the
// dry run changes nothing, and the form stays in the address), runs with
// a POST that carries the typed name of the target, and both go to the
// hub's API with the signed-in token, like every other change: the API
// checks the role (operator), refuses what it refuses for the CLI
// (a target that does not exist, a load the rest cannot absorb, a target
// another drill holds) and writes the audit row. A refusal comes back to
// the form with each reason next to its field, and the plan the API
// refused with.

// drillForm is the new-drill form as submitted.
type drillForm struct {
	Name            string
	Kind            string
	Target          string // "region:NAME" or "cluster:NAME"
	Duration        string
	FailbackTimeout string
	MaxRTO          string
	MaxUnavailable  string
	Force           bool
	Confirm         string
	// The probe: real requests to a service through the hub's entry
	// points while the drill runs, and the objectives on them.
	ProbeService      string
	ProbeRate         string
	ProbeThrough      []string
	MaxFailedRequests string
	MinSuccessRatio   string
}

func readDrillForm(v url.Values) drillForm {
	get := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	f := drillForm{Name: get("name"), Kind: get("kind"), Target: get("target"), Duration: get("duration"), FailbackTimeout: get("failbackTimeout"),
		MaxRTO: get("maxRTO"), MaxUnavailable: get("maxUnavailable"), Force: v.Get("force") != "", Confirm: get("confirm"),
		ProbeService: get("probeService"), ProbeRate: get("probeRate"), MaxFailedRequests: get("maxFailedRequests"), MinSuccessRatio: get("minSuccessRatio")}
	for _, t := range v["probeThrough"] {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(f.ProbeThrough, t) && len(f.ProbeThrough) < 64 {
			f.ProbeThrough = append(f.ProbeThrough, t)
		}
	}
	return f
}

// target is the form's target.
func (f drillForm) target() api.DrillTarget {
	switch kind, name, _ := strings.Cut(f.Target, ":"); kind {
	case "region":
		return api.DrillTarget{Region: name}
	case "cluster":
		return api.DrillTarget{Cluster: name}
	}
	return api.DrillTarget{}
}

// spec is the drill the form describes; what the API could not be sent
// comes back as problems of the form's fields. Everything else (durations,
// names) is the API's to validate.
func (f drillForm) spec() (api.DrillSpec, []api.ProblemDetail) {
	var bad []api.ProblemDetail
	spec := api.DrillSpec{Kind: f.Kind, Target: f.target(), Duration: api.Duration(f.Duration), FailbackTimeout: api.Duration(f.FailbackTimeout), Force: f.Force}
	if spec.Kind == "" {
		bad = append(bad, api.ProblemDetail{Location: "form.kind", Message: "choose evacuate, outage or partition"})
	}
	if targetName(spec.Target) == "" {
		bad = append(bad, api.ProblemDetail{Location: "form.target", Message: "choose a region or a cluster", Value: f.Target})
	}
	if f.MaxRTO != "" || f.MaxUnavailable != "" || f.MaxFailedRequests != "" || f.MinSuccessRatio != "" {
		spec.SLO = &api.DrillSLO{MaxRTO: api.Duration(f.MaxRTO)}
		if f.MaxUnavailable != "" {
			n, err := strconv.ParseInt(f.MaxUnavailable, 10, 32)
			if err != nil {
				bad = append(bad, api.ProblemDetail{Location: "form.maxUnavailable", Message: "must be a whole number", Value: f.MaxUnavailable})
			} else {
				m := int32(n)
				spec.SLO.MaxUnavailableReplicas = &m
			}
		}
		if f.MaxFailedRequests != "" {
			n, err := strconv.ParseInt(f.MaxFailedRequests, 10, 64)
			if err != nil {
				bad = append(bad, api.ProblemDetail{Location: "form.maxFailedRequests", Message: "must be a whole number", Value: f.MaxFailedRequests})
			} else {
				spec.SLO.MaxFailedRequests = &n
			}
		}
		if f.MinSuccessRatio != "" {
			if r, ok := parseRatio(f.MinSuccessRatio); ok {
				spec.SLO.MinSuccessRatio = &r
			} else {
				bad = append(bad, api.ProblemDetail{Location: "form.minSuccessRatio", Message: "must be a share such as 0.999 or 99.9%", Value: f.MinSuccessRatio})
			}
		}
	}
	switch {
	case f.ProbeService != "":
		spec.Probe = &api.DrillProbe{Service: f.ProbeService, Through: f.ProbeThrough}
		switch n, err := strconv.ParseInt(f.ProbeRate, 10, 32); {
		case f.ProbeRate == "":
			bad = append(bad, api.ProblemDetail{Location: "form.probeRate", Message: "give the requests per second to send through each entry point"})
		case err != nil:
			bad = append(bad, api.ProblemDetail{Location: "form.probeRate", Message: "must be a whole number of requests per second", Value: f.ProbeRate})
		default:
			spec.Probe.Rate = int32(n)
		}
		if len(f.ProbeThrough) == 0 {
			bad = append(bad, api.ProblemDetail{Location: "form.probeThrough", Message: "choose at least one entry point to send through"})
		}
	case f.ProbeRate != "" || len(f.ProbeThrough) > 0:
		bad = append(bad, api.ProblemDetail{Location: "form.probeService", Message: "choose the service to probe, or clear the probe's rate and entry points"})
	}
	return spec, bad
}

// parseRatio reads a share as 0.999 or 99.9%.
func parseRatio(s string) (float64, bool) {
	pct := strings.HasSuffix(s, "%")
	r, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil || math.IsNaN(r) || math.IsInf(r, 0) {
		return 0, false
	}
	if pct {
		r = math.Round(r*1e7) / 1e9 // 99.9% is 0.999, not 0.9990000000000001
	}
	return r, true
}

// formFields maps the API's field paths (of a plan's spec, or of a
// drill) to the form's fields.
var formFields = map[string]string{
	"kind": "kind", "target": "target", "target.cluster": "target", "target.region": "target",
	"duration": "duration", "failbackTimeout": "failbackTimeout", "slo.maxRTO": "maxRTO",
	"slo.maxUnavailableReplicas": "maxUnavailable", "slo": "maxRTO", "force": "force", "metadata.name": "name",
	"slo.maxFailedRequests": "maxFailedRequests", "slo.minSuccessRatio": "minSuccessRatio",
	"probe": "probeService", "probe.service": "probeService", "probe.rate": "probeRate", "probe.through": "probeThrough",
	"probe.path": "probeService", "probe.baseline": "probeService",
}

func formField(location string) string {
	if f, ok := strings.CutPrefix(location, "form."); ok {
		return f
	}
	loc := strings.TrimPrefix(location, "body.")
	if i := strings.IndexByte(loc, '['); i > 0 {
		loc = loc[:i] // probe.through[1]: the field of the list
	}
	if f, ok := formFields[strings.TrimPrefix(loc, "spec.")]; ok {
		return f
	}
	return formFields[loc]
}

// drillFormPage is the new-drill page.
type drillFormPage struct {
	CanOperate   bool
	Loaded       bool
	Form         drillForm
	Kinds        []kindOption
	Regions      []targetOption
	Clusters     []targetOption
	Services     []targetOption      // to probe
	EntryPoints  []targetOption      // the hub's, to probe through
	Errors       map[string]string   // form field -> what is wrong
	Problem      *api.Problem        // the refusal, when there was one
	Headline     string              // what the refusal means
	Detail       string              // its reason, unless the fields say it all
	Other        []api.ProblemDetail // its reasons that no field shows
	Plan         *planView
	PlanKind     string
	PlanKindText string
	PlanTarget   string
	Confirm      string // the target's name, typed to run
	RunBlocked   string // why the plan offers no Run
}

type kindOption struct {
	Value, Title, Text string
	Checked            bool
}

type targetOption struct {
	Value, Label string
	Selected     bool
}

func (c *Console) newDrillForm(ctx context.Context, f drillForm, operate bool) drillFormPage {
	if f.Kind == "" {
		f.Kind = api.DrillEvacuate
	}
	d := drillFormPage{CanOperate: operate, Form: f, Errors: map[string]string{}}
	for _, k := range []string{api.DrillEvacuate, api.DrillOutage, api.DrillPartition} {
		d.Kinds = append(d.Kinds, kindOption{Value: k, Title: upper1(k), Text: kindTexts[k], Checked: k == f.Kind})
	}
	s := c.fleet.snapshot()
	d.Loaded = s.Loaded
	for _, g := range groupRegions(s.Clusters) {
		v := "region:" + g.Name
		d.Regions = append(d.Regions, targetOption{Value: v, Selected: v == f.Target,
			Label: fmt.Sprintf("%s — %s, %d Ready", g.Name, plural(len(g.Clusters), "cluster"), g.Ready)})
		for _, cl := range g.Clusters {
			v := "cluster:" + cl.Name
			d.Clusters = append(d.Clusters, targetOption{Value: v, Selected: v == f.Target, Label: fmt.Sprintf("%s (%s) — %s", cl.Name, cl.Region, cl.Health)})
		}
	}
	if operate {
		d.Services = c.probeServices(ctx, f.ProbeService)
		for _, e := range c.cfg.ProbeEntryPoints {
			d.EntryPoints = append(d.EntryPoints, targetOption{Value: e, Label: e, Selected: slices.Contains(f.ProbeThrough, e)})
		}
	}
	return d
}

// probeServices are the services a drill may probe, the form's choice
// among them (kept when it is no longer listed: the API judges it).
func (c *Console) probeServices(ctx context.Context, chosen string) []targetOption {
	var out []targetOption
	if c.cfg.Store != nil {
		if res, err := c.cfg.Store.List(ctx, "Service", pgstore.ListOptions{Limit: -1}); err == nil {
			for _, rec := range res.Items {
				out = append(out, targetOption{Value: rec.Meta.Name, Label: rec.Meta.Name, Selected: rec.Meta.Name == chosen})
			}
		}
	}
	if chosen != "" && !slices.ContainsFunc(out, func(o targetOption) bool { return o.Selected }) {
		out = append(out, targetOption{Value: chosen, Label: chosen, Selected: true})
	}
	slices.SortFunc(out, func(a, b targetOption) int { return strings.Compare(a.Value, b.Value) })
	return out
}

// drillFieldData is one text field of the form.
type drillFieldData struct {
	Name, Label, Placeholder, Hint, Value string
	Page                                  drillFormPage
}

// drillField is the template's view of one text field.
func drillField(name, label, placeholder, hint string, page drillFormPage) drillFieldData {
	values := map[string]string{"duration": page.Form.Duration, "failbackTimeout": page.Form.FailbackTimeout, "maxRTO": page.Form.MaxRTO,
		"maxUnavailable": page.Form.MaxUnavailable, "name": page.Form.Name, "probeRate": page.Form.ProbeRate,
		"maxFailedRequests": page.Form.MaxFailedRequests, "minSuccessRatio": page.Form.MinSuccessRatio}
	return drillFieldData{Name: name, Label: label, Placeholder: placeholder, Hint: hint, Value: values[name], Page: page}
}

// refused records the API's (or the form's) refusal on the page.
func (d *drillFormPage) refused(headline string, p api.Problem) {
	d.Problem, d.Headline = &p, headline
	if !strings.EqualFold(p.Detail, "validation failed") {
		d.Detail = upper1(p.Detail)
	}
	for _, e := range p.Errors {
		if f := formField(e.Location); f != "" {
			if d.Errors[f] == "" {
				d.Errors[f] = e.Message
			}
			continue
		}
		d.Other = append(d.Other, e)
	}
}

// drillProblem is the API's refusal of a drill, with its plan.
type drillProblem struct {
	api.Problem
	Plan *api.DrillPlan `json:"plan,omitempty"`
}

func decodeDrillProblem(a apiAnswer) drillProblem {
	var p drillProblem
	if json.Unmarshal(a.body, &p) != nil || p.Status == 0 {
		p = drillProblem{Problem: a.problem()}
	}
	return p
}

// showPlan puts a plan on the page, with what its Run needs.
func (d *drillFormPage) showPlan(spec api.DrillSpec, p *api.DrillPlan) {
	if p == nil || len(p.Targets) == 0 {
		return
	}
	d.Plan, d.PlanKind, d.PlanKindText = newPlanView(p), spec.Kind, kindTexts[spec.Kind]
	d.PlanTarget, d.Confirm = spec.Target.String(), targetName(spec.Target)
	if !p.Absorbed && !spec.Force {
		d.RunBlocked = "The remaining clusters cannot absorb the load, so the hub refuses this drill. Tick “Force” and plan again to run it anyway."
	}
}

// newDrill serves the new-drill form and, with plan=1, its dry run.
func (c *Console) newDrill(w http.ResponseWriter, r *http.Request) {
	ss := current(r.Context())
	q := r.URL.Query()
	d := c.newDrillForm(r.Context(), readDrillForm(q), canOperate(ss))
	status := http.StatusOK
	if q.Get("plan") != "" && d.CanOperate {
		status = c.planDrill(r, &d)
	}
	c.renderPage(w, r, status, &view{template: "drillnew", title: "New drill · Drills", active: "Drills", data: d})
}

// planDrill asks the API for the form's dry run; it returns the page's
// status.
func (c *Console) planDrill(r *http.Request, d *drillFormPage) int {
	spec, bad := d.Form.spec()
	if bad != nil {
		d.refused("The form is not complete.", api.Problem{Status: http.StatusUnprocessableEntity, Code: api.CodeInvalid, Errors: bad})
		return http.StatusUnprocessableEntity
	}
	ans := c.callAPI(r, current(r.Context()), http.MethodPost, "/api/v1/drills/plan", spec)
	c.noteAction(r, action{name: "drill.plan", kind: "Drill", object: spec.Target.String()}, ans)
	if !ans.ok() {
		p := decodeDrillProblem(ans)
		d.refused("The hub did not plan this drill.", p.Problem)
		d.showPlan(spec, p.Plan)
		return p.Status
	}
	var plan api.DrillPlan
	if err := json.Unmarshal(ans.body, &plan); err != nil {
		d.refused("The hub's plan could not be read.", api.Problem{Status: http.StatusInternalServerError, Code: api.CodeInternal})
		return http.StatusInternalServerError
	}
	d.showPlan(spec, &plan)
	return http.StatusOK
}

// createDrill starts a drill: the typed name must be the target's, then
// the API decides.
func (c *Console) createDrill(w http.ResponseWriter, r *http.Request) {
	if !c.readForm(w, r) {
		return
	}
	ss := current(r.Context())
	f := readDrillForm(r.PostForm)
	spec, bad := f.spec()
	if bad != nil {
		c.drillRefused(w, r, f, spec, "The drill was not started: the form is not complete.",
			drillProblem{Problem: api.Problem{Status: http.StatusUnprocessableEntity, Code: api.CodeInvalid, Detail: "the form is not complete", Errors: bad}})
		return
	}
	if f.Confirm != targetName(spec.Target) {
		bad := []api.ProblemDetail{{Location: "form.confirm", Message: fmt.Sprintf("must be the target's name, %q", targetName(spec.Target)), Value: f.Confirm}}
		detail := "A drill puts a real fault on its targets: type the target's name to confirm."
		if !wantsHTML(r) {
			c.fail(w, r, http.StatusUnprocessableEntity, api.CodeInvalid, detail, bad)
			return
		}
		// The plan again, with its Run, and why the run did not start.
		d := c.newDrillForm(r.Context(), f, canOperate(ss))
		d.Form.Confirm = ""
		c.planDrill(r, &d)
		d.refused("The drill was not started.", api.Problem{Status: http.StatusUnprocessableEntity, Code: api.CodeInvalid, Detail: detail, Errors: bad})
		c.renderPage(w, r, http.StatusUnprocessableEntity, &view{template: "drillnew", title: "New drill · Drills", active: "Drills", data: d})
		return
	}
	name := f.Name
	if name == "" {
		name = api.DefaultDrillName(spec.Kind, targetName(spec.Target), c.now())
	}
	a := action{name: "drill.create", kind: "Drill", object: name, redirect: drillLink(name),
		done: fmt.Sprintf("Started drill %s: %s of %s for %s.", name, spec.Kind, spec.Target.String(), spec.DurationOrDefault())}
	dr := api.Drill{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Drill"}, Metadata: api.ObjectMeta{Name: name}, Spec: spec}
	ans := c.callAPI(r, ss, http.MethodPost, "/api/v1/drills", dr)
	switch ans.status {
	case http.StatusUnprocessableEntity, http.StatusConflict, http.StatusBadRequest:
		if wantsHTML(r) {
			// Refused for what the drill is: back to the form, with why.
			c.noteAction(r, a, ans)
			c.drillRefused(w, r, f, spec, "The hub refused to start this drill.", decodeDrillProblem(ans))
			return
		}
	}
	c.respond(w, r, a, ans)
}

// drillRefused shows the form again with the refusal (problem+json for
// clients that are not browsers).
func (c *Console) drillRefused(w http.ResponseWriter, r *http.Request, f drillForm, spec api.DrillSpec, headline string, p drillProblem) {
	if !wantsHTML(r) {
		c.fail(w, r, p.Status, p.Code, p.Detail, p.Errors)
		return
	}
	f.Confirm = ""
	d := c.newDrillForm(r.Context(), f, canOperate(current(r.Context())))
	d.refused(headline, p.Problem)
	d.showPlan(spec, p.Plan)
	c.renderPage(w, r, p.Status, &view{template: "drillnew", title: "New drill · Drills", active: "Drills", data: d})
}

// abortDrill asks the API to restore a drill's targets at once.
func (c *Console) abortDrill(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if !c.readForm(w, r) {
		return
	}
	a := action{name: "drill.abort", kind: "Drill", object: name, redirect: drillLink(name),
		done: fmt.Sprintf("Abort requested: %s's targets are being restored.", name)}
	c.respond(w, r, a, c.callAPI(r, current(r.Context()), http.MethodPost, "/api/v1/drills/"+url.PathEscape(name)+"/abort", nil))
}

// noteAction counts a change asked for from the console and names it on
// the request's span.
func (c *Console) noteAction(r *http.Request, a action, ans apiAnswer) {
	c.metrics.actions.Add(r.Context(), 1, metricAttrs(a.name, ans.status))
	trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("atoll.console.action", a.name), attribute.String("atoll.object", a.kind+"/"+a.object))
}
