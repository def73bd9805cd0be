package image

import (
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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

// TestResolverWithCredentials: a registry that asks for a password
// refuses a tag asked without it (its answer in the error); a workload's
// credentials (WithCredentials) resolve it, asked before the credentials
// file, which still answers what they do not cover; credentials that are
// not a docker config.json are refused naming their source, and no error
// quotes a password.
func TestResolverWithCredentials(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ann" || p != "right-pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, err := name.ParseReference(host+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, file{"f", "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "ann", Password: "right-pw"})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	cfg := func(pw string) []byte {
		return []byte(`{"auths":{"` + host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("ann:"+pw)) + `"}}}`)
	}
	wrongFile := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(wrongFile, cfg("wrong-pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(RegistryConfig{Insecure: []string{host}, CredentialsFile: wrongFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(ctx(t), host+"/team/app:v1"); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") || strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("with the file's wrong password: %v; want the registry's UNAUTHORIZED, without the password", err)
	}
	if got, err := r.Resolve(ctx(t), host+"/team/app:v1", WithCredentials(cfg("right-pw"), "secret regcred")); err != nil || got != d.String() {
		t.Errorf("with the workload's credentials: %q, %v; want %s", got, err, d)
	}
	other := []byte(`{"auths":{"elsewhere.example":{"username":"x","password":"y"}}}`)
	if _, err := r.Resolve(ctx(t), host+"/team/app:v1", WithCredentials(other, "secret regcred")); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("credentials for another registry: %v; want the file's (wrong) credentials asked, and refused", err)
	}
	if _, err := r.Resolve(ctx(t), host+"/team/app:v1", WithCredentials([]byte("right-pw"), "secret regcred")); err == nil ||
		!strings.Contains(err.Error(), "secret regcred") || strings.Contains(err.Error(), "right-pw") {
		t.Errorf("credentials that are not a docker config.json: %v; want an error naming their source, not quoting them", err)
	}
	if err := os.WriteFile(wrongFile, cfg("right-pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Resolve(ctx(t), host+"/team/app:v1", WithCredentials(other, "secret regcred")); err != nil || got != d.String() {
		t.Errorf("the file's right credentials behind a workload's for another registry: %q, %v", got, err)
	}
}
