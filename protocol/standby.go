package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/atollhq/atoll/api"
)

// StandbySubject is where the hub sends a member the images it keeps
// warm (a StandbyList) and asks for the digest of the list it holds (a
// StandbyList with Check); the member answers each with a StandbyAck.
func StandbySubject(cluster string) string { return hubPrefix + cluster + ".standby" }

// MaxStandbyImages bounds a standby list: a member refuses a longer one
// (each entry costs pulls and disk on its nodes).
const MaxStandbyImages = 256

// StandbyList is every image a member should hold before any replica
// needs it: the current revision's image of each workload that may fail
// over to the cluster (its placement allows it) but has no replica there
// now. Epochs grow; a member keeps the newest list and refuses older
// ones. Digest is StandbyDigest of Images.
type StandbyList struct {
	Version int            `json:"v"`
	Epoch   int64          `json:"epoch"`
	Digest  string         `json:"digest"`
	Images  []StandbyImage `json:"images,omitempty"`
	// Check asks only for the digest held: Images is empty and the
	// member changes nothing.
	Check bool `json:"check,omitempty"`
}

// StandbyImage is one workload's image to keep warm. Image is pinned to
// a digest (repository[:tag]@sha256:...): nodes never resolve a tag for
// standby. Replicas is how many replicas a failover could bring (the
// member pulls onto as many nodes as its scheduler would pick for them);
// Template is the cluster's effective template (its requests, node
// selector and tolerations choose the nodes).
type StandbyImage struct {
	Workload   string              `json:"workload"`
	Generation int64               `json:"generation"`
	Image      string              `json:"image"`
	Replicas   int32               `json:"replicas"`
	Template   api.ReplicaTemplate `json:"template"`
	Scheduling Scheduling          `json:"scheduling,omitzero"`
}

// StandbyAck answers a StandbyList: the epoch and digest the member holds
// once it is done, or why it refused.
type StandbyAck struct {
	Version  int    `json:"v"`
	Accepted bool   `json:"accepted"`
	Epoch    int64  `json:"epoch"`
	Digest   string `json:"digest"`
	Reason   string `json:"reason,omitempty"`
}

// StandbyDigest is the digest of a standby list: equal lists (in any
// order) have equal digests.
func StandbyDigest(images []StandbyImage) string {
	sorted := slices.Clone(images)
	slices.SortFunc(sorted, func(a, b StandbyImage) int { return strings.Compare(a.Workload, b.Workload) })
	b, _ := json.Marshal(sorted)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// IsPinnedImage says whether ref names its image by digest.
func IsPinnedImage(ref string) bool {
	r, err := name.ParseReference(ref)
	if err != nil {
		return false
	}
	_, ok := r.(name.Digest)
	return ok
}

// Validate checks a standby list before a member takes it.
func (l *StandbyList) Validate() error {
	if l.Version < MinVersion || l.Version > Version {
		return fmt.Errorf("%w: %d", ErrVersion, l.Version)
	}
	if l.Epoch <= 0 {
		return fmt.Errorf("epoch %d: must be positive", l.Epoch)
	}
	if l.Check {
		return nil
	}
	if len(l.Images) > MaxStandbyImages {
		return fmt.Errorf("%d standby images: at most %d", len(l.Images), MaxStandbyImages)
	}
	seen := map[string]bool{}
	for i, im := range l.Images {
		if !api.IsDNSLabel(im.Workload) || seen[im.Workload] {
			return fmt.Errorf("images[%d]: workload %q is not a DNS label or is listed twice", i, im.Workload)
		}
		seen[im.Workload] = true
		if !IsPinnedImage(im.Image) {
			return fmt.Errorf("images[%d]: image %q is not pinned to a digest", i, im.Image)
		}
		if im.Replicas < 0 || im.Replicas > 100000 {
			return fmt.Errorf("images[%d]: replicas %d out of range", i, im.Replicas)
		}
	}
	if d := StandbyDigest(l.Images); d != l.Digest {
		return fmt.Errorf("digest %q does not match the images (%s)", l.Digest, d)
	}
	return nil
}

// Image presence states, as nodes report them.
const (
	ImagePresent = "Present"
	ImagePulling = "Pulling"
	ImageFailed  = "Failed"
)

// NodeImage is one image a node was asked to hold ahead of need
// (NodeBindings.Prepull), as its agent reports it.
type NodeImage struct {
	Image   string `json:"image"`
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
}

// MaxNodeImages bounds the images one node is asked to hold ahead and
// reports.
const MaxNodeImages = 64

// ImagePresence is one workload's image in a member's cluster, as its
// status report says: of the Wanted nodes (those the member asked to
// hold it ahead: the nodes its scheduler would pick for a failover's
// replicas), how many hold it, pull it, or failed to (Message: the last
// failure, the registry's answer).
type ImagePresence struct {
	Workload   string `json:"workload"`
	Generation int64  `json:"generation"`
	Image      string `json:"image"`
	Wanted     int32  `json:"wanted"`
	Present    int32  `json:"present"`
	Pulling    int32  `json:"pulling,omitempty"`
	Failed     int32  `json:"failed,omitempty"`
	Message    string `json:"message,omitempty"`
}
