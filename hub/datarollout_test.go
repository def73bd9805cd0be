package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/internal/syncbuf"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// processRegion runs a member named name in its own region with one node
// agent that runs real processes, until the test ends.
func processRegion(t *testing.T, e *env, join, name string) *member.Member {
	t.Helper()
	return regionWithNodes(t, e, join, name, node.Config{Name: name + "-n1", MilliCPU: 2000, Memory: 2 << 30, Interval: 200 * time.Millisecond,
		Runtime: runtime.Config{Backoff: runtime.BackoffConfig{Initial: 200 * time.Millisecond, Max: 500 * time.Millisecond}}})
}

// dataVersions asks a member every version it holds of each config and
// secret.
func dataVersions(t *testing.T, e *env, cluster string) map[string][]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := e.bus.Request(ctx, cluster, protocol.DataSubject(cluster), []byte(`{"v":6}`))
	if err != nil {
		t.Fatalf("ask %s what it holds: %v", cluster, err)
	}
	var h protocol.DataHeld
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Versions
}

// TestSecretRolloutEndToEnd: over three real members running real
// processes, a new value of a secret that a workload with spec.rollout
// reads is a new revision ("secret db v2"): the canary's replica gets it
// first while the other clusters' replicas keep the old value in their
// env (and their members are not even sent it), then the later waves
// once promoted; a value its replicas crash on is rolled back from the
// canary, whose replica returns to the old value, and never reaches the
// others. Each cluster's status names the version it runs; the hub keeps
// the version a kept revision pins and drops it once none does; no value
// appears in events, audit rows, revisions or the hub's log.
func TestSecretRolloutEndToEnd(t *testing.T) {
	t.Parallel()
	logs := &syncbuf.Buffer{}
	dbURL := newHubDatabase(t)
	e := newEnvWith(t, dbURL, newBus(t, dbURL), members.HealthConfig{}, true, func(c *hub.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()
	join := e.joinToken("j", api.TokenSpec{})
	regions := []string{"r1", "r2", "r3"}
	for _, r := range regions {
		processRegion(t, e, join, r)
	}
	const pw1, pw2, bad = "pw1-Tn4Wq8Zc", "pw2-Hs6Yb1Rk", "bad-Pv3Ld7Gx"
	var s1 api.Secret
	if err := e.admin.Create(ctx, "secrets", secretObj("db", map[string]string{"password": pw1}, nil), &s1); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	// Each replica writes the value it was given to a file named for its
	// cluster, then runs; it crashes on a bad value.
	script := `printf %s "$PASSWORD" > ` + out + `/$CLUSTER.tmp && mv ` + out + `/$CLUSTER.tmp ` + out + `/$CLUSTER; ` +
		`case "$PASSWORD" in bad*) exit 1;; esac; exec sleep 600`
	var overrides []api.Override
	for _, r := range regions {
		overrides = append(overrides, api.Override{Clusters: []string{r}, Env: []api.EnvVar{{Name: "CLUSTER", Value: r}}})
	}
	maxRestarts := int32(0)
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "app"}, Spec: api.WorkloadSpec{Replicas: 1,
		Template: api.ReplicaTemplate{Driver: "process", Command: "/bin/sh", Args: []string{"-c", script},
			Resources: api.Resources{CPU: "100m", Memory: "64Mi"},
			Env:       []api.EnvVar{{Name: "PASSWORD", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "db", Key: "password"}}}}},
		Overrides: overrides,
		Placement: &api.PlacementPolicy{ReplicaMode: "Duplicated"},
		Rollout: &api.ProgressiveRollout{Waves: []api.RolloutWave{
			{Name: "canary", Clusters: []string{"r1"}, BakeTime: "1s", Manual: true},
			{Name: "second", Clusters: []string{"r2"}, BakeTime: "1s"},
		}, Gates: &api.RolloutGates{MaxRestarts: &maxRestarts, ProgressDeadline: "60s"}}}})
	get := func() api.Workload {
		t.Helper()
		var w api.Workload
		if err := e.admin.Get(ctx, "workloads", "app", &w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	read := func(cluster string) string {
		b, _ := os.ReadFile(filepath.Join(out, cluster))
		return string(b)
	}
	values := func() []string { return []string{read("r1"), read("r2"), read("r3")} }
	everywhere := func(v string) bool { return slices.Equal(values(), []string{v, v, v}) }
	waitFor(t, "every cluster's replica to run with the first value", 60*time.Second, func() bool {
		r := get().Status.Rollout
		return everywhere(pw1) && r != nil && r.Phase == api.RolloutCompleted && r.Revision == 1
	})

	// A new value: revision 2, the canary first.
	var s2 api.Secret
	if err := e.admin.Update(ctx, "secrets", "db", secretObj("db", map[string]string{"password": pw2}, nil), &s2); err != nil {
		t.Fatal(err)
	}
	pin1, pin2 := "Secret/db="+s1.Metadata.ResourceVersion, "Secret/db="+s2.Metadata.ResourceVersion
	var revs api.RevisionList
	if err := e.admin.Raw(ctx, "GET", "/api/v1/workloads/app/revisions", nil, nil, &revs); err != nil {
		t.Fatal(err)
	}
	if n := len(revs.Items); n != 2 || revs.Items[1].ChangeCause != "secret db v2" || revs.Items[1].Template.Annotations[api.AnnotationData] != pin2 ||
		revs.Items[0].Template.Annotations[api.AnnotationData] != pin1 {
		t.Fatalf("want revision 2 pinning %s with cause %q, revision 1 pinning %s; got %+v", pin2, "secret db v2", pin1, revs.Items)
	}
	var last string // what the rollout said last, for a failure's message
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the workload last: %s", last)
		}
	})
	waitFor(t, "the canary's replica to get the new value, waiting for a promote", 60*time.Second, func() bool {
		w := get()
		js, _ := json.Marshal(w.Status)
		last = string(js)
		r := w.Status.Rollout
		return read("r1") == pw2 && r != nil && r.Revision == 2 && r.Phase == api.RolloutWaiting
	})
	if v := values(); v[1] != pw1 || v[2] != pw1 {
		t.Errorf("while the canary bakes: want r2 and r3's replicas still on the old value; got %q, %q", v[1], v[2])
	}
	v1, v2 := s1.Metadata.ResourceVersion, s2.Metadata.ResourceVersion
	if got := fmt.Sprint(dataVersions(t, e, "r3")["Secret/db"]); got != "["+v1+"]" {
		t.Errorf("r3, not in the wave: want its member to hold the old version alone ([%s]); got %s", v1, got)
	}
	waitFor(t, "the canary's member to hold old and new (a rollback is at hand)", 30*time.Second, func() bool {
		return fmt.Sprint(dataVersions(t, e, "r1")["Secret/db"]) == "["+v1+" "+v2+"]"
	})
	w := get()
	byCluster := map[string]string{}
	for _, c := range w.Status.Clusters {
		byCluster[c.Cluster] = c.Data
	}
	if byCluster["r1"] != pin2 || byCluster["r3"] != pin1 {
		t.Errorf("status: want r1 on %s and r3 on %s; got %v", pin2, pin1, byCluster)
	}
	if r := e.do("POST", "/api/v1/workloads/app/rollout/promote", adminSecret, "", nil); r.status != 200 {
		t.Fatalf("promote: want 200; got %d %s", r.status, r.body)
	}
	waitFor(t, "revision 2 everywhere, each replica on the new value", 90*time.Second, func() bool {
		r := get().Status.Rollout
		return everywhere(pw2) && r != nil && r.Revision == 2 && r.Phase == api.RolloutCompleted
	})
	waitFor(t, "every member to hold the new version alone, the status to name it", 30*time.Second, func() bool {
		for _, c := range regions {
			if fmt.Sprint(dataVersions(t, e, c)["Secret/db"]) != "["+v2+"]" {
				return false
			}
		}
		for _, c := range get().Status.Clusters {
			if c.Data != pin2 {
				return false
			}
		}
		return true
	})

	// A value the replicas crash on: rolled back from the canary, whose
	// replica returns to the value before; the others never see it.
	var s3 api.Secret
	if err := e.admin.Update(ctx, "secrets", "db", secretObj("db", map[string]string{"password": bad}, nil), &s3); err != nil {
		t.Fatal(err)
	}
	v3 := s3.Metadata.ResourceVersion
	n3, _ := strconv.ParseInt(v3, 10, 64)
	sentBad := map[string]bool{}
	waitFor(t, "revision 3 rolled back", 90*time.Second, func() bool {
		for _, c := range []string{"r2", "r3"} {
			if slices.Contains(dataVersions(t, e, c)["Secret/db"], n3) {
				sentBad[c] = true
			}
		}
		r := get().Status.Rollout
		return r != nil && r.Revision == 3 && r.Phase == api.RolloutRolledBack
	})
	if len(sentBad) > 0 {
		t.Errorf("the bad value's version %s reached the members of later waves: %v", v3, sentBad)
	}
	if msg := get().Status.Rollout.Message; !strings.Contains(msg, "restarts of revision 3's replicas") {
		t.Errorf("rollback: want the failing measurement as the reason; got %q", msg)
	}
	waitFor(t, "the canary's replica back on the value before", 60*time.Second, func() bool { return everywhere(pw2) })
	waitFor(t, "every member to hold the version before alone again", 30*time.Second, func() bool {
		for _, c := range regions {
			if fmt.Sprint(dataVersions(t, e, c)["Secret/db"]) != "["+v2+"]" {
				return false
			}
		}
		return true
	})

	// The hub keeps the versions kept revisions pin: pw1's version goes
	// once a lower history limit trims revision 1.
	keptVersions := func() int {
		var n int
		if err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM secret_values`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := keptVersions(); n != 3 {
		t.Errorf("want the three versions kept (revisions 1, 2 and 3 pin them); got %d", n)
	}
	if err := e.admin.Patch(ctx, "workloads", "app", []byte(`{"spec":{"revisionHistoryLimit":2}}`), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the version no kept revision pins dropped", 30*time.Second, func() bool { return keptVersions() == 2 })

	// No value in events, audit rows, revisions or the hub's log.
	var evs api.EventList
	if err := e.admin.List(ctx, "events", client.ListOptions{}, &evs); err != nil {
		t.Fatal(err)
	}
	audit, err := e.store.AuditQuery(ctx, pgstore.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Raw(ctx, "GET", "/api/v1/workloads/app/revisions", nil, nil, &revs); err != nil {
		t.Fatal(err)
	}
	evJS, _ := json.Marshal(evs)
	auditJS, _ := json.Marshal(audit)
	revJS, _ := json.Marshal(revs)
	for _, v := range []string{pw1, pw2, bad} {
		for what, text := range map[string]string{"events": string(evJS), "audit rows": string(auditJS), "revisions": string(revJS), "the hub's log": logs.String()} {
			if leaks(text, v) {
				t.Errorf("%s hold a secret's value", what)
			}
		}
	}
	if !strings.Contains(string(evJS), "secret db v2") {
		t.Errorf("want the TemplateChanged event to say the secret's new version rolled the workload; events: %s", evJS)
	}
}
