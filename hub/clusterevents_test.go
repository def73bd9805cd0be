package hub_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestClusterChangesAreEvents: cordon, drain, a taint and uncordon, made
// as the CLI makes them (merge patches of the cluster's spec), are each
// an Event on the cluster naming who did it; a patch that changes nothing
// is none.
func TestClusterChangesAreEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addCluster("c1")
	operator := e.token("ops", api.RoleOperator)
	patch := func(body string) {
		t.Helper()
		if r := e.do("PATCH", "/api/v1/clusters/c1", operator, "application/merge-patch+json", []byte(body)); r.status != 200 {
			t.Fatalf("PATCH %s: %d %s", body, r.status, r.body)
		}
	}
	patch(`{"spec":{"unschedulable":true}}`)
	patch(`{"spec":{"unschedulable":true}}`) // no change: no event
	patch(`{"spec":{"taints":[{"key":"atoll.dev/drain","effect":"NoExecute"},{"key":"gpu","value":"yes","effect":"NoSchedule"}]}}`)
	patch(`{"spec":{"unschedulable":null,"taints":[{"key":"gpu","value":"yes","effect":"NoSchedule"}]}}`)
	var got []string
	for _, ev := range e.clusterEvents("c1") {
		if ev.Source != "hub/clusterevents" {
			continue
		}
		if !strings.Contains(ev.Message, "(by token:ops)") {
			t.Errorf("event %s %q does not name who made the change", ev.Reason, ev.Message)
		}
		got = append(got, ev.Reason)
	}
	// The test's clock stands still, so events do not sort by time here.
	want := []string{"Cordoned", "DrainEnded", "DrainStarted", "Tainted", "Uncordoned"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("cluster events: got %v, want %v", got, want)
	}
}
