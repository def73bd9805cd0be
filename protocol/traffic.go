package protocol

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/atollhq/atoll/api"
)

// TrafficSince is the first version whose endpoints carry their
// replica's generation and whose members report their gateway's traffic
// (TrafficSubject).
const TrafficSince = 7

// TrafficSubject is where a member publishes its gateway's traffic (a
// TrafficReport) about once a second. The hub takes the cluster from the
// subject, never from the message.
func TrafficSubject(cluster string) string { return memberPrefix + cluster + ".traffic" }

// TrafficWildcard matches every member's traffic reports.
const TrafficWildcard = memberPrefix + "*.traffic"

// MaxTrafficCounts bounds the counts one report carries (a gateway
// counts per service, serving cluster and generation: the table bounds
// them well below).
const MaxTrafficCounts = 4096

// LatencyBounds are the upper bounds of a TrafficCount's latency
// buckets; the last bucket counts everything slower.
var LatencyBounds = [...]time.Duration{
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second,
}

// LatencyBucket is the index of the bucket d falls in.
func LatencyBucket(d time.Duration) int {
	for i, b := range LatencyBounds {
		if d <= b {
			return i
		}
	}
	return len(LatencyBounds)
}

// TrafficReport is what a member's gateway sent to endpoints since its
// previous report: per service, per cluster of the endpoint that was
// tried and per generation that endpoint runs.
type TrafficReport struct {
	Version int    `json:"v"`
	Cluster string `json:"cluster"`
	// Run and Seq name the report (Seq grows within one member run); the
	// hub ignores one it already took.
	Run string `json:"run"`
	Seq uint64 `json:"seq"`
	// Seconds is how long the report covers (the interval since the
	// previous one).
	Seconds float64        `json:"seconds"`
	Counts  []TrafficCount `json:"counts"`
}

// TrafficCount is one service's tries to the endpoints of one cluster
// running one generation: each try is a request sent to a replica (a
// retry on another endpoint is a try of its own). Errors are tries that
// failed to connect, timed out or were answered 5xx. Latency counts the
// tries by the time to the answer's headers (or the failure), in
// LatencyBounds' buckets: len(LatencyBounds)+1 of them, summing to
// Requests.
type TrafficCount struct {
	Service    string   `json:"service"`
	Cluster    string   `json:"cluster"`
	Generation int64    `json:"generation,omitempty"`
	Requests   uint64   `json:"requests"`
	Errors     uint64   `json:"errors"`
	Latency    []uint64 `json:"latency"`
}

// DecodeTrafficReport reads a report received on subject: well formed,
// of a supported version, naming the subject's cluster, with bounded
// sizes and counts that add up.
func DecodeTrafficReport(subject string, data []byte) (TrafficReport, error) {
	var r TrafficReport
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.Version < TrafficSince || r.Version > Version {
		return r, fmt.Errorf("%w: %d", ErrVersion, r.Version)
	}
	if c := ClusterOf(subject); c == "" || c != r.Cluster {
		return r, fmt.Errorf("%w: subject %q, message %q", ErrWrongCluster, subject, r.Cluster)
	}
	if len(r.Counts) > MaxTrafficCounts {
		return r, fmt.Errorf("%w: %d counts, at most %d", ErrMalformed, len(r.Counts), MaxTrafficCounts)
	}
	if r.Seconds < 0 || r.Seconds > 3600 {
		return r, fmt.Errorf("%w: seconds %v", ErrMalformed, r.Seconds)
	}
	for i, c := range r.Counts {
		if !api.IsDNSLabel(c.Service) || c.Cluster == "" || len(c.Cluster) > 253 {
			return r, fmt.Errorf("%w: counts[%d]: service %.64q, cluster %.64q", ErrMalformed, i, c.Service, c.Cluster)
		}
		if c.Generation < 0 || c.Errors > c.Requests || c.Requests > 1<<40 {
			return r, fmt.Errorf("%w: counts[%d]: generation %d, %d errors of %d requests", ErrMalformed, i, c.Generation, c.Errors, c.Requests)
		}
		if len(c.Latency) != len(LatencyBounds)+1 {
			return r, fmt.Errorf("%w: counts[%d]: %d latency buckets, want %d", ErrMalformed, i, len(c.Latency), len(LatencyBounds)+1)
		}
		var sum uint64
		for _, n := range c.Latency {
			sum += n
		}
		if sum != c.Requests {
			return r, fmt.Errorf("%w: counts[%d]: latency buckets sum to %d, requests %d", ErrMalformed, i, sum, c.Requests)
		}
	}
	return r, nil
}
