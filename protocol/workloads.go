package protocol

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/atollhq/atoll/api"
)

// DesiredSubject is where the hub sends a member its desired state, one
// workload per request; the member answers with a DesiredAck once the
// state is in its KV.
func DesiredSubject(cluster string) string { return hubPrefix + cluster + ".desired" }

// StatusSubject is where a member reports per-workload status.
func StatusSubject(cluster string) string { return memberPrefix + cluster + ".status" }

// DesiredWorkload says: run Replicas replicas of Template for Workload, as
// decided at Epoch. Epochs only grow for a workload; a member keeps the
// highest it has seen and refuses older ones, so a late or replayed
// message can never roll it back. Deleted is an explicit tombstone: the
// only way work is removed from a member.
type DesiredWorkload struct {
	Version    int                 `json:"v"`
	Workload   string              `json:"workload"`
	UID        string              `json:"uid,omitempty"`
	Epoch      int64               `json:"epoch"`
	Generation int64               `json:"generation"`
	Replicas   int32               `json:"replicas"`
	Template   api.ReplicaTemplate `json:"template"`
	Update     *api.UpdateStrategy `json:"update,omitempty"`
	Scheduling Scheduling          `json:"scheduling,omitzero"`
	Deleted    bool                `json:"deleted,omitempty"`
	// Exclusive workloads must never run in two clusters at once: their
	// replicas stop when the member loses its lease on the hub and start
	// again only once the hub confirms them in the member's new term.
	Exclusive bool `json:"exclusive,omitempty"`
	// Term is the member lease term the hub last heard when it sent this
	// (Heartbeat.Term); 0 when it had heard none.
	Term uint64 `json:"term,omitempty"`
}

// Scheduling is how the member's scheduler places the replicas.
type Scheduling struct {
	Strategy     string `json:"strategy,omitempty"` // spread (default) or binpack
	ZoneSpread   bool   `json:"zoneSpread,omitempty"`
	AntiAffinity bool   `json:"antiAffinity,omitempty"`
}

// DesiredAck answers a DesiredWorkload.
type DesiredAck struct {
	Version  int    `json:"v"`
	Workload string `json:"workload"`
	Epoch    int64  `json:"epoch"`
	Accepted bool   `json:"accepted"`
	// Current is the epoch the member holds after this message.
	Current int64  `json:"current"`
	Reason  string `json:"reason,omitempty"`
}

// Validate checks a desired workload before a member stores it.
func (d *DesiredWorkload) Validate() error {
	if d.Version < MinVersion || d.Version > Version {
		return fmt.Errorf("%w: %d", ErrVersion, d.Version)
	}
	if !api.IsDNSLabel(d.Workload) {
		return fmt.Errorf("workload %q: not a DNS-1123 label", d.Workload)
	}
	if d.Epoch <= 0 {
		return fmt.Errorf("epoch %d: must be positive", d.Epoch)
	}
	if d.Deleted {
		return nil
	}
	if d.Replicas < 0 {
		return fmt.Errorf("replicas %d: must be 0 or more", d.Replicas)
	}
	w := api.Workload{Metadata: api.ObjectMeta{Name: d.Workload}, Spec: api.WorkloadSpec{Replicas: d.Replicas, Template: d.Template, Update: d.Update}}
	if fe := w.Validate(); fe != nil {
		return fe
	}
	switch d.Scheduling.Strategy {
	case "", "spread", "binpack":
	default:
		return fmt.Errorf("scheduling strategy %q: must be spread or binpack", d.Scheduling.Strategy)
	}
	return nil
}

// DesiredBatchSubject is where the hub sends a member many desired
// workloads in one request (a DesiredBatch); the member answers with a
// DesiredBatchAck once every one it accepts is in its KV. A member that
// does not listen there is sent one workload per request on
// DesiredSubject (additive in 7).
func DesiredBatchSubject(cluster string) string { return hubPrefix + cluster + ".desired-batch" }

// MaxDesiredBatch is the most workloads one DesiredBatch may carry.
const MaxDesiredBatch = 256

// DesiredBatch carries several DesiredWorkloads, each judged on its own
// (one refused or invalid does not refuse the others). The same workload
// appears at most once.
type DesiredBatch struct {
	Version   int               `json:"v"`
	Workloads []DesiredWorkload `json:"workloads"`
}

// DesiredBatchAck answers a DesiredBatch: one DesiredAck per workload, in
// the batch's order. Reason alone (no acks) refuses the batch as a whole.
type DesiredBatchAck struct {
	Version int          `json:"v"`
	Acks    []DesiredAck `json:"acks,omitempty"`
	Reason  string       `json:"reason,omitempty"`
}

// DecodeDesiredBatch reads a DesiredBatch and checks the batch as a whole
// (version, size, no workload twice); each workload is checked with
// Validate by the receiver, so that one bad entry is refused alone.
func DecodeDesiredBatch(data []byte) (DesiredBatch, error) {
	var b DesiredBatch
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if b.Version < MinVersion || b.Version > Version {
		return b, fmt.Errorf("%w: %d", ErrVersion, b.Version)
	}
	if len(b.Workloads) > MaxDesiredBatch {
		return b, fmt.Errorf("%w: %d workloads in one batch (at most %d)", ErrMalformed, len(b.Workloads), MaxDesiredBatch)
	}
	seen := make(map[string]bool, len(b.Workloads))
	for _, d := range b.Workloads {
		if seen[d.Workload] {
			return b, fmt.Errorf("%w: workload %q twice in one batch", ErrMalformed, d.Workload)
		}
		seen[d.Workload] = true
	}
	return b, nil
}

// DecodeDesired reads and validates a DesiredWorkload.
func DecodeDesired(data []byte) (DesiredWorkload, error) {
	var d DesiredWorkload
	if err := json.Unmarshal(data, &d); err != nil {
		return d, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return d, d.Validate()
}

// WorkloadStatus is a member's view of one workload, reported upward.
type WorkloadStatus struct {
	Workload   string `json:"workload"`
	Epoch      int64  `json:"epoch"`
	Generation int64  `json:"generation"`
	Desired    int32  `json:"desired"`
	Scheduled  int32  `json:"scheduled"`
	Running    int32  `json:"running"`
	// Present counts the workload's replicas whose process may still
	// exist on the region's nodes, bound or being stopped: 0 means none
	// can run here (an exclusive workload may then start elsewhere).
	Present  int32 `json:"present"`
	Ready    int32 `json:"ready"`
	Updated  int32 `json:"updated"`
	Restarts int32 `json:"restarts"`
	// UpdatedReady and UpdatedRestarts count the replicas at this
	// generation's template only (Ready and Restarts count old ones too,
	// while a rolling update keeps them): a progressive rollout's gates
	// judge them. A replica waiting out its backoff after a failure (or
	// failed for good) counts one restart more: the restart to come.
	UpdatedReady    int32 `json:"updatedReady,omitempty"`
	UpdatedRestarts int32 `json:"updatedRestarts,omitempty"`
	// Pending explains replicas not placed, e.g. "2 pending: 0/5 nodes:
	// 3 insufficient memory, 2 tainted (no toleration)".
	Pending string `json:"pending,omitempty"`
	// Data is the desired template's api.AnnotationData: the versions of
	// the configs and secrets its updated replicas run with.
	Data string `json:"data,omitempty"`
	// Conditions such as Progressing=False when a rolling update stalled.
	Conditions []api.Condition `json:"conditions,omitempty"`
	// States counts the replicas by state (ReplicaStateOf), Examples are
	// at most MaxReplicaExamples of them (the most troubled first), and
	// Problems one entry per warning reason. Members before these fields
	// leave them out; the hub then shows counts only.
	States   map[string]int32 `json:"states,omitempty"`
	Examples []ReplicaSummary `json:"examples,omitempty"`
	Problems []ReplicaProblem `json:"problems,omitempty"`
}

// Equal says whether two statuses say the same: times as instants, an
// empty map or list as none (as their JSON does). Members send, and hubs
// fold, only what changed, so it runs for every workload of a region
// several times a second: by hand, not through reflection (a test checks
// it looks at every field).
func (s WorkloadStatus) Equal(o WorkloadStatus) bool {
	return s.Workload == o.Workload && s.Epoch == o.Epoch && s.Generation == o.Generation && s.Desired == o.Desired &&
		s.Scheduled == o.Scheduled && s.Running == o.Running && s.Present == o.Present && s.Ready == o.Ready &&
		s.Updated == o.Updated && s.Restarts == o.Restarts && s.UpdatedReady == o.UpdatedReady &&
		s.UpdatedRestarts == o.UpdatedRestarts && s.Pending == o.Pending && s.Data == o.Data &&
		maps.Equal(s.States, o.States) && slices.Equal(s.Problems, o.Problems) &&
		slices.EqualFunc(s.Conditions, o.Conditions, sameCondition) && slices.EqualFunc(s.Examples, o.Examples, sameSummary)
}

func sameCondition(a, b api.Condition) bool {
	return a.Type == b.Type && a.Status == b.Status && a.Reason == b.Reason && a.Message == b.Message &&
		sameTime(a.LastTransitionTime, b.LastTransitionTime)
}

func sameSummary(a, b ReplicaSummary) bool {
	return a.Replica == b.Replica && a.Workload == b.Workload && a.Node == b.Node && a.State == b.State &&
		a.Restarts == b.Restarts && a.Reason == b.Reason && a.Message == b.Message &&
		a.StartedAt.Equal(b.StartedAt) && a.NextStartAt.Equal(b.NextStartAt) &&
		(a.ExitCode == nil) == (b.ExitCode == nil) && (a.ExitCode == nil || *a.ExitCode == *b.ExitCode)
}

func sameTime(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

// StatusReport carries a member's status of every workload it holds.
type StatusReport struct {
	Version   int              `json:"v"`
	Cluster   string           `json:"cluster"`
	Workloads []WorkloadStatus `json:"workloads"`
	// Images is the presence of each standby workload's image on the
	// nodes the member asked to hold it (warm standby).
	Images []ImagePresence `json:"images,omitempty"`
}

// DecodeStatusReport reads a report received on subject and checks that
// it is well formed (workloads named by DNS labels), of a supported
// version and about the subject's cluster.
func DecodeStatusReport(subject string, data []byte) (StatusReport, error) {
	var r StatusReport
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := checkFromMember(subject, r.Version, r.Cluster); err != nil {
		return r, err
	}
	return r, checkWorkloadNames(r.Workloads)
}

// checkWorkloadNames refuses statuses of workloads no workload can be
// (names that are not DNS labels): a member's message is dropped whole.
func checkWorkloadNames(ws []WorkloadStatus) error {
	for i := range ws {
		if !api.IsDNSLabel(ws[i].Workload) {
			return fmt.Errorf("%w: workload %q is no DNS label", ErrMalformed, api.Truncate(ws[i].Workload, 100))
		}
	}
	return nil
}

// DigestSubject is where the hub asks a member which epoch it holds for
// every workload; a difference from the hub's placements is repaired by
// sending the state again (delivery is level-triggered).
func DigestSubject(cluster string) string { return hubPrefix + cluster + ".digest" }

// Digest is a member's answer: workload -> epoch held (tombstones
// included).
type Digest struct {
	Version   int              `json:"v"`
	Workloads map[string]int64 `json:"workloads"`
}

// DrillSubject is where the hub sends a member drill commands.
func DrillSubject(cluster string) string { return hubPrefix + cluster + ".drill" }

// Drill command kinds.
const (
	// DrillOutage: the member goes dark, as if its region died: it stops
	// heartbeating, answers the hub nothing but drill commands, and its
	// node agents stop every replica.
	DrillOutage = "outage"
	// DrillPartition: hub and member cannot hear each other; the member
	// stops heartbeating and ignores the hub (but drill commands), while
	// its replicas keep running and its fence acts as in a real partition.
	DrillPartition = "partition"
	// DrillRestore ends any drill on the member at once.
	DrillRestore = "restore"
)

// DrillCommand starts or ends a drill on a member. The member ends the
// drill by itself after Duration, so a member cut off from the hub comes
// back even if the restore never reaches it.
type DrillCommand struct {
	Version        int    `json:"v"`
	Drill          string `json:"drill"`
	Kind           string `json:"kind"`
	DurationMillis int64  `json:"durationMillis,omitempty"`
}

// DrillAck answers a DrillCommand.
type DrillAck struct {
	Version  int    `json:"v"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}
