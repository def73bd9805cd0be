package gateway

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/atollhq/atoll/api"
)

// TestRankRegions: ordered mode follows the failover list whatever was
// measured; nearest mode ranks measured regions by latency (the local
// region first however slow), regions within the tolerance share a rank,
// and regions not measured come after, in failover order.
func TestRankRegions(t *testing.T) {
	t.Parallel()
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	lat := map[string]time.Duration{"us": ms(90), "eu": ms(80), "ap": ms(20), "sa": ms(21.5), "af": ms(40)}
	cases := []struct {
		name string
		l    *api.LocalityPolicy
		lat  map[string]time.Duration
		want map[string]int
	}{
		{"no policy", nil, lat, map[string]int{"us": 0, "eu": 1, "ap": 1, "zz": 1}},
		{"ordered ignores latency", &api.LocalityPolicy{Failover: []string{"eu", "ap"}}, lat, map[string]int{"us": 0, "eu": 1, "ap": 2, "sa": 3, "af": 3}},
		{"nearest by latency", &api.LocalityPolicy{Mode: api.LocalityNearest, Failover: []string{"eu", "ap"}}, lat,
			// ap 20 and sa 21.5 share a rank (within 10%, floor 1ms: 22); af 40; eu 80.
			map[string]int{"us": 0, "ap": 1, "sa": 1, "af": 2, "eu": 3, "zz": 4}},
		{"nearest, some not measured", &api.LocalityPolicy{Mode: api.LocalityNearest, Failover: []string{"eu", "ap", "af"}},
			map[string]time.Duration{"af": ms(5)}, map[string]int{"us": 0, "af": 1, "eu": 2, "ap": 3, "zz": 4}},
		{"nearest, nothing measured", &api.LocalityPolicy{Mode: api.LocalityNearest, Failover: []string{"eu"}}, nil,
			map[string]int{"us": 0, "eu": 1, "ap": 2}},
	}
	for _, c := range cases {
		rank := rankRegions("us", c.l, c.lat)
		for reg, want := range c.want {
			if got := rank(reg); got != want {
				t.Errorf("%s: region %s: want rank %d, got %d", c.name, reg, want, got)
			}
		}
	}
}

// TestPickTakesRanksHandedIn: pick goes to the best rank it is handed
// (not the table's order), skips tried and ejected endpoints, and splits
// a shared rank by weight.
func TestPickTakesRanksHandedIn(t *testing.T) {
	t.Parallel()
	mk := func(region string, weight int) *endpoint {
		return &endpoint{weight: weight, out: &outlier{}, httpAt: "x:1", key: region}
	}
	a, b, c := mk("a", 1), mk("b", 3), mk("c", 1)
	eps := []*endpoint{a, b, c}
	now := time.Now()
	if e := pick(eps, []int{2, 1, 0}, now, nil, hasHTTP); e != c {
		t.Fatalf("want c (rank 0); got %v", e.key)
	}
	if e := pick(eps, []int{2, 1, 0}, now, tried{c}, hasHTTP); e != b {
		t.Fatalf("c tried: want b (rank 1); got %v", e.key)
	}
	c.out.until.Store(now.Add(time.Minute).UnixNano())
	if e := pick(eps, []int{2, 1, 0}, now, nil, hasHTTP); e != b {
		t.Fatalf("c ejected: want b; got %v", e.key)
	}
	counts := map[*endpoint]int{}
	for range 4000 {
		counts[pick(eps, []int{0, 0, 1}, now, nil, hasHTTP)]++
	}
	if counts[c] != 0 || counts[b] < 2*counts[a] {
		t.Errorf("a and b share rank 0 at weights 1:3: want b about three times a, c never; got a %d b %d c %d", counts[a], counts[b], counts[c])
	}
	if e := pick(eps, []int{0, 0, 1}, now, tried{a, b}, hasHTTP); e != c {
		t.Errorf("every other endpoint tried: want the ejected c rather than none; got %v", e)
	}
}

// TestNearestFollowsMeasuredLatency: a gateway with no local endpoint and
// a failover list naming a slow region first sends to the fast region in
// nearest mode once its checks have measured both, and follows when the
// latencies swap; in ordered mode the same table goes to the list's
// first region.
func TestNearestFollowsMeasuredLatency(t *testing.T) {
	t.Parallel()
	far, near := newBackend(t, "eu"), newBackend(t, "ap")
	far.delay.Store(int64(60 * time.Millisecond))
	g := startGateway(t, "us")
	svc := web([]string{"eu", "ap"}, far.endpoint("eu-1", "eu"), near.endpoint("ap-1", "ap"))
	svc.Spec.Health = &api.ServiceHealth{Path: "/healthz", Interval: "100ms"}
	g.Update(table(1, svc))
	base := "http://" + g.Addr() + "/svc/web/"
	for i := 0; i < 5; i++ {
		if code, body, _ := get(t, base, ""); code != 200 || body != "eu" {
			t.Fatalf("ordered: want the first failover region eu whatever its latency; got %d %q", code, body)
		}
	}
	svc.Spec.Locality.Mode = api.LocalityNearest
	g.Update(table(2, svc))
	waitAnswers := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		run := 0
		for run < 10 {
			if time.Now().After(deadline) {
				rt := (*g.routes.Load())["web"]
				t.Fatalf("nearest: want 10 answers in a row from %s within 20s; latencies measured %v", want, regionLatencies(rt.eps))
			}
			if _, body, _ := get(t, base, ""); body == want {
				run++
			} else {
				run = 0
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	waitAnswers("ap")
	// The latencies swap: requests to ap (and its checks) measure it slow,
	// eu's checks measure it fast.
	far.delay.Store(0)
	near.delay.Store(int64(60 * time.Millisecond))
	waitAnswers("eu")
}

// TestNearestMeasuresWithoutHealthCheck: a nearest-mode service without
// a health check has its other regions' endpoints measured by TCP
// connects (its own region's are not: they rank first anyway), and a
// dead endpoint is measured by nobody and stays in rotation.
func TestNearestMeasuresWithoutHealthCheck(t *testing.T) {
	t.Parallel()
	local, eu, ap := newBackend(t, "us"), newBackend(t, "eu"), newBackend(t, "ap")
	g := startGateway(t, "us")
	svc := web(nil, local.endpoint("us-1", "us"), eu.endpoint("eu-1", "eu"), ap.endpoint("ap-1", "ap"), deadEndpoint(t, "ap-1", "ap", "gone"))
	svc.Spec.Locality = &api.LocalityPolicy{Mode: api.LocalityNearest}
	g.Update(table(1, svc))
	rt := (*g.routes.Load())["web"]
	var gone *endpoint
	for _, e := range rt.eps {
		if e.Replica == "gone" {
			gone = e
		}
	}
	probed := func() bool {
		gone.out.mu.Lock()
		defer gone.out.mu.Unlock()
		return !gone.out.checked.IsZero() && !gone.out.checking
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		lat := regionLatencies(rt.eps)
		if lat["eu"] > 0 && lat["ap"] > 0 && probed() {
			if _, ok := lat["us"]; ok {
				t.Errorf("want the local region not probed; got a latency for it: %v", lat)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want eu and ap measured by connects, and the dead endpoint probed, within 20s; got %v, probed %v", lat, probed())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := gone.out.latency(); ok || gone.out.ejected(time.Now()) {
		t.Errorf("the dead endpoint, probed: want no latency and no ejection from latency probes; got measured %v, ejected %v", ok, gone.out.ejected(time.Now()))
	}
}

// TestRankRegionsProperties: in nearest mode, for any latencies and
// failover list, the own region ranks 0 and alone; a nearer measured
// region never ranks after a farther one; every measured region ranks
// before every region not measured; regions sharing a rank lie within
// the tolerance of the rank's nearest.
func TestRankRegionsProperties(t *testing.T) {
	t.Parallel()
	regions := []string{"us", "eu", "ap", "sa", "af", "me", "oc"}
	rapid.Check(t, func(t *rapid.T) {
		lat := map[string]time.Duration{}
		for _, r := range regions {
			if rapid.Bool().Draw(t, "measured "+r) {
				lat[r] = time.Duration(rapid.Int64Range(1, int64(300*time.Millisecond)).Draw(t, "latency "+r))
			}
		}
		failover := rapid.SliceOfNDistinct(rapid.SampledFrom(regions), 0, len(regions), rapid.ID[string]).Draw(t, "failover")
		rank := rankRegions("us", &api.LocalityPolicy{Mode: api.LocalityNearest, Failover: failover}, lat)
		if rank("us") != 0 {
			t.Fatalf("own region ranks %d", rank("us"))
		}
		nearest := map[int]time.Duration{}
		for _, a := range regions[1:] {
			if rank(a) == 0 {
				t.Fatalf("%s shares rank 0 with the own region", a)
			}
			da, ma := lat[a]
			if ma {
				if n, ok := nearest[rank(a)]; !ok || da < n {
					nearest[rank(a)] = da
				}
			}
			for _, b := range regions[1:] {
				db, mb := lat[b]
				switch {
				case ma && mb && da < db && rank(a) > rank(b):
					t.Fatalf("%s (%s) ranks %d after %s (%s) at %d", a, da, rank(a), b, db, rank(b))
				case ma && !mb && rank(a) >= rank(b):
					t.Fatalf("measured %s ranks %d, not before unmeasured %s at %d", a, rank(a), b, rank(b))
				}
			}
		}
		for _, a := range regions[1:] {
			if d, ok := lat[a]; ok {
				lead := nearest[rank(a)]
				if d > lead+max(lead*nearShare/100, nearFloor) {
					t.Fatalf("%s at %s shares rank %d whose nearest is %s: beyond the tolerance", a, d, rank(a), lead)
				}
			}
		}
	})
}
