package hub_test

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

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
