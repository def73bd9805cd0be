package image

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Prepull states.
const (
	WarmPresent = "Present"
	WarmPulling = "Pulling"
	WarmFailed  = "Failed"
)

// WarmImage is one image of the warm list and how it is doing.
type WarmImage struct {
	Ref     string
	State   string // WarmPresent, WarmPulling or WarmFailed
	Message string // the last failure (the registry's answer)
}

// warmEntry is the store's state of one image of the warm list.
type warmEntry struct {
	digest   string // hex
	pulling  bool
	failed   string
	attempts int
	next     time.Time // no new attempt before
}

// prepullBackoff is the wait after a failed prepull, doubling per
// failure up to prepullBackoffMax.
const (
	prepullBackoff    = 5 * time.Second
	prepullBackoffMax = 5 * time.Minute
)

// Prepull makes refs the store's warm list: images pinned to digests
// that the node should hold before any replica needs them (warm
// standby). GC never removes an image of the list. Those absent are
// pulled in the background, at most Config.PrepullConcurrency at a
// time; a failure is retried with backoff at a later call (the agent
// calls Prepull on every pass over its bindings). References that are
// not pinned to a digest are ignored: a node never resolves a tag ahead
// of need. Images dropped from the list stay in the cache until GC
// takes them by age or size.
func (s *Store) Prepull(ctx context.Context, refs []string) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[string]bool{}
	for _, ref := range refs {
		r, err := name.ParseReference(ref)
		if err != nil {
			continue
		}
		d, ok := r.(name.Digest)
		if !ok {
			continue
		}
		hexd, ok := strings.CutPrefix(d.DigestStr(), "sha256:")
		if !ok {
			continue
		}
		keep[ref] = true
		e, ok := s.warm[ref]
		if !ok {
			e = &warmEntry{digest: hexd}
			s.warm[ref] = e
		}
		if e.pulling || now.Before(e.next) || s.present(hexd) {
			continue
		}
		e.pulling = true
		go s.prepull(ctx, ref, e)
	}
	for ref := range s.warm {
		if !keep[ref] {
			delete(s.warm, ref)
		}
	}
}

// prepull pulls one image of the warm list, waiting its turn.
func (s *Store) prepull(ctx context.Context, ref string, e *warmEntry) {
	select {
	case s.prepulls <- struct{}{}:
	case <-ctx.Done():
		s.mu.Lock()
		e.pulling = false
		s.mu.Unlock()
		return
	}
	start := time.Now()
	_, err := s.Pull(ctx, ref)
	<-s.prepulls
	result := "pulled"
	s.mu.Lock()
	e.pulling = false
	switch {
	case err == nil:
		e.failed, e.attempts, e.next = "", 0, time.Time{}
		s.log.Info("image pulled ahead of need (warm standby)", "image", ref, "seconds", time.Since(start).Seconds())
	case ctx.Err() != nil:
		result = "canceled"
	default:
		result = "failed"
		e.failed = err.Error()
		e.next = s.now().Add(min(prepullBackoff<<min(e.attempts, 10), prepullBackoffMax))
		e.attempts++
		s.log.Warn("pulling an image ahead of need failed", "image", ref, "err", e.failed, "retryAt", e.next)
	}
	s.mu.Unlock()
	s.prepulled.Add(context.WithoutCancel(ctx), 1, metric.WithAttributes(attribute.String("result", result)))
}

// Warm is the warm list and each image's state, sorted by reference.
func (s *Store) Warm() []WarmImage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]WarmImage, 0, len(s.warm))
	for ref, e := range s.warm {
		w := WarmImage{Ref: ref}
		switch {
		case s.present(e.digest):
			w.State = WarmPresent
		case e.pulling || e.failed == "":
			w.State = WarmPulling
		default:
			w.State, w.Message = WarmFailed, e.failed
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b WarmImage) int { return strings.Compare(a.Ref, b.Ref) })
	return out
}

// present says whether the image of a digest's hex is unpacked in the
// cache (without marking it used).
func (s *Store) present(hexd string) bool {
	_, err := os.Stat(filepath.Join(s.cfg.Dir, "images", hexd+".json"))
	return err == nil
}
