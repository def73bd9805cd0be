package api

import (
	"encoding/json"
	"time"
)

// Group is the API group and version every Atoll resource carries.
const Group = "atoll.dev/v1"

// TypeMeta names the kind and API version of an object.
type TypeMeta struct {
	APIVersion string `json:"apiVersion,omitempty" doc:"Always atoll.dev/v1." enum:"atoll.dev/v1"`
	Kind       string `json:"kind,omitempty" doc:"The resource kind, e.g. Workload."`
}

// ObjectMeta is the metadata every object has. The hub assigns uid,
// generation and the timestamps; clients set name, labels, annotations and
// finalizers, and send resourceVersion back on updates as a precondition.
type ObjectMeta struct {
	Name              string            `json:"name" doc:"Unique name within the kind: a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)." minLength:"1" maxLength:"63" pattern:"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" patternDescription:"a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)"`
	UID               string            `json:"uid,omitempty" readOnly:"true" doc:"Unique id of this incarnation of the object, assigned by the hub."`
	Labels            map[string]string `json:"labels,omitempty" doc:"Identifying key/value pairs, used by label selectors."`
	Annotations       map[string]string `json:"annotations,omitempty" doc:"Non-identifying key/value pairs for tools and people."`
	ResourceVersion   string            `json:"resourceVersion,omitempty" doc:"Opaque version of the object: versions grow with every write, and watches deliver changes in their order. Send it back on update to fail with 409 when someone else wrote in between."`
	Generation        int64             `json:"generation,omitempty" readOnly:"true" doc:"Bumped by the hub each time spec changes."`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty" readOnly:"true"`
	DeletionTimestamp *time.Time        `json:"deletionTimestamp,omitempty" readOnly:"true" doc:"Set when deletion was requested while finalizers remain."`
	Finalizers        []string          `json:"finalizers,omitempty" doc:"Names of the parties that must finish before the object goes away."`
}

// ListMeta is the metadata of a list: the resourceVersion the list was read
// at (to start a watch from) and the token for the next page.
type ListMeta struct {
	ResourceVersion string `json:"resourceVersion,omitempty" doc:"The version the list was read at; a watch from it misses nothing."`
	Continue        string `json:"continue,omitempty" doc:"Pass as 'continue' to get the next page; empty on the last page."`
}

// Condition is one observation of an object's state, in the Kubernetes
// shape.
type Condition struct {
	Type               string     `json:"type"`
	Status             string     `json:"status" enum:"True,False,Unknown"`
	Reason             string     `json:"reason,omitempty"`
	Message            string     `json:"message,omitempty"`
	LastTransitionTime *time.Time `json:"lastTransitionTime,omitempty"`
}

// SetCondition replaces the condition of c's type in conds (or adds it),
// keeping the old transition time when the status did not change.
func SetCondition(conds []Condition, c Condition) []Condition {
	for i, old := range conds {
		if old.Type == c.Type {
			if old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
			conds[i] = c
			return conds
		}
	}
	return append(conds, c)
}

// Object is what every resource type provides, so that stores, watches and
// clients can treat kinds alike.
type Object interface {
	GetTypeMeta() *TypeMeta
	GetMetadata() *ObjectMeta
	// Validate returns every problem with the user-written parts of the
	// object, each with its field path; nil means valid.
	Validate() FieldErrors
}

// Event types carried by watches.
const (
	Added    = "ADDED"
	Modified = "MODIFIED"
	Deleted  = "DELETED"
)

// WatchEvent is one change seen by a watch. Over SSE, the event's id is the
// object's resourceVersion and its name is Type.
type WatchEvent struct {
	Type   string          `json:"type" enum:"ADDED,MODIFIED,DELETED"`
	Object json.RawMessage `json:"object"`
}
