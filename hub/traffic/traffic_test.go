package traffic

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/protocol"
)

type fixedServices map[string][]string

func (f fixedServices) Selecting(w string) []string { return f[w] }

// Known: the services listed, in clusters eu and us.
func (f fixedServices) Known(service, cluster string) bool {
	for _, list := range f {
		for _, s := range list {
			if s == service && (cluster == "eu" || cluster == "us") {
				return true
			}
		}
	}
	return false
}

func count(service, cluster string, gen int64, requests, errors uint64, latency time.Duration) protocol.TrafficCount {
	c := protocol.TrafficCount{Service: service, Cluster: cluster, Generation: gen, Requests: requests, Errors: errors, Latency: make([]uint64, len(protocol.LatencyBounds)+1)}
	c.Latency[protocol.LatencyBucket(latency)] = requests
	return c
}

// TestWindowSumsOverTheSpanAsked: reports land in the second they
// arrive; a sum takes only the seconds asked for, a report repeated (same
// run and seq) is taken once, one naming another cluster than its subject
// is refused, and slots older than Keep go.
func TestWindowSumsOverTheSpanAsked(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	w := New(fixedServices{"web": {"web", "web-admin"}}, Config{Keep: time.Minute, Now: func() time.Time { return now }})
	send := func(cluster string, seq uint64, counts ...protocol.TrafficCount) {
		data, _ := json.Marshal(protocol.TrafficReport{Version: protocol.Version, Cluster: cluster, Run: "r", Seq: seq, Seconds: 1, Counts: counts})
		w.Observe(&nats.Msg{Subject: protocol.TrafficSubject(cluster), Data: data})
	}
	send("eu", 1, count("web", "eu", 3, 100, 1, 2*time.Millisecond))
	send("eu", 1, count("web", "eu", 3, 100, 1, 2*time.Millisecond)) // again: ignored
	now = now.Add(10 * time.Second)
	send("us", 1, count("web", "eu", 4, 50, 50, 40*time.Millisecond), count("other", "us", 1, 7, 0, time.Millisecond))
	data, _ := json.Marshal(protocol.TrafficReport{Version: protocol.Version, Cluster: "us", Run: "r", Seq: 2, Counts: []protocol.TrafficCount{count("web", "eu", 4, 1000, 1000, time.Second)}})
	w.Observe(&nats.Msg{Subject: protocol.TrafficSubject("eu"), Data: data}) // us speaking as eu: refused

	all := w.Workload("web", now.Add(-time.Minute), now)
	if len(all) != 2 || all[0].Generation != 3 || all[0].Requests != 100 || all[1].Generation != 4 || all[1].Errors != 50 {
		t.Fatalf("want web's two series (gen 3: 100 requests; gen 4: 50 errors); got %+v", all)
	}
	recent := w.Samples([]string{"web"}, now.Add(-5*time.Second), now)
	if len(recent) != 1 || recent[0].Generation != 4 {
		t.Errorf("want only the last 5 s (generation 4); got %+v", recent)
	}
	if p := all[1].Quantile(0.99); p <= 25*time.Millisecond || p > 50*time.Millisecond {
		t.Errorf("p99 of tries all in the 25-50 ms bucket: got %s", p)
	}
	now = now.Add(2 * time.Minute)
	send("us", 3, count("web", "us", 4, 1, 0, time.Millisecond), count("ghost", "us", 1, 5, 0, time.Millisecond), count("web", "mars", 1, 5, 0, time.Millisecond))
	if got := w.Samples([]string{"web", "ghost"}, now.Add(-time.Hour), now); len(got) != 1 || got[0].Cluster != "us" {
		t.Errorf("want only what is younger than Keep, of services and clusters that exist; got %+v", got)
	}
}

// TestWindowMergesOldSlots: slots older than two minutes are merged into
// ten-second ones (a series of a report a second holds about 200 slots
// over 15 minutes, not 900), and sums over them stay whole.
func TestWindowMergesOldSlots(t *testing.T) {
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	now := start
	w := New(fixedServices{"web": {"web"}}, Config{Now: func() time.Time { return now }})
	for i := range 600 {
		w.Take(protocol.TrafficReport{Version: protocol.Version, Cluster: "eu", Run: "r", Seq: uint64(i + 1), Counts: []protocol.TrafficCount{count("web", "eu", 1, 2, 1, time.Millisecond)}})
		now = now.Add(time.Second)
	}
	w.mu.Lock()
	slots := w.slots
	w.mu.Unlock()
	if slots > 2*60+48+10+1 {
		t.Errorf("want at most 120 fine and 48 coarse slots for 10 minutes of reports (and the 10 s since the last pruning); hold %d", slots)
	}
	got := w.Samples([]string{"web"}, start, now)
	if len(got) != 1 || got[0].Requests != 1200 || got[0].Errors != 600 {
		t.Errorf("want every one of the 1200 requests and 600 errors summed; got %+v", got)
	}
}

// TestSummarize: rows per region, and per region and revision when two
// revisions answered.
func TestSummarize(t *testing.T) {
	to := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	mk := func(cluster string, gen int64, n, errs uint64) Sample {
		var c Counts
		c.Requests, c.Errors = n, errs
		c.Latency[protocol.LatencyBucket(3*time.Millisecond)] = n
		return Sample{Service: "web", Cluster: cluster, Generation: gen, Counts: c}
	}
	samples := []Sample{mk("eu-1", 5, 60, 0), mk("eu-2", 7, 30, 30), mk("us-1", 5, 60, 6)}
	regions := map[string]string{"eu-1": "eu", "eu-2": "eu", "us-1": "us"}
	at := RevisionAt([]Revision{{Number: 1, Generation: 1}, {Number: 2, Generation: 4}, {Number: 3, Generation: 7}})
	st := Summarize("web", "web", samples, func(c string) string { return regions[c] }, at, to.Add(-time.Minute), to)
	if st.Total.Requests != 150 || st.Total.Errors != 36 || len(st.Regions) != 2 || st.Regions[0].Region != "eu" || st.Regions[0].Requests != 90 {
		t.Fatalf("want 150 requests, 36 errors, eu with 90 first; got %+v", st)
	}
	if st.Regions[0].RequestsPerSecond != 1.5 || st.Regions[1].ErrorRatio != 0.1 {
		t.Errorf("want eu at 1.5/s and us at a 10%% error ratio; got %+v", st.Regions)
	}
	if len(st.Revisions) != 3 || st.Revisions[0].Region != "eu" || st.Revisions[0].Revision != 3 || st.Revisions[0].ErrorRatio != 1 || st.Revisions[1].Revision != 2 {
		t.Errorf("want eu's revisions 3 (all errors) then 2, then us's; got %+v", st.Revisions)
	}
	if at(0) != 0 || at(6) != 2 {
		t.Errorf("RevisionAt: generation 0 is unknown, 6 is revision 2's; got %d, %d", at(0), at(6))
	}
}
