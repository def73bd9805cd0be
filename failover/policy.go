package failover

import (
	"maps"
	"slices"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/placement"
	"github.com/atollhq/atoll/protocol"
)

// Failover timings and defaults (spec.failover says otherwise per
// workload).
const (
	// DefaultGrace is how long a cluster may stay Unreachable before its
	// replicas are re-placed.
	DefaultGrace = 5 * time.Second
	// DefaultFence is a member's fence when it does not report one (a
	// member before protocol 3).
	DefaultFence = 3 * time.Second
	// FenceMargin is added to a member's fence before the hub re-places an
	// exclusive workload it ran: heartbeat transit, the node agents' last
	// lease and the replicas' stop all fit in it.
	FenceMargin = 2 * time.Second
	// DefaultWindow is how long a returned cluster must stay Ready before
	// replicas move back to it.
	DefaultWindow = 30 * time.Second
	// ClusterLabel is the synthetic label that confines an exclusive
	// workload to one cluster (spread over it with maxGroups 1).
	ClusterLabel = "atoll.dev/cluster"
)

// Policy is a workload's spec.failover with the defaults filled in.
type Policy struct {
	Grace     time.Duration
	Exclusive bool
	Graceful  bool
}

// PolicyOf reads a workload's failover policy.
func PolicyOf(w *api.Workload) Policy {
	f := Policy{Grace: DefaultGrace}
	if fp := w.Spec.Failover; fp != nil {
		if fp.GracePeriod != "" {
			if d, err := time.ParseDuration(string(fp.GracePeriod)); err == nil && d >= 0 {
				f.Grace = d
			}
		}
		f.Exclusive = fp.Mode == "exclusive"
		f.Graceful = fp.Purge == "graceful"
	}
	return f
}

// EvictAt is when an Unreachable cluster's replicas of a workload are
// re-placed: the failover grace after it became Unreachable and, for an
// exclusive workload, not before the member's fence plus the margin has
// passed since its last heartbeat (its nodes have stopped the replicas
// by then).
func EvictAt(f Policy, live Live) time.Time {
	at := live.Since.Add(f.Grace)
	if f.Exclusive {
		fence := live.FenceAfter
		switch {
		case fence > 0:
		case !live.Heard:
			// Not heard since this hub started: its fence is unknown, so
			// assume the longest a member may have.
			fence = protocol.MaxFenceAfter
		default:
			fence = DefaultFence // a member before protocol 3
		}
		from := live.Seen
		if live.LeaseFrom.After(from) {
			from = live.LeaseFrom // a previous leader may still have acked
		}
		if t := from.Add(fence + FenceMargin); t.After(at) {
			at = t
		}
	}
	return at
}

// PlacementPolicy is the policy placement decides with: the workload's
// own, confined to a single cluster when the workload is exclusive.
func PlacementPolicy(w *api.Workload) *api.PlacementPolicy {
	if !PolicyOf(w).Exclusive {
		return w.Spec.Placement
	}
	var pol api.PlacementPolicy
	if w.Spec.Placement != nil {
		pol = *w.Spec.Placement
	}
	pol.Spread = append(slices.Clone(pol.Spread), api.SpreadConstraint{TopologyKey: ClusterLabel, MaxGroups: 1})
	return &pol
}

// Requests is what one replica of a template asks for, in base units.
func Requests(t api.ReplicaTemplate) (cpu, mem int64) { return t.Resources.Quantities() }

// Room is how many more replicas of a shape fit in a cluster's free
// capacity (placement.Unbounded when the replica requests nothing).
func Room(c protocol.Capacity, cpu, mem int64) int32 {
	if cpu <= 0 && mem <= 0 {
		return placement.Unbounded
	}
	fit := int64(1 << 30)
	if cpu > 0 {
		fit = min(fit, max(0, c.CPUAllocatable-c.CPUAllocated)/cpu)
	}
	if mem > 0 {
		fit = min(fit, max(0, c.MemoryAllocatable-c.MemoryAllocated)/mem)
	}
	return int32(min(fit, 1<<30))
}

// Snapshot turns clusters into placement input for one workload: health
// from the monitor (an Unreachable cluster within the workload's failover
// grace keeps what it runs), room from the last heartbeat's free capacity
// and the replica's requests. next is the earliest time a grace runs out
// (zero: none pending), when the workload must be decided again.
func Snapshot(clusters []Cluster, w *api.Workload, now time.Time) (out []placement.Cluster, next time.Time) {
	cpu, mem := Requests(w.Spec.Template)
	f := PolicyOf(w)
	out = make([]placement.Cluster, 0, len(clusters))
	for _, c := range clusters {
		if c.Metadata.DeletionTimestamp != nil {
			continue
		}
		pc := placement.Cluster{Name: c.Metadata.Name, Labels: c.Metadata.Labels, Taints: c.Spec.Taints, Unschedulable: c.Spec.Unschedulable,
			Health: c.Status.Health, Room: placement.Unbounded}
		if c.Known {
			pc.Health = c.Live.Health
			if c.Live.Heard {
				pc.Room = Room(c.Live.Capacity, cpu, mem)
			}
			if pc.Health == api.HealthUnreachable {
				if at := EvictAt(f, c.Live); now.Before(at) {
					pc.Grace = "Unreachable; failover at " + at.UTC().Format(time.TimeOnly)
					next = earliest(next, at)
				}
			}
		}
		if f.Exclusive {
			labels := maps.Clone(pc.Labels)
			if labels == nil {
				labels = map[string]string{}
			}
			labels[ClusterLabel] = pc.Name
			pc.Labels = labels
		}
		out = append(out, pc)
	}
	return out, next
}

// earliest is the earlier of two times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
