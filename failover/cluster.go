package failover

import (
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// Live is a cluster as the hub's health monitor sees it right now.
type Live struct {
	Seen   time.Time // last heartbeat (or the hub's start)
	Heard  bool      // a heartbeat arrived since the hub started
	Health string
	Since  time.Time // when Health began (at most the hub's start)
	// LeaseFrom is the latest time from which the member's lease on the
	// hubs may still run, as far as this hub can tell: its last heartbeat,
	// or, early in this hub's term, the time the previous leader may have
	// acked until. Zero: use Seen.
	LeaseFrom time.Time
	// Noted is when this hub recorded Health: on the leader, the time of
	// the transition's event and condition (zero: not since it started).
	Noted    time.Time
	Capacity protocol.Capacity // from the last heartbeat
	// FenceAfter is how long the member runs exclusive workloads without
	// an ack (0: it did not say); Term is its lease term and Resync its
	// request to have all of its desired state sent again.
	FenceAfter time.Duration
	Term       uint64
	Resync     bool
	// Version is the protocol version of its last heartbeat (0: none
	// heard since the hub started).
	Version int
}

// Cluster is a cluster object with its live health as the monitor had it
// when the pass began (Known false: the monitor does not know it, and its
// stored health stands).
type Cluster struct {
	api.Cluster
	Live  Live
	Known bool
}

// Ready says whether the monitor has the cluster Ready.
func (c Cluster) Ready() bool { return c.Known && c.Live.Health == api.HealthReady }

// named is the cluster of clusters called name (ok false: none). A
// decision looks up a few clusters; indexing them all (ByName) for that
// cost more than the rest of a failover's decision at 10 clusters.
func named(clusters []Cluster, name string) (c *Cluster, ok bool) {
	for i := range clusters {
		if clusters[i].Metadata.Name == name {
			return &clusters[i], true
		}
	}
	return nil, false
}

// ByName indexes clusters by name.
func ByName(clusters []Cluster) map[string]Cluster {
	out := make(map[string]Cluster, len(clusters))
	for _, c := range clusters {
		out[c.Metadata.Name] = c
	}
	return out
}
