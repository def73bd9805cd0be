package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// TestPrintRevisionDigest: a revision whose image tag the hub pinned
// says the digest every cluster runs; one without a pin says nothing of it.
func TestPrintRevisionDigest(t *testing.T) {
	r := api.Revision{Number: 2, TemplateHash: "abc", Actor: "olga", CreatedAt: time.Unix(0, 0), Generation: 4,
		Template: api.ReplicaTemplate{Driver: "oci", Image: "r.example/app:v1"}, ImageDigest: "sha256:ab"}
	var b strings.Builder
	if err := printRevision(&b, "app", r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Image-Digest:\tsha256:ab\nTemplate:\n") {
		t.Errorf("want the digest before the template; got:\n%s", b.String())
	}
	r.ImageDigest = ""
	b.Reset()
	if err := printRevision(&b, "app", r); err != nil || strings.Contains(b.String(), "Image-Digest") {
		t.Errorf("no pin: want no Image-Digest line; got %v:\n%s", err, b.String())
	}
}
