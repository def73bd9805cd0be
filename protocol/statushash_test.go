package protocol

import (
	"encoding/json"
	"hash/maphash"
	"testing"
	"time"
)

// BenchmarkWorkloadStatusHash: a hub fingerprints every report it takes
// (a member's whole status every minute, an older member's up to four
// times a second): by hand against hashing the report's JSON.
func BenchmarkWorkloadStatusHash(b *testing.B) {
	ws := WorkloadStatus{Workload: "scale-000123", Epoch: 1234, Generation: 1, Desired: 1, Scheduled: 1, Running: 1, Present: 1, Ready: 1, Updated: 1, UpdatedReady: 1,
		States: map[string]int32{StateReady: 1}, Examples: []ReplicaSummary{{Replica: "scale-000123-abcde", Node: "node-0123", State: StateReady, StartedAt: time.Now()}}}
	seed := maphash.MakeSeed()
	b.Run("by-hand", func(b *testing.B) {
		var h maphash.Hash
		h.SetSeed(seed)
		for b.Loop() {
			h.Reset()
			ws.Hash(&h)
			_ = h.Sum64()
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			out, _ := json.Marshal(&ws)
			_ = maphash.Bytes(seed, out)
		}
	})
}
