package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// BenchmarkAPI measures create, get and list through real HTTP against a
// real PostgreSQL, reporting p50 and p99 latency besides ns/op.
//
//	go test ./hub -run '^$' -bench BenchmarkAPI -benchtime 3000x -count 3
func BenchmarkAPI(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	c := client.New(e.url, adminSecret, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}})
	for i := range 100 {
		e.create(workload(fmt.Sprintf("seed-%03d", i), 3, map[string]string{"app": fmt.Sprint("app", i%10)}))
	}
	var seq atomic.Int64
	run := func(b *testing.B, op func() error) {
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			if err := op(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.Run("create", func(b *testing.B) {
		run(b, func() error {
			w := workload(fmt.Sprintf("b-%d", seq.Add(1)), 3, map[string]string{"app": "bench"})
			return c.Create(ctx, "workloads", w, nil)
		})
	})
	b.Run("get", func(b *testing.B) {
		var w api.Workload
		run(b, func() error { return c.Get(ctx, "workloads", "seed-042", &w) })
	})
	b.Run("list-100", func(b *testing.B) {
		var l api.WorkloadList
		run(b, func() error {
			return c.List(ctx, "workloads", client.ListOptions{Limit: 100}, &l)
		})
	})
	b.Run("list-selector-10", func(b *testing.B) {
		var l api.WorkloadList
		run(b, func() error { return c.List(ctx, "workloads", client.ListOptions{LabelSelector: "app=app7"}, &l) })
	})
	b.Run("get-parallel", func(b *testing.B) {
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var w api.Workload
			for pb.Next() {
				if err := c.Get(ctx, "workloads", "seed-007", &w); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
