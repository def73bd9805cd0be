package hub_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/replicas"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// TestMissingCommandShowsItsReason: a workload whose command does not
// exist, on a real member and node agent running real processes, shows
// the exec error in Workload.status (state counts and examples) and as
// one deduplicated Warning event per reason whose count grows with the
// crash loop, within 5 s of the member seeing the first failure.
func TestMissingCommandShowsItsReason(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := t.Context()
	m := runMemberWithNode(t, e, runtime.Config{})

	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "broken"}, Spec: api.WorkloadSpec{Replicas: 2,
		Template: api.ReplicaTemplate{Driver: "process", Command: "nope-atoll-missing"}}})
	const want = `exec: "nope-atoll-missing": executable file not found in $PATH`

	hubShows := func() (api.ClusterReplicas, bool) {
		var w api.Workload
		if err := e.admin.Get(ctx, "workloads", "broken", &w); err != nil || len(w.Status.Clusters) == 0 {
			return api.ClusterReplicas{}, false
		}
		c := w.Status.Clusters[0]
		return c, len(c.Examples) > 0 && c.Examples[0].Message == want
	}
	events := func() []api.Event {
		var l api.EventList
		sel := api.LabelEventKind + "=Workload," + api.LabelEventName + "=broken"
		if err := e.admin.List(ctx, "events", client.ListOptions{LabelSelector: sel}, &l); err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	eventOf := func(reason string) (api.Event, int) {
		var out api.Event
		n := 0
		for _, ev := range events() {
			if ev.Reason == reason {
				out, n = ev, n+1
			}
		}
		return out, n
	}

	cookie := signIn(t, e.url, adminSecret)
	pageAt := func(path string) string {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.url+path, nil)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Cookie", cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	page := func() string { return pageAt("/workloads/broken") }
	const inHTML = `executable file not found in $PATH`

	// The member sees the first failure; from then on the hub has 5 s to
	// show it in the API (describe reads it), the events and the console.
	waitFor(t, "the member's first failure", 30*time.Second, func() bool { return len(workloadStatus(m, "broken").Problems) > 0 })
	first := time.Now()
	waitFor(t, "the reason in Workload.status, the ReplicaFailed event and the console", 30*time.Second, func() bool {
		_, ok := hubShows()
		ev, _ := eventOf(protocol.ProblemReplicaFailed)
		return ok && strings.Contains(ev.Message, want) && strings.Contains(page(), inHTML)
	})
	if took := time.Since(first); took > 5*time.Second {
		t.Errorf("the reason reached the API, events and console %v after the member saw the failure, want within 5s", took)
	}
	c, _ := hubShows()
	var w api.Workload
	if err := e.admin.Get(ctx, "workloads", "broken", &w); err != nil {
		t.Fatal(err)
	}
	var described strings.Builder
	if err := replicas.Describe(&described, w.Status, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"r1 (region eu): 0/2 ready", "ReplicaFailed: 2 replica(s)", want, "127 (command not found)"} {
		if !strings.Contains(described.String(), s) {
			t.Errorf("describe lacks %q:\n%s", s, described.String())
		}
	}
	if p := page(); !strings.Contains(p, `data-replica="broken-`) {
		t.Errorf("the console's workload page has no replicas table")
	}
	if c.States[protocol.StateBackOff]+c.States[protocol.StatePending] != 2 || c.States[protocol.StateReady] != 0 {
		t.Errorf("states %v: want both replicas failing", c.States)
	}
	ex := c.Examples[0]
	if ex.Node != "n1" || ex.Cluster != "r1" || ex.Reason != "ExecFailed" || ex.ExitCode == nil || *ex.ExitCode != 127 {
		t.Errorf("example %+v: want node n1, cluster r1, ExecFailed, exit 127", ex)
	}
	if !slices.ContainsFunc(c.Problems, func(p api.ReplicaProblem) bool { return p.Reason == protocol.ProblemReplicaFailed && p.Message == want }) {
		t.Errorf("problems %+v: want ReplicaFailed with the exec error", c.Problems)
	}

	// The crash loop goes on: still one event per reason, its count grows.
	ev, _ := eventOf(protocol.ProblemReplicaFailed)
	waitFor(t, "the event's count to grow", 60*time.Second, func() bool {
		now, _ := eventOf(protocol.ProblemReplicaFailed)
		return now.Count >= ev.Count+2
	})
	for _, reason := range []string{protocol.ProblemReplicaFailed, protocol.ProblemBackOff} {
		ev, n := eventOf(reason)
		if n != 1 {
			t.Errorf("%d %s events, want 1 (deduplicated)", n, reason)
		}
		if ev.Type != api.EventWarning || ev.Cluster != "r1" || ev.FirstTimestamp == nil || ev.EventTime == nil || ev.EventTime.Before(*ev.FirstTimestamp) {
			t.Errorf("%s event %+v: want a Warning of r1 with first and last seen", reason, ev)
		}
	}

	// What the member runs now, asked over NATS: replicas and nodes.
	l, err := e.admin.Replicas(ctx, client.ReplicasOptions{Workload: "broken"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 2 || l.Total != 2 || len(l.Unavailable) != 0 {
		t.Fatalf("replicas %+v: want the 2 of broken", l)
	}
	for _, r := range l.Items {
		if r.Workload != "broken" || r.Cluster != "r1" || r.Node != "n1" || r.Message != want || (r.State != protocol.StateBackOff && r.State != protocol.StatePending) {
			t.Errorf("replica %+v: want broken on r1/n1 failing with the exec error", r)
		}
	}
	if l, err := e.admin.Replicas(ctx, client.ReplicasOptions{Node: "elsewhere"}); err != nil || len(l.Items) != 0 {
		t.Errorf("replicas on another node: %+v, %v", l, err)
	}
	nl, err := e.admin.Nodes(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(nl.Items) != 1 || nl.Items[0].Name != "n1" || nl.Items[0].Cluster != "r1" || !nl.Items[0].Ready || nl.Items[0].Replicas != 2 || nl.Items[0].CPUMillis != 2000 {
		t.Errorf("nodes %+v: want n1, Ready, holding 2", nl)
	}
	if p := pageAt("/clusters/r1"); !strings.Contains(p, `data-node="n1"`) {
		t.Errorf("the console's cluster page does not list node n1")
	}
	viewer := e.token("v", api.RoleViewer)
	for _, c := range []struct {
		path, token string
		status      int
	}{
		{"/api/v1/replicas?workload=broken", viewer, 200},
		{"/api/v1/nodes", viewer, 200},
		{"/api/v1/replicas", "", 401},
		{"/api/v1/replicas?workload=nothing", adminSecret, 404},
		{"/api/v1/replicas?cluster=nowhere", adminSecret, 404},
		{"/api/v1/nodes?cluster=nowhere", adminSecret, 404},
		{"/api/v1/replicas?workload=..%2Fx", adminSecret, 422},
		{"/api/v1/replicas?node=A%20B", adminSecret, 422},
		{"/api/v1/replicas?limit=-1", adminSecret, 422},
		{"/api/v1/replicas?limit=99999999999999999999", adminSecret, 422},
		{"/api/v1/nodes?cluster=" + strings.Repeat("a", 64), adminSecret, 422},
	} {
		r := e.do("GET", c.path, c.token, "", nil)
		if r.status != c.status {
			t.Errorf("GET %s: want %d, got %d %s", c.path, c.status, r.status, r.body)
		}
		if c.status == 422 && !strings.Contains(string(r.body), "query.") {
			t.Errorf("GET %s: the problem names no field: %s", c.path, r.body)
		}
	}
}
