package hub_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
)

// BenchmarkRegionLoss (issue 6, "Speed"): with sim nodes, 3 regions,
// 1,000 workloads / 10,000 replicas, one region lost; the targets are
// detection under 2 s and every replica running elsewhere under 5 s
// after detection.
//
//	go test ./hub -run '^$' -bench BenchmarkRegionLoss -benchtime 1x -count 3 -timeout 20m
//
// ATOLL_BENCH_CPUPROFILE=file writes a CPU profile of the failover window
// alone (kill to the last replacement Ready), which -cpuprofile cannot:
// it would be mostly the set-up.
//
// In this process: one hub (newMemberEnv: Postgres, NATS, placement,
// default health: heartbeats every 500 ms, Unreachable after 1.5 s), three
// members r1..r3 with 100 simulated nodes each (startSimRegions), and
// 1,000 workloads of 10 sim replicas (50m/32Mi, Divided, failover grace
// 0s so the failover starts at detection). Once all 10,000 run, region r3
// is killed at once: its member stops (no more heartbeats) and its fleet
// with it (its replicas are gone). Measured from the kill: detection (the
// hub's monitor shows r3 Unreachable; polled every 5 ms in memory), and
// from detection: the first replacement Ready, every lost replica Ready
// on r1 or r2 (from the fleets' OnReady hooks), and per workload, its
// last replacement Ready (p50/p99).
func BenchmarkRegionLoss(b *testing.B) {
	const (
		nMembers, nodesPer = 3, 100
		workloads          = 1000
		perWorkload        = 10
	)
	var detections, firsts, alls, p50s, p99s []float64
	for range b.N {
		b.StopTimer()
		e := newMemberEnv(b, members.HealthConfig{})
		var mu sync.Mutex
		ready := map[string]string{} // replica -> cluster, first time Ready
		var killedAt time.Time
		var after []time.Time            // Ready times of replacements on survivors
		lastOf := map[string]time.Time{} // workload -> its last replacement Ready
		replaced := map[string]int{}     // workload -> replacements Ready
		var lostN int
		allIn := make(chan struct{})
		regions := startSimRegions(b, e, nMembers, nodesPer, func(cluster, replica string, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			if _, seen := ready[replica]; seen {
				return
			}
			ready[replica] = cluster
			if len(ready) == workloads*perWorkload && killedAt.IsZero() {
				close(allIn)
			}
			if !killedAt.IsZero() && cluster != "r3" {
				w := replica[:strings.LastIndex(replica, "-")]
				after = append(after, at)
				replaced[w]++
				lastOf[w] = at
			}
		})
		ctx := context.Background()
		tmpl := api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "50m", Memory: "32Mi"}, Sim: &api.SimSpec{StartLatency: "50ms"}}
		sem := make(chan struct{}, 16)
		var wg sync.WaitGroup
		for k := range workloads {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				w := api.Workload{Metadata: api.ObjectMeta{Name: fmt.Sprintf("rl-%04d", k)}, Spec: api.WorkloadSpec{Replicas: perWorkload, Template: tmpl,
					Placement: &api.PlacementPolicy{ReplicaMode: "Divided"}, Failover: &api.FailoverPolicy{GracePeriod: "0s"}}}
				if err := e.admin.Create(ctx, "workloads", w, nil); err != nil {
					b.Errorf("create %s: %v", w.Metadata.Name, err)
				}
			})
		}
		wg.Wait()
		select {
		case <-allIn:
		case <-time.After(5 * time.Minute):
			b.Fatalf("not all %d replicas Ready within 5m", workloads*perWorkload)
		}
		// What r3 runs, per workload: what must be replaced.
		mu.Lock()
		want := map[string]int{}
		for replica, cluster := range ready {
			if cluster == "r3" {
				want[replica[:strings.LastIndex(replica, "-")]]++
				lostN++
			}
		}
		killedAt = time.Now()
		mu.Unlock()

		stopProfile := profileWindow(b)
		b.StartTimer()
		regions[2].kill()
		var detected time.Time
		for detected.IsZero() {
			if l, ok := e.server.Monitor().Live("r3"); ok && l.Health == api.HealthUnreachable {
				detected = time.Now()
				break
			}
			time.Sleep(5 * time.Millisecond) // the monitor announces nothing in-process; 5 ms is the resolution
		}
		waitFor(b, fmt.Sprintf("%d lost replicas Ready on r1 and r2", lostN), 5*time.Minute, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(after) >= lostN
		})
		b.StopTimer()
		stopProfile()

		mu.Lock()
		slices.SortFunc(after, time.Time.Compare)
		var per []float64
		for w, n := range want {
			if replaced[w] < n {
				b.Errorf("workload %s: want %d replacements; saw %d", w, n, replaced[w])
			}
			per = append(per, lastOf[w].Sub(detected).Seconds())
		}
		slices.Sort(per)
		detections = append(detections, detected.Sub(killedAt).Seconds())
		firsts = append(firsts, after[0].Sub(detected).Seconds())
		alls = append(alls, after[lostN-1].Sub(detected).Seconds())
		p50s = append(p50s, per[len(per)/2])
		p99s = append(p99s, per[len(per)*99/100])
		b.Logf("lost r3 with %d replicas of %d workloads: detection %s; from detection, first replacement Ready %s, all %s; per workload p50 %.0fms p99 %.0fms",
			lostN, len(want), detected.Sub(killedAt).Round(time.Millisecond), after[0].Sub(detected).Round(time.Millisecond),
			after[lostN-1].Sub(detected).Round(time.Millisecond), 1000*per[len(per)/2], 1000*per[len(per)*99/100])
		mu.Unlock()
		for _, r := range regions {
			r.kill()
		}
	}
	b.ReportMetric(mean(detections)*1000, "detection-ms")
	b.ReportMetric(mean(firsts)*1000, "first-replacement-ms")
	b.ReportMetric(mean(alls)*1000, "all-replaced-ms")
	b.ReportMetric(mean(p50s)*1000, "workload-p50-ms")
	b.ReportMetric(mean(p99s)*1000, "workload-p99-ms")
}

// profileWindow starts a CPU profile into $ATOLL_BENCH_CPUPROFILE (the
// last run's window wins) and returns what stops it; without the variable
// it does nothing.
func profileWindow(b *testing.B) (stop func()) {
	path := os.Getenv("ATOLL_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatalf("cpu profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatalf("cpu profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Errorf("cpu profile: %v", err)
		}
	}
}
