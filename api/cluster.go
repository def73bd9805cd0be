package api

import (
	"fmt"
	"time"
)

// Cluster labels the hub sets from registration.
const (
	LabelRegion   = "region"
	LabelZone     = "zone"
	LabelProvider = "provider"
)

// Health states of a cluster, from its heartbeats.
const (
	HealthReady       = "Ready"       // heartbeating
	HealthSuspect     = "Suspect"     // missed two heartbeats
	HealthUnreachable = "Unreachable" // silent for the grace period
	HealthUnknown     = "Unknown"     // not heard from since this hub started
)

// Cluster is a regional member cluster. Members create theirs by
// registering; operators cordon and taint them; admins deregister them.
type Cluster struct {
	TypeMeta
	Metadata ObjectMeta    `json:"metadata"`
	Spec     ClusterSpec   `json:"spec"`
	Status   ClusterStatus `json:"status,omitzero" readOnly:"true"`
}

// ClusterList is a page of clusters.
type ClusterList struct {
	TypeMeta
	Metadata ListMeta  `json:"metadata"`
	Items    []Cluster `json:"items"`
}

// ClusterSpec is what operators control about a cluster.
type ClusterSpec struct {
	Unschedulable bool    `json:"unschedulable,omitempty" doc:"Cordoned: nothing new is placed here; what runs stays."`
	Taints        []Taint `json:"taints,omitempty"`
}

// Taint keys Atoll itself sets. Both are NoExecute taints whose evictions
// drain gracefully (each replica kept until its replacement is ready),
// whatever the workload's purge policy.
const (
	DrainTaintKey = "atoll.dev/drain" // atoll cluster drain, the console's drain
	DrillTaintKey = "atoll.dev/drill" // an evacuate drill (value: the drill's name)
)

// Taint repels workloads that do not tolerate it.
type Taint struct {
	Key       string     `json:"key" minLength:"1"`
	Value     string     `json:"value,omitempty"`
	Effect    string     `json:"effect" enum:"NoSchedule,NoExecute" doc:"NoSchedule: no new placements; NoExecute: also move what runs here."`
	TimeAdded *time.Time `json:"timeAdded,omitempty"`
}

// ClusterStatus is what the hub knows from registration and heartbeats.
type ClusterStatus struct {
	Health              string           `json:"health,omitempty" enum:"Ready,Suspect,Unreachable,Unknown"`
	Conditions          []Condition      `json:"conditions,omitempty"`
	LastHeartbeatTime   *time.Time       `json:"lastHeartbeatTime,omitempty"`
	HeartbeatAgeSeconds *float64         `json:"heartbeatAgeSeconds,omitempty" doc:"Age of the last heartbeat when this answer was made (as seen by the hub that answered)."`
	Capacity            *ClusterCapacity `json:"capacity,omitempty"`
	MemberVersion       string           `json:"memberVersion,omitempty"`
	ProtocolVersion     int              `json:"protocolVersion,omitempty"`
	Identity            string           `json:"identity,omitempty" doc:"The member's NATS public key."`
	RegisteredAt        *time.Time       `json:"registeredAt,omitempty"`
}

// ClusterCapacity summarises a cluster's nodes and what they hold.
type ClusterCapacity struct {
	NodesReady        int   `json:"nodesReady"`
	NodesTotal        int   `json:"nodesTotal"`
	CPUAllocatable    int64 `json:"cpuAllocatableMillis"`
	CPUAllocated      int64 `json:"cpuAllocatedMillis"`
	MemoryAllocatable int64 `json:"memoryAllocatableBytes"`
	MemoryAllocated   int64 `json:"memoryAllocatedBytes"`
	Replicas          int   `json:"replicas"`
	ReplicasReady     int   `json:"replicasReady"`
}

// GetTypeMeta implements Object.
func (c *Cluster) GetTypeMeta() *TypeMeta { return &c.TypeMeta }

// GetMetadata implements Object.
func (c *Cluster) GetMetadata() *ObjectMeta { return &c.Metadata }

// Validate implements Object.
func (c *Cluster) Validate() FieldErrors {
	var e errs
	validateTypeMeta(&e, c.TypeMeta, "Cluster")
	validateMeta(&e, &c.Metadata)
	seen := map[string]bool{}
	for i, t := range c.Spec.Taints {
		p := fmt.Sprintf("spec.taints[%d]", i)
		if err := checkLabelKey(t.Key); err != nil {
			e.addValue(p+".key", t.Key, "%v", err)
		}
		if err := checkLabelValue(t.Value); err != nil {
			e.addValue(p+".value", t.Value, "%v", err)
		}
		switch t.Effect {
		case "NoSchedule", "NoExecute":
		case "":
			e.add(p+".effect", "is required: NoSchedule or NoExecute")
		default:
			e.addValue(p+".effect", t.Effect, "must be NoSchedule or NoExecute")
		}
		if seen[t.Key+":"+t.Effect] {
			e.addValue(p, t.Key, "the same key and effect are set twice")
		}
		seen[t.Key+":"+t.Effect] = true
	}
	if v, ok := c.Metadata.Annotations[AnnotationRolloutWindow]; ok {
		if _, err := ParseRolloutWindows(v); err != nil {
			e.addValue("metadata.annotations["+AnnotationRolloutWindow+"]", v, "%v", err)
		}
	}
	return e.result()
}

// Tolerates is Kubernetes' Toleration.ToleratesTaint: an empty effect
// matches every effect, an empty key (with Exists) every key; Exists
// matches any value, Equal (the default) the same value. Both the member
// scheduler (node taints) and placement (cluster taints) use it.
func (tol Toleration) Tolerates(t Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != t.Key {
		return false
	}
	switch tol.Operator {
	case "Exists":
		return true
	case "", "Equal":
		return tol.Value == t.Value
	default:
		return false
	}
}
