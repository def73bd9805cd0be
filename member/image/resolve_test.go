package image

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// TestResolver: a tag resolves to the digest pushed, without pulling; a
// digest is returned as it is; an unknown tag gives the registry's
// answer; plain HTTP to a registry not listed insecure and link-local
// addresses are refused.
func TestResolver(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	d := push(t, host, "team/app:v1", tarLayer(t, file{"f", "x"}))
	r, err := NewResolver(RegistryConfig{Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Resolve(ctx(t), host+"/team/app:v1"); err != nil || got != d {
		t.Errorf("resolve the tag: %q, %v; want %s", got, err, d)
	}
	pinned := host + "/team/app:v1@" + d
	if got, err := r.Resolve(ctx(t), pinned); err != nil || got != d || Pin(host+"/team/app:v1", got) != pinned || Unpinned(pinned) != host+"/team/app:v1" {
		t.Errorf("a pinned reference: %q, %v", got, err)
	}
	if _, err := r.Resolve(ctx(t), host+"/team/app:v2"); err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("an unknown tag: want the registry's answer; got %v", err)
	}
	strict, err := NewResolver(RegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Resolve(ctx(t), host+"/team/app:v1"); err == nil {
		t.Error("a registry not listed insecure was resolved")
	}
	if _, err := strict.Resolve(ctx(t), "169.254.169.254/latest:v1"); err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("a link-local registry: want it refused; got %v", err)
	}
}
