package placer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/protocol"
)

// BenchmarkFailoverPass measures the leader's part of a cluster's loss
// with members that answer at once: ATOLL_FAILOVER_WORKLOADS workloads
// (default 2,000) of ATOLL_FAILOVER_REPLICAS replicas (default 10)
// Divided over 10 clusters (at most one on each, failover grace 0s, as
// in the scale harness: with 10, every workload is on every cluster),
// placed and acknowledged;
// then each op marks one more cluster Unreachable and runs passes until
// none of the lost cluster's rows holds a replica and every other row
// is acknowledged. Reported per op: rows-ms (to every replacement row
// written and acknowledged), ms (the passes' status writes done too),
// µs per lost workload of each, the passes run, and the CPU of this
// process (hub-cpu-ms: the placer, and the fake members, which only
// decode and answer) and of PostgreSQL (pg-cpu-ms).
//
//	go test ./hub/placer -run '^$' -bench BenchmarkFailoverPass -benchtime 3x -count 3
func BenchmarkFailoverPass(b *testing.B) {
	ctx := context.Background()
	n := 2000
	if v := os.Getenv("ATOLL_FAILOVER_WORKLOADS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("ATOLL_FAILOVER_WORKLOADS: %v", err)
		}
	}
	const nClusters = 10
	replicas := nClusters
	if v := os.Getenv("ATOLL_FAILOVER_REPLICAS"); v != "" {
		var err error
		if replicas, err = strconv.Atoi(v); err != nil || replicas < 1 || replicas > nClusters {
			b.Fatalf("ATOLL_FAILOVER_REPLICAS: want 1 to %d", nClusters)
		}
	}
	if b.N >= nClusters {
		b.Fatalf("at most %d ops (one cluster lost each)", nClusters-1)
	}
	url := pgtest.NewDatabase(b)
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: url, MaxConns: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	postmaster := postmasterOf(b, url)
	test := pgstore.Actor{Name: "test"}
	monitor := fakeHealth{}
	bus := fleetBus{}
	var clusters []string
	for i := range nClusters {
		clusters = append(clusters, fmt.Sprintf("c%d", i))
	}
	for c, l := range readyClusters(b, store, clusters...) {
		monitor[c] = l
		bus[c] = &memberBus{batches: true, held: map[string]int64{}, sent: map[string]int{}}
	}
	spec, _ := json.Marshal(api.WorkloadSpec{Replicas: int32(replicas), Template: api.ReplicaTemplate{Driver: "sim"},
		Placement: &api.PlacementPolicy{ReplicaMode: "Divided"}, Failover: &api.FailoverPolicy{GracePeriod: "0s"}})
	recs := make([]*pgstore.Record, 0, 500)
	for i := range n {
		recs = append(recs, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: fmt.Sprintf("w%05d", i)}, Spec: spec})
		if len(recs) == cap(recs) || i == n-1 {
			for _, rec := range recs {
				if _, err := store.Create(ctx, test, rec); err != nil {
					b.Fatal(err)
				}
			}
			recs = recs[:0]
		}
	}
	mon := &lockedHealth{live: monitor}
	p := NewPlacer(store, bus, mon, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	for _, c := range clusters {
		p.lastCheck[c] = time.Now().Add(time.Hour) // no digest checks: steady passes send nothing
	}
	// settled says whether no row on a lost cluster holds a replica and
	// every other row is acknowledged.
	settled := func(lost map[string]bool) bool {
		rows, err := store.Placements(ctx)
		if err != nil {
			b.Fatal(err)
		}
		placed := 0
		for _, r := range rows {
			switch {
			case lost[r.Cluster] && r.Replicas > 0:
				return false
			case !lost[r.Cluster] && r.DeliveredEpoch != r.Epoch:
				return false // a lost cluster's rows wait for its return
			}
			placed += int(r.Replicas)
		}
		return placed == n*replicas
	}
	pass := func() {
		if err := p.pass(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Minute); !settled(nil); {
		pass()
		if time.Now().After(deadline) {
			b.Fatal("not every workload placed and acknowledged after 5 minutes")
		}
	}
	p.waitMarks(0)
	if err := p.waitStatus(0); err != nil {
		b.Fatal(err)
	}
	// catchUp runs passes until one reads nothing new: a hub at rest has
	// read its own status writes back when a loss comes (one that had
	// not would read 100,000 of them first, and list).
	catchUp := func() {
		for deadline := time.Now().Add(5 * time.Minute); ; {
			v := p.workloads.Version()
			pass()
			if p.workloads.Version() == v {
				return
			}
			if time.Now().After(deadline) {
				b.Fatal("the placer's reads did not catch up in 5 minutes")
			}
		}
	}
	catchUp()
	lost := map[string]bool{}
	var deliveredTook, rowsTook, allTook, hubCPU, pgCPU time.Duration
	passes, lostWorkloads := 0, 0
	var profile *os.File
	if path := os.Getenv("ATOLL_BENCH_CPUPROFILE"); path != "" {
		if profile, err = os.Create(path); err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(profile); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		lostNow := clusters[i]
		rows, err := store.Placements(ctx)
		if err != nil {
			b.Fatal(err)
		}
		// A lost workload's replacement is delivered when a survivor
		// takes a newer epoch of it than it held at the loss.
		moved := &replacements{lost: map[string]bool{}, base: map[string]map[string]int64{}, done: map[string]bool{}}
		for _, r := range rows {
			if r.Cluster == lostNow && r.Replicas > 0 {
				moved.lost[r.Workload] = true
			}
			if moved.base[r.Cluster] == nil {
				moved.base[r.Cluster] = map[string]int64{}
			}
			moved.base[r.Cluster][r.Workload] = r.Epoch
		}
		workloads := len(moved.lost)
		for _, c := range clusters {
			bus[c].mu.Lock()
			bus[c].accepted = func(w string, epoch int64) { moved.take(c, w, epoch) }
			bus[c].mu.Unlock()
		}
		hub0, pg0 := processCPU(b), serverCPU(b, postmaster)
		start := time.Now()
		mon.set(lostNow, failover.Live{Health: api.HealthUnreachable, Heard: true, Version: protocol.Version})
		lost[lostNow] = true
		for deadline := start.Add(5 * time.Minute); ; passes++ {
			pass()
			if settled(lost) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("cluster %s's replicas not re-placed and acknowledged after 5 minutes", lostNow)
			}
		}
		rowsAt := time.Since(start)
		passes++
		p.waitMarks(0)
		if err := p.waitStatus(0); err != nil {
			b.Fatal(err)
		}
		all := time.Since(start)
		rowsTook += rowsAt
		allTook += all
		moved.mu.Lock()
		deliveredTook += moved.at.Sub(start)
		delivered, half := moved.at.Sub(start), moved.half.Sub(start)
		moved.mu.Unlock()
		hubCPU += processCPU(b) - hub0
		pgCPU += serverCPU(b, postmaster) - pg0
		lostWorkloads += workloads
		// A pass with nothing new while the cluster stays lost: what
		// every pass costs until it returns.
		catchUp() // reads the status writes back
		p.waitMarks(0)
		if err := p.waitStatus(0); err != nil {
			b.Fatal(err)
		}
		catchUp()
		steadyAt := time.Now()
		pass()
		steady := time.Since(steadyAt)
		b.Logf("lost %s: %d workloads; half the replacements delivered %v, every one %v, rows settled (seen after a pass) %v, status written %v; a pass with nothing new after it %v",
			lostNow, workloads, half.Round(time.Millisecond), delivered.Round(time.Millisecond), rowsAt.Round(time.Millisecond), all.Round(time.Millisecond), steady.Round(time.Millisecond))
	}
	b.StopTimer()
	if profile != nil {
		pprof.StopCPUProfile()
		if err := profile.Close(); err != nil {
			b.Fatal(err)
		}
	}
	if lostWorkloads > 0 {
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(lostWorkloads) }
		b.ReportMetric(per(deliveredTook), "delivered-µs/workload")
		b.ReportMetric(per(rowsTook), "rows-µs/workload")
		b.ReportMetric(per(allTook), "µs/workload")
		b.ReportMetric(per(hubCPU), "hub-cpu-µs/workload")
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(deliveredTook), "delivered-ms/op")
	b.ReportMetric(ms(rowsTook), "rows-ms/op")
	b.ReportMetric(ms(hubCPU), "hub-cpu-ms/op")
	b.ReportMetric(ms(pgCPU), "pg-cpu-ms/op")
	b.ReportMetric(float64(passes)/float64(b.N), "passes/op")
}

// replacements hears the members take desired state and notes when every
// lost workload was delivered anew to a survivor.
type replacements struct {
	mu   sync.Mutex
	lost map[string]bool             // the lost cluster's workloads
	base map[string]map[string]int64 // cluster -> workload -> epoch held at the loss
	done map[string]bool
	half time.Time // half of them delivered
	at   time.Time // every lost workload delivered
}

func (r *replacements) take(cluster, w string, epoch int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.lost[w] || r.done[w] || epoch <= r.base[cluster][w] {
		return
	}
	r.done[w] = true
	if len(r.done) == (len(r.lost)+1)/2 {
		r.half = time.Now()
	}
	if len(r.done) == len(r.lost) {
		r.at = time.Now()
	}
}

// fleetBus is members that answer at once, one memberBus a cluster.
type fleetBus map[string]*memberBus

func (f fleetBus) Request(ctx context.Context, cluster, subject string, data []byte) ([]byte, error) {
	m, ok := f[cluster]
	if !ok {
		return nil, fmt.Errorf("no cluster %s", cluster)
	}
	return m.Request(ctx, cluster, subject, data)
}

// lockedHealth is a fakeHealth a benchmark changes between passes while
// the last pass's status writes (which read it) run on.
type lockedHealth struct {
	mu   sync.Mutex
	live fakeHealth
}

func (h *lockedHealth) Live(cluster string) (failover.Live, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live.Live(cluster)
}

func (h *lockedHealth) Unreachable() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live.Unreachable()
}

func (h *lockedHealth) set(cluster string, l failover.Live) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live[cluster] = l
}

// processCPU is this process's CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readyClusters registers clusters named names in store, Ready, and
// returns their live health as a monitor would have it.
func readyClusters(tb testing.TB, store *pgstore.Store, names ...string) fakeHealth {
	tb.Helper()
	status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthReady})
	live := fakeHealth{}
	for _, c := range names {
		if _, err := store.Create(context.Background(), pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster", Meta: api.ObjectMeta{Name: c}, Spec: []byte("{}"), Status: status}); err != nil {
			tb.Fatal(err)
		}
		live[c] = failover.Live{Health: api.HealthReady, Heard: true, Version: protocol.Version}
	}
	return live
}
