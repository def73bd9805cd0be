package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/atollhq/atoll/api"
)

// ServiceTraffic reads a service's requests through the gateways over
// window ("" the hub's default).
func (c *Client) ServiceTraffic(ctx context.Context, service, window string) (api.ServiceTraffic, error) {
	var out api.ServiceTraffic
	var q url.Values
	if window != "" {
		q = url.Values{"window": {window}}
	}
	err := c.Raw(ctx, http.MethodGet, "/api/v1/services/"+url.PathEscape(service)+"/traffic", q, nil, &out)
	return out, err
}
