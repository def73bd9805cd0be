package scheduler

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"

	"github.com/atollhq/atoll/api"
)

// Resources is an amount of CPU and memory. Negative amounts count as zero.
type Resources struct {
	MilliCPU int64 // thousandths of a core
	Memory   int64 // bytes
}

// Node is one machine of the region as the scheduler sees it.
type Node struct {
	Name   string
	Labels map[string]string // what node selectors and affinity match
	// Zone is the node's failure domain for zone spread. Nodes with no zone
	// form one zone of their own (named ""); a region whose nodes have no
	// zone at all has a single zone, and zone spread has nothing to do.
	Zone          string
	Ready         bool
	Unschedulable bool        // cordoned
	Taints        []api.Taint // NoSchedule and NoExecute filter; other effects are ignored
	Allocatable   Resources
}

// Binding is a replica bound to a node: an existing one in a Snapshot, a
// new one in a Plan.
type Binding struct {
	Replica, Workload, Node string
	Requests                Resources
	HostPorts               []Port
}

// Port is a host port. Ports outside 1..65535 are no host port at all.
type Port struct {
	Port     int32
	Protocol string // "TCP" (the default when empty) or "UDP"; "SCTP" is kept apart too
}

// WeightedSelector is one term of preferred node affinity: nodes matching
// Selector score Weight (1..100; values outside are clamped).
type WeightedSelector struct {
	Weight   int32
	Selector api.LabelSelector
}

// Replica is one replica to place.
type Replica struct {
	ID       string
	Workload string // empty: the Request's workload
	Requests Resources
	// NodeSelector: the node must carry every one of these labels.
	NodeSelector map[string]string
	// Required node affinity; nil means none. A non-nil empty selector
	// matches every node.
	Required *api.LabelSelector
	// Preferred node affinity: matching nodes score the terms' weights.
	Preferred   []WeightedSelector
	Tolerations []api.Toleration
	HostPorts   []Port
}

// Policy is how a workload's replicas are spread.
type Policy struct {
	// Strategy is StrategySpread (the default: least-allocated nodes first)
	// or StrategyBinpack (most-allocated nodes first). Anything else means
	// StrategySpread.
	Strategy string
	// ZoneSpread keeps the workload's replicas balanced over zones: a
	// replica goes only to a zone holding the fewest replicas of the
	// workload among the zones where it fits, so the skew stays within 1
	// whenever that is feasible.
	ZoneSpread bool
	// AntiAffinity prefers nodes holding fewer replicas of the workload.
	AntiAffinity bool
}

// Strategies for Policy.Strategy.
const (
	StrategySpread  = "spread"
	StrategyBinpack = "binpack"
)

// Request is a batch of replicas of one workload to place, in order.
type Request struct {
	Workload string
	Policy   Policy
	Replicas []Replica
}

// Snapshot is the region as the caller last read it.
type Snapshot struct {
	Nodes    []Node
	Bindings []Binding
}

// Plan is the scheduler's answer: a binding for every replica it placed and
// a Pending entry, with the reason, for every replica it could not. Both
// keep the order of the request's replicas.
type Plan struct {
	Bindings []Binding
	Pending  []Pending
}

// Pending is a replica left unplaced. Counts maps each filter's reason to
// the number of nodes it rejected: every node is counted once, under the
// first filter that rejected it, so the counts add up to the number of
// nodes. Reason renders Counts for people, e.g.
// "0/5 nodes: 3 insufficient memory, 2 tainted (no toleration)".
type Pending struct {
	Replica string
	Reason  string
	Counts  map[string]int
}

// Scheduler places replicas on the nodes of one snapshot. It keeps its own
// view of what each node holds and updates it with every placement, so
// one Schedule call, and later calls on the same Scheduler, never
// over-commit a node or reuse a host port. A Scheduler is not safe for
// concurrent use.
//
// The scheduler keeps references to the snapshot's maps and slices (node
// labels, taints): do not modify them while the Scheduler is in use.
type Scheduler struct {
	nodes []Node    // sorted by name, duplicates dropped: index order is name order
	hot   []nodeHot // per node, what the scan reads for every replica
	ports [][]uint32
	zones []string // sorted; nodeHot.zone indexes it

	workloads map[string]*workload
	bound     map[string]Binding // by replica ID

	// dense holds the per-node counts of one workload (denseFor) so the
	// scan reads them by index; use switches it.
	dense    []int32
	denseFor *workload

	// buckets[z*(MaxScore+1)+k] lists zone z's nodes whose share0 is k;
	// pos[i] is node i's place in its bucket.
	buckets [][]int32
	pos     []int32

	groups    []*group // memoised static filters, most recent last
	zoneScore []int64
	zoneOrder []int32
	portBuf   []uint32
}

// nodeHot is what the scan reads for each node, packed together.
type nodeHot struct {
	freeCPU, freeMem   int64 // allocatable minus what bindings request; may be negative
	cpuRecip, memRecip int64 // see scale
	cpuShift, memShift uint8
	// share0 is freeShare with no request: the least-allocated score can
	// only be lower once a request is taken off, so share0 bounds it and
	// lets the scan skip nodes that cannot win. Kept up to date by record.
	share0 uint8
	zone   int32
	hash   uint64 // of the node's name, for tie breaks
}

// workload counts one workload's replicas per node and per zone.
type workload struct {
	onNode map[int32]int32
	inZone []int32
}

// New indexes a snapshot: nodes sorted by name (a repeated name keeps its
// first node), the resources and host ports the bindings use on each node,
// and each workload's replicas per node and per zone. Bindings to nodes
// not in the snapshot are ignored. New copies what it changes; it never
// modifies the snapshot.
func New(snap Snapshot) *Scheduler {
	nodes := slices.Clone(snap.Nodes)
	slices.SortStableFunc(nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	nodes = slices.CompactFunc(nodes, func(a, b Node) bool { return a.Name == b.Name })

	zones := make([]string, 0, 8)
	for _, n := range nodes {
		zones = append(zones, n.Zone)
	}
	slices.Sort(zones)
	zones = slices.Compact(zones)

	s := &Scheduler{
		nodes:     nodes,
		hot:       make([]nodeHot, len(nodes)),
		ports:     make([][]uint32, len(nodes)),
		zones:     zones,
		workloads: make(map[string]*workload),
		bound:     make(map[string]Binding, len(snap.Bindings)),
		dense:     make([]int32, len(nodes)),
		zoneScore: make([]int64, len(zones)),
	}
	index := make(map[string]int32, len(nodes))
	for i, n := range nodes {
		index[n.Name] = int32(i)
		z, _ := slices.BinarySearch(zones, n.Zone)
		h := &s.hot[i]
		h.freeCPU, h.freeMem = max(n.Allocatable.MilliCPU, 0), max(n.Allocatable.Memory, 0)
		h.cpuShift, h.cpuRecip = scale(n.Allocatable.MilliCPU)
		h.memShift, h.memRecip = scale(n.Allocatable.Memory)
		h.zone = int32(z)
		h.hash = hashString(n.Name)
		h.share0 = uint8(freeShare(h, 0, 0))
	}
	for _, b := range snap.Bindings {
		i, ok := index[b.Node]
		if !ok {
			continue
		}
		b.Requests = clampResources(b.Requests)
		s.record(i, b, s.workloadFor(b.Workload), s.portKeys(b.HostPorts))
	}
	s.buckets = make([][]int32, len(zones)*(MaxScore+1))
	s.pos = make([]int32, len(nodes))
	for i, h := range s.hot {
		k := int(h.zone)*(MaxScore+1) + int(h.share0)
		s.pos[i] = int32(len(s.buckets[k]))
		s.buckets[k] = append(s.buckets[k], int32(i))
	}
	return s
}

// record adds a binding to the view.
func (s *Scheduler) record(i int32, b Binding, w *workload, ports []uint32) {
	h := &s.hot[i]
	h.freeCPU -= b.Requests.MilliCPU
	h.freeMem -= b.Requests.Memory
	if share := uint8(freeShare(h, 0, 0)); share != h.share0 {
		if s.buckets != nil { // New builds them once all bindings are in
			s.move(i, h.share0, share)
		}
		h.share0 = share
	}
	if len(ports) > 0 {
		s.ports[i] = append(s.ports[i], ports...)
	}
	w.onNode[i]++
	w.inZone[h.zone]++
	if s.denseFor == w {
		s.dense[i]++
	}
	if b.Replica != "" {
		s.bound[b.Replica] = b
	}
}

// move moves node i from share bucket from to share bucket to.
func (s *Scheduler) move(i int32, from, to uint8) {
	z := int(s.hot[i].zone) * (MaxScore + 1)
	old := s.buckets[z+int(from)]
	last := old[len(old)-1]
	old[s.pos[i]] = last
	s.pos[last] = s.pos[i]
	s.buckets[z+int(from)] = old[:len(old)-1]
	s.pos[i] = int32(len(s.buckets[z+int(to)]))
	s.buckets[z+int(to)] = append(s.buckets[z+int(to)], i)
}

func (s *Scheduler) workloadFor(name string) *workload {
	w := s.workloads[name]
	if w == nil {
		w = &workload{onNode: make(map[int32]int32), inZone: make([]int32, len(s.zones))}
		s.workloads[name] = w
	}
	return w
}

// use makes w's per-node counts the ones in dense.
func (s *Scheduler) use(w *workload) {
	if s.denseFor == w {
		return
	}
	if s.denseFor != nil {
		for i := range s.denseFor.onNode {
			s.dense[i] = 0
		}
	}
	for i, c := range w.onNode {
		s.dense[i] = c
	}
	s.denseFor = w
}

// portKeys encodes host ports as port<<2 | protocol into a reused buffer;
// ports outside 1..65535 are dropped.
func (s *Scheduler) portKeys(ports []Port) []uint32 {
	s.portBuf = s.portBuf[:0]
	for _, p := range ports {
		if p.Port < 1 || p.Port > 65535 {
			continue
		}
		var proto uint32
		switch {
		case strings.EqualFold(p.Protocol, "UDP"):
			proto = 1
		case strings.EqualFold(p.Protocol, "SCTP"):
			proto = 2
		}
		s.portBuf = append(s.portBuf, uint32(p.Port)<<2|proto)
	}
	return s.portBuf
}

// Schedule places the request's replicas one by one, in order, each on the
// best node that passes every filter, and records each placement in the
// Scheduler's view before placing the next. A replica whose ID is already
// bound in the view (by the snapshot or an earlier placement) keeps its
// node: the plan repeats that binding and nothing is counted twice. The
// same Scheduler state and request always give the same plan.
func (s *Scheduler) Schedule(req Request) Plan {
	p := newPipeline(req.Policy)
	plan := Plan{Bindings: make([]Binding, 0, len(req.Replicas))}
	for k := range req.Replicas {
		r := &req.Replicas[k]
		if b, ok := s.bound[r.ID]; ok && r.ID != "" {
			plan.Bindings = append(plan.Bindings, b)
			continue
		}
		name := cmp.Or(r.Workload, req.Workload)
		w := s.workloadFor(name)
		s.use(w)
		g := s.group(&p, r)
		need := demand{
			Resources: clampResources(r.Requests),
			ports:     s.portKeys(r.HostPorts),
			seed:      hashString(r.ID),
		}
		i := s.pick(&p, g, w, &need)
		if i < 0 {
			plan.Pending = append(plan.Pending, s.explain(&p, g, &need, r.ID))
			continue
		}
		b := Binding{
			Replica:   r.ID,
			Workload:  name,
			Node:      s.nodes[i].Name,
			Requests:  need.Resources,
			HostPorts: slices.Clone(r.HostPorts),
		}
		s.record(i, b, w, need.ports)
		plan.Bindings = append(plan.Bindings, b)
	}
	return plan
}

// demand is what the dynamic filters and scores need of one replica.
type demand struct {
	Resources
	ports []uint32
	seed  uint64
}

func clampResources(r Resources) Resources {
	return Resources{MilliCPU: max(r.MilliCPU, 0), Memory: max(r.Memory, 0)}
}

// scale prepares an integer fixed-point division by alloc: with
// (shift, recip) = scale(alloc), (x>>shift)*recip>>32 is 100*x/alloc
// (within 1) for 0 <= x <= alloc, exactly 100 for x = alloc, and never
// decreases as x grows; no division, no overflow (alloc>>shift fits in
// 32 bits, so the product stays below 101<<32). A zero allocatable gives
// recip 0: such a node scores as full.
func scale(alloc int64) (shift uint8, recip int64) {
	if alloc <= 0 {
		return 0, 0
	}
	if n := bits.Len64(uint64(alloc)); n > 32 {
		shift = uint8(n - 32)
	}
	a := alloc >> shift
	return shift, (100<<32 + a - 1) / a // rounded up, so that x = alloc gives 100
}

// hashString is 64-bit FNV-1a: stable across processes and Go versions,
// unlike maphash, so plans are reproducible anywhere.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is the splitmix64 finaliser; mix(node hash ^ replica seed) orders
// equally scored nodes differently for every replica.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
