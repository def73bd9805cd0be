package protocol

import (
	"encoding/json"
	"fmt"

	"github.com/atollhq/atoll/api"
)

// The hub asks a member what runs in its region (for `atoll get replicas`
// and `atoll get nodes`) on these subjects, request and reply, as it asks
// for logs: the member answers from its nodes' latest heartbeats and its
// bindings, never touching a node. A member before these subjects does
// not answer (the hub then says so for that cluster).

// ReplicasSubject is where the hub asks a member for replicas
// (ReplicasQuery; the answer is a ReplicaList).
func ReplicasSubject(cluster string) string { return hubPrefix + cluster + ".replicas" }

// NodesSubject is where the hub asks a member for its nodes (any body;
// the answer is a NodeList).
func NodesSubject(cluster string) string { return hubPrefix + cluster + ".nodes" }

// MaxReplicasListed bounds one ReplicaList: a region may run far more
// replicas than one answer should carry.
const MaxReplicasListed = 1000

// ReplicasQuery selects replicas: of one workload and/or on one node
// ("": any), at most Limit (0 or above MaxReplicasListed: that maximum).
type ReplicasQuery struct {
	Version  int    `json:"v"`
	Workload string `json:"workload,omitempty"`
	Node     string `json:"node,omitempty"`
	Limit    int    `json:"limit,omitempty"`
}

// DecodeReplicasQuery reads and checks a query.
func DecodeReplicasQuery(data []byte) (ReplicasQuery, error) {
	var q ReplicasQuery
	if err := json.Unmarshal(data, &q); err != nil {
		return q, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if q.Version < MinVersion || q.Version > Version {
		return q, fmt.Errorf("%w: %d", ErrVersion, q.Version)
	}
	if q.Workload != "" && !api.IsDNSLabel(q.Workload) {
		return q, fmt.Errorf("workload %q: not a DNS-1123 label", q.Workload)
	}
	if q.Node != "" && !api.IsDNSLabel(q.Node) {
		return q, fmt.Errorf("node %q: not a DNS-1123 label", q.Node)
	}
	if q.Limit <= 0 || q.Limit > MaxReplicasListed {
		q.Limit = MaxReplicasListed
	}
	return q, nil
}

// ReplicaList answers a ReplicasQuery: the replicas (sorted by workload,
// then the most troubled first), Total that matched (more than listed
// when the limit cut them), or Error.
type ReplicaList struct {
	Version  int              `json:"v"`
	Replicas []ReplicaSummary `json:"replicas"`
	Total    int              `json:"total"`
	Error    string           `json:"error,omitempty"`
}

// NodeInfo is one node of a region as its member knows it.
type NodeInfo struct {
	Name           string            `json:"name"`
	Zone           string            `json:"zone,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Taints         []api.Taint       `json:"taints,omitempty"`
	Ready          bool              `json:"ready"`
	Lost           bool              `json:"lost,omitempty"`
	Allocatable    Resources         `json:"allocatable"`
	Replicas       int               `json:"replicas"`
	ReplicasReady  int               `json:"replicasReady"`
	LimitsEnforced bool              `json:"limitsEnforced"`
}

// NodeList answers a nodes request.
type NodeList struct {
	Version int        `json:"v"`
	Nodes   []NodeInfo `json:"nodes"`
	Error   string     `json:"error,omitempty"`
}
