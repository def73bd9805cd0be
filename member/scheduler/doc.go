// Package scheduler is a member cluster's scheduler: it decides which node
// of the region runs each replica. It only decides — no I/O, no clock, no
// goroutines. New indexes a snapshot of the region's nodes and bindings;
// Schedule turns a batch of replicas into a Plan: a node for each replica
// it could place and, for each it could not, a reason a person can read,
// such as "0/5 nodes: 3 insufficient memory, 2 tainted (no toleration)".
// The caller (the member's replica controller) commits the plan and
// re-checks it against the region's current state.
//
// # Filters, then scores
//
// Each replica goes through a pipeline built by one constructor
// (newPipeline). Filters come first, in this order: not ready, cordoned,
// node selector, required affinity, taints (NoSchedule and NoExecute need
// a toleration, with Kubernetes' matching rules), host ports, CPU, memory.
// Every node a replica cannot use is charged to the first filter that
// rejects it, so the counts of a Pending add up to the number of nodes,
// and the order is chosen for the message: what is wrong with the node
// itself, then what the replica asked for, then what the node asks of the
// replica, then what bindings use — "insufficient memory" is reported
// only for nodes that would take the replica if they had room. The first
// five filters depend only on the node and the replica's placement spec:
// they run once per distinct spec and are memoised, since a workload's
// replicas share theirs. The last three depend on what is bound and run
// for every replica. With Policy.ZoneSpread, one more filter runs after
// them: only the zones holding the fewest replicas of the workload, among
// the zones where the replica fits at all, are kept, so the skew between
// zones stays within 1 whenever that is feasible and the filter never
// leaves a replica pending by itself.
//
// The nodes that pass are scored, each step giving 0..MaxScore, and the
// weighted sum decides: the free share (spread, the default) or the used
// share (binpack) of CPU and memory after taking the request (weight 1);
// zones holding fewer replicas of the workload (weight 2, in every
// policy, as Kubernetes' default topology spread); with
// Policy.AntiAffinity, nodes holding fewer replicas of the workload
// (weight 2); preferred node affinity, normalised so the best node scores
// MaxScore (weight 2). Scores are integers.
//
// # Determinism
//
// Nodes are sorted by name, and equal scores are broken by a stable
// 64-bit hash of the replica ID and the node name (FNV-1a, mixed), then by
// the name: replicas that score the same everywhere do not all land on the
// first node, yet the same snapshot and requests give the same plan on any
// machine, whatever the order in which the snapshot lists nodes and
// bindings. Schedule places replicas one by one in the request's order
// and records each placement in the Scheduler's view before the next, so
// neither one call nor later calls on the same Scheduler over-commit a
// node or reuse a host port. A replica whose ID the view already binds
// keeps its node.
//
// # Complexity
//
// New is O(N log N + B) for N nodes and B bindings. A new placement spec
// costs one pass over the nodes (the last 16 specs are kept). Placing a
// replica is at most one pass over the nodes the spec allows, allocating
// nothing, and usually much less, without sampling: each zone keeps its nodes in buckets by free
// share, which bounds a node's resource score (taking a request only
// lowers it), and the scan visits buckets from the emptiest down, stopping
// at the first whose bound plus the most the other steps could add is
// below the best score found. Only a strictly lower bound stops it, so the
// answer is exactly that of a full scan (a property test checks this).
// With ZoneSpread, zones are visited by their count of the workload's
// replicas, and zones holding more are not scanned once a zone holding
// fewer has a feasible node. A replica left pending costs one more pass
// to count the reasons. Binpack has no useful bound and scans every
// allowed node. See BENCHMARKS.md for figures.
package scheduler
