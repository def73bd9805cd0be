package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/runtime"
	"github.com/atollhq/atoll/member/state"
	"github.com/atollhq/atoll/protocol"
)

// A Fleet hosts many simulated nodes in one process, for scale tests and
// demos: to the member each looks like its own node agent (it heartbeats
// on its own subject with its own replicas), but they share what an Agent
// holds per node:
//
//   - one NATS connection;
//   - one watch of the whole bindings bucket (not one JetStream consumer
//     per node), kept as an in-memory map and dispatched to nodes by the
//     "<node>." prefix of the key;
//   - one replica runtime for every node's replicas, keyed by the
//     binding key "<node>.<replica>" so two nodes never share a replica
//     (the sim driver costs no goroutine per replica);
//   - one heartbeat loop, which spreads the nodes evenly over the
//     interval (a node's phase is fixed by its index) and sends a node's
//     heartbeat early, at the next slot, when its replicas changed.
//
// Only the sim driver runs on a fleet: a binding with another driver is
// reported Failed, since thousands of simulated nodes on one machine
// cannot each run real processes.
type Fleet struct {
	cfg   FleetConfig
	log   *slog.Logger
	nodes []*simNode
	index map[string]*simNode
	ready chan struct{}

	runtime *runtime.Runtime
	inbox   string
	started time.Time // numbers the nodes' first replica lists

	mu       sync.Mutex
	bindings map[string]map[string]protocol.Binding // node -> replica -> binding

	applyWake  chan struct{}
	statusWake chan struct{}
	dirty      chan *simNode // nodes whose replicas changed: heartbeat at the next slot

	sent, acked, same atomic.Uint64
	longestGap        atomic.Int64 // nanoseconds; see LongestGap
}

// FleetConfig configures a Fleet. Zero values mean the defaults.
type FleetConfig struct {
	// MemberURL is the region's NATS, unless Conn is given.
	MemberURL string
	// Auth authenticates the fleet to the region's NATS: a fleet stands in
	// for many nodes and watches the whole bindings bucket, so it needs the
	// region's admin key (member.Member.AdminOption), not a node's.
	Auth nats.Option
	// Conn is an existing connection to the region's NATS.
	Conn *nats.Conn
	// Nodes are the simulated nodes; names must be distinct DNS-1123
	// labels.
	Nodes []SimNode
	// DataDir holds the shared runtime's state (sim replicas write no
	// files). Required.
	DataDir string
	// Interval is every node's heartbeat interval; default 500ms.
	Interval time.Duration
	// Slots is how many groups the nodes are spread over within an
	// interval (a heartbeat tick every Interval/Slots); default 50, at
	// most the number of nodes.
	Slots int
	// ApplyEvery is the shortest time between two hand-overs of the
	// whole binding set to the runtime, so a burst of thousands of
	// bindings is applied in a few passes, not thousands; default 20ms.
	ApplyEvery time.Duration
	// Runtime tunes the shared replica runtime (DataDir is set from
	// DataDir).
	Runtime runtime.Config
	// Version is the agent version the nodes report.
	Version string
	Logger  *slog.Logger
	// OnReady, when set, is called when a replica becomes Ready on a node
	// (from the fleet's status goroutine; keep it short). at is when the
	// fleet saw it, within about 30ms of the runtime's change.
	OnReady func(node, replica string, at time.Time)
}

// SimNode describes one simulated node.
type SimNode struct {
	Name, Zone string
	Labels     map[string]string
	Taints     []api.Taint
	// MilliCPU and Memory are what the node reports as allocatable;
	// defaults 4000 (4 cores) and 8 GiB.
	MilliCPU, Memory int64
}

// FleetStats counts the fleet's heartbeats.
type FleetStats struct {
	// Heartbeats sent, and the acks the member sent back.
	Heartbeats, Acks uint64
	// Unchanged counts the heartbeats sent without their replica list
	// (the member held it: NodeHeartbeat.ReplicasSame).
	Unchanged uint64
}

type simNode struct {
	cfg    SimNode
	slot   int
	silent atomic.Bool
	queued atomic.Bool // in Fleet.dirty
	// guarded by Fleet.mu
	replicas []protocol.ReplicaState // immutable once set; replaced on change
	limits   bool
	lastBeat time.Time // the heartbeat loop's own
	list     listSeq   // its replica list's number (filled by the heartbeat loop)
}

// NewFleet checks the configuration.
func NewFleet(cfg FleetConfig) (*Fleet, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("new fleet: DataDir is required")
	}
	if cfg.Conn == nil && cfg.MemberURL == "" {
		return nil, errors.New("new fleet: the region's NATS URL (MemberURL) or a connection is required")
	}
	if len(cfg.Nodes) == 0 {
		return nil, errors.New("new fleet: no nodes")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 50
	}
	cfg.Slots = min(cfg.Slots, len(cfg.Nodes))
	if cfg.ApplyEvery <= 0 {
		cfg.ApplyEvery = 20 * time.Millisecond
	}
	f := &Fleet{cfg: cfg, log: cfg.Logger, started: time.Now(), index: make(map[string]*simNode, len(cfg.Nodes)), ready: make(chan struct{}),
		bindings: map[string]map[string]protocol.Binding{}, applyWake: make(chan struct{}, 1), statusWake: make(chan struct{}, 1), dirty: make(chan *simNode, len(cfg.Nodes))}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	for i, n := range cfg.Nodes {
		if !api.IsDNSLabel(n.Name) {
			return nil, fmt.Errorf("new fleet: node name %q: must be a DNS-1123 label", n.Name)
		}
		if f.index[n.Name] != nil {
			return nil, fmt.Errorf("new fleet: node %q twice", n.Name)
		}
		if n.MilliCPU <= 0 {
			n.MilliCPU = 4000
		}
		if n.Memory <= 0 {
			n.Memory = 8 << 30
		}
		sn := &simNode{cfg: n, slot: i % cfg.Slots, limits: true}
		f.nodes = append(f.nodes, sn)
		f.index[n.Name] = sn
	}
	return f, nil
}

// Ready is closed once the fleet watches its bindings and heartbeats.
func (f *Fleet) Ready() <-chan struct{} { return f.ready }

// Runtime is the runtime shared by every node (valid after Ready); its
// replica IDs are binding keys, "<node>.<replica>".
func (f *Fleet) Runtime() *runtime.Runtime { return f.runtime }

// Stats counts heartbeats and acks so far.
func (f *Fleet) Stats() FleetStats {
	return FleetStats{Heartbeats: f.sent.Load(), Acks: f.acked.Load(), Unchanged: f.same.Load()}
}

// LongestGap is the longest time between two heartbeats the fleet sent
// for one node since the last call (silenced nodes aside): beyond the
// member's node grace, the member finds that node lost though its
// process never stopped (a fleet starved of CPU).
func (f *Fleet) LongestGap() time.Duration { return time.Duration(f.longestGap.Swap(0)) }

// Silence stops (or resumes) a node's heartbeats, as if its machine were
// cut off: the member declares it NotReady after its grace and moves its
// replicas; they keep running here until their bindings are gone.
func (f *Fleet) Silence(node string, silent bool) error {
	n := f.index[node]
	if n == nil {
		return fmt.Errorf("silence %s: no such node in the fleet", node)
	}
	n.silent.Store(silent)
	return nil
}

// Run hosts the nodes until ctx ends. Their replicas vanish with it.
func (f *Fleet) Run(ctx context.Context) error {
	nc := f.cfg.Conn
	if nc == nil {
		var err error
		opts := []nats.Option{nats.Name("atoll-sim-fleet"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), logNATSErrors(f.log)}
		if f.cfg.Auth != nil {
			opts = append(opts, f.cfg.Auth)
		}
		nc, err = nats.Connect(f.cfg.MemberURL, opts...)
		if err != nil {
			return fmt.Errorf("connect to the member at %s: %w", f.cfg.MemberURL, err)
		}
		defer nc.Close()
	}
	// state.Open makes sure the buckets exist, as an Agent does; the fleet
	// then watches the bindings bucket itself.
	if _, err := state.Open(ctx, nc); err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	kv, err := js.KeyValue(ctx, state.BindingsBucket)
	if err != nil {
		return fmt.Errorf("fleet: open bindings: %w", err)
	}
	// The member answers a node's heartbeat only into that node's inbox:
	// every simulated node gets one, under one subscription.
	f.inbox = "fleet-" + nats.NewInbox()[len(nats.InboxPrefix):]
	ackSub, err := nc.Subscribe(protocol.NodeInboxPrefix("*")+"."+f.inbox, func(msg *nats.Msg) { f.ack(msg, nc.Stats().Reconnects) })
	if err != nil {
		return fmt.Errorf("fleet: subscribe to acks: %w", err)
	}
	defer func() { _ = ackSub.Unsubscribe() }()
	rcfg := f.cfg.Runtime
	rcfg.DataDir, rcfg.Logger = f.cfg.DataDir, f.log
	r, err := runtime.New(rcfg)
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	defer r.Stop()
	f.runtime = r

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	synced := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { f.watch(ctx, kv, synced) })
	wg.Go(func() { f.applyLoop(ctx) })
	wg.Go(func() { f.statusLoop(ctx) })
	defer wg.Wait()
	select {
	case <-ctx.Done():
		return nil
	case <-synced:
	}
	close(f.ready)
	f.log.InfoContext(ctx, "sim fleet running", "nodes", len(f.nodes), "interval", f.cfg.Interval)
	f.heartbeatLoop(ctx, nc)
	return nil
}

// watch keeps f.bindings equal to the bucket. When the watch ends (the
// connection or the stream was lost) it starts again from scratch.
func (f *Fleet) watch(ctx context.Context, kv jetstream.KeyValue, synced chan struct{}) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			if ctx.Err() == nil {
				f.log.WarnContext(ctx, "watching bindings failed; retrying", "err", err, "retry_in", backoff)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		f.consume(ctx, w, synced)
		_ = w.Stop()
	}
}

// consume applies one watch's entries: the initial values into a fresh
// map (swapped in at the end-of-initial marker), then each change.
func (f *Fleet) consume(ctx context.Context, w jetstream.KeyWatcher, synced chan struct{}) {
	initial := map[string]map[string]protocol.Binding{}
	live := false
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case e, ok = <-w.Updates():
		}
		if !ok {
			return
		}
		if e == nil { // the initial values are all in
			f.mu.Lock()
			f.bindings = initial
			f.mu.Unlock()
			live = true
			f.wakeApply()
			select {
			case <-synced:
			default:
				close(synced)
			}
			continue
		}
		node, replica, found := strings.Cut(e.Key(), ".")
		if !found || f.index[node] == nil {
			continue // another node's (not in this fleet)
		}
		target := initial
		if live {
			f.mu.Lock()
			target = f.bindings
		}
		if e.Operation() == jetstream.KeyValuePut {
			var b protocol.Binding
			if err := json.Unmarshal(e.Value(), &b); err != nil {
				f.log.WarnContext(ctx, "unreadable binding ignored", "key", e.Key(), "err", err)
			} else {
				if target[node] == nil {
					target[node] = map[string]protocol.Binding{}
				}
				target[node][replica] = b
			}
		} else if m := target[node]; m != nil {
			delete(m, replica)
			if len(m) == 0 {
				delete(target, node)
			}
		}
		if live {
			f.mu.Unlock()
			f.wakeApply()
		}
	}
}

func (f *Fleet) wakeApply() {
	select {
	case f.applyWake <- struct{}{}:
	default:
	}
}

// applyLoop hands the whole binding set to the runtime when it changed,
// at most once per ApplyEvery (level-triggered, so coalescing loses
// nothing), and every 10s anyway.
func (f *Fleet) applyLoop(ctx context.Context) {
	resync := time.NewTicker(10 * time.Second)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.applyWake:
		case <-resync.C:
		}
		f.applyOnce()
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.cfg.ApplyEvery):
		}
	}
}

// applyOnce gives the runtime every sim binding, and marks the nodes of
// bindings it cannot run so their heartbeats say why.
func (f *Fleet) applyOnce() {
	f.mu.Lock()
	n := 0
	for _, m := range f.bindings {
		n += len(m)
	}
	specs := make([]runtime.ReplicaSpec, 0, n)
	for node, m := range f.bindings {
		for _, b := range m {
			if b.Template.Driver != "sim" {
				continue // reported as Failed by statusOnce
			}
			specs = append(specs, runtime.ReplicaSpec{ID: protocol.BindingKey(node, b.Replica), Workload: b.Workload,
				Generation: b.Generation, Template: b.Template})
		}
	}
	f.mu.Unlock()
	f.runtime.Apply(specs)
	select { // bindings the runtime will not run show up at once
	case f.statusWake <- struct{}{}:
	default:
	}
}

// statusLoop turns the runtime's changes into per-node replica lists and
// marks the nodes whose lists changed for an early heartbeat.
func (f *Fleet) statusLoop(ctx context.Context) {
	var ready map[string]bool // binding keys seen Ready
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.runtime.Changes():
		case <-f.statusWake:
		}
		ready = f.statusOnce(ready)
		// Status copies and sorts every replica: while thousands start,
		// take it at most every statusGap, not on every change.
		select {
		case <-ctx.Done():
			return
		case <-time.After(statusGap):
		}
	}
}

// statusGap is the shortest time between two status passes.
const statusGap = 25 * time.Millisecond

// statusOnce rebuilds every node's replica list from the runtime's status
// and the bindings it does not run. It returns the binding keys that are
// Ready, and calls OnReady for those that were not in wasReady.
func (f *Fleet) statusOnce(wasReady map[string]bool) map[string]bool {
	now := time.Now()
	ready := make(map[string]bool, len(wasReady))
	per := map[string][]protocol.ReplicaState{}
	limits := map[string]bool{}
	for _, s := range f.runtime.Status() {
		node, replica, _ := strings.Cut(s.ID, ".")
		rs := replicaState(s)
		rs.ID = replica
		per[node] = append(per[node], rs)
		if !s.LimitsEnforced {
			limits[node] = false
		}
		if s.Ready {
			ready[s.ID] = true
			if !wasReady[s.ID] && f.cfg.OnReady != nil {
				f.cfg.OnReady(node, replica, now)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for node, m := range f.bindings {
		for _, b := range m {
			if b.Template.Driver != "sim" {
				msg := fmt.Sprintf("driver %q: a simulated node runs only the sim driver", b.Template.Driver)
				per[node] = append(per[node], protocol.ReplicaState{ID: b.Replica, Workload: b.Workload, Generation: b.Generation,
					Phase: runtime.PhaseFailed, Message: msg, Reason: runtime.ReasonConfig, LastError: msg})
			}
		}
	}
	for _, n := range f.nodes {
		list := per[n.cfg.Name]
		_, unlimited := limits[n.cfg.Name]
		if sameList(n.replicas, list) && n.limits == !unlimited {
			continue
		}
		n.replicas, n.limits = list, !unlimited
		if !n.queued.Swap(true) {
			f.dirty <- n // capacity is len(nodes): never blocks
		}
	}
	return ready
}

// heartbeatLoop sends each node's heartbeat once per interval, the nodes
// spread over Slots ticks, plus an early one for nodes whose replicas
// changed. The slots due are reckoned from the clock, not counted in
// ticks: a process too busy to run the loop at every tick (a ticker drops
// the ticks it could not deliver) sends every slot whose time came, so no
// node's heartbeats stretch beyond the interval by the loop's lateness.
func (f *Fleet) heartbeatLoop(ctx context.Context, nc *nats.Conn) {
	slots := make([][]*simNode, f.cfg.Slots)
	for _, n := range f.nodes {
		slots[n.slot] = append(slots[n.slot], n)
	}
	step := f.cfg.Interval / time.Duration(f.cfg.Slots)
	start := time.Now() // before the ticker: its ticks come at or after start + k·step
	tick := time.NewTicker(step)
	defer tick.Stop()
	next := 0 // the next slot to send, counted from start
	sentAt := make(map[*simNode]bool)
	for {
		clear(sentAt)
		var from, to int
		from, to, next = dueSlots(time.Since(start), step, next, len(slots))
		for k := from; k < to; k++ {
			for _, n := range slots[k%len(slots)] {
				f.beat(nc, n)
				sentAt[n] = true
			}
		}
	drain:
		for {
			select {
			case n := <-f.dirty:
				n.queued.Store(false)
				if !sentAt[n] {
					f.beat(nc, n)
					sentAt[n] = true
				}
			default:
				break drain
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// dueSlots says which slots to send, counted from the loop's start, when
// elapsed has passed since it: [from, to), every slot whose time came
// since next, but no more than one of each (a loop more than an
// interval late sends every node once); next is where the following
// call starts.
func dueSlots(elapsed, step time.Duration, next, slots int) (from, to, newNext int) {
	to = int(elapsed/step) + 1
	from = max(next, to-slots)
	if from > to {
		from = to
	}
	return from, to, max(to, next)
}

// ack counts a member's answer to a node's heartbeat and takes the
// number of the node's replica list it holds, said on conn (the
// connection's count of reconnects).
func (f *Fleet) ack(msg *nats.Msg, conn uint64) {
	f.acked.Add(1)
	// The subject is NodeInboxPrefix(node) + "." + the fleet's inbox.
	rest, ok := strings.CutPrefix(msg.Subject, protocol.NodeInboxPrefix(""))
	if !ok {
		return
	}
	n := f.index[strings.TrimSuffix(rest, "."+f.inbox)]
	if n == nil {
		return
	}
	var ack struct {
		ReplicasSeq uint64 `json:"replicasSeq"`
	}
	if json.Unmarshal(msg.Data, &ack) != nil {
		ack.ReplicasSeq = 0 // unreadable: the list goes whole next time
	}
	n.list.acked(ack.ReplicasSeq, conn)
}

// beat publishes one node's heartbeat; the member's ack goes to the
// fleet's inbox (ack).
func (f *Fleet) beat(nc *nats.Conn, n *simNode) {
	if n.silent.Load() {
		n.lastBeat = time.Time{} // silenced: no gap to count
		return
	}
	f.mu.Lock()
	replicas, limits := n.replicas, n.limits
	f.mu.Unlock()
	hb := protocol.NodeHeartbeat{Version: protocol.Version, Node: n.cfg.Name, Zone: n.cfg.Zone, Labels: n.cfg.Labels, Taints: n.cfg.Taints,
		Allocatable:  protocol.Resources{MilliCPU: n.cfg.MilliCPU, Memory: n.cfg.Memory},
		AgentVersion: f.cfg.Version, LimitsEnforced: limits}
	n.list.fill(&hb, replicas, f.started, nc.Stats().Reconnects)
	data, err := json.Marshal(hb)
	if err != nil {
		return
	}
	if err := nc.PublishRequest(protocol.NodeHeartbeatSubject(n.cfg.Name), protocol.NodeInboxPrefix(n.cfg.Name)+"."+f.inbox, data); err != nil {
		f.log.Debug("node heartbeat not sent", "node", n.cfg.Name, "err", err)
		return
	}
	f.sent.Add(1)
	if hb.ReplicasSame {
		f.same.Add(1)
	}
	now := time.Now()
	if !n.lastBeat.IsZero() {
		gap := int64(now.Sub(n.lastBeat))
		for old := f.longestGap.Load(); gap > old && !f.longestGap.CompareAndSwap(old, gap); old = f.longestGap.Load() {
		}
	}
	n.lastBeat = now
}
