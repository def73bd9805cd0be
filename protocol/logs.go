package protocol

import (
	"encoding/json"
	"fmt"

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
	return r, nil
}
