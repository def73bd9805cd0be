package hub_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/members"
	"github.com/atollhq/atoll/protocol"
)

// BenchmarkDelivery measures hub-to-member delivery of desired state over
// the leaf link, acknowledged after the member stored it in its
// JetStream KV (file store), one request at a time.
//
//	go test ./hub -run '^$' -bench BenchmarkDelivery -benchtime 2000x -count 3
func BenchmarkDelivery(b *testing.B) {
	e := newMemberEnv(b, members.HealthConfig{})
	join := e.joinToken("j", api.TokenSpec{})
	_, stop := runMember(b, join, "m1", b.TempDir())
	defer stop()
	tmpl := api.ReplicaTemplate{Driver: "sim"}
	lat := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		data, _ := json.Marshal(protocol.DesiredWorkload{Version: protocol.Version, Workload: "w", Epoch: int64(i + 1), Replicas: int32(i % 7), Template: tmpl})
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		reply, err := e.bus.Request(rctx, "m1", protocol.DesiredSubject("m1"), data)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		var ack protocol.DesiredAck
		if json.Unmarshal(reply, &ack) != nil || !ack.Accepted {
			b.Fatalf("not accepted: %s", reply)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
