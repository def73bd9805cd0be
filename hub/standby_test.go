package hub_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/placer"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/image"
	"github.com/atollhq/atoll/member/node"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// pushRandom pushes a small random image to ref and returns its digest.
func pushRandom(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return d.String()
}

// runRegion runs member name (its region named after it) with one node
// agent whose image cache is store, until the test's end.
func runRegion(t *testing.T, join, name string, store *image.Store) *member.Member {
	t.Helper()
	m, err := member.New(member.Config{JoinToken: join, Name: name, Region: name, DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", GatewayLocalPeers: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("member %s stopped: %v", name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("member %s not running within 30s", name)
	}
	a, err := node.New(node.Config{MemberURL: m.NATSURL(), JoinToken: m.NodeJoinToken(), Name: "n1", DataDir: t.TempDir(),
		MilliCPU: 2000, Memory: 2 << 30, Interval: 200 * time.Millisecond, Runtime: runtime.Config{Images: store}})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	adone := make(chan struct{})
	go func() { defer close(adone); _ = a.Run(actx) }()
	t.Cleanup(func() { acancel(); <-adone })
	waitFor(t, "the node of "+name, 30*time.Second, func() bool { return m.Capacity().NodesReady == 1 })
	return m
}

// TestWarmStandbyAndPinnedImages, with an in-process registry and two
// real members: the hub resolves a workload's tag once for its revision
// and delivers the image pinned to that digest; the cluster its
// placement allows but that runs none of its replicas pulls the image
// ahead of need (status.images says so, with an event); a tag moved
// afterwards changes nothing a newly started replica runs; a workload
// whose image a standby cluster cannot pull is named by a drill's plan,
// with the registry's answer in its status and a PrepullFailed event.
func TestWarmStandbyAndPinnedImages(t *testing.T) {
	t.Parallel()
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	d1 := pushRandom(t, host+"/team/app:v1")

	dbURL := newHubDatabase(t)
	e := newEnvWith(t, dbURL, newBus(t, dbURL), members.HealthConfig{}, true, func(c *hub.Config) { c.Registry.Insecure = []string{host} })
	ctx := t.Context()
	join := e.joinToken("j", api.TokenSpec{})
	stores := map[string]*image.Store{}
	ms := map[string]*member.Member{}
	for _, c := range []string{"east", "west"} {
		s, err := image.Open(image.Config{Dir: filepath.Join(t.TempDir(), "images"), Insecure: []string{host}})
		if err != nil {
			t.Fatal(err)
		}
		stores[c] = s
		ms[c] = runRegion(t, join, c, s)
	}
	// Replicas go to east first; west is allowed (its standby).
	policy := &api.PlacementPolicy{Clusters: []string{"east", "west"},
		Preferences: []api.ClusterPreference{{Selector: api.LabelSelector{MatchLabels: map[string]string{api.LabelRegion: "east"}}}}}
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "app"}, Spec: api.WorkloadSpec{Replicas: 1, Placement: policy,
		Template: api.ReplicaTemplate{Driver: "oci", Image: host + "/team/app:v1"}}})
	pinned := host + "/team/app:v1@" + d1

	// The revision is pinned and east is delivered the pinned image.
	var revs api.RevisionList
	waitFor(t, "revision 1 pinned to the pushed digest", 60*time.Second, func() bool {
		return e.admin.Raw(ctx, "GET", "/api/v1/workloads/app/revisions", nil, nil, &revs) == nil && len(revs.Items) == 1 && revs.Items[0].ImageDigest == d1
	})
	waitFor(t, "east holding app's desired state with the pinned image", 60*time.Second, func() bool {
		held, err := ms["east"].State().Desired(ctx)
		return err == nil && held["app"].Template.Image == pinned
	})
	var w api.Workload
	waitFor(t, "app's placement status", 30*time.Second, func() bool {
		return e.admin.Get(ctx, "workloads", "app", &w) == nil && w.Status.Placement != nil &&
			condition(w.Status.Conditions, api.ConditionImageResolved).Status != ""
	})
	if c := condition(w.Status.Conditions, api.ConditionImageResolved); c.Status != "True" || !strings.Contains(c.Message, d1) {
		t.Errorf("ImageResolved: want True naming %s; got %+v", d1, c)
	}
	if got := w.Status.Placement; got == nil || got.Clusters["east"] != 1 || got.Clusters["west"] != 0 {
		t.Fatalf("placement: want app's replica in east alone; got %+v", got)
	}

	// West's node holds the image before any failover, and status says so.
	waitFor(t, "west's node holding app's image ahead of need", 60*time.Second, func() bool { return stores["west"].Present(d1) })
	waitFor(t, "status.images: west warm", 60*time.Second, func() bool {
		if err := e.admin.Get(ctx, "workloads", "app", &w); err != nil {
			return false
		}
		i := slices.IndexFunc(w.Status.Images, func(ci api.ClusterImage) bool { return ci.Cluster == "west" })
		return i >= 0 && w.Status.Images[i].Warm() && w.Status.Images[i].Image == pinned
	})
	if slices.ContainsFunc(w.Status.Images, func(ci api.ClusterImage) bool { return ci.Cluster == "east" }) {
		t.Errorf("status.images lists east, which runs the replica: %+v", w.Status.Images)
	}
	if ev := findEvent(t, e, "app", placer.ReasonImagePrepulled); ev == nil || !strings.Contains(ev.Message, "west") {
		t.Errorf("want an ImagePrepulled event naming west; got %+v", ev)
	}

	if wn := imageWarnings(t, e, "east"); len(wn) > 0 {
		t.Errorf("plan of an outage of east: app is warm in west, want no ImageNotPresent warning; got %+v", wn)
	}

	// Tags that cannot be resolved: the delivery waits, and the condition
	// says why with the registry's answer (a name it does not know; a
	// registry that does not answer).
	for wname, img := range map[string]string{"ghost": host + "/team/ghost:v1", "down": "127.0.0.1:1/team/app:v1"} {
		e.create(api.Workload{Metadata: api.ObjectMeta{Name: wname}, Spec: api.WorkloadSpec{Replicas: 1, Placement: policy,
			Template: api.ReplicaTemplate{Driver: "oci", Image: img}}})
	}
	for wname, answer := range map[string]string{"ghost": "NAME_UNKNOWN", "down": "connection refused"} {
		var bad api.Workload
		waitFor(t, wname+"'s ImageResolved=False", 60*time.Second, func() bool {
			return e.admin.Get(ctx, "workloads", wname, &bad) == nil && condition(bad.Status.Conditions, api.ConditionImageResolved).Status == "False"
		})
		if c := condition(bad.Status.Conditions, api.ConditionImageResolved); c.Reason != api.ReasonResolveFailed || !strings.Contains(c.Message, answer) {
			t.Errorf("%s: want ResolveFailed with the registry's answer (%s); got %+v", wname, answer, c)
		}
		if ev := findEvent(t, e, wname, "ImageResolveFailed"); ev == nil || ev.Type != api.EventWarning {
			t.Errorf("%s: want an ImageResolveFailed Warning; got %+v", wname, ev)
		}
		if held, err := ms["east"].State().Desired(ctx); err != nil || held[wname].Epoch != 0 {
			t.Errorf("%s was delivered before its image was resolved: %+v (%v)", wname, held[wname], err)
		}
	}

	// The tag moves; a replica started afterwards runs the revision's digest.
	d2 := pushRandom(t, host+"/team/app:v1")
	if d2 == d1 {
		t.Fatal("the second push has the first's digest")
	}
	policy.Preferences = nil
	w = e.updateWorkload(t, "app", func(w *api.Workload) {
		w.Spec.Replicas = 2
		w.Spec.Placement = policy
	})
	waitFor(t, "both clusters' bindings of app with the pinned image", 60*time.Second, func() bool {
		for _, c := range []string{"east", "west"} {
			bs, err := ms[c].State().Bindings(ctx)
			if err != nil || !slices.ContainsFunc(bs, func(b protocol.Binding) bool { return b.Workload == "app" && b.Template.Image == pinned }) {
				return false
			}
		}
		return true
	})
	for c, s := range stores {
		if s.Present(d2) {
			t.Errorf("%s's node pulled %s, which the tag moved to after the revision was made", c, d2)
		}
	}

	// A workload west cannot pull ahead: the drill plan names west.
	gone := host + "/team/gone@sha256:" + strings.Repeat("0", 64)
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "cold"}, Spec: api.WorkloadSpec{Replicas: 1,
		Placement: &api.PlacementPolicy{Clusters: []string{"east", "west"},
			Preferences: []api.ClusterPreference{{Selector: api.LabelSelector{MatchLabels: map[string]string{api.LabelRegion: "east"}}}}},
		Template: api.ReplicaTemplate{Driver: "oci", Image: gone}}})
	var cold api.Workload
	waitFor(t, "status.images: west failing to pull cold's image", 60*time.Second, func() bool {
		if err := e.admin.Get(ctx, "workloads", "cold", &cold); err != nil {
			return false
		}
		i := slices.IndexFunc(cold.Status.Images, func(ci api.ClusterImage) bool { return ci.Cluster == "west" })
		return i >= 0 && cold.Status.Images[i].Failed > 0
	})
	if i := slices.IndexFunc(cold.Status.Images, func(ci api.ClusterImage) bool { return ci.Cluster == "west" }); !strings.Contains(cold.Status.Images[i].Message, "NAME_UNKNOWN") {
		t.Errorf("west's row: want the registry's answer (NAME_UNKNOWN); got %+v", cold.Status.Images[i])
	}
	if ev := findEvent(t, e, "cold", placer.ReasonPrepullFailed); ev == nil || ev.Type != api.EventWarning {
		t.Errorf("want a PrepullFailed Warning on cold; got %+v", ev)
	}
	// (ghost and down, whose images are not resolved, are named too.)
	wns := imageWarnings(t, e, "east")
	i := slices.IndexFunc(wns, func(wn api.DrillWarning) bool { return wn.Workload == "cold" })
	if i < 0 || !slices.Equal(wns[i].Clusters, []string{"west"}) || !strings.Contains(wns[i].Message, "west") ||
		slices.ContainsFunc(wns, func(wn api.DrillWarning) bool { return wn.Workload == "app" }) {
		t.Errorf("plan of an outage of east: want cold's ImageNotPresent warning naming west, none for app (it runs there too now); got %+v", wns)
	}
}

// imageWarnings are the ImageNotPresent warnings of an outage's plan.
func imageWarnings(t *testing.T, e *env, target string) []api.DrillWarning {
	t.Helper()
	var plan api.DrillPlan
	body, _ := json.Marshal(api.DrillSpec{Kind: api.DrillOutage, Target: api.DrillTarget{Cluster: target}})
	if err := e.admin.Raw(context.Background(), "POST", "/api/v1/drills/plan", nil, body, &plan); err != nil {
		t.Fatalf("plan: %v", err)
	}
	var out []api.DrillWarning
	for _, wn := range plan.Warnings {
		if wn.Type == api.WarnImageNotPresent {
			out = append(out, wn)
		}
	}
	return out
}

// findEvent is the newest event of reason on workload w (nil: none).
func findEvent(t *testing.T, e *env, w, reason string) *api.Event {
	t.Helper()
	var l api.EventList
	sel := api.LabelEventKind + "=Workload," + api.LabelEventName + "=" + w
	if err := e.admin.List(context.Background(), "events", client.ListOptions{LabelSelector: sel}, &l); err != nil {
		t.Fatal(err)
	}
	var out *api.Event
	for i := range l.Items {
		if l.Items[i].Reason == reason {
			out = &l.Items[i]
		}
	}
	return out
}

// condition is the condition of type typ (zero when absent).
func condition(conds []api.Condition, typ string) api.Condition {
	for _, c := range conds {
		if c.Type == typ {
			return c
		}
	}
	return api.Condition{}
}
