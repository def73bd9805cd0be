package gateway

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atollhq/atoll/protocol"
)

// trafficKey is what tries are counted by: the service, the cluster of
// the endpoint tried and the generation it runs (so the hub can tell a
// new revision's answers from the stable one's).
type trafficKey struct {
	service, cluster string
	generation       int64
}

type trafficCounts struct {
	requests, errors uint64
	latency          [len(protocol.LatencyBounds) + 1]uint64
}

// trafficBook counts tries between two reports. It is bounded: keys
// beyond protocol.MaxTrafficCounts are dropped (and counted as such).
type trafficBook struct {
	mu      sync.Mutex
	counts  map[trafficKey]*trafficCounts
	since   time.Time
	dropped uint64
}

// record counts one try.
func (b *trafficBook) record(k trafficKey, failed bool, took time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.counts[k]
	if c == nil {
		if len(b.counts) >= protocol.MaxTrafficCounts {
			b.dropped++
			return
		}
		if b.counts == nil {
			b.counts = map[trafficKey]*trafficCounts{}
		}
		c = &trafficCounts{}
		b.counts[k] = c
	}
	c.requests++
	if failed {
		c.errors++
	}
	c.latency[protocol.LatencyBucket(took)]++
}

// TakeTraffic returns the tries counted since the last take (ordered by
// service, cluster and generation), how many seconds they cover and how
// many tries were dropped for want of room, and starts counting again.
func (g *Gateway) TakeTraffic() (counts []protocol.TrafficCount, seconds float64, dropped uint64) {
	b := &g.traffic
	now := g.now()
	b.mu.Lock()
	taken, since := b.counts, b.since
	dropped = b.dropped
	b.counts, b.since, b.dropped = nil, now, 0
	b.mu.Unlock()
	if !since.IsZero() {
		seconds = now.Sub(since).Seconds()
	}
	counts = make([]protocol.TrafficCount, 0, len(taken))
	for k, c := range taken {
		counts = append(counts, protocol.TrafficCount{Service: k.service, Cluster: k.cluster, Generation: k.generation,
			Requests: c.requests, Errors: c.errors, Latency: slices.Clone(c.latency[:])})
	}
	slices.SortFunc(counts, func(a, b protocol.TrafficCount) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		if c := strings.Compare(a.Cluster, b.Cluster); c != 0 {
			return c
		}
		return int(a.Generation - b.Generation)
	})
	return counts, seconds, dropped
}
