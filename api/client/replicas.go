package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/atollhq/atoll/api"
)

// ReplicasOptions selects replicas ("": any).
type ReplicasOptions struct {
	Workload, Cluster, Node string
	Limit                   int
}

// Replicas lists replicas as their members see them now.
func (c *Client) Replicas(ctx context.Context, opts ReplicasOptions) (api.ReplicaInfoList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"workload": opts.Workload, "cluster": opts.Cluster, "node": opts.Node} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var out api.ReplicaInfoList
	err := c.Raw(ctx, "GET", "/api/v1/replicas", q, nil, &out)
	return out, err
}

// Nodes lists the nodes of one cluster ("": every cluster) as their
// members see them now.
func (c *Client) Nodes(ctx context.Context, cluster string) (api.NodeInfoList, error) {
	q := url.Values{}
	if cluster != "" {
		q.Set("cluster", cluster)
	}
	var out api.NodeInfoList
	err := c.Raw(ctx, "GET", "/api/v1/nodes", q, nil, &out)
	return out, err
}
