package imagepin

import (
	"context"
	"strconv"
	"sync"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/member/image"
	"github.com/atollhq/atoll/protocol"
)

// PinStore reads a revision's image and pin.
type PinStore interface {
	RevisionImageAt(ctx context.Context, workloadUID string, generation int64) (image, digest string, ok bool, err error)
	PinnedRevisions(ctx context.Context) ([]pgstore.PinnedRevision, error)
}

// Pins answers which image a workload's template runs at a generation,
// pinned to its revision's digest. A pin never changes, so answers are
// kept (bounded); revisions not pinned yet are asked again each time.
type Pins struct {
	store PinStore
	mu    sync.Mutex
	known map[string]string // uid/generation -> pinned reference
	// loaded holds every revision's pin as of the first use (a failover
	// right after a hub starts leading delivers hundreds of templates at
	// once: one query, not one each); what it cannot settle asks the
	// store.
	loaded map[string][]pgstore.PinnedRevision // uid -> its revisions
}

// NewPins reads pins from store.
func NewPins(store PinStore) *Pins { return &Pins{store: store, known: map[string]string{}} }

// Pin returns t with its image pinned for workload w at generation gen:
// ok is false while the revision's tag is not resolved (the template
// must not be delivered yet). Templates that run no image, or name a
// digest, are returned as they are.
func (p *Pins) Pin(ctx context.Context, w api.Workload, gen int64, t api.ReplicaTemplate) (api.ReplicaTemplate, bool, error) {
	if t.Driver != "oci" || t.Image == "" || protocol.IsPinnedImage(t.Image) {
		return t, true, nil
	}
	key := w.Metadata.UID + "/" + strconv.FormatInt(gen, 10)
	p.mu.Lock()
	ref, ok := p.known[key]
	p.mu.Unlock()
	if ok && image.Unpinned(ref) == t.Image {
		t.Image = ref
		return t, true, nil
	}
	img, digest, found := p.preloaded(ctx, w.Metadata.UID, gen)
	if !found || img != t.Image {
		var err error
		img, digest, found, err = p.store.RevisionImageAt(ctx, w.Metadata.UID, gen)
		if err != nil || !found || digest == "" || img != t.Image {
			return t, false, err
		}
	}
	ref = image.Pin(t.Image, digest)
	p.mu.Lock()
	if len(p.known) > 20000 {
		p.known = map[string]string{}
	}
	p.known[key] = ref
	p.mu.Unlock()
	t.Image = ref
	return t, true, nil
}

// preloaded is the pin in force at gen among the revisions read at the
// first use (read then, once). It answers only what that read settles:
// a generation past the newest revision read may have a newer revision
// (made since), and a revision not pinned then may be now; those ask the
// store.
func (p *Pins) preloaded(ctx context.Context, uid string, gen int64) (image, digest string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loaded == nil {
		p.loaded = map[string][]pgstore.PinnedRevision{}
		all, err := p.store.PinnedRevisions(ctx)
		if err != nil {
			return "", "", false // ask one by one
		}
		for _, r := range all {
			p.loaded[r.WorkloadUID] = append(p.loaded[r.WorkloadUID], r)
		}
	}
	var best *pgstore.PinnedRevision
	var newest int64
	for i, r := range p.loaded[uid] {
		newest = max(newest, r.Generation)
		if r.Generation <= gen && (best == nil || r.Generation > best.Generation) {
			best = &p.loaded[uid][i]
		}
	}
	if best == nil || gen > newest || best.Digest == "" {
		return "", "", false
	}
	return best.Image, best.Digest, true
}
