package replicas

import (
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

func TestExit(t *testing.T) {
	code := func(c int) *int { return &c }
	for _, c := range []struct {
		in   *int
		want string
	}{
		{nil, ""}, {code(0), "0"}, {code(1), "1"}, {code(127), "127 (command not found)"}, {code(137), "137 (killed by SIGKILL)"},
		{code(143), "143 (killed by SIGTERM)"}, {code(-1), "unknown"}, {code(170), "170 (killed by signal 42)"},
	} {
		if got := Exit(c.in); got != c.want {
			t.Errorf("Exit(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStates(t *testing.T) {
	for _, c := range []struct {
		in   map[string]int32
		want string
	}{
		{nil, "none reported"},
		{map[string]int32{"BackOff": 2, "Ready": 1}, "1 Ready, 2 BackOff"},
		{map[string]int32{"Weird": 1, "Failed": 0, "Pending": 3}, "3 Pending, 1 Weird"},
	} {
		if got := States(c.in); got != c.want {
			t.Errorf("States(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	started, next := now.Add(-90*time.Second), now.Add(4*time.Second)
	code := 127
	msg := `exec: "nope": executable file not found in $PATH`
	st := api.WorkloadStatus{Clusters: []api.ClusterReplicas{{
		Cluster: "eu-west", Region: "eu", Desired: 4, Ready: 0, Restarts: 8,
		States:   map[string]int32{"BackOff": 4},
		Problems: []api.ReplicaProblem{{Reason: "ReplicaFailed", Replicas: 4, Restarts: 8, Replica: "web-a", Node: "n1", Message: msg}},
		Examples: []api.ReplicaInfo{{Replica: "web-a", Cluster: "eu-west", Node: "n1", State: "BackOff", Restarts: 2, ExitCode: &code, Reason: "ExecFailed",
			Message: msg, StartedAt: &started, NextStartAt: &next}},
	}}}
	var b strings.Builder
	if err := Describe(&b, st, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"eu-west (region eu): 0/4 ready; 4 BackOff; 8 restarts",
		"ReplicaFailed: 4 replica(s) (e.g. web-a on node n1): " + msg,
		"1 of 4 replicas, the most troubled first",
		"127 (command not found)", "in 4s", "90s",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("describe lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	_ = Describe(&b, api.WorkloadStatus{}, now)
	if !strings.Contains(b.String(), "no cluster reports this workload yet") {
		t.Errorf("empty status: %s", b.String())
	}
}

func TestFilter(t *testing.T) {
	in := []api.ReplicaInfo{{Replica: "a", Cluster: "c1", Node: "n1"}, {Replica: "b", Cluster: "c2", Node: "n1"}, {Replica: "c", Cluster: "c1", Node: "n2"}}
	if got := Filter(in, "c1", ""); len(got) != 2 {
		t.Errorf("cluster c1: %v", got)
	}
	if got := Filter(in, "c1", "n2"); len(got) != 1 || got[0].Replica != "c" {
		t.Errorf("c1/n2: %v", got)
	}
	if got := Filter(in, "", ""); len(got) != 3 {
		t.Errorf("all: %v", got)
	}
}

func TestChanges(t *testing.T) {
	a := api.ReplicaInfo{Replica: "a", Cluster: "c1", State: "Ready"}
	b := api.ReplicaInfo{Replica: "b", Cluster: "c1", State: "BackOff", Restarts: 1}
	b2 := b
	b2.Restarts = 2
	c := api.ReplicaInfo{Replica: "a", Cluster: "c2", State: "Pending"} // same name, another cluster
	got := Changes([]api.ReplicaInfo{a, b}, []api.ReplicaInfo{b2, c})
	want := []string{"MODIFIED c1/b", "ADDED c2/a", "DELETED c1/a"}
	if len(got) != len(want) {
		t.Fatalf("changes %+v, want %v", got, want)
	}
	for i, ch := range got {
		if s := ch.Type + " " + ch.Replica.Cluster + "/" + ch.Replica.Replica; s != want[i] {
			t.Errorf("change %d: %s, want %s", i, s, want[i])
		}
	}
	if got := Changes([]api.ReplicaInfo{a}, []api.ReplicaInfo{a}); len(got) != 0 {
		t.Errorf("nothing changed: %+v", got)
	}
}
