package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Version is the protocol version this build speaks.
const Version = 7

// RegistrationProofSince is the first version whose members prove, when
// they register, that they hold their NATS key (they sign a nonce the hub
// issued): a hub refuses registrations without that proof, so a member
// of an older version keeps running but cannot register again.
const RegistrationProofSince = 4

// LogOptionsSince is the first version whose members (and node agents)
// honour a LogsRequest's Tail, Since, Timestamps and Previous: an older
// one ignores them, so the hub does not ask it with them (it says why).
const LogOptionsSince = 5

// MaxFenceAfter is the longest fence a member may have: a hub that has
// not heard a member since it started waits this long (plus its margin)
// before re-placing its exclusive workloads.
const MaxFenceAfter = 30 * time.Second

// ExclusiveSince is the first version whose desired state says whether a
// workload is exclusive (and carries the lease term): a member holding
// desired state stored under an older one does not know which of its
// workloads to fence until the hub sends it again.
const ExclusiveSince = 3

// ReplicaTruthSince is the first version whose members report each
// workload's replicas by state with examples and problems, and answer
// the hub's replicas and nodes requests: an older member's status has
// counts only, and it does not answer those requests.
const ReplicaTruthSince = 5

// MinVersion is the oldest member protocol the hub still accepts: one
// version behind, so members can be upgraded after hubs.
const MinVersion = Version - 1

// SpokenWith is the version the hub speaks to a member that heartbeats
// with peer: the member's own when it is older (it refuses newer
// messages; it ignores fields it does not know), else Version (peer 0:
// not heard yet).
func SpokenWith(peer int) int {
	if peer >= MinVersion && peer < Version {
		return peer
	}
	return Version
}

// Subject prefixes.
const (
	memberPrefix = "atoll.m."
	hubPrefix    = "atoll.h."
	inboxPrefix  = "_INBOX."
)

// HeartbeatSubject is where a member sends its heartbeats (as requests;
// the reply is a HeartbeatAck).
func HeartbeatSubject(cluster string) string { return memberPrefix + cluster + ".hb" }

// HeartbeatWildcard matches every member's heartbeats; the hub subscribes
// to it.
const HeartbeatWildcard = memberPrefix + "*.hb"

// MemberPublish is the subject space a member may publish on.
func MemberPublish(cluster string) string { return memberPrefix + cluster + ".>" }

// MemberReceive is the subject space addressed to a member.
func MemberReceive(cluster string) string { return hubPrefix + cluster + ".>" }

// InboxPrefix is the member's reply inbox prefix (nats.CustomInboxPrefix).
func InboxPrefix(cluster string) string { return inboxPrefix + cluster }

// MemberInbox is the subject space of the member's reply inbox.
func MemberInbox(cluster string) string { return inboxPrefix + cluster + ".>" }

// ImportedReply says whether reply is one NATS made for a request that
// came into the hubs' account through a member's service import: it then
// routes back only to the account the request came from, whatever the
// member asked. (Members live in accounts of their own; see natsbus.)
func ImportedReply(reply string) bool { return strings.HasPrefix(reply, "_R_.") }

// ReplySubject is where a member answers the hub's request id: the hub
// cannot use NATS inboxes for requests to members, because a member may
// only publish under its own prefix (response permissions do not cross
// leafnode connections).
func ReplySubject(cluster, id string) string { return memberPrefix + cluster + ".r." + id }

// ReplyWildcard matches every member's replies; the hub subscribes to it
// once, so the interest is in place before any request goes out.
const ReplyWildcard = memberPrefix + "*.r.*"

// ClusterOf returns the cluster a member subject belongs to, or "".
func ClusterOf(subject string) string {
	if len(subject) <= len(memberPrefix) || subject[:len(memberPrefix)] != memberPrefix {
		return ""
	}
	rest := subject[len(memberPrefix):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '.' {
			return rest[:i]
		}
	}
	return ""
}

// Capacity is a member's summary of its region: nodes and what they can
// hold, in base units (millicores, bytes).
type Capacity struct {
	NodesReady        int   `json:"nodesReady"`
	NodesTotal        int   `json:"nodesTotal"`
	CPUAllocatable    int64 `json:"cpuAllocatableMillis"`
	CPUAllocated      int64 `json:"cpuAllocatedMillis"`
	MemoryAllocatable int64 `json:"memoryAllocatableBytes"`
	MemoryAllocated   int64 `json:"memoryAllocatedBytes"`
	Replicas          int   `json:"replicas"`
	ReplicasReady     int   `json:"replicasReady"`
}

// Heartbeat is what a member sends every interval.
type Heartbeat struct {
	Version       int       `json:"v"`
	Cluster       string    `json:"cluster"`
	Seq           uint64    `json:"seq"`
	SentAt        time.Time `json:"sentAt"`
	MemberVersion string    `json:"memberVersion,omitempty"`
	// IntervalMillis is how often this member heartbeats; the hub judges
	// its silence by it.
	IntervalMillis int64    `json:"intervalMillis,omitempty"`
	Capacity       Capacity `json:"capacity"`
	// FenceAfterMillis is how long this member runs exclusive workloads
	// without an ack; the hub re-places them only after this plus a safety
	// margin has passed since the last heartbeat it received (0: a member
	// before version 3, judged by the hub's default).
	FenceAfterMillis int64 `json:"fenceAfterMillis,omitempty"`
	// Term names the member's current lease: it changes whenever the
	// member went longer than its fence without an ack. The hub stamps
	// desired state with the term it last heard, and the member lets an
	// exclusive workload run again only on desired state of its current
	// term, so a message delayed across a fence cannot restart one.
	Term uint64 `json:"term,omitempty"`
	// Resync asks the hub to send all of this member's desired state again
	// (stamped with Term): the member holds exclusive workloads the hub has
	// not confirmed in this term.
	Resync bool `json:"resync,omitempty"`
}

// HeartbeatAck answers a heartbeat. The member treats the time of its last
// ack as its lease on the hub.
type HeartbeatAck struct {
	Version int       `json:"v"`
	Seq     uint64    `json:"seq"`
	HubTime time.Time `json:"hubTime"`
	HubID   string    `json:"hubId"`
	// StatusDeltas says the hub folds StatusDelta reports (additive in
	// 7): the member may send what changed instead of its whole status.
	StatusDeltas bool `json:"statusDeltas,omitempty"`
}

// Errors from DecodeHeartbeat, so the hub can count drops by reason.
var (
	ErrMalformed    = errors.New("malformed message")
	ErrVersion      = errors.New("unsupported protocol version")
	ErrWrongCluster = errors.New("message names another cluster than its subject")
)

// DropReason names, for a counter of dropped messages, why a Decode
// function refused one: "version", "wrong_cluster", else "malformed".
func DropReason(err error) string {
	switch {
	case errors.Is(err, ErrVersion):
		return "version"
	case errors.Is(err, ErrWrongCluster):
		return "wrong_cluster"
	}
	return "malformed"
}

// DecodeHeartbeat reads a heartbeat received on subject and checks that it
// is well formed, of a supported version and about the subject's cluster.
func DecodeHeartbeat(subject string, data []byte) (Heartbeat, error) {
	var hb Heartbeat
	if err := json.Unmarshal(data, &hb); err != nil {
		return hb, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return hb, checkFromMember(subject, hb.Version, hb.Cluster)
}

// checkFromMember checks a member's message received on subject: of a
// supported version and about the subject's cluster (a member speaks
// only for itself).
func checkFromMember(subject string, version int, cluster string) error {
	if version < MinVersion || version > Version {
		return fmt.Errorf("%w: %d (this hub speaks %d..%d)", ErrVersion, version, MinVersion, Version)
	}
	if c := ClusterOf(subject); c == "" || c != cluster {
		return fmt.Errorf("%w: subject %q, message %q", ErrWrongCluster, subject, cluster)
	}
	return nil
}
