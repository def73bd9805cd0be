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
	until   time.Time // zero: never granted
	stopAt  time.Time // until less the fence grace: exclusive replicas stop from here
	renewed int64     // the member's lease these times are of (NodeAck.LeaseRenewed)
	hold    []string
	dark    bool
}

// fenceGrace is how long before the lease ends its exclusive replicas get
// their stop signal (SIGTERM), a third of the lease at most; at the end
// they are killed, so they are gone before the hub may start them
// elsewhere (the member's fence plus a margin after its last heartbeat).
func fenceGrace(lease time.Duration) time.Duration { return min(time.Second, lease/3) }

// update takes a member's ack to a heartbeat sent at sent: the lease is
// counted from the sending, so an ack that waited (a paused agent) never
// stretches it. While the member's lease is not renewed (the hub is
// silent), each ack gives less time left but never a later end: the stop
// signal's grace shrinks with the time left, and without this rule an ack
// after the stop would move it later and start the replicas again.
func (l *nodeLease) update(ack protocol.NodeAck, sent time.Time) {
	// No lease left (the member lost its own): over at once.
	until, stopAt := sent, sent
	if ack.LeaseMillis > 0 {
		lease := time.Duration(ack.LeaseMillis) * time.Millisecond
		until = sent.Add(lease)
		stopAt = until.Add(-fenceGrace(lease))
	}
	if ack.LeaseRenewed != 0 && ack.LeaseRenewed == l.renewed && !l.until.IsZero() {
		until, stopAt = minTime(until, l.until), minTime(stopAt, l.stopAt)
	}
	l.until, l.stopAt, l.renewed = until, stopAt, ack.LeaseRenewed
	l.hold, l.dark = ack.Hold, ack.Dark
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// leaseView is what decides which bindings may run: when it changes, the
// replicas are applied again.
type leaseView struct {
	valid bool
	hold  string
	dark  bool
}

func (l *nodeLease) view(now time.Time) leaseView {
	return leaseView{valid: now.Before(l.stopAt), hold: strings.Join(l.hold, ","), dark: l.dark}
}

// untilExpiry is how long until the next step of the lease's end: the
// stop signal, then the kill (an hour when both passed, or the lease was
// never granted: nothing to wait for).
func (l *nodeLease) untilExpiry(now time.Time) time.Duration {
	if d := l.stopAt.Sub(now); d > 0 {
		return d
	}
	if d := l.until.Sub(now); d > 0 {
		return d
	}
	return time.Hour
}

// expired lists the exclusive replicas bound here once the lease has run
// out: they must be killed, not left to a graceful stop.
func (l *nodeLease) expired(bs []protocol.Binding, now time.Time) []string {
	if now.Before(l.until) && !l.dark {
		return nil
	}
	var ids []string
	for _, b := range bs {
		if b.Exclusive {
			ids = append(ids, b.Replica)
		}
	}
	return ids
}

// allowed filters the bindings down to the replicas that may run at now.
func (l *nodeLease) allowed(bs []protocol.Binding, now time.Time) []runtime.ReplicaSpec {
	valid := now.Before(l.stopAt)
	specs := make([]runtime.ReplicaSpec, 0, len(bs))
	for _, b := range bs {
		if l.dark {
			continue // the region is down (a drill): nothing runs
		}
		if b.Exclusive && (!valid || slices.Contains(l.hold, b.Workload)) {
			continue
		}
		specs = append(specs, runtime.ReplicaSpec{ID: b.Replica, Workload: b.Workload, Generation: b.Generation, Template: b.Template, Data: replicaData(b.Data)})
	}
	return specs
}

// replicaData is a binding's configs and secrets as the runtime takes
// them.
func replicaData(d *protocol.BindingData) *runtime.ReplicaData {
	if d == nil {
		return nil
	}
	out := &runtime.ReplicaData{Env: d.Env, Missing: d.Missing, RegistryAuth: d.RegistryAuth}
	for _, f := range d.Files {
		out.Files = append(out.Files, runtime.ReplicaFiles{Dir: f.Dir, Secret: f.Secret, Values: f.Values})
	}
	return out
}
