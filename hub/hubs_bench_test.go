package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/pgtest"
)

// BenchmarkReadsAcrossHubs measures whether API reads scale with hub
// replicas: two hub.Servers on one PostgreSQL (each its own pool and HTTP
// server, as two `atoll hub` processes would have), and per iteration a
// batch of GETs by 32 concurrent clients against the first hub alone,
// then the same batch spread over both. It reports reads/s for one hub
// and for two, and their ratio.
//
//	go test ./hub -run '^$' -bench BenchmarkReadsAcrossHubs -benchtime 20x -count 3
//
// Both hubs, PostgreSQL and the clients share this machine's cores, so
// the ratio says whether a hub replica adds throughput of its own (a
// per-hub bottleneck such as its connection pool), not what a second
// machine would add.
func BenchmarkReadsAcrossHubs(b *testing.B) {
	const (
		clients = 32
		batch   = 2000 // GETs per batch
	)
	dbURL := pgtest.NewDatabase(b)
	hubs := []*env{newEnvOn(b, dbURL), newEnvOn(b, dbURL)}
	for i := range 100 {
		hubs[0].create(workload(fmt.Sprintf("seed-%03d", i), 3, map[string]string{"app": "bench"}))
	}
	ctx := context.Background()
	cs := make([]*client.Client, len(hubs))
	for i, h := range hubs {
		cs[i] = client.New(h.url, adminSecret, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}})
	}
	// run does one batch against the first n hubs, round-robin, and
	// returns how long it took.
	run := func(n int) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var w api.Workload
				for {
					i := next.Add(1)
					if i > batch {
						return
					}
					if err := cs[int(i)%n].Get(ctx, "workloads", fmt.Sprintf("seed-%03d", i%100), &w); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	run(2) // warm both pools and connections
	var one, two time.Duration
	b.ResetTimer()
	for range b.N {
		one += run(1)
		two += run(2)
	}
	b.StopTimer()
	reads := float64(b.N * batch)
	b.ReportMetric(reads/one.Seconds(), "reads/s-1hub")
	b.ReportMetric(reads/two.Seconds(), "reads/s-2hubs")
	b.ReportMetric(one.Seconds()/two.Seconds(), "ratio")
}
