package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// TestDrillPages plans, starts and aborts a drill from the console
// (an evacuate drill: this hub runs without NATS), as an operator, and
// checks that a viewer sees no button to start or abort one and that
// the API refuses the viewer when it posts anyway.
func TestDrillPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cluster("eu-west-1", "eu-west")
	e.cluster("us-east-1", "us-east")
	viewer, operator := e.browser(), e.browser()
	viewer.signIn(e.token("vic", api.RoleViewer))
	operator.signIn(e.token("olga", api.RoleOperator))
	// The pages read the console's cache, which follows the store: wait
	// until it has loaded and holds both clusters.
	operator.waitPage("/drills/new", "the new-drill form listing both clusters, the cache loaded", func(a answer) bool {
		return a.status == http.StatusOK && !strings.Contains(a.body, "Loading the clusters") &&
			strings.Contains(a.body, `<option value="cluster:eu-west-1"`) && strings.Contains(a.body, `<option value="cluster:us-east-1"`)
	})

	run := url.Values{"kind": {api.DrillEvacuate}, "target": {"cluster:eu-west-1"}, "duration": {"10m"}, "failbackTimeout": {"1s"},
		"maxRTO": {"30s"}, "maxUnavailable": {"0"}, "name": {"evac-1"}, "confirm": {"eu-west-1"}}

	// A viewer: no way to start or abort, on any page, and refused anyway.
	if a := viewer.get("/drills"); a.status != http.StatusOK || strings.Contains(a.body, `data-action="new-drill"`) || !strings.Contains(a.body, "No drills yet") {
		t.Errorf("want the drills page for a viewer, empty, without a New drill button; got %d: %.300s", a.status, a.body)
	}
	if a := viewer.get("/drills/new?kind=evacuate&target=cluster:eu-west-1&plan=1"); a.status != http.StatusOK ||
		strings.Contains(a.body, `data-action="plan"`) || strings.Contains(a.body, `data-action="run"`) || !strings.Contains(a.body, "needs the operator role") {
		t.Errorf("want the new-drill page to tell a viewer it needs the operator role, with no Plan or Run; got %d", a.status)
	}
	if a := viewer.post("/drills", run); a.status != http.StatusForbidden || !strings.Contains(a.body, "role viewer may not do this") {
		t.Errorf("want a viewer's drill refused by the API with 403; got %d: %.300s", a.status, a.body)
	}
	a := viewer.do(http.MethodPost, "/drills", run, map[string]string{"Accept": "application/json"})
	var p api.Problem
	if a.status != http.StatusForbidden || a.header.Get("Content-Type") != "application/problem+json" || json.Unmarshal([]byte(a.body), &p) != nil || p.Code != api.CodeForbidden {
		t.Errorf("want a viewer's drill refused with 403 problem+json for an API client; got %d %q: %s", a.status, a.header.Get("Content-Type"), a.body)
	}
	var drills api.DrillList
	if err := e.admin.List(context.Background(), "drills", client.ListOptions{}, &drills); err != nil || len(drills.Items) != 0 {
		t.Fatalf("want no drill after a viewer's attempts; got %d (%v)", len(drills.Items), err)
	}

	// An operator plans: the plan, and a Run that asks for the target's name.
	a = operator.get("/drills/new?kind=evacuate&target=cluster%3Aeu-west-1&duration=10m&plan=1")
	for _, want := range []string{"Plan: evacuate of cluster eu-west-1", `data-absorbed="true"`, `data-plan-cluster="eu-west-1"`, `data-action="run"`, `data-must-equal="eu-west-1"`,
		`<option value="region:us-east"`, `<option value="cluster:eu-west-1" selected>`} {
		if a.status != http.StatusOK || !strings.Contains(a.body, want) {
			t.Errorf("want the operator's plan page (200) to show %s; got %d", want, a.status)
		}
	}
	// Refusals read next to their fields: the API's and the form's own.
	for _, tc := range []struct {
		query, field, want string
		status             int
	}{
		{"kind=evacuate&target=cluster%3Anope&plan=1", "target", "no such cluster", http.StatusUnprocessableEntity},
		{"kind=evacuate&target=cluster%3Aeu-west-1&duration=soon&plan=1", "duration", "not a duration", http.StatusUnprocessableEntity},
		{"kind=evacuate&plan=1", "target", "choose a region or a cluster", http.StatusUnprocessableEntity},
		{"kind=evacuate&target=region%3Aeu-west&maxUnavailable=two&plan=1", "maxUnavailable", "must be a whole number", http.StatusUnprocessableEntity},
		{"kind=evacuate&target=region%3Aeu-west&probeRate=10&plan=1", "probeService", "choose the service to probe", http.StatusUnprocessableEntity},
		{"kind=evacuate&target=region%3Aeu-west&minSuccessRatio=most&plan=1", "minSuccessRatio", "must be a share", http.StatusUnprocessableEntity},
		// The API's: no such service, and this hub knows no entry points.
		{"kind=evacuate&target=region%3Aeu-west&probeService=ghost&probeRate=10&probeThrough=global&plan=1", "probeService", "no service named ghost", http.StatusUnprocessableEntity},
		{"kind=evacuate&target=region%3Aeu-west&probeService=ghost&probeRate=10&probeThrough=global&plan=1", "probeThrough", "this hub knows no entry points", http.StatusUnprocessableEntity},
	} {
		a := operator.get("/drills/new?" + tc.query)
		if a.status != tc.status || !strings.Contains(a.body, `id="err-`+tc.field+`">`+tc.want) || strings.Contains(a.body, `data-action="run"`) {
			t.Errorf("plan %s: want %d with %q shown at the %s field and no Run; got %d: %.600s", tc.query, tc.status, tc.want, tc.field, a.status, a.body)
		}
	}

	// Run: the typed name must be the target's.
	wrong := url.Values{}
	for k, v := range run {
		wrong[k] = v
	}
	wrong.Set("confirm", "eu-west")
	if a := operator.post("/drills", wrong); a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, `id="err-confirm">must be the target`) ||
		!strings.Contains(a.body, `data-action="run"`) {
		t.Errorf("want a run without the target's name refused with 422, the plan and its Run shown again with the reason; got %d: %.300s", a.status, a.body)
	}
	a = operator.post("/drills", run)
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/drills/evac-1" {
		t.Fatalf("want the operator's run to answer 303 to /drills/evac-1; got %d %q: %.500s", a.status, a.header.Get("Location"), a.body)
	}
	var dr api.Drill
	if err := e.admin.Get(context.Background(), "drills", "evac-1", &dr); err != nil || dr.Spec.Kind != api.DrillEvacuate || dr.Spec.Target.Cluster != "eu-west-1" ||
		dr.Spec.Duration != "10m" || dr.Spec.SLO == nil || dr.Spec.SLO.MaxRTO != "30s" || dr.Spec.SLO.MaxUnavailableReplicas == nil || *dr.Spec.SLO.MaxUnavailableReplicas != 0 {
		t.Fatalf("want drill evac-1 as the form described it; got %+v (%v)", dr.Spec, err)
	}
	if a := operator.get("/drills/evac-1"); !strings.Contains(a.body, "Started drill evac-1") || !strings.Contains(a.body, `data-action="abort"`) {
		t.Errorf("want the drill's page to say it started and offer Abort to an operator; got %d: %.300s", a.status, a.body)
	}
	if a := viewer.get("/drills/evac-1"); a.status != http.StatusOK || strings.Contains(a.body, `data-action="abort"`) {
		t.Errorf("want the drill's page without Abort for a viewer; got %d", a.status)
	}
	if a := viewer.get("/"); !strings.Contains(a.body, `href="/drills/evac-1"`) {
		t.Errorf("want the overview's attention list to name the running drill")
	}
	// A second drill on the same cluster: the API's conflict, on the form.
	again := url.Values{}
	for k, v := range run {
		again[k] = v
	}
	again.Set("name", "evac-2")
	if a := operator.post("/drills", again); a.status != http.StatusConflict || !strings.Contains(a.body, "already targets eu-west-1") || !strings.Contains(a.body, `id="err-target"`) {
		t.Errorf("want a second drill on eu-west-1 refused with 409, shown at the target; got %d: %.500s", a.status, a.body)
	}

	// Follow the drill's page live while it is aborted.
	events, stop := e.liveStream(t, operator, "/drills/evac-1")
	defer stop()
	events.wait(t, "the drill's head while it runs", func(id, html string) bool {
		return id == "live-a-head" && strings.Contains(html, `data-action="abort"`)
	})
	if a := viewer.post("/drills/evac-1/abort", nil); a.status != http.StatusForbidden {
		t.Errorf("want a viewer's abort refused with 403; got %d", a.status)
	}
	if a := operator.post("/drills/evac-1/abort", nil); a.status != http.StatusSeeOther {
		t.Fatalf("want the operator's abort to answer 303; got %d: %.300s", a.status, a.body)
	}
	// Regions come in order: the head, then the report.
	events.wait(t, "the head without Abort once it ended", func(id, html string) bool {
		return id == "live-a-head" && strings.Contains(html, api.DrillAborted) && !strings.Contains(html, `data-action="abort"`)
	})
	events.wait(t, "the report, once the drill ended Aborted", func(id, html string) bool {
		return id == "live-c-report" && strings.Contains(html, `data-verdict="none"`) && strings.Contains(html, "aborted")
	})
	deadline := time.Now().Add(10 * time.Second)
	for a := viewer.get("/drills"); !strings.Contains(a.body, `data-drill="evac-1" data-phase="Aborted"`); a = viewer.get("/drills") {
		if time.Now().After(deadline) {
			t.Fatalf("want the drills list to show evac-1 Aborted within 10 s; got %.800s", a.body)
		}
		time.Sleep(20 * time.Millisecond) // the list reads the cache; nothing announces it to a client
	}
	if a := viewer.get("/drills?phase=Aborted"); !strings.Contains(a.body, `data-drill="evac-1"`) {
		t.Errorf("want the Aborted filter to list evac-1")
	}
	if a := viewer.get("/drills?phase=Completed"); strings.Contains(a.body, `data-drill="evac-1"`) {
		t.Errorf("want the Completed filter to leave evac-1 out")
	}
	if a := viewer.get("/drills?phase=Sideways"); a.status != http.StatusBadRequest {
		t.Errorf("want an unknown phase filter refused with 400; got %d", a.status)
	}

	// The audit log names each token, for the changes and the refusals.
	e.wantAudit("token:olga create Drill ok", "token:olga abort Drill ok", "token:vic create Drill Forbidden", "token:olga create Drill Conflict")
}
