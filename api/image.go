package api

import (
	"fmt"
	"regexp"

	"github.com/google/go-containerregistry/pkg/name"
)

// userSpec is what an oci template's user may be: uid, uid:gid, or a
// name (looked up in the image's /etc/passwd), optionally with a group.
var userSpec = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)

// CheckImageRef says whether ref is an image reference a node can pull:
// [registry/]repository[:tag] or [registry/]repository@sha256:<64 hex>.
func CheckImageRef(ref string) error {
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("is not a valid image reference: %v", err)
	}
	return nil
}
