// Package tokens makes and checks the hub's bearer tokens: API tokens
// (with a role), join tokens (a member's first registration) and member
// tokens (its later ones). A secret is "atoll_" and 40 random base62
// characters; only its SHA-256 is stored. It owns the secret's form, its
// hashing, the first admin token (Bootstrap) and turning an API token into
// a principal; it must not serve HTTP (package httpapi does) or decide
// what a role may do (each route declares that).
package tokens

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

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// Prefix starts every API token, so that secret scanners and people
// recognise one.
const Prefix = "atoll_"

// bootstrapToken names the admin token the hub makes on first start.
const bootstrapToken = "bootstrap-admin"

const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// NewSecret returns a fresh token ("atoll_" + 40 random base62 characters,
// about 238 bits) and its display prefix.
func NewSecret() (secret, prefix string) {
	var b strings.Builder
	b.WriteString(Prefix)
	max := big.NewInt(int64(len(alphabet)))
	for range 40 {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		b.WriteByte(alphabet[n.Int64()])
	}
	s := b.String()
	return s, s[:len(Prefix)+6]
}

// Hash is what the store keeps of a secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Principal is an authenticated API caller: "token:NAME" and its role.
type Principal struct {
	Name string
	Role string
}

// Authenticate resolves a bearer token to a principal. Errors are domain
// errors: Unauthorized for a missing, unknown or expired token,
// Unavailable when the database cannot answer.
func Authenticate(ctx context.Context, store *pgstore.Store, now time.Time, header string) (Principal, error) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return Principal{}, api.Errorf(api.CodeUnauthorized, "missing bearer token: send 'Authorization: Bearer <token>'")
	}
	// Remembered for a few seconds, forgotten when a Token changes: most
	// requests cost no database read for their token.
	rec, err := store.TokenByHashCached(ctx, Hash(strings.TrimSpace(tok)))
	if err != nil {
		if api.ErrorCode(err) == api.CodeUnauthorized {
			return Principal{}, api.Errorf(api.CodeUnauthorized, "the token is not valid (unknown or revoked)")
		}
		return Principal{}, err
	}
	// The spec alone: every request decodes it, the rest is in rec.Meta.
	var t api.Token
	t.Metadata = rec.Meta
	if err := rec.DecodeSpec(&t.Spec); err != nil {
		return Principal{}, fmt.Errorf("decode token: %w", err)
	}
	switch t.Spec.TypeOrDefault() {
	case api.TokenJoin:
		return Principal{}, api.Errorf(api.CodeUnauthorized, "a join token only registers members; use an API token")
	case api.TokenMember:
		return Principal{}, api.Errorf(api.CodeUnauthorized, "a member token only serves its member; use an API token")
	}
	if t.Spec.ExpiresAt != nil && !now.Before(*t.Spec.ExpiresAt) {
		return Principal{}, api.Errorf(api.CodeUnauthorized, "the token expired at %s", t.Spec.ExpiresAt.Format(time.RFC3339))
	}
	if t.Metadata.DeletionTimestamp != nil {
		return Principal{}, api.Errorf(api.CodeUnauthorized, "the token is being revoked")
	}
	return Principal{Name: "token:" + t.Metadata.Name, Role: t.Spec.Role}, nil
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
		if _, err := store.TokenByHash(ctx, Hash(adminToken)); err == nil {
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
			if _, err := store.TokenByHash(ctx, Hash(strings.TrimSpace(string(b)))); err == nil {
				if err := os.Rename(path+".tmp", path); err == nil {
					return path, nil
				}
			}
		}
		return "", nil // made by another hub, whose data dir has the file
	} else if api.ErrorCode(err) != api.CodeNotFound {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	secret, _ := NewSecret()
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
	status, _ := json.Marshal(api.TokenStatus{Prefix: secret[:len(Prefix)+6]})
	rec := &pgstore.Record{Kind: "Token", Meta: api.ObjectMeta{Name: bootstrapToken}, Spec: spec, Status: status}
	if _, err := store.CreateToken(ctx, sys, rec, Hash(secret)); err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	return nil
}
