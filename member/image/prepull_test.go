package image

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// warmState is ref's state in the store's warm list ("" when absent).
func warmState(s *Store, ref string) WarmImage {
	for _, w := range s.Warm() {
		if w.Ref == ref {
			return w
		}
	}
	return WarmImage{}
}

// TestPrepullKeepsTheWarmListPresent: the images of the warm list are
// pulled in the background, a missing one fails with the registry's
// answer and is retried only after its backoff, GC keeps warm images
// whatever their age, and an image dropped from the list is GC's again.
func TestPrepullKeepsTheWarmListPresent(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	now := time.Now()
	s := newStore(t, host, func(c *Config) { c.Now = func() time.Time { return now }; c.PrepullConcurrency = 1 })
	da := push(t, host, "app:a", tarLayer(t, file{"f", "a"}))
	db := push(t, host, "app:b", tarLayer(t, file{"f", "b"}))
	a, b := host+"/app:a@"+da, host+"/app:b@"+db
	missing := host + "/gone@sha256:" + strings.Repeat("1", 64)
	tag := host + "/app:a" // a tag is never pulled ahead
	s.Prepull(ctx(t), []string{a, b, missing, tag})
	deadline := time.Now().Add(30 * time.Second)
	for warmState(s, a).State != WarmPresent || warmState(s, b).State != WarmPresent || warmState(s, missing).State != WarmFailed {
		if time.Now().After(deadline) {
			t.Fatalf("warm list after 30s: %+v", s.Warm())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(s.Warm()) != 3 {
		t.Errorf("warm list %+v: want a, b and the missing image (no tag)", s.Warm())
	}
	if m := warmState(s, missing).Message; !strings.Contains(m, "NAME_UNKNOWN") {
		t.Errorf("missing image: want the registry's answer; got %q", m)
	}
	// Within its backoff a failed image is not asked again.
	s.Prepull(ctx(t), []string{a, b, missing})
	if w := warmState(s, missing); w.State != WarmFailed {
		t.Errorf("missing image retried within its backoff: %+v", w)
	}
	// Old and over the size limit: warm images stay.
	now = now.Add(30 * 24 * time.Hour)
	s.cfg.MaxBytes = 1
	s.GC()
	if !s.Present(da) || !s.Present(db) {
		t.Fatal("GC removed images of the warm list")
	}
	// Dropped from the list: GC takes it.
	s.Prepull(ctx(t), []string{b})
	s.GC()
	if s.Present(da) || !s.Present(db) {
		t.Fatalf("after dropping a: a present %v (want false), b present %v (want true)", s.Present(da), s.Present(db))
	}
}
