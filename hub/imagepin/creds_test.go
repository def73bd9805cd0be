package imagepin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.opentelemetry.io/otel/metric/noop"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/hub/revisions"
	"github.com/atollhq/atoll/member/image"
)

// pullSecret answers one docker config.json, or an error, and records
// the templates it was asked for.
type pullSecret struct {
	mu    sync.Mutex
	auth  []byte
	err   error
	asked []api.ReplicaTemplate
}

func (p *pullSecret) PullAuth(_ context.Context, t api.ReplicaTemplate) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, t)
	return p.auth, p.err
}

func (p *pullSecret) set(auth []byte, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.auth, p.err = auth, err
}

// TestResolverAsksWithThePullSecret, on a real store and a real resolver
// against a registry that asks for a password: a revision whose template
// names an imagePullSecret is resolved with that secret's credentials,
// read at each attempt for the template the revision holds (its pinned
// data versions with it); a key that cannot be read says which secret
// and key in ImageResolved=False, and the registry is not asked; wrong
// credentials give the registry's answer; new values succeed at the next
// retry; a template without a secret is asked with the hub's (no)
// credentials. No condition or event holds the credentials.
func TestResolverAsksWithThePullSecret(t *testing.T) {
	ctx := context.Background()
	const password = "pin-pw-7Hk2"
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.ParseReference(host+"/team/private:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: password})); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	asked.Store(0) // the push's requests
	dockerConfig := func(pw string) []byte {
		return []byte(`{"auths":{"` + host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("ci:"+pw)) + `"}}}`)
	}

	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: pgtest.NewDatabase(t), MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	revisions.New(store, tnoop.NewTracerProvider(), noop.NewMeterProvider())
	reg, err := image.NewResolver(image.RegistryConfig{Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	secret := &pullSecret{err: errors.New("the secret has no such key")}
	now := time.Now()
	r := New(store, reg, nil, Config{Now: func() time.Time { return now }, Backoff: time.Minute, MaxBackoff: time.Hour, Credentials: secret})
	admin := pgstore.Actor{Name: "admin"}
	create := func(name string, tmpl api.ReplicaTemplate) {
		t.Helper()
		spec, _ := json.Marshal(api.WorkloadSpec{Replicas: 1, Template: tmpl})
		if _, err := store.Create(ctx, admin, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: name}, Spec: spec, Status: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	cond := func(name string) api.Condition {
		t.Helper()
		rec, err := store.Get(ctx, "Workload", name)
		if err != nil {
			t.Fatal(err)
		}
		var w api.Workload
		if err := rec.Decode(&w); err != nil {
			t.Fatal(err)
		}
		for _, c := range w.Status.Conditions {
			if c.Type == api.ConditionImageResolved {
				return c
			}
		}
		return api.Condition{}
	}
	pins := map[string]string{api.AnnotationData: "Secret/regcred=7"}
	create("private", api.ReplicaTemplate{Driver: "oci", Image: host + "/team/private:v1", Annotations: pins,
		ImagePullSecret: &api.KeyRef{Name: "regcred", Key: "config.json"}})

	// The key cannot be read: the condition names the secret and the
	// key, and the registry is not asked for that workload.
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if c := cond("private"); c.Status != "False" || c.Reason != api.ReasonResolveFailed ||
		!strings.Contains(c.Message, `secret "regcred", key "config.json"`) || !strings.Contains(c.Message, "no such key") {
		t.Errorf("a key that cannot be read: want ImageResolved=False naming the secret and the key; got %+v", c)
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the registry was asked %d times; want none while the credentials cannot be read", n)
	}
	// Without a secret, the hub's credentials (none here) are used.
	create("plain", api.ReplicaTemplate{Driver: "oci", Image: host + "/team/private:v1"})
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if c := cond("plain"); c.Status != "False" || !strings.Contains(c.Message, "UNAUTHORIZED") {
		t.Errorf("a template without imagePullSecret: want the registry's UNAUTHORIZED; got %+v", c)
	}
	secret.mu.Lock()
	if len(secret.asked) != 1 || secret.asked[0].ImagePullSecret == nil || secret.asked[0].Annotations[api.AnnotationData] != "Secret/regcred=7" {
		t.Errorf("credentials asked for %+v; want once, for the revision's template with its imagePullSecret and pinned versions", secret.asked)
	}
	secret.mu.Unlock()

	// Wrong credentials: the registry's answer, retried after the backoff.
	secret.set(dockerConfig("wrong-pw-Zz9"), nil)
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if c := cond("private"); !strings.Contains(c.Message, "no such key") {
		t.Errorf("asked again within the backoff: %+v", c)
	}
	now = now.Add(2 * time.Minute)
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if c := cond("private"); c.Status != "False" || !strings.Contains(c.Message, "UNAUTHORIZED") {
		t.Errorf("wrong credentials: want ImageResolved=False with the registry's UNAUTHORIZED; got %+v", c)
	}

	// New values: the next retry resolves and pins with them.
	secret.set(dockerConfig(password), nil)
	now = now.Add(5 * time.Minute)
	if err := r.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	c := cond("private")
	if c.Status != "True" || !strings.Contains(c.Message, digest.String()) || !strings.Contains(c.Message, `imagePullSecret "regcred"`) {
		t.Errorf("with the right credentials: want ImageResolved=True naming %s and the secret; got %+v", digest, c)
	}
	rec, _ := store.Get(ctx, "Workload", "private")
	var w api.Workload
	if err := rec.Decode(&w); err != nil {
		t.Fatal(err)
	}
	pinned, ok, err := NewPins(store).Pin(ctx, w, w.Metadata.Generation, w.Spec.Template)
	if want := image.Pin(host+"/team/private:v1", digest.String()); err != nil || !ok || pinned.Image != want {
		t.Errorf("pin: %q, %v, %v; want %q", pinned.Image, ok, err, want)
	}

	// No credential text in any object (workloads, their status, events).
	for _, kind := range []string{"Workload", "Event"} {
		l, err := store.List(ctx, kind, pgstore.ListOptions{Limit: -1})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			raw, _ := json.Marshal(it)
			for _, bad := range []string{password, "wrong-pw-Zz9", base64.StdEncoding.EncodeToString([]byte("ci:" + password))} {
				if strings.Contains(string(raw), bad) {
					t.Errorf("%s %s holds credentials: %s", kind, it.Meta.Name, raw)
				}
			}
		}
	}
}
