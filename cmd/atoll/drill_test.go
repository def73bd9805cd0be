package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
)

func TestDrillOutcome(t *testing.T) {
	t.Parallel()
	met := []api.SLOResult{{Name: "exclusiveDuplicates", Target: "0", Actual: "0", Passed: true}}
	missedSLOs := []api.SLOResult{{Name: "maxRTO", Target: "10s", Actual: "12.000s"}, {Name: "exclusiveDuplicates", Target: "0", Actual: "0", Passed: true}}
	drill := func(st api.DrillStatus) api.Drill { return api.Drill{Metadata: api.ObjectMeta{Name: "d"}, Status: st} }
	for _, c := range []struct {
		name string
		d    api.Drill
		want string // "" for exit 0
		not  string
	}{
		{"completed and passed", drill(api.DrillStatus{Phase: api.DrillCompleted, Verdict: api.DrillVerdictPassed, Report: &api.DrillReport{SLOs: met, Passed: true}}), "", ""},
		{"completed and failed", drill(api.DrillStatus{Phase: api.DrillCompleted, Verdict: api.DrillVerdictFailed,
			Report: &api.DrillReport{SLOs: missedSLOs, Missed: []string{"maxRTO 12.000s (target 10s)"}}}), "completed and failed: missed maxRTO 12.000s (target 10s)", "exclusiveDuplicates"},
		{"aborted", drill(api.DrillStatus{Phase: api.DrillAborted, Report: &api.DrillReport{SLOs: met}}), "aborted: no verdict", ""},
		{"error", drill(api.DrillStatus{Phase: api.DrillError, Report: &api.DrillReport{Interrupted: true}}), "Error (interrupted", ""},
		{"stored Succeeded", drill(api.DrillStatus{Phase: api.DrillSucceeded, Report: &api.DrillReport{SLOs: met, Passed: true}}), "", ""},
		{"stored Failed with an SLO missed", drill(api.DrillStatus{Phase: api.DrillFailed, Report: &api.DrillReport{SLOs: missedSLOs}}), "missed maxRTO 12.000s (target 10s)", "exclusiveDuplicates"},
	} {
		err := drillOutcome(c.d)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: want exit 0, got %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: want an error with %q, got %v", c.name, c.want, err)
		case c.not != "" && err != nil && strings.Contains(err.Error(), c.not):
			t.Errorf("%s: want %q left out, got %v", c.name, c.not, err)
		}
	}
}

func TestDrillReportText(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rto := 7.5
	d := api.Drill{Metadata: api.ObjectMeta{Name: "ap-south-outage"}, Spec: api.DrillSpec{Kind: api.DrillOutage, Target: api.DrillTarget{Region: "ap-south"}},
		Status: api.DrillStatus{Phase: api.DrillCompleted, Verdict: api.DrillVerdictFailed, Targets: []string{"ap-south"}, StartedAt: &start,
			Plan:     &api.DrillPlan{Warnings: []api.DrillWarning{{Type: api.WarnAlreadyUnavailable, Workload: "broken", Message: "broken has 0 of 2 replicas ready"}}},
			Timeline: []api.DrillEvent{{At: start, Type: api.DrillEventStarted, Message: "outage | in"}},
			Report: &api.DrillReport{AffectedWorkloads: 2, AffectedReplicas: 3, Missed: []string{"maxRTO not recovered (target 20s)"},
				SLOs: []api.SLOResult{{Name: "maxRTO", Target: "20s", Actual: "not recovered"}},
				Workloads: []api.DrillWorkloadReport{{Workload: "web", OnTargets: 2, RTOSeconds: &rto},
					{Workload: "api", OnTargets: 1, BlockedBy: []api.DrillBlocker{{Cluster: "eu-west", Reason: api.BlockedNotReady, Message: "0 of 1 placed replicas ready"}}}}}}}
	var text bytes.Buffer
	printReport(&text, d)
	for _, want := range []string{"Phase:", "Completed", "Verdict:", "Failed: missed maxRTO not recovered (target 20s)", "web", "7.500s", "api", "eu-west: 0 of 1 placed replicas ready"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report: want %q in\n%s", want, text.String())
		}
	}
	md := drillMarkdown(d)
	for _, want := range []string{"# Drill ap-south-outage", "- **Phase:** Completed", "| RTO | not reached |", "| maxRTO | 20s | not recovered | **missed** |",
		"| api | 1 | not reached | eu-west: 0 of 1 placed replicas ready |", "## Plan warnings", `outage \| in`} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown report: want %q in\n%s", want, md)
		}
	}
	// Nothing affected: no RTO, and it says so.
	d.Status.Report = &api.DrillReport{RTONotApplicable: true}
	text.Reset()
	printReport(&text, d)
	if !strings.Contains(text.String(), "not applicable") || strings.Contains(text.String(), "RTO:                  not reached") {
		t.Errorf("want RTO not applicable; got\n%s", text.String())
	}
}

func TestProgressLines(t *testing.T) {
	t.Parallel()
	if got := progressLine(api.DrillEvent{Type: api.DrillEventRestored, Message: "ap-south restored"}); got != "Fault lifted: ap-south restored" {
		t.Errorf("got %q", got)
	}
	if got := sampleLine(api.DrillSample{Desired: 8, Ready: 6, Unavailable: 2}); got != "Replicas: 6/8 ready, 2 unavailable" {
		t.Errorf("got %q", got)
	}
}

// TestDrillPlanWarns: plan takes the SLOs (the plan warns of those that
// cannot be met) and prints each warning.
func TestDrillPlanWarns(t *testing.T) {
	t.Parallel()
	plan := &cobra.Command{Use: "plan"}
	var pf drillFlags
	pf.register(plan, false) // as `drill plan` registers them
	if err := plan.ParseFlags([]string{"--kind", "outage", "--region", "ap-south", "--max-rto", "20s", "--max-unavailable", "1"}); err != nil {
		t.Fatalf("plan's SLO flags: %v", err)
	}
	d, err := pf.drill(plan, time.Now())
	if err != nil || d.Spec.SLO == nil || d.Spec.SLO.MaxRTO != "20s" || d.Spec.SLO.MaxUnavailableReplicas == nil || *d.Spec.SLO.MaxUnavailableReplicas != 1 {
		t.Fatalf("want the plan's spec to carry the SLOs; got %+v, %v", d.Spec.SLO, err)
	}
	var out bytes.Buffer
	p := &api.DrillPlan{Targets: []string{"ap-south"}, Absorbed: true, AffectedWorkloads: 1, AffectedReplicas: 2,
		Warnings: []api.DrillWarning{{Type: api.WarnSLOUnreachable, Field: "slo.maxUnavailableReplicas", Message: "maxUnavailableReplicas 1 cannot be met"}}}
	if err := printPlan(&out, d.Spec, p); err != nil || !strings.Contains(out.String(), "Warning: maxUnavailableReplicas 1 cannot be met") {
		t.Errorf("want the warning printed; got %v\n%s", err, out.String())
	}
}

// TestDrillProbeFlagsAndReport: the probe's flags make spec.probe and the
// request objectives; the text and Markdown reports count the requests.
func TestDrillProbeFlagsAndReport(t *testing.T) {
	t.Parallel()
	run := &cobra.Command{Use: "run"}
	var f drillFlags
	f.register(run, true)
	if err := run.ParseFlags([]string{"--kind", "outage", "--region", "ap-south", "--probe", "demo-web", "--probe-through", "us-east,global",
		"--probe-rate", "40", "--max-failed-requests", "0", "--min-success-ratio", "0.99"}); err != nil {
		t.Fatal(err)
	}
	d, err := f.drill(run, time.Now())
	if err != nil || d.Spec.Probe == nil || d.Spec.Probe.Service != "demo-web" || d.Spec.Probe.Rate != 40 || len(d.Spec.Probe.Through) != 2 ||
		d.Spec.SLO == nil || d.Spec.SLO.MaxFailedRequests == nil || *d.Spec.SLO.MaxFailedRequests != 0 || d.Spec.SLO.MinSuccessRatio == nil || *d.Spec.SLO.MinSuccessRatio != 0.99 {
		t.Fatalf("want spec.probe and both request objectives; got %+v %+v, %v", d.Spec.Probe, d.Spec.SLO, err)
	}
	alone := &cobra.Command{Use: "run"}
	var g drillFlags
	g.register(alone, true)
	_ = alone.ParseFlags([]string{"--kind", "outage", "--region", "ap-south", "--probe-through", "us-east"})
	if _, err := g.drill(alone, time.Now()); err == nil || !strings.Contains(err.Error(), "need --probe") {
		t.Errorf("want --probe-through without --probe refused; got %v", err)
	}

	stats := api.DrillProbeStats{Requests: 1000, Succeeded: 998, Failed: 2, SuccessRatio: 0.998, P50Millis: 1.5, P99Millis: 12}
	d.Metadata.Name = "ap-south-outage"
	d.Status = api.DrillStatus{Phase: api.DrillCompleted, Verdict: api.DrillVerdictPassed, Targets: []string{"ap-south"},
		Report: &api.DrillReport{Passed: true, Probe: &api.DrillProbeReport{Service: "demo-web", Rate: 40, Fault: stats,
			Through: []api.DrillProbeEntry{{Name: "us-east", Fault: stats, Baseline: api.DrillProbeStats{Requests: 80, Succeeded: 80, SuccessRatio: 1}}}}}}
	var text bytes.Buffer
	printReport(&text, d)
	for _, want := range []string{"Failed requests:", "2 of 1000 failed while the fault was in (99.800% succeeded)", "us-east", "baseline", "12.0ms"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report: want %q in\n%s", want, text.String())
		}
	}
	md := drillMarkdown(d)
	for _, want := range []string{"| Failed requests | 2 of 1000 failed while the fault was in (99.800% succeeded) |", "## Requests",
		"| us-east | fault | 1000 | 2 | 99.800% | 1.5ms | 12.0ms |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown report: want %q in\n%s", want, md)
		}
	}
}
