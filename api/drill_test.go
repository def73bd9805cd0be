package api

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultDrillName(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	if got := DefaultDrillName("outage", "ap-south", now); got != "outage-ap-south-20260304-050607" {
		t.Errorf("want outage-ap-south-20260304-050607; got %q", got)
	}
	long := DefaultDrillName("partition", strings.Repeat("a", 70), now)
	if !IsDNSLabel(long) || !strings.HasSuffix(long, "-20260304-050607") {
		t.Errorf("want a long target still to make a DNS label ending in the time; got %q (%d)", long, len(long))
	}
}

func TestDrillValidate(t *testing.T) {
	t.Parallel()
	zero, neg := int32(0), int32(-1)
	ok := func() Drill {
		return Drill{Metadata: ObjectMeta{Name: "d"}, Spec: DrillSpec{Kind: DrillOutage, Target: DrillTarget{Region: "eu-west"}}}
	}
	cases := []struct {
		name  string
		edit  func(d *Drill)
		field string // "" means valid
	}{
		{"minimal", func(*Drill) {}, ""},
		{"every field", func(d *Drill) {
			d.Spec = DrillSpec{Kind: DrillEvacuate, Target: DrillTarget{Cluster: "c1"}, Duration: "30s", FailbackTimeout: "2m", Force: true,
				SLO: &DrillSLO{MaxRTO: "10s", MaxUnavailableReplicas: &zero}}
		}, ""},
		{"no kind", func(d *Drill) { d.Spec.Kind = "" }, "spec.kind"},
		{"unknown kind", func(d *Drill) { d.Spec.Kind = "flood" }, "spec.kind"},
		{"no target", func(d *Drill) { d.Spec.Target = DrillTarget{} }, "spec.target"},
		{"both targets", func(d *Drill) { d.Spec.Target.Cluster = "c1" }, "spec.target"},
		{"bad cluster name", func(d *Drill) { d.Spec.Target = DrillTarget{Cluster: "C_1"} }, "spec.target.cluster"},
		{"bad region name", func(d *Drill) { d.Spec.Target = DrillTarget{Region: "Eu West"} }, "spec.target.region"},
		{"duration not a duration", func(d *Drill) { d.Spec.Duration = "soon" }, "spec.duration"},
		{"duration zero", func(d *Drill) { d.Spec.Duration = "0s" }, "spec.duration"},
		{"duration over an hour", func(d *Drill) { d.Spec.Duration = "61m" }, "spec.duration"},
		{"negative failback timeout", func(d *Drill) { d.Spec.FailbackTimeout = "-1s" }, "spec.failbackTimeout"},
		{"negative maxRTO", func(d *Drill) { d.Spec.SLO = &DrillSLO{MaxRTO: "-5s"} }, "spec.slo.maxRTO"},
		{"negative maxUnavailableReplicas", func(d *Drill) { d.Spec.SLO = &DrillSLO{MaxUnavailableReplicas: &neg} }, "spec.slo.maxUnavailableReplicas"},
		{"bad name", func(d *Drill) { d.Metadata.Name = "Drill 1" }, "metadata.name"},
		{"wrong kind", func(d *Drill) { d.Kind = "Workload" }, "kind"},
	}
	for _, c := range cases {
		d := ok()
		c.edit(&d)
		fe := d.Validate()
		if c.field == "" {
			if fe != nil {
				t.Errorf("%s: want valid, got %v", c.name, fe)
			}
			continue
		}
		found := false
		for _, e := range fe {
			found = found || e.Field == c.field
		}
		if !found {
			t.Errorf("%s: want an error at %s, got %v", c.name, c.field, fe)
		}
	}
	// A spec alone (a plan request) reports paths relative to itself.
	spec := DrillSpec{Kind: DrillPartition}
	if fe := spec.Validate(); len(fe) != 1 || fe[0].Field != "target" {
		t.Errorf("spec without target: want one error at target, got %v", fe)
	}
}

func TestDrillDefaults(t *testing.T) {
	t.Parallel()
	var s DrillSpec
	if s.DurationOrDefault() != DefaultDrillDuration || s.FailbackTimeoutOrDefault() != DefaultDrillFailbackTimeout {
		t.Errorf("defaults: duration %s, failback timeout %s", s.DurationOrDefault(), s.FailbackTimeoutOrDefault())
	}
	for phase, final := range map[string]bool{"": false, DrillPending: false, DrillRunning: false, DrillRestoring: false,
		DrillCompleted: true, DrillError: true, DrillSucceeded: true, DrillFailed: true, DrillAborted: true} {
		if (DrillStatus{Phase: phase}).Final() != final {
			t.Errorf("phase %q: want Final %v", phase, final)
		}
	}
}

func TestDrillOutcome(t *testing.T) {
	t.Parallel()
	missed := &DrillReport{SLOs: []SLOResult{{Name: "maxRTO", Target: "10s", Actual: "not recovered"}, {Name: "exclusiveDuplicates", Target: "0", Actual: "0", Passed: true}}}
	met := &DrillReport{SLOs: []SLOResult{{Name: "exclusiveDuplicates", Target: "0", Actual: "0", Passed: true}}}
	interrupted := &DrillReport{Interrupted: true, SLOs: missed.SLOs}
	for _, c := range []struct {
		name           string
		st             DrillStatus
		phase, verdict string
		text           string
	}{
		{"not started", DrillStatus{}, DrillPending, "", "Pending"},
		{"running", DrillStatus{Phase: DrillRunning}, DrillRunning, "", "Running"},
		{"completed, passed", DrillStatus{Phase: DrillCompleted, Verdict: DrillVerdictPassed, Report: met}, DrillCompleted, DrillVerdictPassed, "Completed, Passed"},
		{"completed, failed", DrillStatus{Phase: DrillCompleted, Verdict: DrillVerdictFailed, Report: missed}, DrillCompleted, DrillVerdictFailed, "Completed, Failed"},
		{"aborted has no verdict", DrillStatus{Phase: DrillAborted, Verdict: DrillVerdictFailed, Report: missed}, DrillAborted, "", "Aborted"},
		{"error has no verdict", DrillStatus{Phase: DrillError, Report: interrupted}, DrillError, "", "Error"},
		{"stored Succeeded", DrillStatus{Phase: DrillSucceeded, Report: met}, DrillCompleted, DrillVerdictPassed, "Completed, Passed"},
		{"stored Failed with an SLO missed", DrillStatus{Phase: DrillFailed, Report: missed}, DrillCompleted, DrillVerdictFailed, "Completed, Failed"},
		{"stored Failed, interrupted", DrillStatus{Phase: DrillFailed, Report: interrupted}, DrillError, "", "Error"},
		{"stored Failed, every SLO met: it broke", DrillStatus{Phase: DrillFailed, Report: met}, DrillError, "", "Error"},
		{"stored Failed without a report", DrillStatus{Phase: DrillFailed}, DrillError, "", "Error"},
	} {
		phase, verdict := c.st.Outcome()
		if phase != c.phase || verdict != c.verdict || c.st.OutcomeText() != c.text {
			t.Errorf("%s: want %s/%q (%q), got %s/%q (%q)", c.name, c.phase, c.verdict, c.text, phase, verdict, c.st.OutcomeText())
		}
	}
	if got := missed.MissedText(); len(got) != 1 || got[0] != "maxRTO not recovered (target 10s)" {
		t.Errorf("missed objectives of an old report: want maxRTO only, got %q", got)
	}
	if got := (&DrillReport{RTONotApplicable: true}).RTOText(); !strings.Contains(got, "not applicable") {
		t.Errorf("RTO of a drill that affected nothing: want not applicable, got %q", got)
	}
}
