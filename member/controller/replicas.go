package controller

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// observed is one bound replica as its node last reported it.
type observed struct {
	Node string
	Lost bool // the node is lost: what it said last is stale
	protocol.ReplicaState
}

// severity orders states for examples: the most troubled first.
var severity = map[string]int{
	protocol.StateFailed: 0, protocol.StateBackOff: 1, protocol.StateUnknown: 2, protocol.StateRunning: 3,
	protocol.StateStarting: 4, protocol.StatePulling: 5, protocol.StatePending: 5, protocol.StateStopping: 6, protocol.StateSucceeded: 7, protocol.StateReady: 8,
}

// summarizeReplicas folds a workload's replicas into counts by state, at
// most protocol.MaxReplicaExamples examples (the most troubled first,
// then by name, so a report does not change while nothing does) and one
// problem per warning reason. It is what a status report says of the
// replicas, bounded whatever their number.
func summarizeReplicas(reps []observed) (map[string]int32, []protocol.ReplicaSummary, []protocol.ReplicaProblem) {
	var s summary
	for _, r := range reps {
		s.add(r)
	}
	return s.result()
}

// summary is summarizeReplicas one replica at a time, so a pass over a
// workload of 100,000 replicas keeps no list of them: only counts and the
// MaxReplicaExamples most troubled.
type summary struct {
	states   map[string]int32
	all      []protocol.ReplicaSummary
	problems map[string]*protocol.ReplicaProblem
}

func (s *summary) note(reason string, r *observed, msg string) {
	p := s.problems[reason]
	if p == nil {
		if s.problems == nil {
			s.problems = map[string]*protocol.ReplicaProblem{}
		}
		p = &protocol.ReplicaProblem{Reason: reason, Replica: r.ID, Node: r.Node, Message: msg}
		s.problems[reason] = p
	}
	p.Replicas++
	p.Restarts += int32(r.Restarts)
}

func (s *summary) add(r observed) {
	st := stateOf(r)
	if s.states == nil {
		s.states = map[string]int32{}
	}
	s.states[st]++
	if len(s.all) < protocol.MaxReplicaExamples || before(st, r.ID, s.all[len(s.all)-1]) {
		sm := summaryOf(r)
		i, _ := slices.BinarySearchFunc(s.all, sm, compareSummaries)
		s.all = slices.Insert(s.all, i, sm)
		if len(s.all) > protocol.MaxReplicaExamples {
			s.all = s.all[:protocol.MaxReplicaExamples]
		}
	}
	if r.Lost {
		return
	}
	switch r.Reason {
	case runtime.ReasonFenced:
		s.note(protocol.ProblemFenced, &r, r.LastError)
	case runtime.ReasonPullFailed:
		if st == protocol.StateBackOff || st == protocol.StatePulling {
			s.note(protocol.ProblemPullFailed, &r, r.LastError)
		}
	case runtime.ReasonProbeFailed:
		if st != protocol.StateReady {
			s.note(protocol.ProblemProbeFailed, &r, r.LastError)
		}
	case "":
	default:
		if st == protocol.StateBackOff || st == protocol.StateFailed {
			s.note(protocol.ProblemReplicaFailed, &r, r.LastError)
		}
	}
	if st == protocol.StateBackOff {
		s.note(protocol.ProblemBackOff, &r, "back-off restarting failed replica: "+cmp.Or(r.LastError, r.Message, "it exited"))
	}
}

func (s *summary) result() (map[string]int32, []protocol.ReplicaSummary, []protocol.ReplicaProblem) {
	var out []protocol.ReplicaProblem
	for _, reason := range []string{protocol.ProblemReplicaFailed, protocol.ProblemBackOff, protocol.ProblemProbeFailed, protocol.ProblemFenced, protocol.ProblemPullFailed} {
		if p := s.problems[reason]; p != nil {
			out = append(out, *p)
		}
	}
	return s.states, s.all, out
}

func stateOf(r observed) string {
	if r.Lost {
		return protocol.StateUnknown
	}
	return protocol.ReplicaStateOf(r.Phase, r.Ready)
}

// describeReplicas is every replica as a summary, the most troubled
// first.
func describeReplicas(reps []observed) []protocol.ReplicaSummary {
	all := make([]protocol.ReplicaSummary, 0, len(reps))
	for _, r := range reps {
		all = append(all, summaryOf(r))
	}
	sortSummaries(all)
	return all
}

func sortSummaries(all []protocol.ReplicaSummary) { slices.SortFunc(all, compareSummaries) }

// compareSummaries orders the most troubled first, then by name.
func compareSummaries(a, b protocol.ReplicaSummary) int {
	return cmp.Or(cmp.Compare(severity[a.State], severity[b.State]), cmp.Compare(a.Replica, b.Replica))
}

// before says whether a replica in state named id sorts before s.
func before(state, id string, s protocol.ReplicaSummary) bool {
	return cmp.Or(cmp.Compare(severity[state], severity[s.State]), cmp.Compare(id, s.Replica)) < 0
}

// summaryOf is one replica in words: what is wrong now (a replica that
// runs well keeps its last error only as history, not shown).
func summaryOf(r observed) protocol.ReplicaSummary {
	st := stateOf(r)
	s := protocol.ReplicaSummary{Replica: r.ID, Node: r.Node, State: st, Restarts: int32(r.Restarts), ExitCode: r.ExitCode,
		Reason: r.Reason, Message: cmp.Or(r.LastError, r.Message), StartedAt: r.StartedAt, NextStartAt: r.NextStartAt}
	if r.Lost {
		s.Message = fmt.Sprintf("node %s is lost: its replicas' state is unknown", r.Node)
	} else if st == protocol.StateReady || st == protocol.StateRunning && r.Reason != runtime.ReasonProbeFailed {
		s.Message = r.Message
	}
	return s
}
