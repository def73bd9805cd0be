package hub_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// TestConfigChangeIsARevision: a workload's template pins the version of
// the config it reads; a new value of the config (not a dry run of one,
// nor a label) writes the workload again as a new revision whose cause
// names the config's version, and the hub still holds the value the
// older revision pins. The pin is the hub's: a client's value is
// overwritten.
func TestConfigChangeIsARevision(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	var c1 api.Config
	if err := e.admin.Create(ctx, "configs", api.Config{Metadata: api.ObjectMeta{Name: "app"}, Spec: api.DataSpec{Data: map[string]string{"region": "eu"}}}, &c1); err != nil {
		t.Fatal(err)
	}
	w := api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim",
		Annotations: map[string]string{api.AnnotationData: "Config/app=1"}, // not the client's to say
		Env:         []api.EnvVar{{Name: "REGION", ValueFrom: &api.EnvSource{Config: &api.KeyRef{Name: "app", Key: "region"}}}}}}}
	created := e.create(w)
	pin1 := "Config/app=" + c1.Metadata.ResourceVersion
	if got := created.Spec.Template.Annotations[api.AnnotationData]; got != pin1 {
		t.Fatalf("want the template to pin %s; got %q", pin1, got)
	}
	revisions := func() api.RevisionList {
		t.Helper()
		var l api.RevisionList
		if err := e.admin.Raw(ctx, "GET", "/api/v1/workloads/web/revisions", nil, nil, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	update := func(c *client.Client, v string) api.Config {
		t.Helper()
		var out api.Config
		if err := c.Update(ctx, "configs", "app", api.Config{Metadata: api.ObjectMeta{Name: "app"}, Spec: api.DataSpec{Data: map[string]string{"region": v}}}, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	update(e.admin.DryRun(), "us")
	if err := e.admin.Patch(ctx, "configs", "app", []byte(`{"metadata":{"labels":{"team":"web"}}}`), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(revisions().Items); n != 1 {
		t.Errorf("a dry run and a label: want no new revision; got %d revisions", n)
	}
	c2 := update(e.admin, "us")
	l := revisions()
	pin2 := "Config/app=" + c2.Metadata.ResourceVersion
	if n := len(l.Items); n != 2 || l.Items[1].ChangeCause != "config app v2" || l.Items[1].Template.Annotations[api.AnnotationData] != pin2 {
		t.Fatalf("want revision 2 pinning %s, cause %q; got %+v", pin2, "config app v2", l.Items)
	}
	old, _, err := e.store.ConfigValueAt(ctx, c1.Metadata.UID, mustInt(t, c1.Metadata.ResourceVersion))
	var spec api.DataSpec
	if err != nil || json.Unmarshal(old, &spec) != nil || spec.Data["region"] != "eu" {
		t.Errorf("want the hub to keep the value revision 1 pins; got %s, %v", old, err)
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
