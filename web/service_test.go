package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestServicePage: the services list links each service to its page,
// which shows what it selects and its traffic, or why there is none (a
// hub without NATS measures no traffic); a service that does not exist
// is a 404 page. The per-region rows are covered end to end in
// tests/progressive_test.go.
func TestServicePage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	w := api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 1,
		Template: api.ReplicaTemplate{Driver: "process", Command: "/bin/true"}}}
	if err := e.admin.Create(ctx, "workloads", w, nil); err != nil {
		t.Fatal(err)
	}
	svc := api.Service{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.ServiceSpec{Workload: "web", Ports: []api.ServicePort{{Name: "http"}}}}
	if err := e.admin.Create(ctx, "services", svc, nil); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn(adminSecret)
	if a := b.get("/services"); a.status != http.StatusOK || !strings.Contains(a.body, `href="/services/web"`) {
		t.Errorf("want the services list to link web's page; got %d", a.status)
	}
	a := b.get("/services/web")
	if a.status != http.StatusOK || !strings.Contains(a.body, `href="/workloads/web"`) || !strings.Contains(a.body, "Traffic through the gateways") ||
		!strings.Contains(a.body, "this hub measures no traffic") {
		t.Errorf("want web's page with its workload and why no traffic is shown; got %d\n%s", a.status, a.body)
	}
	if a := b.get("/services/nope"); a.status != http.StatusNotFound {
		t.Errorf("want a missing service's page to be a 404; got %d", a.status)
	}
}
