package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/internal/natstest"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
	"github.com/nats-io/nats.go"
)

// Benchmarks of a region (issue 4, "Speed"): end to end in one member with
// thousands of simulated nodes, and what a node agent costs.
//
//	go test ./hub -run '^$' -bench 'BenchmarkRegion|BenchmarkNode' -benchtime 1x -count 3 -timeout 30m
//
// BenchmarkRegion5000Nodes: a hub, one member and a node.Fleet of 5,000
// simulated nodes (3 zones, default 500ms heartbeats, default 3s node
// grace) in this process; the hub sends desired state for 20 workloads x
// 500 replicas (mixed requests and scheduling policies, sim start latency
// 20ms). Reported: the time from the last desired state accepted to every
// replica Ready as the member sees it (total-s), per-replica time from its
// workload's acceptance to Ready on its node (p50/p99/max, from the
// fleet's OnReady hook), replicas that became Ready more than once or
// elsewhere (rebinds: 0 unless nodes flapped), the process's CPU over the
// run (hub, member and fleet together; 200% is both cores) and the node
// heartbeat rate and ack ratio. ATOLL_REGION_NODES and ATOLL_REGION_WORKLOADS
// scale it down (workloads of 500 replicas each).
//
// BenchmarkNodeFleetMemory: heap in use after GC per simulated node, with
// two running sim replicas each, for 1,000 and 5,000 nodes (the fleet
// alone against a bare JetStream server).
//
// BenchmarkNodeAgentRSS: VmRSS of one node.Agent process (this test
// binary, re-executed) running 50 real processes (/bin/sleep).
func BenchmarkRegion5000Nodes(b *testing.B) {
	nodes := envInt("ATOLL_REGION_NODES", 5000)
	workloads := envInt("ATOLL_REGION_WORKLOADS", 20)
	const perWorkload = 500
	replicas := workloads * perWorkload

	e := newMemberEnv(b, members.HealthConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	readyAt := map[string]time.Time{} // replica -> when its node saw it Ready
	readyTimes := 0                   // OnReady calls (more than replicas: some became Ready twice)
	m, fleet := memberWithFleet(ctx, b, e, nodes, func(_, replica string, at time.Time) {
		mu.Lock()
		readyAt[replica] = at
		readyTimes++
		mu.Unlock()
	})

	shapes := []struct {
		cpu, mem string
		sched    protocol.Scheduling
	}{
		{"100m", "128Mi", protocol.Scheduling{ZoneSpread: true}},
		{"250m", "256Mi", protocol.Scheduling{}},
		{"500m", "512Mi", protocol.Scheduling{Strategy: "binpack"}},
		{"200m", "1Gi", protocol.Scheduling{ZoneSpread: true, AntiAffinity: true}},
	}
	send := func(d protocol.DesiredWorkload) {
		d.Version = protocol.Version
		data, _ := json.Marshal(d)
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		defer rcancel()
		reply, err := e.bus.Request(rctx, "r1", protocol.DesiredSubject("r1"), data)
		if err != nil {
			b.Fatal(err)
		}
		var ack protocol.DesiredAck
		_ = json.Unmarshal(reply, &ack)
		if !ack.Accepted {
			b.Fatalf("desired state refused: %+v", ack)
		}
	}
	var totals, p50s, p99s, maxes, cpus, beats, rebinds []float64
	b.ResetTimer()
	for iter := range b.N {
		b.StopTimer()
		mu.Lock()
		clear(readyAt)
		readyTimes = 0
		mu.Unlock()
		hb0 := fleet.Stats()
		var ru0 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		b.StartTimer()
		t0 := time.Now()
		accepted := map[string]time.Time{}
		var names []string
		for k := range workloads {
			s := shapes[k%len(shapes)]
			name := fmt.Sprintf("w%d-%02d", iter, k)
			send(protocol.DesiredWorkload{Workload: name, Epoch: 1, Generation: 1, Replicas: perWorkload, Scheduling: s.sched,
				Template: api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: s.cpu, Memory: s.mem}, Sim: &api.SimSpec{StartLatency: "20ms"}}})
			accepted[name] = time.Now()
			names = append(names, name)
		}
		lastAccepted := time.Now()
		waitFor(b, fmt.Sprintf("%d replicas ready in the member's view", replicas), 5*time.Minute, func() bool {
			n := int32(0)
			for _, w := range names {
				n += workloadStatus(m, w).Ready
			}
			return n == int32(replicas)
		})
		total := time.Since(lastAccepted)
		b.StopTimer()
		wall := time.Since(t0)
		var ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		hb1 := fleet.Stats()

		mu.Lock()
		lat := make([]float64, 0, len(readyAt))
		for replica, at := range readyAt {
			w := replica[:strings.LastIndex(replica, "-")]
			lat = append(lat, at.Sub(accepted[w]).Seconds())
		}
		extra := readyTimes - replicas
		mu.Unlock()
		slices.Sort(lat)
		if len(lat) < replicas {
			b.Fatalf("the fleet saw %d replicas Ready, want %d", len(lat), replicas)
		}
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		totals = append(totals, total.Seconds())
		p50s = append(p50s, lat[len(lat)/2])
		p99s = append(p99s, lat[len(lat)*99/100])
		maxes = append(maxes, lat[len(lat)-1])
		cpus = append(cpus, 100*cpu.Seconds()/wall.Seconds())
		beats = append(beats, float64(hb1.Heartbeats-hb0.Heartbeats)/wall.Seconds())
		rebinds = append(rebinds, float64(extra))
		b.Logf("iteration %d: desired sent in %s, all ready %s after the last acceptance; heartbeats %d acks %d",
			iter, lastAccepted.Sub(t0).Round(time.Millisecond), total.Round(time.Millisecond), hb1.Heartbeats-hb0.Heartbeats, hb1.Acks-hb0.Acks)

		// Tombstones, so the next iteration starts from an empty region.
		for _, w := range names {
			send(protocol.DesiredWorkload{Workload: w, Epoch: 2, Deleted: true})
		}
		waitFor(b, "every binding gone", 5*time.Minute, func() bool {
			bs, _ := m.State().Bindings(ctx)
			return len(bs) == 0
		})
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(mean(totals), "total-s")
	b.ReportMetric(mean(p50s)*1000, "replica-p50-ms")
	b.ReportMetric(mean(p99s)*1000, "replica-p99-ms")
	b.ReportMetric(mean(maxes)*1000, "replica-max-ms")
	b.ReportMetric(mean(rebinds), "rebinds")
	b.ReportMetric(mean(cpus), "process-cpu-%")
	b.ReportMetric(mean(beats), "node-heartbeats/s")
	st := fleet.Stats()
	b.ReportMetric(float64(st.Acks)/float64(max(st.Heartbeats, 1)), "ack-ratio")
}

// memberWithFleet runs a member "r1" (region eu) joined to e's hub and a
// node.Fleet of n sim nodes over 3 zones on it, the fleet's OnReady
// onReady, until ctx ends; it returns once every node is Ready.
func memberWithFleet(ctx context.Context, b *testing.B, e *env, n int, onReady func(node, replica string, at time.Time)) (*member.Member, *node.Fleet) {
	b.Helper()
	m, err := member.New(member.Config{JoinToken: e.joinToken("j", api.TokenSpec{}), Name: "r1", Region: "eu", DataDir: b.TempDir(), NATSListen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = m.Run(ctx) }()
	waitFor(b, "the member's first heartbeat ack", 30*time.Second, func() bool { return !m.LastAck().IsZero() })
	sims := make([]node.SimNode, n)
	for i := range sims {
		sims[i] = node.SimNode{Name: fmt.Sprintf("n-%05d", i), Zone: fmt.Sprintf("z%d", i%3), MilliCPU: 4000, Memory: 8 << 30}
	}
	fleet, err := node.NewFleet(node.FleetConfig{MemberURL: m.NATSURL(), Auth: m.AdminOption(), Nodes: sims, DataDir: b.TempDir(), OnReady: onReady})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = fleet.Run(ctx) }()
	start := time.Now()
	waitFor(b, fmt.Sprintf("%d nodes ready", n), 2*time.Minute, func() bool { return m.Capacity().NodesReady == n })
	b.Logf("%d nodes registered in %s", n, time.Since(start).Round(time.Millisecond))
	return m, fleet
}

// BenchmarkNodeFleetMemory: heap per simulated node (two sim replicas
// running on each), the fleet alone against a bare JetStream server.
func BenchmarkNodeFleetMemory(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var perNode, goroutines []float64
			for range b.N {
				h, g := fleetHeap(b, n, 2)
				perNode, goroutines = append(perNode, h), append(goroutines, g)
			}
			b.ReportMetric(mean(perNode), "heap-B/node")
			b.ReportMetric(mean(goroutines), "goroutines")
		})
	}
}

// fleetHeap runs a fleet of n nodes with perNode sim replicas each and
// returns the heap it added per node, and the goroutines it added.
func fleetHeap(b *testing.B, n, perNode int) (float64, float64) {
	b.StopTimer()
	defer b.StartTimer()
	s, nc := natstest.JetStream(b)
	defer s.Shutdown()
	defer nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := state.Open(ctx, nc)
	if err != nil {
		b.Fatal(err)
	}
	sims := make([]node.SimNode, n)
	tmpl := api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "100m", Memory: "64Mi"}, Sim: &api.SimSpec{StartLatency: "5ms"}}
	for i := range sims {
		sims[i] = node.SimNode{Name: fmt.Sprintf("n-%05d", i), Zone: fmt.Sprintf("z%d", i%3)}
		for k := range perNode {
			if err := st.PutBinding(ctx, protocol.Binding{Replica: fmt.Sprintf("w-%05d-%d", i, k), Workload: "w", Node: sims[i].Name,
				Epoch: 1, Generation: 1, Template: tmpl}); err != nil {
				b.Fatal(err)
			}
		}
	}
	before, g0 := heapInUse(), goruntime.NumGoroutine()
	var mu sync.Mutex
	ready := 0
	fleet, err := node.NewFleet(node.FleetConfig{MemberURL: s.ClientURL(), Nodes: sims, DataDir: b.TempDir(),
		OnReady: func(string, string, time.Time) { mu.Lock(); ready++; mu.Unlock() }})
	if err != nil {
		b.Fatal(err)
	}
	fctx, fcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = fleet.Run(fctx) }()
	waitFor(b, "every sim replica ready", time.Minute, func() bool { mu.Lock(); defer mu.Unlock(); return ready == n*perNode })
	time.Sleep(time.Second) // two heartbeat rounds in steady state
	after, g1 := heapInUse(), goruntime.NumGoroutine()
	fcancel()
	<-done
	runtimeKeep(fleet)
	return float64(after-before) / float64(n), float64(g1 - g0)
}

// runtimeKeep keeps the fleet reachable until after the heap was measured.
func runtimeKeep(f *node.Fleet) { goruntime.KeepAlive(f) }

func heapInUse() uint64 {
	goruntime.GC()
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkNodeAgentRSS: the RSS of a node agent process running 50 real
// processes. The agent runs in a child process (this test binary, running
// TestNodeAgentChild) against a JetStream server in this one, which holds
// the 50 bindings.
func BenchmarkNodeAgentRSS(b *testing.B) {
	const procs = 50
	var rss, idle []float64
	for range b.N {
		b.StopTimer()
		s, nc := natstest.JetStream(b)
		// The member's part: answer the agent's bindings request.
		var bindings []protocol.Binding
		for i := range procs {
			bindings = append(bindings, protocol.Binding{Replica: fmt.Sprintf("sleep-%02d", i), Workload: "sleep", Node: "n1", Epoch: 1, Generation: 1,
				Template: api.ReplicaTemplate{Driver: "process", Command: "/bin/sleep", Args: []string{"3600"}}})
		}
		reply, _ := json.Marshal(protocol.NodeBindings{Version: protocol.Version, Bindings: bindings})
		if _, err := nc.Subscribe(protocol.NodeBindingsSubject("n1"), func(m *nats.Msg) { _ = m.Respond(reply) }); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cmd := exec.Command(os.Args[0], "-test.run=^TestNodeAgentChild$", "-test.v")
		cmd.Env = append(os.Environ(), "ATOLL_AGENT_CHILD_NATS="+s.ClientURL(), "ATOLL_AGENT_CHILD_DIR="+b.TempDir(),
			"ATOLL_AGENT_CHILD_PROCS="+strconv.Itoa(procs))
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var res agentChildResult
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "AGENT "); ok {
				_ = json.Unmarshal([]byte(line), &res)
			}
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("agent process: %v", err)
		}
		b.StopTimer()
		nc.Close()
		s.Shutdown()
		if res.Running != procs {
			b.Fatalf("the agent ran %d processes, want %d", res.Running, procs)
		}
		rss, idle = append(rss, float64(res.RSS)/(1<<20)), append(idle, float64(res.IdleRSS)/(1<<20))
		b.StartTimer()
	}
	b.ReportMetric(mean(rss), "agent-rss-MiB")
	b.ReportMetric(mean(idle), "agent-idle-rss-MiB")
}

type agentChildResult struct {
	RSS, IdleRSS int64
	Running      int
}

// TestNodeAgentChild is the child side of BenchmarkNodeAgentRSS; it does
// nothing in a normal test run.
func TestNodeAgentChild(t *testing.T) {
	url := os.Getenv("ATOLL_AGENT_CHILD_NATS")
	if url == "" {
		t.Skip("only runs as BenchmarkNodeAgentRSS's child process")
	}
	procs, _ := strconv.Atoi(os.Getenv("ATOLL_AGENT_CHILD_PROCS"))
	idle := vmRSS(t)
	a, err := node.New(node.Config{MemberURL: url, Name: "n1", DataDir: os.Getenv("ATOLL_AGENT_CHILD_DIR"), MilliCPU: 4000, Memory: 8 << 30})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("agent ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("agent not running within 30s")
	}
	running := func() int {
		n := 0
		for _, s := range a.Runtime().Status() {
			if s.Phase == "Running" && s.Pid > 0 {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(time.Minute)
	for running() < procs && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // steady state: heartbeats, log pumps
	res := agentChildResult{RSS: vmRSS(t), IdleRSS: idle, Running: running()}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := a.Runtime().StopAll(sctx); err != nil {
		t.Errorf("stop the replicas: %v", err)
	}
	scancel()
	cancel()
	<-done
	data, _ := json.Marshal(res)
	fmt.Println("AGENT " + string(data))
}

// vmRSS reads this process's resident set from /proc/self/status.
func vmRSS(t testing.TB) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
