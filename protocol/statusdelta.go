package protocol

import (
	"encoding/json"
	"fmt"

	"github.com/atollhq/atoll/api"
)

// StatusDeltaSubject is where a member reports what changed in its status
// to hubs that take changes (additive in 7; see StatusDelta).
func StatusDeltaSubject(cluster string) string { return memberPrefix + cluster + ".status-delta" }

// StatusFullSubject is where a hub asks a member for its whole status
// again (a StatusFullRequest, no answer): it lacks the report a delta
// builds on, having started, missed a message, or seen another session.
func StatusFullSubject(cluster string) string { return hubPrefix + cluster + ".status-full" }

// MaxStatusDeltaWorkloads bounds the workloads (changed plus removed) one
// StatusDelta carries; a member's whole status goes in several.
const MaxStatusDeltaWorkloads = 1000

// StatusDelta is a change of a member's status (additive in 7). A member
// sends them, instead of its whole StatusReport whenever anything changed,
// only while the leader's heartbeat acks say StatusDeltas: a hub that
// folds them subscribes to StatusDeltaSubject, one that does not never
// sees them. Each report of a member's session carries the next Seq;
// a delta applies on top of everything the session sent before, so a hub
// that missed one (Seq is not its last plus one, or Session is another)
// ignores deltas until the member resends its whole status, which the hub
// asks for on StatusFullSubject. The member also resends its whole status
// now and then, so that a hub that could not ask still catches up.
//
// A resend of the whole status is a run of deltas: the first has Reset,
// all but the last have More. Workloads of the cluster the run did not
// name are then gone from it (the hub drops them only at the last, so
// that a status half sent never looks like workloads leaving).
type StatusDelta struct {
	Version int    `json:"v"`
	Cluster string `json:"cluster"`
	Session string `json:"session"`
	Seq     uint64 `json:"seq"`
	Reset   bool   `json:"reset,omitempty"`
	More    bool   `json:"more,omitempty"`
	// Workloads are the workloads whose status changed (in a resend:
	// every workload), each whole.
	Workloads []WorkloadStatus `json:"workloads,omitempty"`
	// Removed are workloads the cluster no longer holds.
	Removed []string `json:"removed,omitempty"`
	// Images, when ImagesSet, replaces the cluster's standby image
	// presence (StatusReport.Images); without it the presence is as it
	// was.
	ImagesSet bool            `json:"imagesSet,omitempty"`
	Images    []ImagePresence `json:"images,omitempty"`
}

// StatusFullRequest asks a member for a resend of its whole status.
type StatusFullRequest struct {
	Version int `json:"v"`
}

// DecodeStatusDelta reads a delta received on subject and checks it: well
// formed, of a supported version, about the subject's cluster, within
// its bounds, with workload names that are DNS labels.
func DecodeStatusDelta(subject string, data []byte) (StatusDelta, error) {
	var d StatusDelta
	if err := json.Unmarshal(data, &d); err != nil {
		return d, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := checkFromMember(subject, d.Version, d.Cluster); err != nil {
		return d, err
	}
	switch {
	case d.Session == "" || len(d.Session) > 64:
		return d, fmt.Errorf("%w: session must be 1-64 bytes", ErrMalformed)
	case d.Seq == 0:
		return d, fmt.Errorf("%w: seq must be positive", ErrMalformed)
	case len(d.Workloads)+len(d.Removed) > MaxStatusDeltaWorkloads:
		return d, fmt.Errorf("%w: %d workloads, at most %d a delta", ErrMalformed, len(d.Workloads)+len(d.Removed), MaxStatusDeltaWorkloads)
	}
	if err := checkWorkloadNames(d.Workloads); err != nil {
		return d, err
	}
	for _, w := range d.Removed {
		if !api.IsDNSLabel(w) {
			return d, fmt.Errorf("%w: removed workload %q is no DNS label", ErrMalformed, api.Truncate(w, 100))
		}
	}
	return d, nil
}
