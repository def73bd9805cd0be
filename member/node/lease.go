package node

import (
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/protocol"
)

// nodeLease is what the member last said may run here: how long
// exclusive replicas may keep running (the member's lease on the hub),
// which exclusive workloads wait for the hub's confirmation, and whether
// a drill took the region dark. A node that hears nothing from its
// member (the member is paused, dead or cut off) lets the lease run out
// and stops its exclusive replicas by itself: the hub re-places them
// only after that.
type nodeLease struct {
	until time.Time // zero: never granted
	hold  []string
	dark  bool
}

// update takes a member's ack received at now.
func (l *nodeLease) update(ack protocol.NodeAck, now time.Time) {
	l.until = time.Time{}
	if ack.LeaseMillis > 0 {
		l.until = now.Add(time.Duration(ack.LeaseMillis) * time.Millisecond)
	}
	l.hold, l.dark = ack.Hold, ack.Dark
}

// leaseView is what decides which bindings may run: when it changes, the
// replicas are applied again.
type leaseView struct {
	valid bool
	hold  string
	dark  bool
}

func (l *nodeLease) view(now time.Time) leaseView {
	return leaseView{valid: now.Before(l.until), hold: strings.Join(l.hold, ","), dark: l.dark}
}

// untilExpiry is how long until the lease runs out (an hour when it
// already has, or was never granted: nothing to wait for).
func (l *nodeLease) untilExpiry(now time.Time) time.Duration {
	if d := l.until.Sub(now); d > 0 {
		return d
	}
	return time.Hour
}

// allowed filters the bindings down to the replicas that may run at now.
func (l *nodeLease) allowed(bs []protocol.Binding, now time.Time) []runtime.ReplicaSpec {
	valid := now.Before(l.until)
	specs := make([]runtime.ReplicaSpec, 0, len(bs))
	for _, b := range bs {
		if l.dark {
			continue // the region is down (a drill): nothing runs
		}
		if b.Exclusive && (!valid || slices.Contains(l.hold, b.Workload)) {
			continue
		}
		specs = append(specs, runtime.ReplicaSpec{ID: b.Replica, Workload: b.Workload, Generation: b.Generation, Template: b.Template})
	}
	return specs
}
