package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
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
		remove: func(ctx context.Context, s *API, a pgstore.Actor, name, precondition string, force bool) (*pgstore.Record, error) {
			return s.members.Deregister(ctx, a, name, precondition, force)
		},
		forceDoc: "deregister a cluster whose member still heartbeats",
		decorate: s.liveCluster,
		guard:    &writeGuard[api.Cluster, *api.Cluster]{needs: addedNoExecute, check: checkEvacuation},
	})
	tags := []string{"Clusters"}
	huma.Register(hapi, huma.Operation{
		OperationID: "register-cluster-challenge", Method: http.MethodPost, Path: "/api/v1/clusters/register/challenge",
		Summary: "Ask for a registration nonce",
		Description: "The first step of registering: with the token the registration will use, for the cluster it names. " +
			"The nonce is good once, for that token and name, until expiresAt. JSON only; the token is checked before the body is read.",
		Tags: tags, Security: bearer, MaxBodyBytes: 4 << 10,
		Metadata: map[string]any{"verb": "register", "kind": "Cluster", "auth": "registration", "jsonOnly": true},
		Errors:   []int{400, 401, 403, 413, 415, 422, 503},
	}, s.registerChallenge)
	huma.Register(hapi, huma.Operation{
		OperationID: "register-cluster", Method: http.MethodPost, Path: "/api/v1/clusters/register",
		Summary: "Register a member cluster",
		Description: "A member joins with a join token (Authorization: Bearer atollj_...) or, after a restart, comes back with its member token. " +
			"Either way it sends a nonce from the challenge route and its signature with the NATS key it registers. " +
			"The answer carries its NATS identity and where to connect. JSON only; the token is checked before the body is read.",
		Tags: tags, Security: bearer, MaxBodyBytes: api.MaxRegisterBody,
		Metadata: map[string]any{"verb": "register", "kind": "Cluster", "auth": "registration", "jsonOnly": true},
		Errors:   []int{400, 401, 403, 409, 413, 415, 422, 503},
	}, s.register)
	// The bodies are read raw (and decoded after the token check); the
	// document still shows their schemas.
	registry := hapi.OpenAPI().Components.Schemas
	for path, body := range map[string]reflect.Type{
		"/api/v1/clusters/register/challenge": reflect.TypeFor[api.RegisterChallengeRequest](),
		"/api/v1/clusters/register":           reflect.TypeFor[api.RegisterRequest](),
	} {
		if item := hapi.OpenAPI().Paths[path]; item != nil && item.Post != nil && item.Post.RequestBody != nil {
			item.Post.RequestBody.Content = map[string]*huma.MediaType{"application/json": {Schema: registry.Schema(body, true, "")}}
		}
	}
	huma.Register(hapi, huma.Operation{
		OperationID: "reissue-cluster", Method: http.MethodPost, Path: "/api/v1/clusters/{name}/reissue",
		Summary: "Re-issue a cluster's identity",
		Description: "For a member that lost its key, or whose key is no longer trusted: revokes the cluster's NATS identity and member token, " +
			"and lets the next member that registers under this name with a join token set a new key. The cluster, its spec and placements stay.",
		Tags: tags, Security: bearer, Metadata: opMeta(api.RoleAdmin, "reissue", "Cluster"),
		Errors: []int{401, 403, 404, 409, 503},
	}, func(ctx context.Context, in *struct {
		Name            string `path:"name" maxLength:"253"`
		ResourceVersion string `query:"resourceVersion" doc:"Re-issue only if the cluster is still at this version."`
	}) (*struct{ Body api.Cluster }, error) {
		if s.members == nil {
			return nil, toProblem(ctx, api.Errorf(api.CodeUnavailable, "this hub runs without NATS, so it has no members"))
		}
		rec, err := s.members.Reissue(ctx, s.actor(ctx), in.Name, in.ResourceVersion)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		return answer[api.Cluster](ctx, rec)
	})
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

// registrantKey holds the token registrationAuth authenticated.
type registrantKey struct{}

// registrationAuth checks a registration's token (join or member) before
// huma reads the body: an anonymous request costs no parsing at all.
func (s *API) registrationAuth(hapi huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if auth, _ := ctx.Operation().Metadata["auth"].(string); auth != "registration" {
			next(ctx)
			return
		}
		if s.members == nil {
			writeErr(hapi, ctx, toProblem(ctx.Context(), api.Errorf(api.CodeUnavailable, "this hub runs without NATS, so members cannot join it")))
			return
		}
		tok, err := s.members.Authenticate(ctx.Context(), ctx.Header("Authorization"))
		if err != nil {
			if api.ErrorCode(err) == api.CodeUnauthorized {
				ctx.SetHeader("WWW-Authenticate", `Bearer realm="atoll"`)
			}
			writeErr(hapi, ctx, toProblem(ctx.Context(), err))
			return
		}
		next(huma.WithValue(ctx, registrantKey{}, tok))
	}
}

// registrationBody is a registration route's input: the body as bytes,
// decoded by the handler (JSON only).
type registrationBody struct {
	ContentType string `header:"Content-Type"`
	RawBody     []byte
}

// decode checks the media type and decodes the body with dec.
func decodeRegistration[T any](ctx context.Context, in *registrationBody, dec func([]byte) (*T, error)) (*T, *api.Token, error) {
	tok, _ := ctx.Value(registrantKey{}).(*api.Token)
	if tok == nil {
		return nil, nil, api.Errorf(api.CodeUnauthorized, "registration needs a join token: send 'Authorization: Bearer atollj_...'")
	}
	if mt := mediaType(in.ContentType); mt != "" && mt != "application/json" {
		return nil, nil, api.Errorf(api.CodeUnsupportedMediaType, "registration takes application/json only, not %s", mt)
	}
	v, err := dec(in.RawBody)
	return v, tok, err
}

// registerChallenge issues a registration nonce.
func (s *API) registerChallenge(ctx context.Context, in *registrationBody) (*struct{ Body api.RegisterChallenge }, error) {
	req, tok, err := decodeRegistration(ctx, in, api.DecodeRegisterChallengeRequest)
	if err != nil {
		return nil, toProblem(ctx, err)
	}
	ch, err := s.members.Challenge(ctx, tok, req)
	if err != nil {
		return nil, toProblem(ctx, err)
	}
	return &struct{ Body api.RegisterChallenge }{Body: *ch}, nil
}

// register admits a member (package members decides and writes).
func (s *API) register(ctx context.Context, in *registrationBody) (*struct{ Body api.RegisterResponse }, error) {
	req, tok, err := decodeRegistration(ctx, in, api.DecodeRegisterRequest)
	if err != nil {
		return nil, toProblem(ctx, err)
	}
	host := ""
	if base, _ := ctx.Value(baseURLKey{}).(string); base != "" {
		if u, err := url.Parse(base); err == nil {
			host = u.Hostname()
		}
	}
	resp, err := s.members.Register(ctx, tok, host, req)
	if err != nil {
		return nil, toProblem(ctx, err)
	}
	return &struct{ Body api.RegisterResponse }{Body: *resp}, nil
}

// addedNoExecute names the NoExecute taints a cluster change adds (a
// drain, or an operator's taint): they move replicas off it. "" when it
// adds none.
func addedNoExecute(old, next *api.Cluster) string {
	var added []string
	for _, t := range newNoExecute(old, next) {
		added = append(added, t.Key+"="+t.Value)
	}
	return strings.Join(added, ",")
}

func newNoExecute(old, next *api.Cluster) []api.Taint {
	var out []api.Taint
	for _, t := range next.Spec.Taints {
		if t.Effect != "NoExecute" {
			continue
		}
		if !slices.ContainsFunc(old.Spec.Taints, func(o api.Taint) bool {
			return o.Key == t.Key && o.Value == t.Value && o.Effect == t.Effect
		}) {
			out = append(out, t)
		}
	}
	return out
}

// checkEvacuation refuses NoExecute taints whose evacuation would leave a
// workload with no replica anywhere or below its disruption budget (the
// plan an evacuate drill of the cluster would show, with these taints),
// unless the write is forced. The refusal carries the plan.
func checkEvacuation(ctx context.Context, s *API, name string, old, next *api.Cluster) error {
	if s.drills == nil {
		return nil
	}
	plan, err := s.drills.PlanEvacuation(ctx, name, newNoExecute(old, next))
	if err != nil {
		return err
	}
	harm := plan.EvacuationHarm()
	if harm == "" {
		return nil
	}
	what := "tainting " + name + " NoExecute"
	if next.Draining() {
		what = "draining " + name
	}
	return drillRefusal(fmt.Sprintf("%s would %s", what, harm), "",
		api.FieldErrors{{Field: "query.force", Message: "see the plan (atoll cluster drain " + name + " --dry-run); uncordon something, or force the change (--force)"}}, plan)
}
