package gateway

import (
	"testing"

	"github.com/atollhq/atoll/protocol"
)

// TestTrafficCountsPerGeneration: every try is counted against the
// cluster and generation of the endpoint tried: a 500 as an error, a 503
// retried on another endpoint as an error of the first and a success of
// the second; a take starts the counts again.
func TestTrafficCountsPerGeneration(t *testing.T) {
	t.Parallel()
	good, bad := newBackend(t, "good"), newBackend(t, "bad")
	bad.status.Store(500)
	g := startGateway(t, "us")
	ge, be := good.endpoint("us-1", "us"), bad.endpoint("eu-1", "eu")
	ge.Generation, be.Generation = 3, 4
	g.Update(table(1, web(nil, be)))
	base := "http://" + g.Addr()
	for range 5 {
		if code, _, _ := get(t, base+"/", "web.svc.atoll"); code != 500 {
			t.Fatalf("want the bad endpoint's 500; got %d", code)
		}
	}
	g.TakeTraffic() // starts again: only what follows counts
	for range 4 {
		get(t, base+"/", "web.svc.atoll")
	}
	g.Update(table(2, web(nil, ge)))
	for range 6 {
		get(t, base+"/", "web.svc.atoll")
	}
	counts, seconds, dropped := g.TakeTraffic()
	if len(counts) != 2 || dropped != 0 || seconds <= 0 {
		t.Fatalf("want 2 counts over some time, none dropped; got %+v over %v s, %d dropped", counts, seconds, dropped)
	}
	eu, us := counts[0], counts[1]
	if eu.Cluster != "eu-1" || eu.Generation != 4 || eu.Requests != 4 || eu.Errors != 4 {
		t.Errorf("want eu-1 generation 4 with 4 errors of 4; got %+v", eu)
	}
	if us.Cluster != "us-1" || us.Generation != 3 || us.Requests != 6 || us.Errors != 0 {
		t.Errorf("want us-1 generation 3 with 6 good requests; got %+v", us)
	}
	var sum uint64
	for _, n := range us.Latency {
		sum += n
	}
	if sum != us.Requests || len(us.Latency) != len(protocol.LatencyBounds)+1 {
		t.Errorf("latency buckets must add up to the requests: %v", us.Latency)
	}
	// A 503 is retried elsewhere: both tries count.
	bad.status.Store(503)
	be = bad.endpoint("us-2", "us") // the same region: picked as often as the good one
	be.Generation = 4
	g.Update(table(3, web(nil, be, ge)))
	for range 30 { // the bad endpoint is picked at random: never in 30 tries, once in 10^9
		if code, _, _ := get(t, base+"/", "web.svc.atoll"); code != 200 {
			t.Fatalf("want the retry's 200; got %d", code)
		}
	}
	counts, _, _ = g.TakeTraffic()
	var badTries, goodTries uint64
	for _, c := range counts {
		if c.Generation == 4 {
			badTries += c.Errors
		} else {
			goodTries += c.Requests - c.Errors
		}
	}
	if badTries == 0 || goodTries != 30 {
		t.Errorf("want the 503s counted against generation 4 and 30 successes on 3; got %d and %d (%+v)", badTries, goodTries, counts)
	}
}
