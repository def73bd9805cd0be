package pgstore

import (
	"context"
	"sync"
	"time"
)

// defaultTokenCacheTTL bounds how long an API token looked up by its
// hash is served from memory (TokenByHashCached; Config.TokenCacheTTL).
const defaultTokenCacheTTL = 5 * time.Second

// tokenCacheSize bounds the tokens remembered; past it the cache starts
// over.
const tokenCacheSize = 10000

// tokenCache remembers TokenByHash's answers, so that an API request does
// not cost a database round trip for its bearer token. A Token written
// through this store (a revocation) empties it as the write commits; one
// written by another hub empties it when this hub's Notifier hears of the
// change (milliseconds), and should notifications be lost (the listening
// connection dropped, which empties it again once it is back) an entry
// still lives at most ttl. Only tokens found are remembered.
type tokenCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	gen     uint64 // moves on every forget: a lookup begun before one is not kept
	entries map[string]tokenEntry
}

type tokenEntry struct {
	rec   *Record
	until time.Time
}

func (c *tokenCache) get(key string, now time.Time) (*Record, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.until) {
		return nil, c.gen, false
	}
	return e.rec, c.gen, true
}

func (c *tokenCache) put(key string, rec *Record, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // a Token changed while this one was read: it may be stale
	}
	if c.entries == nil || len(c.entries) >= tokenCacheSize {
		c.entries = map[string]tokenEntry{}
	}
	c.entries[key] = tokenEntry{rec: rec, until: now.Add(c.ttl)}
}

func (c *tokenCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.entries = nil
}

// TokenByHashCached is TokenByHash for authenticating API requests: a
// token found is remembered for a few seconds and forgotten as soon as
// any Token changes (see tokenCache for how soon that is across hubs).
// The record returned is shared: callers must not change it. Callers
// that act on a token's status (a join token's uses) read TokenByHash.
func (s *Store) TokenByHashCached(ctx context.Context, hash []byte) (*Record, error) {
	key := string(hash)
	now := time.Now() // real time: the bound holds whatever the store's clock says
	rec, gen, ok := s.tokens.get(key, now)
	if ok {
		return rec, nil
	}
	rec, err := s.TokenByHash(ctx, hash)
	if err != nil {
		return nil, err
	}
	s.tokens.put(key, rec, gen, now)
	return rec, nil
}
