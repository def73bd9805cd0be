package protocol

import "time"

// Replica states as users read them (kubectl's pod phases and container
// states, Nomad's allocation states): the runtime's phase and readiness
// folded into one word.
const (
	StatePending   = "Pending"   // bound, not started yet (or waiting for a port)
	StatePulling   = "Pulling"   // oci: its image is being pulled
	StateStarting  = "Starting"  // started; its startup probe has not passed yet
	StateRunning   = "Running"   // running, not ready
	StateReady     = "Ready"     // running and ready
	StateBackOff   = "BackOff"   // failed; restarts at NextStartAt
	StateFailed    = "Failed"    // failed and the restart policy keeps it down
	StateSucceeded = "Succeeded" // exited 0 and the restart policy keeps it down
	StateStopping  = "Stopping"  // being stopped
	StateUnknown   = "Unknown"   // its node is lost, or says nothing of it yet
)

// ReplicaStateOf is the state of a replica whose node reports phase and
// ready ("" phase: the node does not report it).
func ReplicaStateOf(phase string, ready bool) string {
	switch phase {
	case "Running":
		if ready {
			return StateReady
		}
		return StateRunning
	case "Backoff", StateBackOff:
		return StateBackOff
	case StatePending, StatePulling, StateStarting, StateFailed, StateSucceeded, StateStopping:
		return phase
	case "":
		return StatePending
	}
	return StateUnknown
}

// Warning event reasons a member reports in WorkloadStatus.Problems; the
// hub turns each into one deduplicated Event per workload, cluster and
// reason.
const (
	ProblemReplicaFailed = "ReplicaFailed" // a run failed: exec failure, non-zero exit, signal, OOM kill, a spec that cannot run
	ProblemBackOff       = "BackOff"       // replicas wait to restart after failures
	ProblemProbeFailed   = "ProbeFailed"   // a probe fails (readiness) or gave up (startup, liveness)
	ProblemFenced        = "Fenced"        // exclusive replicas stopped because the member lost its lease on the hub
	ProblemPullFailed    = "PullFailed"    // oci: the image could not be pulled (the registry's answer)
)

// MaxReplicaExamples bounds WorkloadStatus.Examples: a workload of
// 100,000 replicas reports counts by state and this many replicas, the
// most troubled first.
const MaxReplicaExamples = 10

// ReplicaSummary is one replica in a member's status report.
type ReplicaSummary struct {
	Replica     string    `json:"replica"`
	Workload    string    `json:"workload,omitempty"` // in a ReplicaList; a status report's are its workload's
	Node        string    `json:"node"`
	State       string    `json:"state"`
	Restarts    int32     `json:"restarts,omitempty"`
	ExitCode    *int      `json:"exitCode,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Message     string    `json:"message,omitempty"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	NextStartAt time.Time `json:"nextStartAt,omitzero"`
}

// ReplicaProblem is one kind of trouble a workload's replicas have in a
// cluster: how many replicas have it, their restarts (the hub counts an
// event's occurrences by them), and one example's words.
type ReplicaProblem struct {
	Reason   string `json:"reason"`
	Replicas int32  `json:"replicas"`
	Restarts int32  `json:"restarts,omitempty"`
	Replica  string `json:"replica,omitempty"`
	Node     string `json:"node,omitempty"`
	Message  string `json:"message"`
}
