package failover

import (
	"github.com/atollhq/atoll/placement"
	"github.com/atollhq/atoll/protocol"
)

// Ledger is the clusters' free capacity as one pass's decisions use it
// up: each workload's new replicas are taken off before the next workload
// is decided, so one pass (a mass failover above all) cannot pile
// everything on the cluster that looked emptiest at its start. It starts
// from the last heartbeats.
type Ledger map[string]protocol.Capacity

// NewLedger starts a ledger from the clusters' last heartbeats.
func NewLedger(view []Cluster) Ledger {
	l := Ledger{}
	for _, c := range view {
		if c.Known && c.Live.Heard {
			l[c.Metadata.Name] = c.Live.Capacity
		}
	}
	return l
}

// Bound sets each bounded cluster's room from what is left in the ledger.
func (l Ledger) Bound(clusters []placement.Cluster, cpu, mem int64) {
	for i := range clusters {
		if capa, ok := l[clusters[i].Name]; ok && clusters[i].Room != placement.Unbounded {
			clusters[i].Room = Room(capa, cpu, mem)
		}
	}
}

// Take records the replicas a decision adds beyond current.
func (l Ledger) Take(assignment, current map[string]int32, cpu, mem int64) {
	for c, n := range assignment {
		if add := int64(n - current[c]); add > 0 {
			if capa, ok := l[c]; ok {
				capa.CPUAllocated += add * cpu
				capa.MemoryAllocated += add * mem
				l[c] = capa
			}
		}
	}
}
