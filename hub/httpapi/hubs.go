package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/danielgtaylor/huma/v2"
)

// readyBody is /readyz's answer once the database answers: which hub
// this is and whether it leads.
func (s *API) readyBody() []byte {
	body := struct {
		Status      string `json:"status"`
		Hub         string `json:"hub"`
		Role        string `json:"role"`
		LeaderEpoch int64  `json:"leaderEpoch,omitempty"`
	}{Status: "ready", Hub: s.hubID, Role: "follower", LeaderEpoch: s.lead.Epoch()}
	if s.lead.IsLeader() {
		body.Role = "leader"
	}
	b, _ := json.Marshal(body)
	return append(b, '\n')
}

func registerHubs(s *API, hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "list-hubs", Method: http.MethodGet, Path: "/api/v1/hubs",
		Summary:     "List the hub replicas and which one leads",
		Description: "The hubs whose leader elector is connected to the database now, the current leader term (hub, epoch, since, heartbeat age) and the hub that answered.",
		Tags:        []string{"Hubs"}, Security: bearer,
		Metadata: opMeta(api.RoleViewer, "", "Hub"), Errors: []int{401, 403, 503},
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body api.HubList }, error) {
		t, hubs, err := leader.Hubs(ctx, s.store.Pool())
		if err != nil {
			return nil, toProblem(ctx, api.Errorf(api.CodeUnavailable, "%v", err))
		}
		list := api.HubList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "HubList"}, ServedBy: s.hubID, Items: []api.Hub{}}
		if t.Holder != "" {
			list.Leader = &api.LeaderTerm{Hub: t.Holder, Epoch: t.Epoch, Since: t.AcquiredAt.UTC(),
				HeartbeatAgeSeconds: float64(t.HeartbeatAge.Milliseconds()) / 1000}
		}
		for _, h := range hubs {
			item := api.Hub{Name: h.Holder, Leader: t.Holder == h.Holder, Address: h.Address}
			if !h.ConnectedAt.IsZero() {
				at := h.ConnectedAt.UTC()
				item.ConnectedSince = &at
			}
			list.Items = append(list.Items, item)
		}
		return &struct{ Body api.HubList }{Body: list}, nil
	})
}
