package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atollhq/atoll/protocol"
)

// BenchmarkOverhead measures, in one run on loopback, small GETs sent
// straight to a replica and the same through the gateway: ns/op is the
// gateway's throughput (parallel clients), and the reported p50s are of
// one client's serial requests, direct and through the gateway.
//
//	go test ./member/gateway -run '^$' -bench Overhead -benchtime 20000x -cpu 1,2
func BenchmarkOverhead(b *testing.B) {
	be := newBackend(b, "be")
	g := startGateway(b, "us")
	g.Update(table(1, web(nil, be.endpoint("us-1", "us"))))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	direct, via := be.srv.URL+"/", "http://"+g.Addr()+"/svc/web/"
	p50 := func(url string, n int) time.Duration { return serialP50(b, client, url, n) }
	p50(direct, 200)
	p50(via, 200) // warm both
	d, v := p50(direct, 2000), p50(via, 2000)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := benchGet(client, via); err != nil {
				b.Error(err) // not Fatal: this is not the benchmark's goroutine
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(d.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(v.Microseconds()), "gateway-p50-µs")
	b.ReportMetric(float64((v - d).Microseconds()), "added-p50-µs")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// benchBackendEnv, when set, makes the test binary a gateway and nothing
// else (BenchmarkGatewayPerCore's child): it routes service web to the
// replica at the address given, prints its own address and serves until
// its standard input closes (with ATOLL_GATEWAY_BENCH_CPUPROFILE, writing
// its CPU profile there).
const benchBackendEnv = "ATOLL_GATEWAY_BENCH_BACKEND"

func TestMain(m *testing.M) {
	if be := os.Getenv(benchBackendEnv); be != "" {
		os.Exit(serveBenchGateway(be))
	}
	os.Exit(m.Run())
}

func serveBenchGateway(backend string) int {
	host, port, _ := net.SplitHostPort(backend)
	p, _ := strconv.Atoi(port)
	g := New(Config{Listen: "127.0.0.1:0", Cluster: "us-1", Region: "us", LocalPeers: true})
	if err := g.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer g.Stop()
	if path := os.Getenv("ATOLL_GATEWAY_BENCH_CPUPROFILE"); path != "" {
		// The gateway's own profile, apart from the load generator's.
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	g.Update(table(1, web(nil, protocol.Endpoint{Cluster: "us-1", Region: "us", Replica: "be", Host: host, Ports: map[string]int{"http": p}})))
	fmt.Println(g.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// BenchmarkGatewayPerCore runs the gateway in a process of its own,
// pinned to the CPU named by ATOLL_BENCH_GATEWAY_CPU (with taskset; run
// the benchmark itself pinned to another), and sends it b.N small GETs
// from 8 clients at once; in the same run, as many straight to the
// replica. It reports both rates, their ratio, the serial p50s, and the
// gateway process's own CPU time per request (utime+stime from
// /proc/<pid>/stat): requests per second per core is the inverse.
//
//	go test -c -o /tmp/gw.test ./member/gateway
//	ATOLL_BENCH_GATEWAY_CPU=1 taskset -c 0 /tmp/gw.test -test.run '^$' -test.bench GatewayPerCore -test.benchtime 30000x -test.count 3
func BenchmarkGatewayPerCore(b *testing.B) {
	be := newBackend(b, "be")
	args := []string{os.Args[0], "-test.run", "^$"}
	if cpu := os.Getenv("ATOLL_BENCH_GATEWAY_CPU"); cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...) // taskset execs it: the pid stays the gateway's
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), benchBackendEnv+"="+be.srv.Listener.Addr().String())
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("the gateway process said no address: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	direct, via := be.srv.URL+"/", "http://"+strings.TrimSpace(line)+"/svc/web/"
	p50 := func(url string, n int) time.Duration { return serialP50(b, client, url, n) }
	const clients = 8
	// load sends n GETs from the clients at once; the first failure
	// stops them all and fails the benchmark, here, in its own goroutine.
	load := func(url string, n int) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Pointer[error]
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for failed.Load() == nil && next.Add(1) <= int64(n) {
					if err := benchGet(client, url); err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := failed.Load(); err != nil {
			b.Fatal(*err)
		}
		return time.Since(start)
	}
	p50(direct, 500)
	p50(via, 500) // warm both
	d, v := p50(direct, 2000), p50(via, 2000)
	directTook := load(direct, b.N)
	cpu0 := procCPU(b, cmd.Process.Pid)
	b.ResetTimer()
	viaTook := load(via, b.N)
	b.StopTimer()
	cpu := procCPU(b, cmd.Process.Pid) - cpu0
	directRate, viaRate := float64(b.N)/directTook.Seconds(), float64(b.N)/viaTook.Seconds()
	b.ReportMetric(float64(d.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(v.Microseconds()), "gateway-p50-µs")
	b.ReportMetric(directRate, "direct-req/s")
	b.ReportMetric(viaRate, "gateway-req/s")
	b.ReportMetric(viaRate/directRate, "ratio")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "gateway-cpu-µs/req")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "req/s-per-gateway-core")
}

// benchGet sends one GET and reads the body; any status but 200 is an
// error. It is called from the load's goroutines, so it fails nothing
// itself: the benchmark's goroutine does.
func benchGet(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// serialP50 is the median latency of n GETs sent one after another.
func serialP50(b *testing.B, client *http.Client, url string, n int) time.Duration {
	lat := make([]time.Duration, n)
	for i := range lat {
		t := time.Now()
		if err := benchGet(client, url); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t)
	}
	slices.Sort(lat)
	return lat[n/2]
}

// procCPU is a process's CPU time so far, every thread's, user and
// system (/proc/<pid>/stat, in clock ticks of 10ms).
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// After the command's name in parentheses: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
