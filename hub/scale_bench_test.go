package hub_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
)

// BenchmarkScale is the start of issue 20's scale harness: a stated
// fraction f of the scale (100 clusters of 1,000 sim nodes,
// 100,000 workloads, 1,000,000 replicas), at three fractions so that the
// growth of each cost shows. At fraction f it runs 1000·f in-process
// members of 100 sim nodes each (100,000·f nodes: ten times the clusters
// of the full scale, each a tenth of its size), and 100,000·f workloads of
// 10 sim replicas (50m/32Mi, 50 ms start, Divided), created by 16 clients
// through the API. It records: the creates' rate; the time from the first
// create to every replica Ready (from the fleets' OnReady hooks); the
// test process's CPU time over that span and its resident memory at the
// end (hub, members and sim nodes are one process here); the hub's Go
// heap; and the PostgreSQL database's size.
//
//	go test ./hub -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 30m
//
// ATOLL_SCALE_FRACTIONS sets the fractions (default "0.002,0.004,0.008").
// Not yet measured: region loss at scale, watchers' lag, console pages,
// several processes.
func BenchmarkScale(b *testing.B) {
	fractions := []float64{0.002, 0.004, 0.008}
	if v := os.Getenv("ATOLL_SCALE_FRACTIONS"); v != "" {
		fractions = fractions[:0]
		for _, f := range strings.Split(v, ",") {
			x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || x <= 0 || x > 1 {
				b.Fatalf("ATOLL_SCALE_FRACTIONS: %q is no fraction in (0, 1]", f)
			}
			fractions = append(fractions, x)
		}
	}
	for _, f := range fractions {
		clusters := max(1, int(1000*f+0.5))
		workloads := max(1, int(100000*f+0.5))
		const nodesPer, perWorkload = 100, 10
		b.Run(fmt.Sprintf("f=%g/clusters=%d/nodes=%d/replicas=%d", f, clusters, clusters*nodesPer, workloads*perWorkload), func(b *testing.B) {
			for range b.N {
				scaleOnce(b, clusters, nodesPer, workloads, perWorkload)
			}
		})
	}
}

func scaleOnce(b *testing.B, clusters, nodesPer, workloads, perWorkload int) {
	b.StopTimer()
	e := newMemberEnv(b, members.HealthConfig{})
	total := workloads * perWorkload
	var mu sync.Mutex
	ready := make(map[string]bool, total)
	allReady := make(chan time.Time, 1)
	startSimRegions(b, e, clusters, nodesPer, func(_, replica string, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if ready[replica] {
			return
		}
		ready[replica] = true
		if len(ready) == total {
			allReady <- at
		}
	})
	ctx := context.Background()
	tmpl := api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "50m", Memory: "32Mi"}, Sim: &api.SimSpec{StartLatency: "50ms"}}
	cpu0 := processCPU()
	b.StartTimer()
	start := time.Now()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for k := range workloads {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			w := api.Workload{Metadata: api.ObjectMeta{Name: fmt.Sprintf("sc-%06d", k)}, Spec: api.WorkloadSpec{Replicas: int32(perWorkload), Template: tmpl,
				Placement: &api.PlacementPolicy{ReplicaMode: "Divided"}}}
			if err := e.admin.Create(ctx, "workloads", w, nil); err != nil {
				b.Errorf("create %s: %v", w.Metadata.Name, err)
			}
		})
	}
	wg.Wait()
	created := time.Since(start)
	var done time.Time
	select {
	case done = <-allReady:
	case <-time.After(10 * time.Minute):
		mu.Lock()
		n := len(ready)
		mu.Unlock()
		b.Fatalf("%d of %d replicas Ready after 10m", n, total)
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	took := done.Sub(start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var dbBytes int64
	if err := e.store.Pool().QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&dbBytes); err != nil {
		b.Errorf("database size: %v", err)
	}
	b.ReportMetric(float64(workloads)/created.Seconds(), "creates/s")
	b.ReportMetric(took.Seconds(), "s-to-all-Ready")
	b.ReportMetric(cpu.Seconds()/took.Seconds(), "cores")
	b.ReportMetric(float64(residentBytes())/(1<<20), "process-RSS-MiB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(dbBytes)/(1<<20), "db-MiB")
	b.Logf("%d clusters x %d sim nodes, %d workloads x %d replicas: creates %.1f s (%.0f/s), all %d Ready %.1f s after the first create; %.2f cores; RSS %d MiB; PostgreSQL %d MiB",
		clusters, nodesPer, workloads, perWorkload, created.Seconds(), float64(workloads)/created.Seconds(), total, took.Seconds(),
		cpu.Seconds()/took.Seconds(), residentBytes()>>20, dbBytes>>20)
}

// processCPU is the test process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// residentBytes is the test process's resident set now (Linux; 0
// elsewhere).
func residentBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
