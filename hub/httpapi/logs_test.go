package httpapi

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"10m", now.Add(-10 * time.Minute), false},
		{"1h30m", now.Add(-90 * time.Minute), false},
		{"2026-12-05T03:00:00Z", time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC), false},
		{"2026-12-05T03:00:00.5+01:00", time.Date(2026, 12, 5, 2, 0, 0, 5e8, time.UTC), false},
		{"0s", time.Time{}, true},
		{"-5m", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"2026-12-05", time.Time{}, true},
	} {
		got, err := parseSince(c.in, now)
		if (err != nil) != c.bad || !got.Equal(c.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v (bad %v)", c.in, got, err, c.want, c.bad)
		}
	}
}

func TestLogsRequest(t *testing.T) {
	now := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	req, p := logsRequest(&logsInput{Name: "web", Tail: -1}, now)
	if p != nil || req.HasOptions() || req.Version != protocol.Version {
		t.Errorf("no options: %+v %v", req, p)
	}
	req, p = logsRequest(&logsInput{Name: "web", Tail: 0, Since: "5m", Timestamps: true, Previous: true}, now)
	if p != nil || req.Tail == nil || *req.Tail != 0 || !req.Since.Equal(now.Add(-5*time.Minute)) || !req.Timestamps || !req.Previous {
		t.Errorf("every option: %+v %v", req, p)
	}
	if got := logOptionNames(req); got != "tail, since, timestamps, previous" {
		t.Errorf("option names %q", got)
	}
	for _, c := range []struct {
		in  logsInput
		loc string
	}{
		{logsInput{Name: "web", Tail: -1, Since: "soon"}, "query.since"},
		{logsInput{Name: "web", Tail: -1, Previous: true, Follow: true}, "query.previous"},
	} {
		_, p := logsRequest(&c.in, now)
		if p == nil || p.Status != http.StatusUnprocessableEntity || len(p.Errors) != 1 || p.Errors[0].Location != c.loc {
			t.Errorf("%+v: want a 422 at %s, got %+v", c.in, c.loc, p)
		}
	}
}

// TestLogsRefusal: when a read that found nothing is an error.
func TestLogsRefusal(t *testing.T) {
	one := protocol.LogsRequest{Workload: "web", Replica: "web-1"}
	all := protocol.LogsRequest{Workload: "web"}
	for _, c := range []struct {
		name     string
		req      protocol.LogsRequest
		sum      logsSummary
		clusters int
		want     string // "" for no refusal
	}{
		{"a replica no cluster has", one, logsSummary{notFound: 2}, 2, "has no replica web-1 in any cluster"},
		{"a replica the one cluster lacks", one, logsSummary{notFound: 1}, 1, "in that cluster"},
		{"a replica without a previous run", one, logsSummary{notFound: 1, noPrevious: 1}, 2, "has no previous run"},
		{"a cluster did not answer", one, logsSummary{notFound: 1, problems: []string{"x"}}, 2, ""},
		{"an older member was not asked", one, logsSummary{notFound: 1, tooOld: 1}, 2, ""},
		{"a whole workload without replicas is text", all, logsSummary{notFound: 2}, 2, ""},
		{"no cluster holds the workload", one, logsSummary{}, 0, "has no replica web-1: no cluster holds any"},
		{"a whole workload no cluster holds is text", all, logsSummary{}, 0, ""},
	} {
		p := c.sum.refusal(c.req, c.clusters)
		switch {
		case c.want == "" && p != nil:
			t.Errorf("%s: want no refusal, got %q", c.name, p.Detail)
		case c.want != "" && (p == nil || p.Status != http.StatusNotFound || !strings.Contains(p.Detail, c.want)):
			t.Errorf("%s: want a 404 saying %q, got %+v", c.name, c.want, p)
		}
	}
}

// TestClustersHolding: the clusters a logs read asks are those the
// placement rows give replicas (committed before the status that tells
// of them), those the placement status does and those that report the
// workload; not a row's tombstone, nor a share of none.
func TestClustersHolding(t *testing.T) {
	st, err := json.Marshal(api.WorkloadStatus{
		Placement: &api.PlacementStatus{Clusters: map[string]int32{"placed": 2, "emptied": 0}},
		Clusters:  []api.ClusterReplicas{{Cluster: "stopping"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rows := []pgstore.Placement{
		{Workload: "web", Cluster: "rowed", Replicas: 1},
		{Workload: "web", Cluster: "tombstoned", Deleted: true},
		{Workload: "web", Cluster: "none", Replicas: 0},
	}
	got := slices.Sorted(maps.Keys(clustersHolding(&pgstore.Record{Kind: "Workload", Status: st}, rows)))
	if want := []string{"placed", "rowed", "stopping"}; !slices.Equal(got, want) {
		t.Errorf("clusters holding: got %v, want %v", got, want)
	}
}
