package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

func service(name, workload string, ports ...api.ServicePort) api.Service {
	if len(ports) == 0 {
		ports = []api.ServicePort{{Name: "http"}}
	}
	return api.Service{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Service"}, Metadata: api.ObjectMeta{Name: name},
		Spec: api.ServiceSpec{Workload: workload, Ports: ports}}
}

// TestServiceRefusals: services that cannot work are 422s at their field,
// audited; a good one is created, read, listed and deleted by an
// operator, and a viewer may read but not write.
func TestServiceRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.create(workload("web", 2, nil))
	ex := workload("db", 1, nil)
	ex.Spec.Failover = &api.FailoverPolicy{Mode: "exclusive"}
	e.create(ex)
	named := workload("named", 1, nil)
	named.Spec.Template.Ports = []api.Port{{Name: "admin", HostPort: 9000}}
	e.create(named)

	if r := e.json("POST", "/api/v1/services", service("web", "web", api.ServicePort{Name: "db", Protocol: "tcp", Port: 5432})); r.status != 201 {
		t.Fatalf("want a good service created; got %d %s", r.status, r.body)
	}
	withHost := service("web2", "web")
	withHost.Spec.Hostnames = []string{"shop.example.com"}
	withHost.Spec.Locality = &api.LocalityPolicy{Mode: api.LocalityNearest, Failover: []string{"eu"}}
	withHost.Spec.Gateways = &api.LabelSelector{MatchLabels: map[string]string{"region": "us"}}
	if r := e.json("POST", "/api/v1/services", withHost); r.status != 201 {
		t.Fatalf("want a service with a host name created; got %d %s", r.status, r.body)
	}
	cases := []struct {
		name  string
		svc   api.Service
		where string
	}{
		{"no such workload", service("a", "ghost"), "body.spec.workload"},
		{"exclusive workload", service("b", "db"), "body.spec.workload"},
		{"port out of range", service("c", "web", api.ServicePort{Name: "t", Protocol: "tcp", Port: 70000}), "body.spec.ports[0].port"},
		{"tcp port taken", service("d", "web", api.ServicePort{Name: "t", Protocol: "tcp", Port: 5432}), "body.spec.ports[0].port"},
		{"target port unknown", service("e", "named", api.ServicePort{Name: "h", TargetPort: "nope"}), "body.spec.ports[0].targetPort"},
		{"host name taken", func() api.Service {
			s := service("f", "web")
			s.Spec.Hostnames = []string{"Shop.example.com"}
			return s
		}(), "body.spec.hostnames[0]"},
		{"host name under svc.atoll", func() api.Service { s := service("g", "web"); s.Spec.Hostnames = []string{"web.svc.atoll"}; return s }(), "body.spec.hostnames[0]"},
		{"bad protocol", service("h", "web", api.ServicePort{Name: "u", Protocol: "udp"}), "body.spec.ports[0].protocol"},
		{"no ports", func() api.Service { s := service("i", "web"); s.Spec.Ports = nil; return s }(), "body.spec.ports"},
		{"bad weight", func() api.Service {
			s := service("j", "web")
			s.Spec.Locality = &api.LocalityPolicy{Weights: map[string]int32{"eu": 0}}
			return s
		}(), "body.spec.locality.weights.eu"},
		{"unknown locality mode", func() api.Service {
			s := service("k", "web")
			s.Spec.Locality = &api.LocalityPolicy{Mode: "fastest"}
			return s
		}(), "body.spec.locality.mode"},
		{"bad gateways selector", func() api.Service {
			s := service("l", "web")
			s.Spec.Gateways = &api.LabelSelector{MatchExpressions: []api.Requirement{{Key: "region", Operator: "Near"}}}
			return s
		}(), "body.spec.gateways.matchExpressions[0].operator"},
	}
	for _, c := range cases {
		r := e.json("POST", "/api/v1/services", c.svc)
		if r.status != 422 || !hasLocation(r.problem, c.where) {
			t.Errorf("%s: want 422 at %s; got %d %s", c.name, c.where, r.status, r.body)
		}
	}
	// A host name may not be changed into another service's by update.
	upd := service("web", "web", api.ServicePort{Name: "db", Protocol: "tcp", Port: 5432})
	upd.Spec.Hostnames = []string{"shop.example.com"}
	if r := e.json("PUT", "/api/v1/services/web", upd); r.status != 422 || !hasLocation(r.problem, "body.spec.hostnames[0]") {
		t.Errorf("update to a taken host name: want 422; got %d %s", r.status, r.body)
	}
	if r := e.do("PATCH", "/api/v1/services/web", adminSecret, "application/merge-patch+json", []byte(`{"spec":{"workload":"db"}}`)); r.status != 422 {
		t.Errorf("patch onto an exclusive workload: want 422; got %d %s", r.status, r.body)
	}
	audit, err := e.store.AuditLog(ctx, "Service", "a", 0, 10)
	if err != nil || len(audit) == 0 {
		t.Errorf("want the refusal of service a audited; got %d rows, %v", len(audit), err)
	}

	viewer := e.token("svc-viewer", api.RoleViewer)
	if r := e.do("GET", "/api/v1/services/web", viewer, "", nil); r.status != 200 {
		t.Errorf("viewer read: want 200; got %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/api/v1/services/web", viewer, "", nil); r.status != 403 {
		t.Errorf("viewer delete: want 403; got %d %s", r.status, r.body)
	}
	var list api.ServiceList
	if err := e.admin.List(ctx, "services", client.ListOptions{}, &list); err != nil || len(list.Items) != 2 {
		t.Errorf("want 2 services listed; got %d, %v", len(list.Items), err)
	}
	if r := e.do("DELETE", "/api/v1/services/web", adminSecret, "", nil); r.status != 200 {
		t.Errorf("delete: want 200; got %d %s", r.status, r.body)
	}
}

// TestServicesConsolePage: the console lists services with their
// workload and names, for a signed-in viewer.
func TestServicesConsolePage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create(workload("web", 1, nil))
	shop := service("shop", "web")
	shop.Spec.Locality = &api.LocalityPolicy{Mode: api.LocalityNearest}
	shop.Spec.Gateways = &api.LabelSelector{MatchLabels: map[string]string{"tier": "edge"}}
	if r := e.json("POST", "/api/v1/services", shop); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	cookie := signIn(t, e.url, e.token("svc-page", api.RoleViewer))
	req, _ := http.NewRequest("GET", e.url+"/services", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if resp.StatusCode != 200 {
		t.Fatalf("want the services page; got %d %s", resp.StatusCode, page)
	}
	for _, want := range []string{`data-service="shop"`, "shop.svc.atoll", `href="/workloads/web"`, "then the nearest by measured latency", "<td data-gateways>clusters with tier=edge</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("want the services page to show %s; got:\n%s", want, page)
		}
	}
}

// TestServiceClaimsRace: services created at once that claim the same
// tcp port, or the same host name, under different names: exactly one of
// each group is stored, every other is refused at its field with a
// problem (the same 422 a later create gets), none is a 500.
func TestServiceClaimsRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create(workload("web", 1, nil))
	const n = 8
	var bodies [][]byte
	var wantAt []string
	for i := range n {
		s := service(fmt.Sprintf("port-%d", i), "web", api.ServicePort{Name: "t", Protocol: "tcp", Port: 7000})
		b, _ := json.Marshal(s)
		bodies, wantAt = append(bodies, b), append(wantAt, "body.spec.ports[0].port")
		h := service(fmt.Sprintf("host-%d", i), "web")
		h.Spec.Hostnames = []string{"race.example.com"}
		b, _ = json.Marshal(h)
		bodies, wantAt = append(bodies, b), append(wantAt, "body.spec.hostnames[0]")
	}
	type answer struct {
		status int
		prob   api.Problem
		body   []byte
		err    error
	}
	answers := make([]answer, len(bodies))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, err := http.NewRequest("POST", e.url+"/api/v1/services", bytes.NewReader(b))
			if err != nil {
				answers[i].err = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+adminSecret)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			answers[i].status = resp.StatusCode
			answers[i].body, answers[i].err = io.ReadAll(resp.Body)
			if resp.StatusCode >= 400 {
				_ = json.Unmarshal(answers[i].body, &answers[i].prob)
			}
		}()
	}
	close(start)
	wg.Wait()
	created := map[string]int{}
	for i, a := range answers {
		group := wantAt[i]
		switch {
		case a.err != nil:
			t.Errorf("create %d: %v", i, a.err)
		case a.status == http.StatusCreated:
			created[group]++
		case a.status != http.StatusUnprocessableEntity || !hasLocation(a.prob, group):
			t.Errorf("create %d: want 201, or 422 at %s; got %d %s", i, group, a.status, a.body)
		}
	}
	for _, group := range []string{"body.spec.ports[0].port", "body.spec.hostnames[0]"} {
		if created[group] != 1 {
			t.Errorf("services claiming one %s at once: want exactly 1 created; got %d", group, created[group])
		}
	}
	var list api.ServiceList
	if err := e.admin.List(context.Background(), "services", client.ListOptions{}, &list); err != nil || len(list.Items) != 2 {
		t.Errorf("want 2 services stored (one per claim); got %d, %v", len(list.Items), err)
	}
}
