package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/tokens"
	"github.com/atollhq/atoll/telemetry"
)

type principalKey struct{}

func principalFrom(ctx context.Context) tokens.Principal {
	p, _ := ctx.Value(principalKey{}).(tokens.Principal)
	return p
}

// actor is the caller as the store's audit log names it.
func actor(ctx context.Context, requestID string) pgstore.Actor {
	return pgstore.Actor{Name: principalFrom(ctx).Name, RequestID: requestID}
}

// authMiddleware checks the bearer token and the role each operation
// declares in its metadata ("role"). Refused writes are audited. A client
// address whose tokens failed too often is refused with 429 before its
// token is looked at (package throttle); a missing token is no attempt.
// Operations without a role (registration) check their tokens
// themselves: their 401s count as failures too.
func (s *API) authMiddleware(hapi huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		scheme := "http"
		if ctx.TLS() != nil {
			scheme = "https"
		}
		rctx := withInstance(ctx.Context(), ctx.URL().Path)
		rctx = context.WithValue(rctx, baseURLKey{}, scheme+"://"+ctx.Host())
		ctx = huma.WithContext(ctx, rctx)
		authz := ctx.Header("Authorization")
		if authz != "" {
			if wait, ok := s.throttle.Allow(ctx.Context(), "api", ctx.RemoteAddr()); !ok {
				writeErr(hapi, ctx, toProblem(ctx.Context(), tooManyFailures(wait)))
				return
			}
		}
		need, _ := ctx.Operation().Metadata["role"].(string)
		if need == "" {
			next(ctx)
			if authz != "" && ctx.Status() == http.StatusUnauthorized {
				s.throttle.Fail(ctx.RemoteAddr())
			}
			return
		}
		p, err := tokens.Authenticate(ctx.Context(), s.store, s.now(), authz)
		if err != nil {
			if api.ErrorCode(err) == api.CodeUnauthorized {
				ctx.SetHeader("WWW-Authenticate", `Bearer realm="atoll"`)
				if authz != "" {
					s.throttle.Fail(ctx.RemoteAddr())
				}
			}
			writeErr(hapi, ctx, toProblem(ctx.Context(), err))
			return
		}
		if api.RoleRank(p.Role) < api.RoleRank(need) {
			if verb, _ := ctx.Operation().Metadata["verb"].(string); verb != "" {
				kind, _ := ctx.Operation().Metadata["kind"].(string)
				s.store.AuditRefusal(ctx.Context(), pgstore.Actor{Name: p.Name, RequestID: telemetry.RequestIDFrom(ctx.Context())}, verb, kind, ctx.Param("name"),
					api.CodeForbidden, fmt.Sprintf("role %s may not %s %s (needs %s)", p.Role, verb, kind, need))
			}
			writeErr(hapi, ctx, toProblem(ctx.Context(), api.Errorf(api.CodeForbidden,
				"role %s may not do this: it needs %s", p.Role, need)))
			return
		}
		next(huma.WithValue(ctx, principalKey{}, p))
	}
}

// tooManyFailures is the 429 of a throttled client address.
func tooManyFailures(wait time.Duration) *problem {
	secs := int(math.Ceil(wait.Seconds()))
	p := newProblem(http.StatusTooManyRequests, api.CodeTooManyRequests,
		fmt.Sprintf("too many failed authentications from this address; retry in %d s", secs))
	p.headers = http.Header{"Retry-After": []string{strconv.Itoa(secs)}}
	return p
}

func writeErr(hapi huma.API, ctx huma.Context, err error) {
	var p *problem
	if !errors.As(err, &p) {
		p = toProblem(ctx.Context(), err).(*problem)
	}
	p.Instance = ctx.URL().Path
	for k, v := range p.headers {
		for _, vv := range v {
			ctx.AppendHeader(k, vv)
		}
	}
	ct := "application/problem+json"
	ctx.SetHeader("Content-Type", ct)
	ctx.SetStatus(p.Status)
	_ = hapi.Marshal(ctx.BodyWriter(), "application/json", p.Problem)
}

// mediaType is a Content-Type without its parameters, lower-cased.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

type baseURLKey struct{}

// hubURL is the hub's address as clients should use it: the advertised
// URL when configured, else the one this request came in on.
func (s *API) hubURL(ctx context.Context) string {
	if s.advertiseURL != "" {
		return s.advertiseURL
	}
	u, _ := ctx.Value(baseURLKey{}).(string)
	return u
}
