package hub

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/telemetry"
)

// tokenPrefix starts every API token, so that secret scanners and people
// recognise one.
const tokenPrefix = "atoll_"

// bootstrapToken names the admin token the hub makes on first start.
const bootstrapToken = "bootstrap-admin"

const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newSecret returns a fresh token ("atoll_" + 40 random base62 characters,
// about 238 bits) and its display prefix.
func newSecret() (secret, prefix string) {
	var b strings.Builder
	b.WriteString(tokenPrefix)
	max := big.NewInt(int64(len(alphabet)))
	for range 40 {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		b.WriteByte(alphabet[n.Int64()])
	}
	s := b.String()
	return s, s[:len(tokenPrefix)+6]
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// principal is the authenticated caller.
type principal struct {
	Name string
	Role string
}

type principalKey struct{}

func principalFrom(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// actor is the caller as the store's audit log names it.
func actor(ctx context.Context, requestID string) pgstore.Actor {
	return pgstore.Actor{Name: principalFrom(ctx).Name, RequestID: requestID}
}

// authenticate resolves a bearer token to a principal. Errors are domain
// errors: Unauthorized for a missing, unknown or expired token,
// Unavailable when the database cannot answer.
func (s *Server) authenticate(ctx context.Context, header string) (principal, error) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return principal{}, api.Errorf(api.CodeUnauthorized, "missing bearer token: send 'Authorization: Bearer <token>'")
	}
	rec, err := s.store.TokenByHash(ctx, hashSecret(strings.TrimSpace(tok)))
	if err != nil {
		if api.ErrorCode(err) == api.CodeUnauthorized {
			return principal{}, api.Errorf(api.CodeUnauthorized, "the token is not valid (unknown or revoked)")
		}
		return principal{}, err
	}
	var t api.Token
	if err := rec.Decode(&t); err != nil {
		return principal{}, fmt.Errorf("decode token: %w", err)
	}
	switch t.Spec.TypeOrDefault() {
	case api.TokenJoin:
		return principal{}, api.Errorf(api.CodeUnauthorized, "a join token only registers members; use an API token")
	case api.TokenMember:
		return principal{}, api.Errorf(api.CodeUnauthorized, "a member token only serves its member; use an API token")
	}
	if t.Spec.ExpiresAt != nil && !s.now().Before(*t.Spec.ExpiresAt) {
		return principal{}, api.Errorf(api.CodeUnauthorized, "the token expired at %s", t.Spec.ExpiresAt.Format(time.RFC3339))
	}
	if t.Metadata.DeletionTimestamp != nil {
		return principal{}, api.Errorf(api.CodeUnauthorized, "the token is being revoked")
	}
	return principal{Name: "token:" + t.Metadata.Name, Role: t.Spec.Role}, nil
}

// authMiddleware checks the bearer token and the role each operation
// declares in its metadata ("role"). Refused writes are audited.
func (s *Server) authMiddleware(hapi huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		scheme := "http"
		if ctx.TLS() != nil {
			scheme = "https"
		}
		rctx := withInstance(ctx.Context(), ctx.URL().Path)
		rctx = context.WithValue(rctx, baseURLKey{}, scheme+"://"+ctx.Host())
		ctx = huma.WithContext(ctx, rctx)
		need, _ := ctx.Operation().Metadata["role"].(string)
		if need == "" {
			next(ctx)
			return
		}
		p, err := s.authenticate(ctx.Context(), ctx.Header("Authorization"))
		if err != nil {
			if api.ErrorCode(err) == api.CodeUnauthorized {
				ctx.SetHeader("WWW-Authenticate", `Bearer realm="atoll"`)
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

// Bootstrap makes sure an admin can get in on first start. With adminToken
// set (ATOLL_ADMIN_TOKEN), that secret becomes the bootstrap admin token.
// Otherwise, when the bootstrap token does not exist yet, one is made and
// written to <dataDir>/admin-token (mode 0600). It returns the path of the
// token file, or "" when none was written.
func Bootstrap(ctx context.Context, store *pgstore.Store, dataDir, adminToken string) (string, error) {
	sys := pgstore.Actor{Name: "system:bootstrap"}
	if adminToken != "" && len(adminToken) < 16 {
		return "", errors.New("ATOLL_ADMIN_TOKEN must be at least 16 characters: it is the admin's password")
	}
	if adminToken != "" {
		if _, err := store.TokenByHash(ctx, hashSecret(adminToken)); err == nil {
			return "", nil
		} else if api.ErrorCode(err) != api.CodeUnauthorized {
			return "", fmt.Errorf("bootstrap admin token: %w", err)
		}
		// A different secret than last time: replace the bootstrap token.
		if _, _, err := store.Delete(ctx, sys, "Token", bootstrapToken, ""); err != nil && api.ErrorCode(err) != api.CodeNotFound {
			return "", fmt.Errorf("bootstrap admin token: %w", err)
		}
		return "", createBootstrap(ctx, store, sys, adminToken)
	}
	path := filepath.Join(dataDir, "admin-token")
	if _, err := store.Get(ctx, "Token", bootstrapToken); err == nil {
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
		// A crash between storing the token and renaming its file leaves
		// the file as .tmp: finish the job when it holds the stored token.
		if b, err := os.ReadFile(path + ".tmp"); err == nil {
			if _, err := store.TokenByHash(ctx, hashSecret(strings.TrimSpace(string(b)))); err == nil {
				if err := os.Rename(path+".tmp", path); err == nil {
					return path, nil
				}
			}
		}
		return "", nil // made by another hub, whose data dir has the file
	} else if api.ErrorCode(err) != api.CodeNotFound {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	secret, _ := newSecret()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	// Write the file first: a token nobody can read would lock everyone out.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	if err := createBootstrap(ctx, store, sys, secret); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	return path, nil
}

func createBootstrap(ctx context.Context, store *pgstore.Store, sys pgstore.Actor, secret string) error {
	spec, _ := json.Marshal(api.TokenSpec{Role: api.RoleAdmin, Description: "made by the hub on first start"})
	status, _ := json.Marshal(api.TokenStatus{Prefix: secret[:len(tokenPrefix)+6]})
	rec := &pgstore.Record{Kind: "Token", Meta: api.ObjectMeta{Name: bootstrapToken}, Spec: spec, Status: status}
	if _, err := store.CreateToken(ctx, sys, rec, hashSecret(secret)); err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	return nil
}

// mediaType is a Content-Type without its parameters, lower-cased.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

type baseURLKey struct{}

// hubURL is the hub's address as clients should use it: the advertised
// URL when configured, else the one this request came in on.
func (s *Server) hubURL(ctx context.Context) string {
	if s.advertiseURL != "" {
		return s.advertiseURL
	}
	u, _ := ctx.Value(baseURLKey{}).(string)
	return u
}
