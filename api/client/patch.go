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

// PatchForced is Patch with force=true: the hub writes a change its
// guard would refuse (a cluster's drain that its plan says breaks a
// workload).
func (c *Client) PatchForced(ctx context.Context, plural, name string, patch []byte, out any) error {
	return c.do(ctx, http.MethodPatch, "/api/v1/"+plural+"/"+url.PathEscape(name), url.Values{"force": {"true"}}, "application/merge-patch+json", patch, out)
}

// DryRun is a copy of the client whose creates, updates and patches are
// server-side dry runs (dryRun=All): the hub checks them and answers
// what it would store, storing nothing. Reads and deletes are as usual.
func (c *Client) DryRun() *Client {
	d := *c
	d.dryRun = true
	return &d
}

func withDryRun(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = v
	}
	out.Set("dryRun", "All")
	return out
}
