package protocol

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/atollhq/atoll/api"
)

// Replica logs flow hub -> member -> node agent and back as a stream of
// messages to the requester's reply subject: each message is a run of
// whole lines of one replica (header LogReplicaHeader), and the last one
// has no data and the header LogEndHeader ("ok", or why it ended early).
// A follower stops a stream by publishing to the stop subject named in
// the request.

// LogsSubject is where the hub asks a member for replica logs.
func LogsSubject(cluster string) string { return hubPrefix + cluster + ".logs" }

// LogsStopSubject is where the hub stops a followed log stream id.
func LogsStopSubject(cluster, id string) string { return hubPrefix + cluster + ".logs.stop." + id }

// Log stream headers.
const (
	LogReplicaHeader = "Atoll-Replica"
	LogEndHeader     = "Atoll-End"
	// LogEndCodeHeader, on an end that is not "ok", says what kind of
	// end it is when the requester may act on it (LogEndNotFound,
	// LogEndNoPrevious); absent otherwise (and from version 4 senders).
	LogEndCodeHeader = "Atoll-End-Code"
	// LogVersionHeader, on every end since version 5, is the protocol
	// version of the end's sender: a reader that asked for options can
	// tell an older peer that ignored them.
	LogVersionHeader = "Atoll-Log-Version"
)

// Codes of LogEndCodeHeader.
const (
	LogEndNotFound   = "not-found"   // no such replica here
	LogEndNoPrevious = "no-previous" // the replica has no earlier run on record
)

// LogsRequest asks for the logs of a workload's replicas (one, when
// Replica is set).
type LogsRequest struct {
	Version  int    `json:"v"`
	Workload string `json:"workload"`
	Replica  string `json:"replica,omitempty"`
	Stream   string `json:"stream,omitempty"` // stdout (default) or stderr
	Follow   bool   `json:"follow,omitempty"`
	// Stop is the subject that ends a followed stream.
	Stop string `json:"stop,omitempty"`

	// Since version 5 (LogOptionsSince):

	// Tail, when set, keeps only the last *Tail lines (per replica) of
	// what was written before the request; followed lines come after.
	Tail *int `json:"tail,omitempty"`
	// Since drops lines written before it.
	Since *time.Time `json:"since,omitempty"`
	// Timestamps prefixes each line with the RFC 3339 time it was
	// written (UTC, nanoseconds).
	Timestamps bool `json:"timestamps,omitempty"`
	// Previous reads the run before the replica's last restart instead
	// of the current (or last) one; it never follows.
	Previous bool `json:"previous,omitempty"`
}

// HasOptions says whether r uses anything a version 4 peer ignores.
func (r LogsRequest) HasOptions() bool {
	return r.Tail != nil || r.Since != nil || r.Timestamps || r.Previous
}

// DecodeLogsRequest reads and checks a LogsRequest.
func DecodeLogsRequest(data []byte) (LogsRequest, error) {
	var r LogsRequest
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !api.IsDNSLabel(r.Workload) {
		return r, fmt.Errorf("workload %q: not a DNS-1123 label", r.Workload)
	}
	switch r.Stream {
	case "", "stdout", "stderr":
	default:
		return r, fmt.Errorf("stream %q: stdout or stderr", r.Stream)
	}
	if r.Tail != nil && *r.Tail < 0 {
		return r, fmt.Errorf("tail %d: not negative", *r.Tail)
	}
	if r.Previous && r.Follow {
		return r, fmt.Errorf("previous: a finished run cannot be followed")
	}
	return r, nil
}
