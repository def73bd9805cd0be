package placer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/protocol"
)

// BenchmarkSteadyPass measures a leader's pass when nothing changed, over
// 2,000 workloads of 3 replicas placed and acknowledged on 3 clusters
// (6,000 placement rows): what every pass costs the hub (time, bytes and
// allocations per pass; the rows read from PostgreSQL were most of them)
// and PostgreSQL (pg-cpu-ms/op: the CPU of its server process and every
// backend, the test's own database's server, over the passes).
//
//	go test ./hub/placer -run '^$' -bench BenchmarkSteadyPass -benchtime 200x -count 3 -benchmem
func BenchmarkSteadyPass(b *testing.B) {
	ctx := context.Background()
	url := pgtest.NewDatabase(b)
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: url, MaxConns: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	postmaster := postmasterOf(b, url)
	test := pgstore.Actor{Name: "test"}
	clusters := []string{"a", "b", "c"}
	monitor := readyClusters(b, store, clusters...)
	const n = 2000
	spec, _ := json.Marshal(api.WorkloadSpec{Replicas: 3, Template: api.ReplicaTemplate{Driver: "sim"}})
	for i := range n {
		if _, err := store.Create(ctx, test, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: fmt.Sprintf("w%04d", i)}, Spec: spec}); err != nil {
			b.Fatal(err)
		}
	}
	bus := &memberBus{batches: true, held: map[string]int64{}, sent: map[string]int{}}
	p := NewPlacer(store, bus, monitor, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	for _, c := range clusters {
		p.lastCheck[c] = time.Now().Add(time.Hour) // no digest checks: the member here does not answer them
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if err := p.RunOnce(ctx); err != nil {
			b.Fatal(err)
		}
		rows, err := store.Placements(ctx)
		if err != nil {
			b.Fatal(err)
		}
		done := len(rows) == n*len(clusters)
		for _, r := range rows {
			done = done && r.DeliveredEpoch == r.Epoch
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("not every workload placed and acknowledged after 2 minutes: %d rows", len(rows))
		}
	}
	bus.mu.Lock()
	sent := bus.sent[protocol.DesiredBatchSubject("a")]
	bus.mu.Unlock()
	pgBefore := serverCPU(b, postmaster)
	b.ResetTimer()
	for range b.N {
		if err := p.RunOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((serverCPU(b, postmaster)-pgBefore).Microseconds())/1000/float64(b.N), "pg-cpu-ms/op")
	bus.mu.Lock()
	defer bus.mu.Unlock()
	if again := bus.sent[protocol.DesiredBatchSubject("a")]; again != sent {
		b.Fatalf("steady passes sent %d batches again", again-sent)
	}
}

// postmasterOf is the pid of the PostgreSQL server url is on: the parent
// of a backend of it.
func postmasterOf(b *testing.B, url string) int {
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	var backend int
	if err := conn.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", backend))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			ppid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				b.Fatal(err)
			}
			return ppid
		}
	}
	b.Fatalf("no PPid in /proc/%d/status", backend)
	return 0
}

// serverCPU is the CPU time of the PostgreSQL server process pid, its
// children that ended (reaped) and those running (its backends).
func serverCPU(b *testing.B, pid int) time.Duration {
	ticks := func(pid int, reaped bool) int64 {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0 // ended meanwhile: counted in its parent's reaped time
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		n := int64(0)
		last := 12 // utime, stime: fields 14 and 15 (f holds them from field 3 on)
		if reaped {
			last = 14 // and cutime, cstime
		}
		for i := 11; i <= last; i++ {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			n += v
		}
		return n
	}
	total := ticks(pid, true)
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range strings.Fields(string(children)) {
		cpid, _ := strconv.Atoi(c)
		total += ticks(cpid, false)
	}
	return time.Duration(total) * time.Second / 100 // USER_HZ
}
