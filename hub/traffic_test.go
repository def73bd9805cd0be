package hub_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/protocol"
)

// TestServiceTrafficRoute: traffic reports published on members'
// subjects reach GET /api/v1/services/{name}/traffic, per region of the
// serving cluster and per revision; a report naming another cluster than
// its subject is not taken; the route is for viewers and up, answers 404
// for a service that does not exist and 422 for a window out of range.
func TestServiceTrafficRoute(t *testing.T) {
	t.Parallel()
	e := newMemberEnv(t, members.HealthConfig{})
	e.readyCluster("eu-1", "eu")
	e.readyCluster("us-1", "us")
	e.create(api.Workload{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.WorkloadSpec{Replicas: 2, Template: api.ReplicaTemplate{Driver: "process", Command: "/bin/true"}}})
	if r := e.json("POST", "/api/v1/services", api.Service{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Service"},
		Metadata: api.ObjectMeta{Name: "web"}, Spec: api.ServiceSpec{Workload: "web", Ports: []api.ServicePort{{Name: "http"}}}}); r.status != 201 {
		t.Fatalf("create service web: %d %s", r.status, r.body)
	}
	count := func(cluster string, gen int64, n, errs uint64) protocol.TrafficCount {
		c := protocol.TrafficCount{Service: "web", Cluster: cluster, Generation: gen, Requests: n, Errors: errs, Latency: make([]uint64, len(protocol.LatencyBounds)+1)}
		c.Latency[protocol.LatencyBucket(4*time.Millisecond)] = n
		return c
	}
	publish := func(subjectCluster, cluster string, seq uint64, counts ...protocol.TrafficCount) {
		data, _ := json.Marshal(protocol.TrafficReport{Version: protocol.Version, Cluster: cluster, Run: "r", Seq: seq, Seconds: 1, Counts: counts})
		if err := e.bus.Conn().Publish(protocol.TrafficSubject(subjectCluster), data); err != nil {
			t.Fatal(err)
		}
	}
	var st api.ServiceTraffic
	seq := uint64(0)
	waitFor(t, "the reports in the traffic route", 30*time.Second, func() bool {
		// The hub takes counts only for services and clusters it has
		// read: report until it has.
		seq++
		publish("eu-1", "eu-1", seq, count("eu-1", 1, 10, 0), count("us-1", 1, 20, 2))
		publish("us-1", "eu-1", seq, count("us-1", 1, 1000, 1000)) // us-1 speaking as eu-1: refused
		r := e.do("GET", "/api/v1/services/web/traffic", adminSecret, "", nil)
		st = api.ServiceTraffic{}
		return r.status == 200 && json.Unmarshal(r.body, &st) == nil && st.Total.Requests >= 30
	})
	if st.Workload != "web" || len(st.Regions) != 2 || st.Regions[0].Region != "eu" || st.Regions[1].Region != "us" || st.Total.Errors*1000 > st.Total.Requests*100 {
		t.Errorf("want web's traffic in eu and us, about 7%% errors (the forged report left out); got %+v", st)
	}
	if st.Regions[1].P50Millis < 2.5 || st.Regions[1].P50Millis > 5 {
		t.Errorf("want us's p50 in the 2.5-5 ms bucket; got %v", st.Regions[1].P50Millis)
	}

	viewer := e.token("traffic-viewer", api.RoleViewer)
	if r := e.do("GET", "/api/v1/services/web/traffic?window=30s", viewer, "", nil); r.status != 200 {
		t.Errorf("want a viewer to read the traffic; got %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/services/web/traffic", "", "", nil); r.status != 401 {
		t.Errorf("want the route closed without a token; got %d", r.status)
	}
	if r := e.do("GET", "/api/v1/services/nope/traffic", viewer, "", nil); r.status != 404 {
		t.Errorf("want 404 for a service that does not exist; got %d %s", r.status, r.body)
	}
	for _, w := range []string{"0s", "1h", "soon"} {
		if r := e.do("GET", "/api/v1/services/web/traffic?window="+w, viewer, "", nil); r.status != 422 || !strings.Contains(string(r.body), "query.window") {
			t.Errorf("want window %s refused with 422 naming query.window; got %d %s", w, r.status, r.body)
		}
	}
}
