package api

import "time"

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Labels every event carries, so events of one object can be selected
// (labelSelector=atoll.dev/object-kind=Cluster,atoll.dev/object-name=eu-west).
const (
	LabelEventKind = "atoll.dev/object-kind"
	LabelEventName = "atoll.dev/object-name"
)

// Event records something that happened to an object. The hub writes
// them; they expire after a retention period.
type Event struct {
	TypeMeta
	Metadata       ObjectMeta      `json:"metadata"`
	InvolvedObject ObjectReference `json:"involvedObject"`
	Type           string          `json:"type" enum:"Normal,Warning"`
	Reason         string          `json:"reason" doc:"A short CamelCase reason, e.g. ClusterUnreachable."`
	Message        string          `json:"message"`
	Source         string          `json:"source,omitempty" doc:"The component that wrote it, e.g. hub/health."`
	EventTime      *time.Time      `json:"eventTime,omitempty" doc:"When it last happened."`
	// Count, FirstTimestamp and Cluster are set on deduplicated events: one
	// per object, cluster and reason, updated in place as it recurs.
	Count          int32      `json:"count,omitempty" doc:"How often it happened (deduplicated events)."`
	FirstTimestamp *time.Time `json:"firstTimestamp,omitempty" doc:"When it first happened (deduplicated events)."`
	Cluster        string     `json:"cluster,omitempty" doc:"The cluster it happened in."`
}

// EventList is a page of events.
type EventList struct {
	TypeMeta
	Metadata ListMeta `json:"metadata"`
	Items    []Event  `json:"items"`
}

// ObjectReference names an object.
type ObjectReference struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	UID  string `json:"uid,omitempty"`
}

// GetTypeMeta implements Object.
func (e *Event) GetTypeMeta() *TypeMeta { return &e.TypeMeta }

// GetMetadata implements Object.
func (e *Event) GetMetadata() *ObjectMeta { return &e.Metadata }

// Validate implements Object; events are written by the hub only.
func (e *Event) Validate() FieldErrors { return nil }
