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

// SpecPrepare runs inside the transaction of a write that creates an
// object of its kind or changes its spec (and of Tx.Refresh), before the
// row is written: it may change next's spec, for fields the hub keeps in
// it (a workload template's pinned data versions, package hub/secrets).
// An error aborts the whole write.
type SpecPrepare func(ctx context.Context, tx *Tx, next *Record) error

// hooks are the spec hooks by kind.
type hooks struct {
	mu      sync.RWMutex
	byKind  map[string][]SpecHook
	prepare map[string][]SpecPrepare
	// versioned: kinds with a hook that reads next's resourceVersion
	// (OnSpecChange); their creates draw the version before the hooks
	// run.
	versioned map[string]bool
}

// OnSpecPrepare adds a hook that prepares kind's spec before a creation
// or a spec change is written. Add hooks before the store takes writes.
func (s *Store) OnSpecPrepare(kind string, h SpecPrepare) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	if s.hooks.prepare == nil {
		s.hooks.prepare = map[string][]SpecPrepare{}
	}
	s.hooks.prepare[kind] = append(s.hooks.prepare[kind], h)
}

// runPrepare runs kind's prepare hooks on next inside tx.
func (t *Tx) runPrepare(ctx context.Context, next *Record) error {
	t.s.hooks.mu.RLock()
	hs := t.s.hooks.prepare[next.Kind]
	t.s.hooks.mu.RUnlock()
	for _, h := range hs {
		if err := h(ctx, t, next); err != nil {
			return err
		}
	}
	return nil
}

// Refresh writes an object again with its kind's prepare hooks run on its
// unchanged spec: when they change it (the data versions a workload pins
// moved on), that is a spec change with its generation and spec hooks,
// audited under verb, and cause says why (ChangeCause, e.g. "secret db
// v7"). Nothing changes, and nothing is written, when the hooks keep the
// spec as it is.
func (t *Tx) Refresh(ctx context.Context, verb, kind, name, cause string) (*Record, error) {
	t.refresh, t.cause = true, cause
	defer func() { t.refresh, t.cause = false, "" }()
	return t.Mutate(ctx, verb, kind, name, func(cur *Record) error { return t.runPrepare(ctx, cur) })
}

// Refreshing says whether the write under way is a Refresh: the hub's own
// change of a spec, not a client's (hooks that check what a client asked
// for, such as references, let it be).
func (t *Tx) Refreshing() bool { return t.refresh }

// ChangeCause is why a Refresh under way changes the spec ("" for any
// other write).
func (t *Tx) ChangeCause() string { return t.cause }

// OnSpecChange adds a hook for kind's creations and spec changes. Add
// hooks before the store takes writes.
func (s *Store) OnSpecChange(kind string, h SpecHook) {
	s.addSpecHook(kind, h, true)
}

// OnSpecChangeUnversioned adds a hook like OnSpecChange whose hook never
// reads next's resourceVersion: on a Store.Create it runs before the
// version is known (next's ResourceVersion is empty then), which lets
// the create send its transaction in one round trip (see Store.Create).
// Its other fields (uid, generation, spec, ...) are set as usual.
func (s *Store) OnSpecChangeUnversioned(kind string, h SpecHook) {
	s.addSpecHook(kind, h, false)
}

func (s *Store) addSpecHook(kind string, h SpecHook, versioned bool) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	if s.hooks.byKind == nil {
		s.hooks.byKind = map[string][]SpecHook{}
		s.hooks.versioned = map[string]bool{}
	}
	s.hooks.byKind[kind] = append(s.hooks.byKind[kind], h)
	s.hooks.versioned[kind] = s.hooks.versioned[kind] || versioned
}

// versionedHooks reports whether a hook of kind reads next's
// resourceVersion.
func (s *Store) versionedHooks(kind string) bool {
	s.hooks.mu.RLock()
	defer s.hooks.mu.RUnlock()
	return s.hooks.versioned[kind]
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
