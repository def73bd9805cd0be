package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/members"
)

// BenchmarkScale is issue 20's scale harness: a stated fraction f of the
// issue's scale (100 clusters of 1,000 sim nodes, 100,000 workloads,
// 1,000,000 replicas), at three fractions so that the growth of each cost
// shows. At fraction f it runs 1000·f in-process members of 100 sim nodes
// each (100,000·f nodes: ten times the clusters of the full scale, each a
// tenth of its size), and 100,000·f workloads of 10 sim replicas
// (50m/32Mi, 50 ms start, Divided, failover grace 0s), created by 16
// clients through the API while 100 clients watch workloads. It records:
//
//   - the creates' rate and the time from the first create to every
//     replica Ready (from the fleets' OnReady hooks);
//
//   - the test process's CPU over that span and its resident memory and
//     Go heap at the end (hub, members and sim nodes are one process
//     here, so RSS includes the members' and nodes');
//
//   - the PostgreSQL database's size;
//
//   - the watchers' lag: for every watcher and workload, from the create
//     call returning to that watcher's ADDED event (p50, p99, max);
//
//   - console page time: the overview (/) and the workloads page, each
//     fetched 5 times after all are Ready, signed in with a session;
//
//   - a region loss: 10% of the clusters (at least one) stop at once;
//     detection (to the last of them Unreachable at the hub) and RTO (from
//     detection to every replica they ran Ready on the others).
//
//     go test ./hub -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 30m
//
// ATOLL_SCALE_FRACTIONS sets the fractions (default "0.002,0.004,0.008");
// ATOLL_SCALE_WATCHERS the watchers (default 100).
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
	watchers := envInt("ATOLL_SCALE_WATCHERS", 100)
	for _, f := range fractions {
		clusters := max(1, int(1000*f+0.5))
		workloads := max(1, int(100000*f+0.5))
		const nodesPer, perWorkload = 100, 10
		b.Run(fmt.Sprintf("f=%g/clusters=%d/nodes=%d/replicas=%d", f, clusters, clusters*nodesPer, workloads*perWorkload), func(b *testing.B) {
			for range b.N {
				scaleOnce(b, clusters, nodesPer, workloads, perWorkload, watchers)
			}
		})
	}
}

func scaleOnce(b *testing.B, clusters, nodesPer, workloads, perWorkload, watchers int) {
	b.StopTimer()
	e := newMemberEnv(b, members.HealthConfig{})
	total := workloads * perWorkload
	var mu sync.Mutex
	ready := make(map[string]string, total) // replica -> the cluster it first became Ready on
	allReady := make(chan time.Time, 1)
	lost := map[string]bool{} // clusters stopped for the region loss
	var replaced []time.Time  // Ready times on the others after the loss
	regions := startSimRegions(b, e, clusters, nodesPer, func(cluster, replica string, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if len(lost) > 0 {
			if !lost[cluster] {
				replaced = append(replaced, at)
			}
			return
		}
		if _, ok := ready[replica]; ok {
			return
		}
		ready[replica] = cluster
		if len(ready) == total {
			allReady <- at
		}
	})
	ctx := context.Background()
	wctx, cancel := context.WithCancel(ctx) // the watchers'
	defer cancel()

	// Watchers: each records when it saw every workload ADDED.
	names := make([]string, workloads)
	for k := range names {
		names[k] = fmt.Sprintf("sc-%06d", k)
	}
	accepted := make([]time.Time, workloads) // by index; written before wg.Wait
	seen := make([][]time.Time, watchers)    // watcher -> workload index -> when ADDED
	var watching, connected sync.WaitGroup
	for i := range watchers {
		seen[i] = make([]time.Time, workloads)
		watching.Add(1)
		connected.Add(1)
		go func() {
			defer watching.Done()
			c := client.New(e.url, adminSecret, nil)
			n, warm := 0, false
			err := c.Watch(wctx, "workloads", "", "", func(ev client.Event) error {
				if ev.Type != "ADDED" {
					return nil
				}
				var w struct {
					Metadata struct{ Name string } `json:"metadata"`
				}
				_ = json.Unmarshal(ev.Object, &w)
				if w.Metadata.Name == "sc-warm" && !warm {
					warm = true
					connected.Done()
					return nil
				}
				k, err := strconv.Atoi(strings.TrimPrefix(w.Metadata.Name, "sc-"))
				if err != nil || k < 0 || k >= workloads || !seen[i][k].IsZero() {
					return nil
				}
				seen[i][k] = time.Now()
				if n++; n == workloads {
					return errWatchDone
				}
				return nil
			})
			if !warm {
				b.Errorf("a watcher ended before it was connected: %v", err)
				connected.Done()
			}
		}()
	}
	// Every watcher is connected once it saw a workload of no replicas
	// made for that.
	if err := e.admin.Create(ctx, "workloads", api.Workload{Metadata: api.ObjectMeta{Name: "sc-warm"},
		Spec: api.WorkloadSpec{Replicas: 0, Template: api.ReplicaTemplate{Driver: "sim"}}}, nil); err != nil {
		b.Fatal(err)
	}
	connected.Wait()

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
			w := api.Workload{Metadata: api.ObjectMeta{Name: names[k]}, Spec: api.WorkloadSpec{Replicas: int32(perWorkload), Template: tmpl,
				Placement: &api.PlacementPolicy{ReplicaMode: "Divided"}, Failover: &api.FailoverPolicy{GracePeriod: "0s"}}}
			if err := e.admin.Create(ctx, "workloads", w, nil); err != nil {
				b.Errorf("create %s: %v", w.Metadata.Name, err)
			}
			accepted[k] = time.Now()
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
	rss := residentBytes()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var dbBytes int64
	if err := e.store.Pool().QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&dbBytes); err != nil {
		b.Errorf("database size: %v", err)
	}

	// The watchers' lag (they end by themselves once they saw every workload).
	waitDone := make(chan struct{})
	go func() { watching.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(2 * time.Minute):
		b.Errorf("some of the %d watchers had not seen every workload within 2m of all Ready", watchers)
		cancel()
		<-waitDone
	}
	var lags []float64
	missed := 0
	for i := range seen {
		for k, at := range seen[i] {
			if at.IsZero() {
				missed++
				continue
			}
			lags = append(lags, max(0, at.Sub(accepted[k]).Seconds()))
		}
	}
	if missed > 0 {
		b.Errorf("watchers missed %d ADDED events", missed)
	}
	slices.Sort(lags)

	// Console pages, signed in.
	pages := consolePageTimes(b, e.url, []string{"/", "/workloads"}, 5)

	// Region loss: 10% of the clusters stop at once.
	nLost := max(1, clusters/10)
	mu.Lock()
	for _, r := range regions[len(regions)-nLost:] {
		lost[r.name] = true
	}
	mu.Unlock()
	// What the stopped clusters run, as the hub placed it (replicas that
	// first became Ready there may have moved since, on a loaded host).
	rows, err := e.store.Placements(ctx)
	if err != nil {
		b.Fatal(err)
	}
	lostReplicas := 0
	for _, r := range rows {
		if lost[r.Cluster] && !r.Deleted {
			lostReplicas += int(r.Replicas)
		}
	}
	mu.Lock()
	replaced = replaced[:0] // only Ready after the stop counts
	killedAt := time.Now()
	mu.Unlock()
	for _, r := range regions[len(regions)-nLost:] {
		r.kill()
	}
	waitFor(b, fmt.Sprintf("%d clusters Unreachable at the hub", nLost), 2*time.Minute, func() bool {
		for name := range lost {
			if l, ok := e.server.Monitor().Live(name); !ok || l.Health != api.HealthUnreachable {
				return false
			}
		}
		return true
	})
	detected := time.Now()
	waitFor(b, fmt.Sprintf("%d lost replicas Ready on the other clusters", lostReplicas), 5*time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(replaced) >= lostReplicas
	})
	mu.Lock()
	slices.SortFunc(replaced, time.Time.Compare)
	rto := replaced[lostReplicas-1].Sub(detected)
	mu.Unlock()

	b.ReportMetric(float64(workloads)/created.Seconds(), "creates/s")
	b.ReportMetric(took.Seconds(), "s-to-all-Ready")
	b.ReportMetric(cpu.Seconds()/took.Seconds(), "cores")
	b.ReportMetric(float64(rss)/(1<<20), "process-RSS-MiB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(dbBytes)/(1<<20), "db-MiB")
	b.ReportMetric(1000*lags[len(lags)/2], "watch-lag-p50-ms")
	b.ReportMetric(1000*lags[len(lags)*99/100], "watch-lag-p99-ms")
	b.ReportMetric(1000*pages["/"], "overview-ms")
	b.ReportMetric(1000*pages["/workloads"], "workloads-page-ms")
	b.ReportMetric(detected.Sub(killedAt).Seconds(), "loss-detection-s")
	b.ReportMetric(rto.Seconds(), "loss-RTO-s")
	b.Logf("%d clusters x %d sim nodes, %d workloads x %d replicas: creates %.1f s (%.0f/s), all %d Ready %.1f s after the first create; %.2f cores; RSS %d MiB; PostgreSQL %d MiB",
		clusters, nodesPer, workloads, perWorkload, created.Seconds(), float64(workloads)/created.Seconds(), total, took.Seconds(),
		cpu.Seconds()/took.Seconds(), rss>>20, dbBytes>>20)
	b.Logf("%d watchers: lag p50 %.0f ms, p99 %.0f ms, max %.0f ms over %d events; console / %.0f ms, /workloads %.0f ms (median of 5)",
		watchers, 1000*lags[len(lags)/2], 1000*lags[len(lags)*99/100], 1000*lags[len(lags)-1], len(lags), 1000*pages["/"], 1000*pages["/workloads"])
	b.Logf("region loss: %d of %d clusters with %d replicas stopped; detection %.1f s; all Ready elsewhere %.1f s after detection",
		nLost, clusters, lostReplicas, detected.Sub(killedAt).Seconds(), rto.Seconds())
}

// errWatchDone ends a watcher that saw what it waited for.
var errWatchDone = errors.New("seen every workload")

// consolePageTimes signs in to the console with the admin token and
// fetches each path n times; it returns each path's median, in seconds.
func consolePageTimes(b *testing.B, base string, paths []string, n int) map[string]float64 {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	req, _ := http.NewRequest(http.MethodPost, base+"/signin", strings.NewReader(url.Values{"token": {adminSecret}, "next": {"/"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatalf("console sign-in: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	out := map[string]float64{}
	for _, p := range paths {
		var ts []float64
		for range n {
			t0 := time.Now()
			resp, err := hc.Get(base + p)
			if err != nil {
				b.Fatalf("console %s: %v", p, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("<html")) {
				b.Fatalf("console %s: want a page; got %d %.200s", p, resp.StatusCode, body)
			}
			ts = append(ts, time.Since(t0).Seconds())
		}
		slices.Sort(ts)
		out[p] = ts[len(ts)/2]
	}
	return out
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
