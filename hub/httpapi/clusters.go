package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/danielgtaylor/huma/v2"
)

func (s *API) registerClusters(hapi huma.API) {
	registerKind(s, hapi, kindRoutes[api.Cluster, *api.Cluster, api.ClusterList]{
		kind:  mustKind("Cluster"),
		roles: map[string]string{pgstore.VerbPatch: api.RoleOperator, pgstore.VerbDelete: api.RoleAdmin},
		list: func(items []api.Cluster, meta api.ListMeta) api.ClusterList {
			return api.ClusterList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "ClusterList"}, Metadata: meta, Items: items}
		},
		remove: func(ctx context.Context, s *API, a pgstore.Actor, name, precondition string) (*pgstore.Record, error) {
			return s.members.Deregister(ctx, a, name, precondition)
		},
		decorate: s.liveCluster,
	})
	huma.Register(hapi, huma.Operation{
		OperationID: "register-cluster", Method: http.MethodPost, Path: "/api/v1/clusters/register",
		Summary:     "Register a member cluster",
		Description: "A member joins with a join token (Authorization: Bearer atollj_...) or, after a restart, comes back with its member token. The answer carries its NATS identity and where to connect.",
		Tags:        []string{"Clusters"}, Security: bearer, MaxBodyBytes: 64 << 10,
		Metadata: map[string]any{"verb": "register", "kind": "Cluster"},
		Errors:   []int{400, 401, 403, 409, 413, 415, 422, 503},
	}, s.register)
}

// liveCluster overlays what this hub's monitor knows now.
func (s *API) liveCluster(c *api.Cluster) {
	if s.monitor == nil {
		return
	}
	live, ok := s.monitor.Live(c.Metadata.Name)
	if !ok {
		return
	}
	c.Status.Health = live.Health
	if live.Heard {
		t := live.Seen.UTC().Truncate(time.Millisecond)
		c.Status.LastHeartbeatTime = &t
		capa := api.ClusterCapacity(live.Capacity)
		c.Status.Capacity = &capa
	}
	if c.Status.LastHeartbeatTime != nil {
		age := s.now().Sub(*c.Status.LastHeartbeatTime).Seconds()
		age = float64(int64(age*1000)) / 1000
		c.Status.HeartbeatAgeSeconds = &age
	}
}

type registerInput struct {
	Authorization string `header:"Authorization"`
	Body          api.RegisterRequest
}

// register admits a member (package members decides and writes).
func (s *API) register(ctx context.Context, in *registerInput) (*struct{ Body api.RegisterResponse }, error) {
	if s.members == nil {
		return nil, toProblem(ctx, api.Errorf(api.CodeUnavailable, "this hub runs without NATS, so members cannot join it"))
	}
	host := ""
	if base, _ := ctx.Value(baseURLKey{}).(string); base != "" {
		if u, err := url.Parse(base); err == nil {
			host = u.Hostname()
		}
	}
	resp, err := s.members.Register(ctx, in.Authorization, host, &in.Body)
	if err != nil {
		return nil, toProblem(ctx, err)
	}
	return &struct{ Body api.RegisterResponse }{Body: *resp}, nil
}
