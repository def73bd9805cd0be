package controller

import (
	"slices"
	"sync"
	"time"

	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// Nodes is the region's node registry: what each node agent last said and
// when.
type Nodes struct {
	mu      sync.Mutex
	nodes   map[string]*nodeState
	started time.Time
	grace   time.Duration
	onAddr  func()
	// unread, when set, is how many heartbeats were received and not
	// read yet; behindSince is when the reading fell behind (zero: it
	// keeps up).
	unread      func() int
	behindSince time.Time
}

type nodeState struct {
	rec      state.NodeRecord
	seen     time.Time
	heard    bool // a list of its came whole this run: it may be Ready
	limits   bool
	host     string // where the node's replicas are reached (its heartbeat's Host)
	replicas map[string]protocol.ReplicaState
	seq      uint64 // the number of replicas, as the node gave it (0: none to name)
}

// NewNodes makes a registry; nodes from an earlier run (recs) get one
// grace from start before they can be NotReady.
func NewNodes(recs []state.NodeRecord, start time.Time, grace time.Duration) *Nodes {
	n := &Nodes{nodes: map[string]*nodeState{}, started: start, grace: grace}
	for _, r := range recs {
		n.nodes[r.Name] = &nodeState{rec: r, seen: start}
	}
	return n
}

// Observe records a heartbeat; it reports whether the node's record
// (labels, zone, capacity) changed and should be stored, and the number
// of the replica list it now holds for the node (NodeAck.ReplicasSeq; 0:
// none it can name). A heartbeat that leaves its list out (ReplicasSame)
// keeps the one held when the numbers agree; when they do not (a member
// restarted, or a list it never got), it keeps what it holds, stale, and
// answers 0, so the node sends its list with the next heartbeat; a node
// whose list it never got this run is not Ready until then.
func (n *Nodes) Observe(hb protocol.NodeHeartbeat, at time.Time) (rec state.NodeRecord, changed bool, seq uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	rec = state.NodeRecord{Name: hb.Node, Zone: hb.Zone, Labels: hb.Labels, Taints: hb.Taints, Allocatable: hb.Allocatable}
	ns, ok := n.nodes[hb.Node]
	if !ok {
		ns = &nodeState{}
		n.nodes[hb.Node] = ns
	}
	changed = !ok || !sameRecord(ns.rec, rec)
	hostMoved := ns.host != hb.Host
	ns.rec, ns.seen, ns.limits, ns.host = rec, at, hb.LimitsEnforced, hb.Host
	if hb.ReplicasSame {
		// The node is alive (not lost), but Ready only once a list of
		// its came whole (heard): a member restarted, or a node first
		// heard leaving its list out, waits for the list.
		if hb.ReplicasSeq == 0 || hb.ReplicasSeq != ns.seq {
			ns.seq = 0
		}
		if hostMoved && n.onAddr != nil {
			n.onAddr()
		}
		return rec, changed, ns.seq
	}
	ns.seq, ns.heard = hb.ReplicasSeq, true
	old := ns.replicas
	ns.replicas = make(map[string]protocol.ReplicaState, len(hb.Replicas))
	moved := false
	for _, r := range hb.Replicas {
		ns.replicas[r.ID] = r
		if r.Port > 0 {
			o, ok := old[r.ID]
			moved = moved || !ok || o.Ready != r.Ready || o.Port != r.Port || o.Generation != r.Generation
		}
	}
	for id, o := range old {
		if _, ok := ns.replicas[id]; !ok && o.Port > 0 && o.Ready {
			moved = true
		}
	}
	if (moved || hostMoved) && n.onAddr != nil {
		n.onAddr()
	}
	return rec, changed, ns.seq
}

// OnAddressChange sets fn to be called (under the registry's lock: it
// must not block) whenever a heartbeat changes which replicas with a
// port are ready, or where; set it before heartbeats are observed.
func (n *Nodes) OnAddressChange(fn func()) { n.onAddr = fn }

func sameRecord(a, b state.NodeRecord) bool {
	if a.Name != b.Name || a.Zone != b.Zone || a.Allocatable != b.Allocatable || len(a.Labels) != len(b.Labels) || !slices.Equal(a.Taints, b.Taints) {
		return false
	}
	for k, v := range a.Labels {
		if b.Labels[k] != v {
			return false
		}
	}
	return true
}

// SetUnread gives the registry the count of heartbeats received and not
// read yet (set it before heartbeats are observed). While that backlog is
// large, the registry is behind its nodes, not they silent: see Behind.
func (n *Nodes) SetUnread(fn func() int) { n.unread = fn }

// A member that has not read its nodes' heartbeats (an overloaded
// process: the scale harness found 16,000-24,000 unread when it judged
// nodes lost, and hundreds of healthy nodes lost their replicas every few
// seconds) would judge them by its own lateness. While more than
// backlogLimit heartbeats wait, a node whose grace runs out is NotReady
// (it takes no new replicas) but not lost (its replicas stay), for at
// most holdGraces from when the member fell behind: past that a member
// still behind judges as usual, so a node that died is found even on a
// member that never catches up. Only a node whose grace ran out while
// the member was behind is held (its heartbeats may wait unread): one
// already silent past its grace when the member fell behind stays lost,
// so a backlog that comes and goes neither brings a lost node back nor
// keeps a dead one from being found for more than three graces.
const holdGraces = 2

// backlogLimit is how many unread heartbeats make the registry behind: a
// quarter of an interval's worth at 2 Hz, at least 16.
func backlogLimit(nodes int) int { return max(16, nodes/8) }

// holdLocked says since when loss judgements are held at now (zero:
// they are not: the registry keeps up, or has been behind for
// holdGraces), and keeps behindSince.
func (n *Nodes) holdLocked(now time.Time) time.Time {
	if n.unread == nil || n.unread() <= backlogLimit(len(n.nodes)) {
		n.behindSince = time.Time{}
		return time.Time{}
	}
	if n.behindSince.IsZero() {
		n.behindSince = now
	}
	if now.Sub(n.behindSince) >= holdGraces*n.grace {
		return time.Time{}
	}
	return n.behindSince
}

// Behind says since when the registry has been behind its nodes'
// heartbeats (zero: it is not), and how many are unread.
func (n *Nodes) Behind() (since time.Time, unread int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.unread == nil {
		return time.Time{}, 0
	}
	return n.behindSince, n.unread()
}

// NodeView is one node at an instant.
type NodeView struct {
	Record state.NodeRecord
	// Ready: heard since this member started, within the grace. Only
	// Ready nodes take new replicas.
	Ready bool
	// Lost: silent for longer than the grace. Its replicas move.
	Lost     bool
	Replicas map[string]protocol.ReplicaState
	// Seen is when the node was last heard from (for a node known from
	// an earlier run and not heard since, when this member started).
	Seen time.Time
	// LimitsEnforced: the agent said it can write cgroups.
	LimitsEnforced bool
}

// view is ns at now; hold is since when loss judgements are held (zero:
// they are not): a node whose grace ran out after that is not lost.
func (n *Nodes) view(ns *nodeState, now, hold time.Time) NodeView {
	fresh := now.Sub(ns.seen) <= n.grace
	held := !hold.IsZero() && ns.seen.Add(n.grace).After(hold)
	return NodeView{Record: ns.rec, Ready: ns.heard && fresh, Lost: !fresh && !held, Replicas: ns.replicas, LimitsEnforced: ns.limits, Seen: ns.seen}
}

// Get is one node as of now (ok false when unknown). The heartbeat
// handler calls it for every heartbeat, which also notes the moment the
// registry falls behind (holdLocked counts the backlog: one lock of the
// subscription's), so an episode starts at the heartbeat that found it,
// not at the next pass.
func (n *Nodes) Get(name string, now time.Time) (NodeView, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ns, ok := n.nodes[name]
	if !ok {
		return NodeView{}, false
	}
	return n.view(ns, now, n.holdLocked(now)), true
}

// NextExpiry is when the next Ready node would turn NotReady if it stays
// silent, or the nodes held while the registry is behind would be
// judged (see holdGraces), whichever comes first (zero when neither
// will).
func (n *Nodes) NextExpiry(now time.Time) time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, ns := range n.nodes {
		consider(ns.seen.Add(n.grace))
	}
	if hold := n.holdLocked(now); !hold.IsZero() {
		consider(hold.Add(holdGraces * n.grace))
	}
	return next
}

// Snapshot is every node as of now.
func (n *Nodes) Snapshot(now time.Time) map[string]NodeView {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]NodeView, len(n.nodes))
	hold := n.holdLocked(now)
	for name, ns := range n.nodes {
		out[name] = n.view(ns, now, hold)
	}
	return out
}
