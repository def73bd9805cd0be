package pgstore

import (
	"context"
	"sync"
	"time"
)

// SpecHook runs inside the transaction of a write that creates an object
// of its kind (cur is nil) or changes its spec, after the object's row is
// written; an error aborts the whole write. Hooks keep rows that must
// never disagree with the object (package revisions).
type SpecHook func(ctx context.Context, tx *Tx, cur, next *Record) error

// hooks are the spec hooks by kind.
type hooks struct {
	mu     sync.RWMutex
	byKind map[string][]SpecHook
}

// OnSpecChange adds a hook for kind's creations and spec changes. Add
// hooks before the store takes writes.
func (s *Store) OnSpecChange(kind string, h SpecHook) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	if s.hooks.byKind == nil {
		s.hooks.byKind = map[string][]SpecHook{}
	}
	s.hooks.byKind[kind] = append(s.hooks.byKind[kind], h)
}

// runHooks runs kind's spec hooks inside tx.
func (t *Tx) runHooks(ctx context.Context, cur, next *Record) error {
	t.s.hooks.mu.RLock()
	hs := t.s.hooks.byKind[next.Kind]
	t.s.hooks.mu.RUnlock()
	for _, h := range hs {
		if err := h(ctx, t, cur, next); err != nil {
			return err
		}
	}
	return nil
}

// Actor is who performs the transaction's writes.
func (t *Tx) Actor() Actor { return t.actor }

// Now is the store's clock.
func (t *Tx) Now() time.Time { return t.s.now() }
