package client

import (
	"context"
	"net/http"
	"net/url"
)

// Patch types the hub accepts.
const (
	MergePatch = "application/merge-patch+json" // RFC 7386
	JSONPatch  = "application/json-patch+json"  // RFC 6902
)

// PatchAs applies a patch of the given type (MergePatch or JSONPatch).
func (c *Client) PatchAs(ctx context.Context, plural, name, patchType string, patch []byte, out any) error {
	return c.do(ctx, http.MethodPatch, "/api/v1/"+plural+"/"+url.PathEscape(name), nil, patchType, patch, out)
}
