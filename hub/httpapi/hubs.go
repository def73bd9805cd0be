package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/tokens"
)

// readyz answers whether this hub can serve: 503 while its database does
// not answer, else {"status":"ready"}. Which hub this is (its name may be
// its host name and PID), its role and its leader epoch are shown only to
// a caller with a valid token of any role; a wrong token is a 401 and
// counts against its address (package throttle).
func (s *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ready(ctx); err != nil {
		writeProblem(w, r, newProblem(http.StatusServiceUnavailable, api.CodeUnavailable, "not ready: "+readyReason(err)))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	authz := r.Header.Get("Authorization")
	if authz == "" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ready"}`+"\n")
		return
	}
	if wait, ok := s.throttle.Allow(ctx, "api", r.RemoteAddr); !ok {
		writeProblem(w, r, stamp(ctx, tooManyFailures(wait)))
		return
	}
	if _, err := tokens.Authenticate(ctx, s.store, s.now(), authz); err != nil {
		if api.ErrorCode(err) == api.CodeUnauthorized {
			s.throttle.Fail(r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="atoll"`)
		}
		p, _ := toProblem(ctx, err).(*problem)
		writeProblem(w, r, p)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.readyBody())
}

// readyReason says why the hub is not ready without saying where its
// database is: a domain error's message, else a plain sentence.
func readyReason(err error) string {
	var de *api.Error
	if errors.As(err, &de) {
		return de.Message
	}
	return "the database does not answer as expected"
}

// readyBody is /readyz's answer to an authenticated caller: which hub
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
