package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/protocol"
)

// BenchmarkMemberLossShare is one surviving member's part of a 10% region
// loss at issue 20's full scale, with the machine to itself (in the
// scale harness nine members and their 9,000 sim nodes share two cores
// with the hub and PostgreSQL). At the full scale a workload of 10
// replicas spans 10 of 100 clusters, so a member of 1,000 sim nodes holds
// ~10,000 workloads of one replica; a loss of 10 clusters (100,000
// replicas) gives each of the 90 others ~1,111 more. Here: one member and
// a node.Fleet of ATOLL_MEMBERLOSS_NODES (default 1,000) sim nodes hold
// ATOLL_MEMBERLOSS_HELD (default 10,000) workloads of one sim replica
// (50m/32Mi, 50 ms start, as in the scale harness), all Ready; each op
// then sends ATOLL_MEMBERLOSS_NEW (default 1,111) of them a new epoch with
// two replicas, in batches of 128, 8 in flight (as the hub's placer
// does), and waits until each has its second replica Ready on a node.
// Reported: from the first batch sent to every new replica Ready (all-s)
// and to half of them (half-s), the batches' send time, the process's
// CPU over the op (hub bus, member and fleet; 200% is both cores), and
// its cores over 5 s at rest before the ops (rest-cores).
//
//	go test ./hub -run '^$' -bench BenchmarkMemberLossShare -benchtime 3x -timeout 20m
func BenchmarkMemberLossShare(b *testing.B) {
	nodes := envInt("ATOLL_MEMBERLOSS_NODES", 1000)
	held := envInt("ATOLL_MEMBERLOSS_HELD", 10000)
	fresh := envInt("ATOLL_MEMBERLOSS_NEW", 1111)
	if b.N*fresh > held {
		b.Fatalf("%d ops of %d new replicas need %d held workloads, have %d", b.N, fresh, b.N*fresh, held)
	}
	e := newMemberEnv(b, members.HealthConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	ready := map[string]time.Time{} // replica -> when its node saw it Ready
	_, fleet := memberWithFleet(ctx, b, e, nodes, func(_, replica string, at time.Time) {
		mu.Lock()
		if _, ok := ready[replica]; !ok {
			ready[replica] = at
		}
		mu.Unlock()
	})

	tmpl := api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: "50m", Memory: "32Mi"}, Sim: &api.SimSpec{StartLatency: "50ms"}}
	desired := func(i int, epoch int64, replicas int32) protocol.DesiredWorkload {
		return protocol.DesiredWorkload{Version: protocol.Version, Workload: fmt.Sprintf("sc-%06d", i), Epoch: epoch, Generation: 1,
			Replicas: replicas, Template: tmpl}
	}
	// send delivers ds as the placer does: batches of 128, 8 in flight.
	send := func(ds []protocol.DesiredWorkload) {
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for batch := range slices.Chunk(ds, 128) {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				data, _ := json.Marshal(protocol.DesiredBatch{Version: protocol.Version, Workloads: batch})
				rctx, rcancel := context.WithTimeout(ctx, time.Minute)
				defer rcancel()
				reply, err := e.bus.Request(rctx, "r1", protocol.DesiredBatchSubject("r1"), data)
				if err != nil {
					b.Error(err)
					return
				}
				var ack protocol.DesiredBatchAck
				if err := json.Unmarshal(reply, &ack); err != nil || len(ack.Acks) != len(batch) {
					b.Errorf("a batch of %d answered %s", len(batch), reply)
					return
				}
				for _, a := range ack.Acks {
					if !a.Accepted {
						b.Errorf("refused: %+v", a)
					}
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
	}
	readyOf := func(prefix map[string]bool, since time.Time) []time.Time {
		mu.Lock()
		defer mu.Unlock()
		var out []time.Time
		for r, at := range ready {
			if prefix[r[:strings.LastIndexByte(r, '-')]] && at.After(since) {
				out = append(out, at)
			}
		}
		return out
	}
	all := make([]protocol.DesiredWorkload, held)
	for i := range all {
		all[i] = desired(i, 1, 1)
	}
	start := time.Now()
	send(all)
	waitFor(b, fmt.Sprintf("%d held replicas Ready", held), 5*time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ready) >= held
	})
	b.Logf("%d workloads of one replica on %d sim nodes, all Ready %s after the first send", held, nodes, time.Since(start).Round(time.Millisecond))
	// At rest: the member (and its fleet, and the in-process hub it
	// reports to) with nothing to do but heartbeats, passes and reports.
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	restStart := time.Now()
	time.Sleep(5 * time.Second) // a measurement's span, not a wait for a condition
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	restCores := time.Duration(r1.Utime.Nano()+r1.Stime.Nano()-r0.Utime.Nano()-r0.Stime.Nano()).Seconds() / time.Since(restStart).Seconds()
	b.Logf("at rest: %.3f cores (the member, its fleet of %d nodes, the hub)", restCores, nodes)

	var alls, halves, sends, cpus []float64
	b.ResetTimer()
	for op := range b.N {
		b.StopTimer()
		grown := make([]protocol.DesiredWorkload, fresh)
		names := map[string]bool{}
		for k := range grown {
			grown[k] = desired(op*fresh+k, 2, 2)
			names[grown[k].Workload] = true
		}
		var ru0 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		b.StartTimer()
		t0 := time.Now()
		send(grown)
		sent := time.Since(t0)
		waitFor(b, fmt.Sprintf("%d new replicas Ready", fresh), 5*time.Minute, func() bool { return len(readyOf(names, t0)) >= fresh })
		b.StopTimer()
		var ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		times := readyOf(names, t0)
		slices.SortFunc(times, time.Time.Compare)
		last, half := times[fresh-1].Sub(t0), times[fresh/2].Sub(t0)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		alls, halves, sends = append(alls, last.Seconds()), append(halves, half.Seconds()), append(sends, sent.Seconds())
		cpus = append(cpus, 100*cpu.Seconds()/last.Seconds())
		b.Logf("op %d: %d workloads grown to 2 replicas: sent in %s, half Ready %s, all %s after the first batch; CPU %.0f%%",
			op, fresh, sent.Round(time.Millisecond), half.Round(time.Millisecond), last.Round(time.Millisecond), cpus[len(cpus)-1])
		b.StartTimer()
	}
	b.StopTimer()
	st := fleet.Stats()
	b.Logf("node heartbeats: %d sent, %d of them without their unchanged replica list", st.Heartbeats, st.Unchanged)
	b.ReportMetric(mean(alls), "all-s")
	b.ReportMetric(mean(halves), "half-s")
	b.ReportMetric(mean(sends), "send-s")
	b.ReportMetric(mean(cpus), "process-cpu-%")
	b.ReportMetric(restCores, "rest-cores")
}
