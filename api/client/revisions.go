package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/atollhq/atoll/api"
)

// Revisions reads a workload's template revisions, oldest first.
func (c *Client) Revisions(ctx context.Context, workload string) (api.RevisionList, error) {
	var out api.RevisionList
	err := c.Raw(ctx, http.MethodGet, "/api/v1/workloads/"+url.PathEscape(workload)+"/revisions", nil, nil, &out)
	return out, err
}
