package hub_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/replicas"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/member/image"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// TestImagePullFailureShowsItsReason: an oci workload whose image the
// registry does not have, on a real member and node agent, shows the
// registry's answer as the PullFailed problem in Workload.status (what
// describe prints) and as a PullFailed Warning event.
func TestImagePullFailureShowsItsReason(t *testing.T) {
	if ok, why := runtime.ContainerSupport(""); !ok {
		if os.Geteuid() != 0 {
			t.Skip("oci replicas cannot run here: " + why)
		}
		t.Fatalf("oci replicas cannot run here: %s (tests/deps.sh installs runc)", why)
	}
	t.Parallel()
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	store, err := image.Open(image.Config{Dir: filepath.Join(t.TempDir(), "images"), Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := t.Context()
	runMemberWithNode(t, e, runtime.Config{Images: store})
	// By digest: the hub delivers it as it is (a tag would wait for the
	// hub to resolve it, and the hub would say why it cannot).
	missing := host + "/team/missing@sha256:" + strings.Repeat("0", 64)
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "noimage"}, Spec: api.WorkloadSpec{Replicas: 1,
		Template: api.ReplicaTemplate{Driver: "oci", Image: missing}}})

	var w api.Workload
	var event api.Event
	waitFor(t, "PullFailed in Workload.status and as an event", 60*time.Second, func() bool {
		if err := e.admin.Get(ctx, "workloads", "noimage", &w); err != nil || len(w.Status.Clusters) == 0 {
			return false
		}
		var l api.EventList
		sel := api.LabelEventKind + "=Workload," + api.LabelEventName + "=noimage"
		if err := e.admin.List(ctx, "events", client.ListOptions{LabelSelector: sel}, &l); err != nil {
			return false
		}
		for _, ev := range l.Items {
			if ev.Reason == protocol.ProblemPullFailed {
				event = ev
			}
		}
		return event.Reason != "" && w.Status.Clusters[0].States[protocol.StateBackOff] == 1
	})
	if event.Type != api.EventWarning || !strings.Contains(event.Message, "NAME_UNKNOWN") {
		t.Errorf("event %+v: want a Warning with the registry's answer (NAME_UNKNOWN)", event)
	}
	var described strings.Builder
	if err := replicas.Describe(&described, w.Status, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"PullFailed", "NAME_UNKNOWN", missing} {
		if !strings.Contains(described.String(), s) {
			t.Errorf("describe lacks %q:\n%s", s, described.String())
		}
	}
}

// TestImagePullSecretEndToEnd, with a registry that asks for a
// password: (a) an image named by digest is delivered as it is and the
// node's pull is refused (PullFailed with the registry's 401); (b) a tag
// cannot be resolved by the hub without the workload's secret
// (ImageResolved=False and an ImageResolveFailed event with the
// registry's UNAUTHORIZED) and nothing is delivered; (c) once the
// workload names its imagePullSecret, the hub resolves the tag with it,
// the node pulls with it, and the replica becomes ready. No event,
// status or condition holds the credentials.
func TestImagePullSecretEndToEnd(t *testing.T) {
	if ok, why := runtime.ContainerSupport(""); !ok {
		if os.Geteuid() != 0 {
			t.Skip("oci replicas cannot run here: " + why)
		}
		t.Fatalf("oci replicas cannot run here: %s (tests/deps.sh installs runc)", why)
	}
	t.Parallel()
	const password = "pull-pw-Xq81Lm"
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, p, _ := r.BasicAuth(); p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.ExecutableImage(exe, "hub.test", v1.Config{Env: []string{probeServerEnv + "=1"}})
	if err != nil {
		t.Fatal(err)
	}
	tag := host + "/team/private:v1"
	ref, err := name.ParseReference(tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: password})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	store, err := image.Open(image.Config{Dir: filepath.Join(t.TempDir(), "images"), Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	// The hub reaches the registry over plain HTTP (listed insecure) and
	// has no credentials file of its own.
	dbURL := newHubDatabase(t)
	e := newEnvWith(t, dbURL, newBus(t, dbURL), members.HealthConfig{}, true, func(c *hub.Config) { c.Registry.Insecure = []string{host} })
	ctx := t.Context()
	m := runMemberWithNode(t, e, runtime.Config{Images: store, Backoff: runtime.BackoffConfig{Initial: 200 * time.Millisecond, Max: time.Second}})
	auth := base64.StdEncoding.EncodeToString([]byte("ci:" + password))
	if err := e.admin.Create(ctx, "secrets", secretObj("regcred", map[string]string{"config.json": `{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`}, nil), nil); err != nil {
		t.Fatal(err)
	}
	events := func(workload string) []api.Event {
		var l api.EventList
		sel := api.LabelEventKind + "=Workload," + api.LabelEventName + "=" + workload
		if err := e.admin.List(ctx, "events", client.ListOptions{LabelSelector: sel}, &l); err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	probe := &api.Probe{HTTP: &api.HTTPProbe{Path: "/"}, PeriodSeconds: 1}

	// (a) By digest, without the secret: the hub has nothing to resolve
	// and delivers it; the node's pull is refused.
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "bydigest"}, Spec: api.WorkloadSpec{Replicas: 1,
		Template: api.ReplicaTemplate{Driver: "oci", Image: host + "/team/private@" + d.String(), Readiness: probe}}})
	waitFor(t, "bydigest: the node's PullFailed with the registry's 401", 60*time.Second, func() bool {
		for _, ev := range events("bydigest") {
			if ev.Reason == protocol.ProblemPullFailed && strings.Contains(ev.Message, "UNAUTHORIZED") {
				return true
			}
		}
		return false
	})
	if err := e.admin.Delete(ctx, "workloads", "bydigest", nil); err != nil {
		t.Fatal(err)
	}

	// (b) By tag, without the secret: the hub cannot resolve it, says
	// why, and delivers nothing.
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "private"}, Spec: api.WorkloadSpec{Replicas: 1,
		Template: api.ReplicaTemplate{Driver: "oci", Image: tag, Readiness: probe}}})
	var w api.Workload
	waitFor(t, "private: ImageResolved=False", 60*time.Second, func() bool {
		return e.admin.Get(ctx, "workloads", "private", &w) == nil && condition(w.Status.Conditions, api.ConditionImageResolved).Status == "False"
	})
	if c := condition(w.Status.Conditions, api.ConditionImageResolved); c.Reason != api.ReasonResolveFailed || !strings.Contains(c.Message, "UNAUTHORIZED") {
		t.Errorf("ImageResolved: want ResolveFailed with the registry's UNAUTHORIZED; got %+v", c)
	}
	if ev := findEvent(t, e, "private", "ImageResolveFailed"); ev == nil || ev.Type != api.EventWarning || !strings.Contains(ev.Message, "UNAUTHORIZED") {
		t.Errorf("want an ImageResolveFailed Warning with the registry's UNAUTHORIZED; got %+v", ev)
	}
	if held, err := m.State().Desired(ctx); err != nil || held["private"].Epoch != 0 {
		t.Errorf("private was delivered before its image was resolved: %+v (%v)", held["private"], err)
	}
	for _, ev := range events("private") {
		if ev.Reason == protocol.ProblemPullFailed || ev.Reason == protocol.StatePulling {
			t.Errorf("a node pulled a tag the hub did not resolve: %s %s", ev.Reason, ev.Message)
		}
	}

	// (c) With the secret: resolved at the hub with it, pulled by the
	// node with it, ready.
	e.updateWorkload(t, "private", func(w *api.Workload) {
		w.Spec.Template.ImagePullSecret = &api.KeyRef{Name: "regcred", Key: "config.json"}
	})
	waitFor(t, "the replica ready, resolved and pulled with the workload's secret", 90*time.Second, func() bool {
		if err := e.admin.Get(ctx, "workloads", "private", &w); err != nil {
			t.Fatal(err)
		}
		return w.Status.ReadyReplicas == 1
	})
	if c := condition(w.Status.Conditions, api.ConditionImageResolved); c.Status != "True" || !strings.Contains(c.Message, d.String()) || !strings.Contains(c.Message, `imagePullSecret "regcred"`) {
		t.Errorf("ImageResolved: want True naming %s and the secret; got %+v", d, c)
	}
	if held, err := m.State().Desired(ctx); err != nil || held["private"].Template.Image != image.Pin(tag, d.String()) {
		t.Errorf("the member holds image %q (%v); want the tag pinned to %s", held["private"].Template.Image, err, d)
	}
	if !store.Present(d.String()) {
		t.Errorf("the node's cache lacks %s", d)
	}
	for _, wname := range []string{"bydigest", "private"} {
		for _, ev := range events(wname) {
			if strings.Contains(ev.Message, password) || strings.Contains(ev.Message, auth) {
				t.Errorf("event %s of %s holds the credentials: %s", ev.Reason, wname, ev.Message)
			}
		}
	}
	raw, _ := json.Marshal(w)
	if strings.Contains(string(raw), password) || strings.Contains(string(raw), auth) {
		t.Errorf("the workload (status, conditions) holds the credentials: %s", raw)
	}
}
