package hub_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/protocol"
)

// runRegionMember runs a member of region until the test's end and waits
// for its first heartbeat ack.
func runRegionMember(t *testing.T, join, name, region string) *member.Member {
	t.Helper()
	m, err := member.New(member.Config{JoinToken: join, Name: name, Region: region, DataDir: t.TempDir(), NATSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { cancel(); <-done }) })
	waitFor(t, "member "+name+"'s first heartbeat ack", 20*time.Second, func() bool { return !m.LastAck().IsZero() })
	return m
}

// desiredOf is what a member holds for a workload.
func desiredOf(t *testing.T, m *member.Member, workload string) (protocol.DesiredWorkload, bool) {
	t.Helper()
	all, err := m.State().Desired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d, ok := all[workload]
	return d, ok
}

func envOf(t api.ReplicaTemplate, name string) string {
	for _, e := range t.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestOverridesPerRegion: an override selecting region us gives its
// cluster another env value and replica count; eu's cluster runs the
// template as written. A bad override is a 422 at its index.
func TestOverridesPerRegion(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	join := e.joinToken("j", api.TokenSpec{})
	eu := runRegionMember(t, join, "eu-1", "eu")
	us := runRegionMember(t, join, "us-1", "us")
	three := int32(3)
	w := workload("web", 2, nil)
	w.Spec.Template.Env = []api.EnvVar{{Name: "REGION_NAME", Value: "eu"}, {Name: "TIER", Value: "gold"}}
	w.Spec.Overrides = []api.Override{
		{Name: "us-env", Regions: []string{"us"}, Env: []api.EnvVar{{Name: "REGION_NAME", Value: "us"}}},
		{Name: "us-size", ClusterSelector: &api.LabelSelector{MatchLabels: map[string]string{api.LabelRegion: "us"}}, Replicas: &three},
		{Name: "nowhere", Clusters: []string{"ap-9"}, Replicas: &three},
	}
	e.create(w)
	waitFor(t, "both members to hold the workload", 30*time.Second, func() bool {
		_, a := desiredOf(t, eu, "web")
		_, b := desiredOf(t, us, "web")
		return a && b
	})
	de, _ := desiredOf(t, eu, "web")
	du, _ := desiredOf(t, us, "web")
	if de.Replicas != 1 || envOf(de.Template, "REGION_NAME") != "eu" {
		t.Errorf("eu-1: want its share (1) and REGION_NAME=eu; got %d, %q", de.Replicas, envOf(de.Template, "REGION_NAME"))
	}
	if du.Replicas != 3 || envOf(du.Template, "REGION_NAME") != "us" || envOf(du.Template, "TIER") != "gold" {
		t.Errorf("us-1: want 3 replicas, REGION_NAME=us and TIER kept; got %d, %+v", du.Replicas, du.Template.Env)
	}

	// The console's workload page says what differs per cluster.
	cookie := signIn(t, e.url, adminSecret)
	waitFor(t, "the console to show us-1's overrides", 20*time.Second, func() bool {
		_, table, _ := strings.Cut(getPage(t, e, cookie, "/workloads/web"), `aria-label="Per cluster"`)
		table, _, _ = strings.Cut(table, "</table>")
		_, row, _ := strings.Cut(table, `data-cluster="us-1"`)
		row, _, _ = strings.Cut(row, "</tr>")
		return strings.Contains(row, "us-env, us-size") && strings.Contains(row, "env REGION_NAME=us") && strings.Contains(row, "replicas 3") &&
			!strings.Contains(table, "eu-1") // it runs the template as written
	})

	bad := workload("bad", 1, nil)
	bad.Spec.Overrides = []api.Override{{Regions: []string{"us"}, Resources: &api.Resources{CPU: "lots"}}, {Regions: []string{"eu"}}}
	r := e.json("POST", "/api/v1/workloads", bad)
	if r.status != http.StatusUnprocessableEntity || !hasLocation(r.problem, "body.spec.overrides[0]") || !hasLocation(r.problem, "body.spec.overrides[1]") {
		t.Errorf("want an override making the template invalid and one changing nothing refused at their index; got %d %s", r.status, r.body)
	}
}

// TestResidency: a secret restricted to region eu is refused to a
// workload that could run in us (naming the cluster), delivered only to
// eu's member for one that cannot; and a residency set later moves a
// workload's replicas out of us and the secret with them.
func TestResidency(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	ctx := t.Context()
	join := e.joinToken("j", api.TokenSpec{})
	eu := runRegionMember(t, join, "eu-1", "eu")
	us := runRegionMember(t, join, "us-1", "us")
	waitFor(t, "both clusters registered", 20*time.Second, func() bool {
		var l api.ClusterList
		return e.admin.List(ctx, "clusters", client.ListOptions{}, &l) == nil && len(l.Items) == 2
	})
	euOnly := &api.LabelSelector{MatchLabels: map[string]string{api.LabelRegion: "eu"}}
	s := secretObj("eu-db", map[string]string{"password": "pw"}, nil)
	s.Spec.Residency = euOnly
	if err := e.admin.Create(ctx, "secrets", s, nil); err != nil {
		t.Fatal(err)
	}
	uses := func(name, secret string) api.Workload {
		w := workload(name, 2, nil)
		w.Spec.Template.Env = []api.EnvVar{{Name: "PW", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: secret, Key: "password"}}}}
		return w
	}
	r := e.json("POST", "/api/v1/workloads", uses("anywhere", "eu-db"))
	if r.status != http.StatusUnprocessableEntity || !hasLocation(r.problem, "body.spec.template.env[0].valueFrom.secret.name") ||
		!strings.Contains(string(r.body), "may run in us-1") || strings.Contains(string(r.body), "eu-1") {
		t.Fatalf("want a workload that could run in us refused, naming us-1; got %d %s", r.status, r.body)
	}
	inEU := uses("in-eu", "eu-db")
	inEU.Spec.Placement = &api.PlacementPolicy{ClusterSelector: euOnly}
	e.create(inEU)
	waitFor(t, "eu-1 to hold the secret", 30*time.Second, func() bool { return dataHeld(t, e, "eu-1")["Secret/eu-db"] != 0 })
	if held := dataHeld(t, e, "us-1"); len(held) != 0 {
		t.Errorf("want nothing sent to us-1; it holds %v", held)
	}

	// A secret without residency goes where its workload runs; a
	// residency set later takes the workload, and the secret, out of us.
	var db2 api.Secret
	if err := e.admin.Create(ctx, "secrets", secretObj("db2", map[string]string{"password": "pw2"}, nil), &db2); err != nil {
		t.Fatal(err)
	}
	e.create(uses("spread", "db2"))
	waitFor(t, "both members to run spread and hold db2", 30*time.Second, func() bool {
		d, ok := desiredOf(t, us, "spread")
		return ok && d.Replicas > 0 && dataHeld(t, e, "us-1")["Secret/db2"] != 0 && dataHeld(t, e, "eu-1")["Secret/db2"] != 0
	})
	db2.Spec = api.DataSpec{Data: map[string]string{"password": "pw2"}, Residency: euOnly}
	if err := e.admin.Update(ctx, "secrets", "db2", db2, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "spread's replicas out of us-1, and db2 with them", 30*time.Second, func() bool {
		du, _ := desiredOf(t, us, "spread")
		de, _ := desiredOf(t, eu, "spread")
		return (du.Deleted || du.Replicas == 0) && de.Replicas == 2 && dataHeld(t, e, "us-1")["Secret/db2"] == 0
	})
}
