package main

import (
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

func TestDrillOutcome(t *testing.T) {
	t.Parallel()
	ok := api.Drill{Metadata: api.ObjectMeta{Name: "d"}, Status: api.DrillStatus{Phase: api.DrillSucceeded}}
	if err := drillOutcome(ok); err != nil {
		t.Errorf("succeeded drill: want no error, got %v", err)
	}
	missed := api.Drill{Metadata: api.ObjectMeta{Name: "d"}, Status: api.DrillStatus{Phase: api.DrillFailed, Report: &api.DrillReport{
		SLOs: []api.SLOResult{{Name: "maxRTO", Target: "10s", Actual: "12.000s"}, {Name: "exclusiveDuplicates", Target: "0", Actual: "0", Passed: true}}}}}
	if err := drillOutcome(missed); err == nil || !strings.Contains(err.Error(), "maxRTO 12.000s (target 10s)") || strings.Contains(err.Error(), "exclusiveDuplicates") {
		t.Errorf("missed SLO: want an error naming maxRTO only, got %v", err)
	}
	aborted := api.Drill{Metadata: api.ObjectMeta{Name: "d"}, Status: api.DrillStatus{Phase: api.DrillAborted}}
	if err := drillOutcome(aborted); err == nil || !strings.Contains(err.Error(), "aborted") {
		t.Errorf("aborted drill: want an error saying so, got %v", err)
	}
}
