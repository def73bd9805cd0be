package pgstore_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// TestTokenCacheForgetsRevoked: a token served from the cache is refused
// as soon as it is deleted through the same store, and, through another
// store on the database (another hub) whose Notifier runs, once that hears
// of the delete, well before the cache's own expiry would.
func TestTokenCacheForgetsRevoked(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	// The cache lives far longer than the test waits, so only the
	// notification can make b refuse the deleted token.
	cfg := pgstore.Config{TokenCacheTTL: 10 * time.Minute}
	a, b := openHub(t, r, cfg), openHub(t, r, cfg)
	n := b.NewNotifier(nil)
	n.Start(t.Context())
	t.Cleanup(n.Stop)
	ctx := t.Context()
	hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	for _, name := range []string{"one", "two"} {
		if err := a.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
			_, err := tx.CreateToken(ctx, &pgstore.Record{Kind: "Token", Meta: api.ObjectMeta{Name: name}, Spec: []byte(`{"role":"viewer"}`)}, hash(name))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*pgstore.Store{a, b} {
			if rec, err := s.TokenByHashCached(ctx, hash(name)); err != nil || rec.Meta.Name != name {
				t.Fatalf("token %s: want it found; got %v, %v", name, rec, err)
			}
		}
	}
	if _, _, err := a.Delete(ctx, testActor, "Token", "one", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.TokenByHashCached(ctx, hash("one")); api.ErrorCode(err) != api.CodeUnauthorized {
		t.Errorf("a deleted token, through the store that deleted it: want Unauthorized at once; got %v", err)
	}
	if rec, err := a.TokenByHashCached(ctx, hash("two")); err != nil || rec.Meta.Name != "two" {
		t.Errorf("the token left: want it found; got %v", err)
	}
	deadline := time.Now().Add(time.Minute) // well under the cache's 10 minutes
	for {
		_, err := b.TokenByHashCached(ctx, hash("one"))
		if api.ErrorCode(err) == api.CodeUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another hub still serves the deleted token from its cache: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
