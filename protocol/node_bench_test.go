package protocol

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkNodeHeartbeatDecode: what a member decodes per node heartbeat,
// a node of 10 sim replicas with its list and with the list left out
// (ReplicasSame), as a member of 1,000 nodes does 2,000 times a second.
//
//	go test ./protocol -run '^$' -bench NodeHeartbeatDecode -benchmem
func BenchmarkNodeHeartbeatDecode(b *testing.B) {
	started := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	full := NodeHeartbeat{Version: Version, Node: "r3-n0412", Zone: "z1", Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30},
		LimitsEnforced: true, AgentVersion: "dev", ReplicasSeq: 1733400000000000001}
	for i := range 10 {
		full.Replicas = append(full.Replicas, ReplicaState{ID: fmt.Sprintf("sc-%06d-0a1b2c3d4e5f", i), Workload: fmt.Sprintf("sc-%06d", i),
			Generation: 1, Phase: "Running", Ready: true, StartedAt: started})
	}
	same := full
	same.Replicas, same.ReplicasSame = nil, true
	for _, c := range []struct {
		name string
		hb   NodeHeartbeat
	}{{"list", full}, {"left-out", same}} {
		data, _ := json.Marshal(c.hb)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				var hb NodeHeartbeat
				if err := json.Unmarshal(data, &hb); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes")
		})
	}
}
