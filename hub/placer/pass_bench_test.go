package placer

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// BenchmarkSteadyPass measures a leader's pass when nothing changed, over
// 2,000 workloads of 3 replicas placed and acknowledged on 3 clusters
// (6,000 placement rows): what every pass costs the hub (time, bytes and
// allocations per pass; the rows read from PostgreSQL were most of them).
//
//	go test ./hub/placer -run '^$' -bench BenchmarkSteadyPass -benchtime 200x -count 3 -benchmem
func BenchmarkSteadyPass(b *testing.B) {
	ctx := context.Background()
	store := openStore(b)
	test := pgstore.Actor{Name: "test"}
	clusters := []string{"a", "b", "c"}
	monitor := fakeHealth{}
	status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthReady})
	for _, c := range clusters {
		if _, err := store.Create(ctx, test, &pgstore.Record{Kind: "Cluster", Meta: api.ObjectMeta{Name: c}, Spec: []byte("{}"), Status: status}); err != nil {
			b.Fatal(err)
		}
		monitor[c] = failover.Live{Health: api.HealthReady, Heard: true, Version: protocol.Version}
	}
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
	b.ResetTimer()
	for range b.N {
		if err := p.RunOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	bus.mu.Lock()
	defer bus.mu.Unlock()
	if again := bus.sent[protocol.DesiredBatchSubject("a")]; again != sent {
		b.Fatalf("steady passes sent %d batches again", again-sent)
	}
}
