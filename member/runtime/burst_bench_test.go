package runtime

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/image"
)

// BenchmarkStartBurst is what a failover asks of one node: N replicas
// applied at once (ATOLL_BENCH_BURST, default 100), each this test
// binary serving HTTP and ready through an HTTP probe, as processes and
// then as containers of an image of the same binary already in the
// node's cache (warm standby). It reports, per driver, the time from the
// Apply to every replica ready and the CPU the whole machine's share of
// it took (this process, runc, the containers and the replicas: its
// rusage and its waited-for children's, all stopped before it is read),
// per replica; and the containers' time against the processes'.
//
//	go test -c -o /tmp/rt.test ./member/runtime
//	cd member/runtime && /tmp/rt.test -test.run '^$' -test.bench BenchmarkStartBurst -test.benchtime 1x -test.count 3
func BenchmarkStartBurst(b *testing.B) {
	needRunc(b)
	n := 100
	if v := os.Getenv("ATOLL_BENCH_BURST"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("ATOLL_BENCH_BURST: %q is not a positive number", v)
		}
	}
	reg := newTestRegistry(b)
	reg.pushSelf(b, "web:v1")
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	var took [2]time.Duration
	for i := 0; i < b.N; i++ {
		for k, driver := range []string{"process", "oci"} {
			store, err := image.Open(image.Config{Dir: b.TempDir(), Insecure: []string{reg.host}})
			if err != nil {
				b.Fatal(err)
			}
			tmpl := api.ReplicaTemplate{Driver: driver, Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz"}, PeriodSeconds: 1}}
			if driver == "process" {
				tmpl.Command, tmpl.Env = exe, []api.EnvVar{{Name: helperEnv, Value: "http"}}
			} else {
				img, err := store.Pull(context.Background(), reg.host+"/web:v1")
				if err != nil {
					b.Fatal(err)
				}
				tmpl.Image = reg.host + "/web@" + img.Digest
			}
			rt, err := New(Config{DataDir: b.TempDir(), Images: store, StopGrace: 5 * time.Second, PortRange: [2]int{32000, 32000 + 2*n}})
			if err != nil {
				b.Fatal(err)
			}
			if err := rt.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			specs := make([]ReplicaSpec, n)
			for j := range specs {
				specs[j] = ReplicaSpec{ID: fmt.Sprintf("%s-%d-%d", driver, i, j), Workload: "burst", Generation: 1, Template: tmpl}
			}
			cpu0 := rusageCPU()
			start := time.Now()
			rt.Apply(specs)
			waitStatusWithin(b, rt, fmt.Sprintf("%d %s replicas ready", n, driver), func(m map[string]ReplicaStatus) bool {
				ready := 0
				for _, s := range m {
					if s.Ready {
						ready++
					}
				}
				return ready == n
			}, ociWait)
			d := time.Since(start)
			took[k] += d
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			rt.Apply(nil)
			if err := rt.StopAll(ctx); err != nil {
				b.Errorf("stop the %s replicas: %v", driver, err)
			}
			cancel()
			rt.Stop()
			cpu := rusageCPU() - cpu0
			b.ReportMetric(d.Seconds(), driver+"-all-ready-s")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), driver+"-cpu-ms/replica")
			b.Logf("%d %s replicas: all ready %v after the Apply; CPU %v in all (%.1f ms each, start to stop)", n, driver, d.Round(time.Millisecond), cpu.Round(time.Millisecond), float64(cpu.Microseconds())/1000/float64(n))
		}
	}
	b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "oci/process")
}

// rusageCPU is the user and system CPU of this process and of its
// waited-for children (with theirs).
func rusageCPU() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}
