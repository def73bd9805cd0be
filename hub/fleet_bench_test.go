package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/protocol"
)

// fleetMember is one simulated member for the fleet benchmark.
type fleetMember struct {
	Name string `json:"name"`
	JWT  string `json:"jwt"`
	Seed string `json:"seed"`
}

// BenchmarkHeartbeatFleet: 100 members heartbeating at 2 Hz into one hub.
// The members run in a child process (so the hub's CPU is measured alone),
// each as its own NATS connection with its own member identity. Reported:
// the hub process's CPU, heartbeat round-trip percentiles, and how long the
// hub takes to store a changed condition: Ready after a silent member's
// first heartbeat (heartbeat-to-condition), Unreachable after the grace.
//
//	go test ./hub -run '^$' -bench BenchmarkHeartbeatFleet -benchtime 1x
func BenchmarkHeartbeatFleet(b *testing.B) {
	const nMembers, quiet = 100, 20
	window := 20 * time.Second
	e := newMemberEnv(b, members.HealthConfig{})
	join := e.joinToken("fleet", api.TokenSpec{})
	var fleet []fleetMember
	for i := range nMembers {
		kp, _ := nkeys.CreateUser()
		seed, _ := kp.Seed()
		name := fmt.Sprintf("m-%03d", i)
		b.StopTimer()
		r, resp := e.register(join, kp, api.RegisterRequest{Name: name, Region: fmt.Sprintf("r-%d", i%5)})
		if r.status != 200 {
			b.Fatalf("register %s: %d %s", name, r.status, r.body)
		}
		fleet = append(fleet, fleetMember{Name: name, JWT: resp.NATSUserJWT, Seed: string(seed)})
	}
	spec, _ := json.Marshal(fleet)
	specFile := b.TempDir() + "/fleet.json"
	if err := os.WriteFile(specFile, spec, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFleetMembers$", "-test.v")
	cmd.Env = append(os.Environ(), "ATOLL_FLEET="+specFile, "ATOLL_FLEET_NATS="+e.bus.ClientURL(),
		"ATOLL_FLEET_WINDOW="+window.String(), "ATOLL_FLEET_QUIET="+strconv.Itoa(quiet))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	b.ResetTimer()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var result fleetResult
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "FLEET "); ok {
			_ = json.Unmarshal([]byte(line), &result)
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("fleet process: %v", err)
	}
	elapsed := time.Since(start)
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	b.StopTimer()
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	if result.Sent == 0 {
		b.Fatal("the fleet process reported nothing")
	}
	metrics := string(e.do("GET", "/metrics", "", "", nil).body)
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "hub-cpu-%")
	b.ReportMetric(float64(result.Sent)/elapsed.Seconds(), "heartbeats/s")
	b.ReportMetric(result.P50, "rtt-p50-ms")
	b.ReportMetric(result.P99, "rtt-p99-ms")
	b.ReportMetric(float64(result.Missed), "missed")
	b.ReportMetric(1000*histQuantile(b, metrics, "atoll_heartbeat_condition_latency_seconds", "", 0.99), "hb-to-ready-p99-ms")
	b.ReportMetric(1000*histQuantile(b, metrics, "atoll_health_detection_delay_seconds", `health="Unreachable"`, 0.99), "detect-p99-ms")
}

type fleetResult struct {
	Sent, Missed int
	P50, P99     float64
}

// TestFleetMembers is the child side of BenchmarkHeartbeatFleet; it does
// nothing in a normal test run.
func TestFleetMembers(t *testing.T) {
	specFile := os.Getenv("ATOLL_FLEET")
	if specFile == "" {
		t.Skip("only runs as BenchmarkHeartbeatFleet's child process")
	}
	data, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	var fleet []fleetMember
	_ = json.Unmarshal(data, &fleet)
	window, _ := time.ParseDuration(os.Getenv("ATOLL_FLEET_WINDOW"))
	quiet, _ := strconv.Atoi(os.Getenv("ATOLL_FLEET_QUIET"))
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var mu sync.Mutex
	var rtts []float64
	sent, missed := 0, 0
	var wg sync.WaitGroup
	for i, m := range fleet {
		nc, err := nats.Connect(os.Getenv("ATOLL_FLEET_NATS"), nats.UserJWTAndSeed(m.JWT, m.Seed), nats.CustomInboxPrefix(protocol.InboxPrefix(m.Name)))
		if err != nil {
			t.Fatalf("connect %s: %v", m.Name, err)
		}
		defer nc.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the members over the interval, as real ones are.
			time.Sleep(time.Duration(i) * 500 * time.Millisecond / time.Duration(len(fleet)))
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			var seq uint64
			for n := 0; ; n++ {
				// The first `quiet` members fall silent for 3 s mid-run, so the
				// hub declares them Unreachable and then Ready again.
				silent := i < quiet && n >= 16 && n < 22
				if !silent {
					seq++
					hb, _ := json.Marshal(protocol.Heartbeat{Version: protocol.Version, Cluster: m.Name, Seq: seq, SentAt: time.Now(),
						Capacity: protocol.Capacity{NodesReady: 10, NodesTotal: 10, CPUAllocatable: 64000, MemoryAllocatable: 256 << 30}})
					start := time.Now()
					_, err := nc.Request(protocol.HeartbeatSubject(m.Name), hb, 500*time.Millisecond)
					mu.Lock()
					sent++
					if err != nil {
						missed++
					} else {
						rtts = append(rtts, float64(time.Since(start).Microseconds())/1000)
					}
					mu.Unlock()
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
	slices.Sort(rtts)
	q := func(p float64) float64 { return rtts[int(math.Min(float64(len(rtts)-1), p*float64(len(rtts))))] }
	res, _ := json.Marshal(fleetResult{Sent: sent, Missed: missed, P50: q(0.5), P99: q(0.99)})
	fmt.Println("FLEET " + string(res))
}

// histQuantile estimates a quantile of a Prometheus histogram from its
// cumulative buckets (linear within the bucket).
func histQuantile(b *testing.B, text, name, labelFilter string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var buckets []bucket
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"_bucket{") || !strings.Contains(line, labelFilter) {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.Index(line[i+4:], `"`)
		leText := line[i+4 : i+4+j]
		le := math.Inf(1)
		if leText != "+Inf" {
			le, _ = strconv.ParseFloat(leText, 64)
		}
		n, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		buckets = append(buckets, bucket{le, n})
	}
	if len(buckets) == 0 || buckets[len(buckets)-1].n == 0 {
		b.Logf("no samples of %s{%s}", name, labelFilter)
		return 0
	}
	total := buckets[len(buckets)-1].n
	target := q * total
	prevLe, prevN := 0.0, 0.0
	for _, bk := range buckets {
		if bk.n >= target {
			if math.IsInf(bk.le, 1) {
				return prevLe
			}
			return prevLe + (bk.le-prevLe)*(target-prevN)/math.Max(bk.n-prevN, 1)
		}
		prevLe, prevN = bk.le, bk.n
	}
	return prevLe
}
