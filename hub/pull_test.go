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

// TestImagePullSecretEndToEnd: an image in a registry that asks for a
// password fails to pull (PullFailed with the registry's 401) until the
// workload names a Secret holding the credentials; the hub then sends
// the secret to the member, the node pulls with it and the replica
// becomes ready. No event or status holds the password.
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
	ref, err := name.ParseReference(host+"/team/private:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: password})); err != nil {
		t.Fatal(err)
	}
	store, err := image.Open(image.Config{Dir: filepath.Join(t.TempDir(), "images"), Insecure: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := t.Context()
	runMemberWithNode(t, e, runtime.Config{Images: store, Backoff: runtime.BackoffConfig{Initial: 200 * time.Millisecond, Max: time.Second}})
	auth := base64.StdEncoding.EncodeToString([]byte("ci:" + password))
	if err := e.admin.Create(ctx, "secrets", secretObj("regcred", map[string]string{"config.json": `{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`}, nil), nil); err != nil {
		t.Fatal(err)
	}
	tmpl := api.ReplicaTemplate{Driver: "oci", Image: host + "/team/private:v1",
		Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/"}, PeriodSeconds: 1}}
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "private"}, Spec: api.WorkloadSpec{Replicas: 1, Template: tmpl}})

	events := func() []api.Event {
		var l api.EventList
		sel := api.LabelEventKind + "=Workload," + api.LabelEventName + "=private"
		if err := e.admin.List(ctx, "events", client.ListOptions{LabelSelector: sel}, &l); err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	waitFor(t, "PullFailed with the registry's 401", 60*time.Second, func() bool {
		for _, ev := range events() {
			if ev.Reason == protocol.ProblemPullFailed && strings.Contains(ev.Message, "UNAUTHORIZED") {
				return true
			}
		}
		return false
	})

	var w api.Workload
	if err := e.admin.Get(ctx, "workloads", "private", &w); err != nil {
		t.Fatal(err)
	}
	w.Spec.Template.ImagePullSecret = &api.KeyRef{Name: "regcred", Key: "config.json"}
	if err := e.admin.Update(ctx, "workloads", "private", w, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replica ready, pulled with the workload's secret", 90*time.Second, func() bool {
		if err := e.admin.Get(ctx, "workloads", "private", &w); err != nil {
			t.Fatal(err)
		}
		return w.Status.ReadyReplicas == 1
	})
	for _, ev := range events() {
		if strings.Contains(ev.Message, password) || strings.Contains(ev.Message, auth) {
			t.Errorf("event %s holds the credentials: %s", ev.Reason, ev.Message)
		}
	}
	raw, _ := json.Marshal(w)
	if strings.Contains(string(raw), password) || strings.Contains(string(raw), auth) {
		t.Errorf("the workload holds the credentials: %s", raw)
	}
}
