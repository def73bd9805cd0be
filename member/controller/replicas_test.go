package controller

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

func TestSummarizeReplicas(t *testing.T) {
	notFound := `exec: "nope": executable file not found in $PATH`
	code := func(c int) *int { return &c }
	next := time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)
	rep := func(id, node, phase string, ready bool, restarts int, reason, lastErr string) observed {
		return observed{Node: node, ReplicaState: protocol.ReplicaState{ID: id, Workload: "web", Phase: phase, Ready: ready, Restarts: restarts, Reason: reason, LastError: lastErr}}
	}
	cases := []struct {
		name         string
		reps         []observed
		wantStates   map[string]int32
		wantFirst    string // the first example's replica
		wantFirstMsg string
		wantProblems map[string]int32 // reason -> replicas
	}{
		{name: "none"},
		{
			name: "missing command: failed and backing off",
			reps: []observed{
				{Node: "n1", ReplicaState: protocol.ReplicaState{ID: "a", Phase: runtime.PhaseBackoff, Restarts: 4, Reason: runtime.ReasonExecFailed, LastError: notFound, ExitCode: code(127), NextStartAt: next}},
				rep("b", "n2", runtime.PhaseRunning, true, 0, "", ""),
			},
			wantStates: map[string]int32{protocol.StateBackOff: 1, protocol.StateReady: 1}, wantFirst: "a", wantFirstMsg: notFound,
			wantProblems: map[string]int32{protocol.ProblemReplicaFailed: 1, protocol.ProblemBackOff: 1},
		},
		{
			name:       "recovered replica keeps its history but is no problem",
			reps:       []observed{rep("a", "n1", runtime.PhaseRunning, true, 2, runtime.ReasonExited, "exited with code 1")},
			wantStates: map[string]int32{protocol.StateReady: 1}, wantFirst: "a", wantFirstMsg: "",
		},
		{
			name:       "readiness failing",
			reps:       []observed{rep("a", "n1", runtime.PhaseRunning, false, 0, runtime.ReasonProbeFailed, "readiness probe failed: HTTP 500")},
			wantStates: map[string]int32{protocol.StateRunning: 1}, wantFirst: "a", wantFirstMsg: "readiness probe failed: HTTP 500",
			wantProblems: map[string]int32{protocol.ProblemProbeFailed: 1},
		},
		{
			name:       "lost node",
			reps:       []observed{{Node: "n9", Lost: true, ReplicaState: protocol.ReplicaState{ID: "z", Phase: runtime.PhaseRunning, Ready: true}}},
			wantStates: map[string]int32{protocol.StateUnknown: 1}, wantFirst: "z", wantFirstMsg: "node n9 is lost: its replicas' state is unknown",
		},
		{
			name: "image pull failing, another pulling",
			reps: []observed{
				rep("p", "n1", runtime.PhaseBackoff, false, 0, runtime.ReasonPullFailed, "pull r/x:1: NAME_UNKNOWN: Unknown name"),
				rep("q", "n2", runtime.PhasePulling, false, 0, "", ""),
			},
			wantStates: map[string]int32{protocol.StateBackOff: 1, protocol.StatePulling: 1}, wantFirst: "p", wantFirstMsg: "pull r/x:1: NAME_UNKNOWN: Unknown name",
			wantProblems: map[string]int32{protocol.ProblemPullFailed: 1, protocol.ProblemBackOff: 1},
		},
		{
			name:       "fenced",
			reps:       []observed{rep("f", "n1", runtime.PhaseStopping, false, 0, runtime.ReasonFenced, "killed: fenced")},
			wantStates: map[string]int32{protocol.StateStopping: 1}, wantFirst: "f", wantFirstMsg: "killed: fenced",
			wantProblems: map[string]int32{protocol.ProblemFenced: 1},
		},
		{
			name:       "not reported yet is Pending",
			reps:       []observed{{Node: "n1", ReplicaState: protocol.ReplicaState{ID: "p"}}},
			wantStates: map[string]int32{protocol.StatePending: 1}, wantFirst: "p",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			states, examples, problems := summarizeReplicas(c.reps)
			if !maps.Equal(states, c.wantStates) {
				t.Fatalf("states %v, want %v", states, c.wantStates)
			}
			if c.wantFirst != "" && (len(examples) == 0 || examples[0].Replica != c.wantFirst || examples[0].Message != c.wantFirstMsg) {
				t.Fatalf("examples %+v, want %s first with %q", examples, c.wantFirst, c.wantFirstMsg)
			}
			got := map[string]int32{}
			for _, p := range problems {
				got[p.Reason] = p.Replicas
				if p.Message == "" {
					t.Fatalf("problem %s has no words", p.Reason)
				}
			}
			if len(got) == 0 {
				got = nil
			}
			if !maps.Equal(got, c.wantProblems) {
				t.Fatalf("problems %v, want %v", got, c.wantProblems)
			}
		})
	}
}

// A workload of 100,000 replicas reports counts and a bounded sample,
// the failing ones first.
func TestSummarizeReplicasIsBounded(t *testing.T) {
	reps := make([]observed, 0, 100000)
	for i := range 100000 {
		r := observed{Node: fmt.Sprintf("n%d", i%50), ReplicaState: protocol.ReplicaState{ID: fmt.Sprintf("r%06d", i), Phase: runtime.PhaseRunning, Ready: true}}
		if i%1000 == 7 {
			r.Phase, r.Ready, r.Reason, r.LastError, r.Restarts = runtime.PhaseBackoff, false, runtime.ReasonExited, "exited with code 2", 3
		}
		reps = append(reps, r)
	}
	states, examples, problems := summarizeReplicas(reps)
	if states[protocol.StateBackOff] != 100 || states[protocol.StateReady] != 99900 {
		t.Fatalf("states %v", states)
	}
	if len(examples) != protocol.MaxReplicaExamples {
		t.Fatalf("%d examples, want %d", len(examples), protocol.MaxReplicaExamples)
	}
	if examples[0].Replica != "r000007" || examples[9].Replica != "r009007" {
		t.Fatalf("examples from %s to %s, want r000007 to r009007 (the failing ones, by name)", examples[0].Replica, examples[9].Replica)
	}
	for _, e := range examples {
		if e.State != protocol.StateBackOff {
			t.Fatalf("example %+v: want the failing replicas first", e)
		}
	}
	if len(problems) != 2 || problems[0].Reason != protocol.ProblemReplicaFailed || problems[0].Replicas != 100 || problems[0].Restarts != 300 {
		t.Fatalf("problems %+v", problems)
	}
}

// BenchmarkSummarize100kReplicas: what a status pass spends on one
// workload of 100,000 replicas (1% failing).
func BenchmarkSummarize100kReplicas(b *testing.B) {
	reps := make([]observed, 0, 100000)
	for i := range 100000 {
		r := observed{Node: fmt.Sprintf("n%d", i%5000), ReplicaState: protocol.ReplicaState{ID: fmt.Sprintf("r%06d", i), Phase: runtime.PhaseRunning, Ready: true}}
		if i%100 == 7 {
			r.Phase, r.Ready, r.Reason, r.LastError, r.Restarts = runtime.PhaseBackoff, false, runtime.ReasonExited, "exited with code 2", 3
		}
		reps = append(reps, r)
	}
	b.ReportAllocs()
	for b.Loop() {
		summarizeReplicas(reps)
	}
}
