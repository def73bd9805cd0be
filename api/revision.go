package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Annotations the rollout verbs read and write.
const (
	// AnnotationChangeCause, on a workload, says why its template changed;
	// the hub keeps it with the revision the change makes.
	AnnotationChangeCause = "atoll.dev/change-cause"
	// AnnotationRestartedAt, in a template, is what atoll rollout restart
	// changes so that every replica is replaced.
	AnnotationRestartedAt = "atoll.dev/restartedAt"
)

// DefaultRevisionHistoryLimit is how many revisions of a workload's
// template the hub keeps when spec.revisionHistoryLimit is not set;
// MaxRevisionHistoryLimit bounds what it may be set to (a template may be
// near a megabyte: a hundred of them per workload is plenty to keep).
const (
	DefaultRevisionHistoryLimit = 10
	MaxRevisionHistoryLimit     = 100
)

// HistoryLimit is the number of revisions kept for the workload.
func (s *WorkloadSpec) HistoryLimit() int {
	if s.RevisionHistoryLimit == nil || *s.RevisionHistoryLimit < 1 {
		return DefaultRevisionHistoryLimit
	}
	return int(*s.RevisionHistoryLimit)
}

// Revision is one template of a workload as the hub recorded it: every
// change of spec.template makes the next number.
type Revision struct {
	Number       int64           `json:"number" doc:"1 for the workload's first template, then one more at each template change."`
	TemplateHash string          `json:"templateHash" doc:"The template's hash (TemplateHash); equal hashes mean equal templates."`
	Template     ReplicaTemplate `json:"template"`
	Actor        string          `json:"actor" doc:"Who made the change (the token's name)."`
	CreatedAt    time.Time       `json:"createdAt"`
	ChangeCause  string          `json:"changeCause,omitempty" doc:"The workload's atoll.dev/change-cause annotation at the change."`
	Generation   int64           `json:"generation" doc:"The workload's generation that introduced the template (for a template from before revisions were kept: the last generation it ran at)."`
	ImageDigest  string          `json:"imageDigest,omitempty" doc:"The digest the oci image's tag resolved to, once for this revision: every cluster runs the image pinned to it (empty until resolved, or when the image names a digest)."`
}

// RevisionList is a workload's revisions, oldest first.
type RevisionList struct {
	Workload string     `json:"workload"`
	Items    []Revision `json:"items"`
}

// TemplateHash is a short, stable hash of a template's canonical JSON
// form (fields in declaration order, map keys sorted).
func TemplateHash(t ReplicaTemplate) string {
	b, _ := json.Marshal(t)
	return TemplateHashOfJSON(b)
}

// TemplateHashOfJSON is TemplateHash of the template whose JSON
// (json.Marshal's) is b, for a caller that has it already.
func TemplateHashOfJSON(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
