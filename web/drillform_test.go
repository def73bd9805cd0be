package web

import (
	"net/url"
	"strings"
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
	probe := readDrillForm(url.Values{"kind": {"outage"}, "target": {"region:eu-west"}, "probeService": {"web"}, "probeRate": {"50"},
		"probeThrough": {"global", " us-east ", "global", ""}, "maxFailedRequests": {"0"}, "minSuccessRatio": {"99.9%"}})
	spec, bad = probe.spec()
	if bad != nil || spec.Probe == nil || spec.Probe.Service != "web" || spec.Probe.Rate != 50 || len(spec.Probe.Through) != 2 || spec.Probe.Through[1] != "us-east" ||
		spec.SLO == nil || spec.SLO.MaxFailedRequests == nil || *spec.SLO.MaxFailedRequests != 0 || spec.SLO.MinSuccessRatio == nil || *spec.SLO.MinSuccessRatio != 0.999 {
		t.Errorf("want a probe of web at 50/s through global and us-east, at most 0 failed and 99.9%% succeeded; got %+v %+v (%v)", spec.Probe, spec.SLO, bad)
	}
	for _, tc := range []struct {
		v    url.Values
		want []string
	}{
		{url.Values{"probeRate": {"10"}}, []string{"form.probeService"}},
		{url.Values{"probeThrough": {"global"}}, []string{"form.probeService"}},
		{url.Values{"probeService": {"web"}}, []string{"form.probeRate", "form.probeThrough"}},
		{url.Values{"probeService": {"web"}, "probeRate": {"fast"}, "probeThrough": {"global"}}, []string{"form.probeRate"}},
		{url.Values{"minSuccessRatio": {"most"}, "maxFailedRequests": {"1.5"}}, []string{"form.maxFailedRequests", "form.minSuccessRatio"}},
		{url.Values{"minSuccessRatio": {"NaN"}}, []string{"form.minSuccessRatio"}},
	} {
		tc.v.Set("kind", "outage")
		tc.v.Set("target", "cluster:c1")
		_, bad := readDrillForm(tc.v).spec()
		var got []string
		for _, b := range bad {
			got = append(got, b.Location)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("form %v: want problems at %v; got %v", tc.v, tc.want, got)
		}
	}
	for loc, want := range map[string]string{"body.spec.probe.through[1]": "probeThrough", "body.spec.probe.service": "probeService", "body.spec.slo.minSuccessRatio": "minSuccessRatio"} {
		if got := formField(loc); got != want {
			t.Errorf("formField(%s): want %q; got %q", loc, want, got)
		}
	}
	spec, _ = readDrillForm(url.Values{"kind": {"outage"}, "target": {"region:eu-west"}, "force": {"1"}}).spec()
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
