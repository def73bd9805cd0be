package api

// ReplicaInfoList answers GET /api/v1/replicas: replicas as their members
// report them now (not stored by the hub), and the clusters that could
// not say.
type ReplicaInfoList struct {
	TypeMeta
	Items []ReplicaInfo `json:"items"`
	// Total counts the replicas that matched; more than Items when a
	// member's answer was cut at its limit.
	Total       int              `json:"total"`
	Unavailable []ClusterProblem `json:"unavailable,omitempty" doc:"Clusters that did not answer, and why."`
}

// ClusterProblem says why a cluster could not answer.
type ClusterProblem struct {
	Cluster string `json:"cluster"`
	Message string `json:"message"`
}

// NodeInfo is one node of a member cluster as its member knows it.
type NodeInfo struct {
	Name           string            `json:"name"`
	Cluster        string            `json:"cluster"`
	Zone           string            `json:"zone,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Taints         []Taint           `json:"taints,omitempty"`
	Ready          bool              `json:"ready"`
	Lost           bool              `json:"lost,omitempty" doc:"Silent beyond its grace: its replicas move."`
	CPUMillis      int64             `json:"cpuAllocatableMillis"`
	MemoryBytes    int64             `json:"memoryAllocatableBytes"`
	Replicas       int               `json:"replicas"`
	ReplicasReady  int               `json:"replicasReady"`
	LimitsEnforced bool              `json:"limitsEnforced"`
}

// NodeInfoList answers GET /api/v1/nodes.
type NodeInfoList struct {
	TypeMeta
	Items       []NodeInfo       `json:"items"`
	Unavailable []ClusterProblem `json:"unavailable,omitempty" doc:"Clusters that did not answer, and why."`
}

// LogsUnreadTrailer is the HTTP trailer a logs read ends with: how many of
// the clusters asked could not be read (no answer, an error, a member too
// old for the options), the lines having come with 200 before it was
// known; "0" when every cluster was read, or when a replica was asked
// for and a cluster served it.
const LogsUnreadTrailer = "Atoll-Logs-Unread"

// LogsRefusedTrailer is the HTTP trailer of a logs read that every
// cluster asked answered with the replica (or its previous run) not
// there, when the lines' 200 was already out: the problem (JSON) the
// read would have been refused with.
const LogsRefusedTrailer = "Atoll-Logs-Refused"
