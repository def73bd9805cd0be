package web

import (
	"net/url"
	"testing"

	"github.com/atollhq/atoll/api"
)

func TestDrillForm(t *testing.T) {
	t.Parallel()
	f := readDrillForm(url.Values{"kind": {"outage"}, "target": {"region:eu-west"}, "duration": {" 30s "}, "maxUnavailable": {"3"}, "force": {"1"}})
	spec, bad := f.spec()
	if bad != nil || spec.Target.Region != "eu-west" || spec.Duration != "30s" || spec.SLO == nil || *spec.SLO.MaxUnavailableReplicas != 3 || spec.SLO.MaxRTO != "" || !spec.Force {
		t.Errorf("want an outage of region eu-west for 30s, at most 3 unavailable, forced; got %+v (%v)", spec, bad)
	}
	if spec, _ := readDrillForm(url.Values{"kind": {"evacuate"}, "target": {"cluster:c1"}}).spec(); spec.SLO != nil || spec.Target.Cluster != "c1" {
		t.Errorf("want no SLO when none is given, and the cluster target; got %+v", spec)
	}
	if _, bad := readDrillForm(url.Values{"target": {"somewhere"}}).spec(); len(bad) != 2 || bad[0].Location != "form.kind" || bad[1].Location != "form.target" {
		t.Errorf("want a missing kind and an unreadable target named; got %+v", bad)
	}
	for loc, want := range map[string]string{"body.spec.slo.maxRTO": "maxRTO", "body.slo.maxUnavailableReplicas": "maxUnavailable", "body.spec.target.region": "target",
		"body.metadata.name": "name", "form.confirm": "confirm", "body.spec.force": "force", "body.spec.template": ""} {
		if got := formField(loc); got != want {
			t.Errorf("formField(%s): want %q; got %q", loc, want, got)
		}
	}
	// A plan the rest cannot absorb offers Run only when forced.
	var d drillFormPage
	d.showPlan(spec, &api.DrillPlan{Targets: []string{"c1"}, Absorbed: false, Reason: "no room"})
	if d.RunBlocked != "" || d.Confirm != "eu-west" {
		t.Errorf("want a forced drill's Run offered, confirmed by the region's name; got blocked %q, confirm %q", d.RunBlocked, d.Confirm)
	}
	spec.Force = false
	d = drillFormPage{}
	d.showPlan(spec, &api.DrillPlan{Targets: []string{"c1"}, Absorbed: false, Reason: "no room"})
	if d.RunBlocked == "" {
		t.Errorf("want no Run for a plan the rest cannot absorb, unless forced")
	}
}
