package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/pgtest"
)

// BenchmarkCreatesVsPgbench measures workload creates through the API
// (real HTTP, bearer token, 8 clients) against what PostgreSQL itself
// does for 8 clients of pgbench's simple-update script (`pgbench -N -c 8`),
// on the same private PostgreSQL in the same run, alternating the two
// rounds times so that a busy machine weighs on both alike. It reports
// the medians and their ratio (the issue 20 target: 50% or more).
//
//	go test ./hub -run '^$' -bench BenchmarkCreatesVsPgbench -benchtime 1x
//
// ATOLL_BENCH_SECONDS sets each measurement's length (default 8) and
// ATOLL_BENCH_ROUNDS the rounds (default 3).
func BenchmarkCreatesVsPgbench(b *testing.B) {
	pgbench := findPgbench(b)
	secs := envInt("ATOLL_BENCH_SECONDS", 8)
	rounds := envInt("ATOLL_BENCH_ROUNDS", 3)
	const clients = 8

	hubDB := newHubDatabase(b)
	e := newEnvOn(b, hubDB)
	benchDB := pgtest.NewDatabase(b)
	diag := os.Getenv("ATOLL_BENCH_DIAG") != ""
	adminURL := pgtest.Server().SuperuserURL("postgres")
	if out, err := exec.Command(pgbench, "-i", "-q", "-s", "8", benchDB).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	c := client.New(e.url, adminSecret, hc)
	ctx := context.Background()
	var seq atomic.Int64
	var pgTx float64       // transactions of the last pgbench run
	var pgbenchCPU float64 // CPU seconds of pgbench itself in the last run

	atoll := func() (float64, time.Duration) {
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		end := time.Now().Add(time.Duration(secs) * time.Second)
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for time.Now().Before(end) {
					t0 := time.Now()
					w := workload(fmt.Sprintf("bench-%d", seq.Add(1)), 3, map[string]string{"app": "bench"})
					if err := c.Create(ctx, "workloads", w, nil); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		took := time.Since(start)
		slices.Sort(lat)
		if len(lat) == 0 {
			b.Fatal("no create succeeded")
		}
		return float64(len(lat)) / took.Seconds(), lat[len(lat)/2]
	}
	tpsLine := regexp.MustCompile(`tps = ([0-9.]+)`)
	txLine := regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
	pg := func() float64 {
		cmd := exec.Command(pgbench, "-N", "-c", strconv.Itoa(clients), "-j", "2", "-T", strconv.Itoa(secs), "-n", benchDB)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState != nil {
			pgbenchCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
		}
		if err != nil {
			b.Fatalf("pgbench: %v\n%s", err, out)
		}
		m := tpsLine.FindSubmatch(out)
		if m == nil {
			b.Fatalf("pgbench printed no tps:\n%s", out)
		}
		tps, _ := strconv.ParseFloat(string(m[1]), 64)
		if d := txLine.FindSubmatch(out); d != nil {
			pgTx, _ = strconv.ParseFloat(string(d[1]), 64)
		}
		return tps
	}

	b.ResetTimer()
	var creates, tpss, ratios []float64
	var p50s []time.Duration
	for r := range rounds {
		var d *pgDiag
		if diag {
			d = startPgDiag(b, adminURL, dbNameOf(b, hubDB))
		}
		cps, p50 := atoll()
		var createCPU float64
		if diag {
			pgc, goc := d.end(b, "creates", cps*float64(secs))
			createCPU = pgc + goc
			d = startPgDiag(b, adminURL, dbNameOf(b, benchDB))
		}
		tps := pg()
		if diag {
			pgc, _ := d.end(b, "pgbench", pgTx)
			b.Logf("diag pgbench: the pgbench process itself %.0f µs CPU per transaction (%.2f cores)", 1e6*pgbenchCPU/pgTx, pgbenchCPU/float64(secs))
			// What the ratio would be if both phases got the same cores:
			// the wall-clock ratio is lower when the machine's other work
			// takes more of them from one phase than from the other.
			pgbenchTx := pgc + pgbenchCPU/pgTx
			b.Logf("diag round %d: CPU per transaction: create %.0f µs (PostgreSQL and this process), pgbench -N %.0f µs (PostgreSQL and pgbench); their ratio %.1f%%",
				r+1, 1e6*createCPU, 1e6*pgbenchTx, 100*pgbenchTx/createCPU)
		}
		creates, tpss, p50s = append(creates, cps), append(tpss, tps), append(p50s, p50)
		ratios = append(ratios, cps/tps)
		b.Logf("round %d: %.0f creates/s (p50 %s), pgbench -N -c %d %.0f tps, ratio %.1f%%", r+1, cps, p50.Round(10*time.Microsecond), clients, tps, 100*cps/tps)
	}
	b.StopTimer()
	median := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	slices.Sort(p50s)
	b.ReportMetric(median(creates), "creates/s")
	b.ReportMetric(median(tpss), "pgbench-tps")
	b.ReportMetric(100*median(ratios), "ratio-%")
	b.ReportMetric(float64(p50s[len(p50s)/2].Microseconds()), "create-p50-µs")
}

// findPgbench finds pgbench on PATH or beside PostgreSQL's server binaries
// (Debian keeps it in /usr/lib/postgresql/<version>/bin).
func findPgbench(b *testing.B) string {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench"); len(m) > 0 {
		slices.Sort(m)
		return m[len(m)-1]
	}
	b.Skip("pgbench is not installed (Debian: the postgresql package; tests/deps.sh installs it)")
	return ""
}
