package protocol

import (
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// Inside a region, node agents talk to their member over the member's own
// NATS (never the hub's), each with its own key and permissions scoped to
// its own subjects: it heartbeats on NodeHeartbeatSubject, asks for the
// replicas bound to it on NodeBindingsSubject (the member answers from its
// in-memory copy of its bindings KV bucket, keys "<node>.<replica>", and
// only into that node's inbox: NodeReplyOK), hears on
// NodeChangedSubject that they changed, serves logs on NodeLogsSubject,
// and receives replies in its own inbox (NodeInboxPrefix). A node never
// touches the member's JetStream. A node joins once on NodeJoinSubject,
// authenticated with the member's node join token, by naming its public
// key; it then connects with that key.

// NodeHeartbeatSubject is where a node agent heartbeats (a request; the
// member answers with a NodeAck).
func NodeHeartbeatSubject(node string) string { return "atoll.node." + node + ".hb" }

// NodeHeartbeatWildcard matches every node's heartbeats.
const NodeHeartbeatWildcard = "atoll.node.*.hb"

// NodeLogsSubject is where a node agent serves replica logs.
func NodeLogsSubject(node string) string { return "atoll.node." + node + ".logs" }

// NodeLogsStopSubject is where the member ends one of a node's log streams.
func NodeLogsStopSubject(node, id string) string { return "atoll.node." + node + ".logs.stop." + id }

// NodeBindingsSubject is where a node agent asks for its bindings (a
// request; the member answers with NodeBindings).
func NodeBindingsSubject(node string) string { return "atoll.node." + node + ".bindings" }

// NodeBindingsWildcard matches every node's bindings requests.
const NodeBindingsWildcard = "atoll.node.*.bindings"

// NodeChangedSubject is where the member says a node's bindings changed.
func NodeChangedSubject(node string) string { return "atoll.node." + node + ".changed" }

// NodeJoinSubject is where a node agent enrolls its key (a NodeJoin
// request; the member answers with a NodeJoined).
const NodeJoinSubject = "atoll.node.join"

// NodeJoinUser is the user a node agent joins as, with the node join token
// as its password.
const NodeJoinUser = "node-join"

// NodeJoinInboxPrefix is the inbox prefix of join connections.
const NodeJoinInboxPrefix = "_NODE_JOIN"

// NodeInboxPrefix is a node agent's reply inbox prefix
// (nats.CustomInboxPrefix): replies to it reach that node alone.
func NodeInboxPrefix(node string) string { return "_NODE_INBOX." + node }

// NodeReplyOK says whether the member may answer a request of node's into
// reply: only into that node's own inbox. The member's connection may
// publish anywhere, and NATS checks no one's right to a reply subject, so
// a reply of the requester's choosing would have the member write, say,
// into its own KV buckets.
func NodeReplyOK(node, reply string) bool {
	return strings.HasPrefix(reply, NodeInboxPrefix(node)+".")
}

// NodeBindings answers a node's bindings request.
type NodeBindings struct {
	Version  int       `json:"v"`
	Bindings []Binding `json:"bindings"`
	// Prepull names the images (pinned to digests) the node should hold
	// ahead of need, for workloads that may fail over to its cluster:
	// at most MaxNodeImages.
	Prepull []string `json:"prepull,omitempty"`
}

// NodeJoin enrolls a node's public key (an nkey, "U...") under its name.
type NodeJoin struct {
	Version   int    `json:"v"`
	Node      string `json:"node"`
	PublicKey string `json:"publicKey"`
}

// NodeJoined answers a NodeJoin: Accepted, or Reason why not.
type NodeJoined struct {
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}

// Resources are CPU in millicores and memory in bytes.
type Resources struct {
	MilliCPU int64 `json:"milliCpu"`
	Memory   int64 `json:"memory"`
}

// NodeHeartbeat is a node agent's registration and heartbeat at once: who
// it is, what it can hold, and how its replicas are doing.
type NodeHeartbeat struct {
	Version     int               `json:"v"`
	Node        string            `json:"node"`
	Zone        string            `json:"zone,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Taints      []api.Taint       `json:"taints,omitempty"`
	Allocatable Resources         `json:"allocatable"`
	Replicas    []ReplicaState    `json:"replicas"`
	// LimitsEnforced is false when the agent cannot write cgroups.
	LimitsEnforced bool   `json:"limitsEnforced"`
	AgentVersion   string `json:"agentVersion,omitempty"`
	// Host is where other machines reach the node's replicas (its
	// advertised address); empty: 127.0.0.1.
	Host string `json:"host,omitempty"`
	// Images is the state of each image the member asked the node to
	// hold ahead (NodeBindings.Prepull).
	Images []NodeImage `json:"images,omitempty"`
	// ReplicasSeq numbers the replica list this heartbeat gives: the
	// agent changes it whenever the list changes, and a new agent process
	// starts from a fresh number (its start time in nanoseconds).
	// ReplicasSame says Replicas is left out: the list is the one
	// numbered ReplicasSeq, which the member's last ack said it holds
	// (NodeAck.ReplicasSeq). A node's list at 2 Hz was most of what a
	// member decoded; it changes far less often. A member before these
	// fields never acks a number, so it is always sent the list; a node
	// takes an ack's number only while its connection has not come back
	// since (a reconnect may reach a restarted member, or an older one).
	ReplicasSeq  uint64 `json:"replicasSeq,omitempty"`
	ReplicasSame bool   `json:"replicasSame,omitempty"`
}

// ReplicaState is one replica as its node agent sees it.
type ReplicaState struct {
	ID         string `json:"id"`
	Workload   string `json:"workload"`
	Generation int64  `json:"generation"`
	Phase      string `json:"phase"`
	Ready      bool   `json:"ready"`
	Restarts   int    `json:"restarts"`
	Message    string `json:"message,omitempty"`
	// Limits says why CPU and memory limits are not enforced ("" when they
	// are, or for simulated replicas).
	Limits string `json:"limits,omitempty"`
	// What follows are optional fields (no version bump: a member reads
	// an older agent's heartbeat without them, and its replicas show
	// without reasons).
	//
	// Reason is the kind of the last failure (runtime's Reason constants:
	// ExecFailed, Exited, Signaled, OOMKilled, ProbeFailed, Fenced,
	// InvalidSpec), LastError its words; ExitCode the last run's code
	// (128+n: killed by signal n; nil while the first run lasts).
	Reason      string    `json:"reason,omitempty"`
	LastError   string    `json:"lastError,omitempty"`
	ExitCode    *int      `json:"exitCode,omitempty"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	NextStartAt time.Time `json:"nextStartAt,omitzero"`
	// Port is the replica's allocated PORT (0: none, a simulated replica).
	Port int `json:"port,omitempty"`
}

// NodeAck answers a node heartbeat.
type NodeAck struct {
	Version int  `json:"v"`
	Known   bool `json:"known"`
	// LeaseMillis is how long from now the node may run exclusive
	// replicas (what is left of the member's lease on the hub); at 0 it
	// stops them. A node that hears nothing lets its last lease run out.
	LeaseMillis int64 `json:"leaseMillis"`
	// LeaseRenewed names the member's lease: when the hub last renewed it
	// (unix nanoseconds on the member's clock). Two acks with the same
	// value speak of one lease, whose end never moves later; 0 (a member
	// before this field) says nothing.
	LeaseRenewed int64 `json:"leaseRenewed,omitempty"`
	// Hold lists exclusive workloads that must not run until the hub
	// confirms them (after the member lost its lease).
	Hold []string `json:"hold,omitempty"`
	// Dark is set while a drill has taken the region down (outage): the
	// node stops every replica, as if its machine had died.
	Dark bool `json:"dark,omitempty"`
	// ReplicasSeq is the number of the node's replica list the member
	// holds (NodeHeartbeat.ReplicasSeq; 0: none it can name, send the
	// list): while the list stays the same, the node may leave it out.
	ReplicasSeq uint64 `json:"replicasSeq,omitempty"`
}

// Binding puts one replica on one node: the member writes it, the node
// agent runs what is bound to it.
type Binding struct {
	Replica    string              `json:"replica"`
	Workload   string              `json:"workload"`
	Node       string              `json:"node"`
	Epoch      int64               `json:"epoch"`
	Generation int64               `json:"generation"`
	Template   api.ReplicaTemplate `json:"template"`
	Exclusive  bool                `json:"exclusive,omitempty"`
	// Data is filled in by the member in its answer to a node's bindings
	// request (never stored): the values of the template's Configs and
	// Secrets.
	Data *BindingData `json:"data,omitempty"`
}

// BindingKey is the KV key of a binding.
func BindingKey(node, replica string) string { return node + "." + replica }
