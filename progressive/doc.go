// Package progressive decides a workload's progressive rollout across
// clusters (spec.rollout): which clusters run the new template revision
// and which keep the stable one, wave after wave, held to health gates
// for a bake time, and when to stop and roll every cluster back. It is a
// pure function of a snapshot (the rollout's stored progress, the
// clusters as the hub sees them, the members' reports of the new
// revision, the operator's commands, the time): no database, no NATS, no
// clock it was not handed. The placement controller gathers the inputs,
// calls Decide, stores the status it returns and delivers each cluster
// the revision it names.
//
// # Waves
//
// A cluster belongs to the first wave that selects it (by name or label)
// and still has room (a wave's count); clusters no wave takes form one
// last wave. A wave starts its clusters maxParallelClusters at a time
// (the next when those pass their gates), then bakes: its gates must hold
// on every cluster of the wave, continuously, for the bake time. A manual
// wave then waits for a promote, a pause waits its time, and the next
// wave starts. After the last, the new revision is the stable one.
//
// # Gates and rollback
//
// On each cluster given the new revision: its health Ready, at least
// minReady of its desired replicas ready on the new revision, at most
// maxRestarts restarts of them (a replica waiting out its backoff after a
// failure counts its restart to come). A cluster that is not ready within
// the progress deadline, or restarts more than allowed, fails the
// rollout: every cluster goes back to the stable revision at once, with
// the failing measurement as the reason. A gate that has no data yet (no
// report of the new revision) waits and says so: it never passes for
// lack of evidence.
//
// Traffic gates (gates.traffic) judge the requests the gateways sent the
// new revision in a cluster over a window (from when the cluster took
// it at the earliest) against the stable revision's in every cluster over
// the same span (the caller measures both: Cluster.Traffic, Baseline): an
// error ratio more than maxErrorRatio above the stable's, or a p99 past
// the latency limits, fails the rollout with both measurements as the
// reason; fewer than minRequests requests wait (no deadline: silence is
// no evidence either way). A rollout with traffic gates asks to be
// decided again every TrafficRecheck while a cluster runs the revision.
//
// # Partitions, deferrals, operators
//
// Nothing new starts while a cluster of the current wave is not Ready
// (an Unreachable cluster holds the rollout where it is), and a cluster
// that returns after a rollback is given the stable revision: what it is
// given is always what this decision says, never what it ran. A cluster
// that defers rollouts (its freeze label) holds its wave, or with
// onDeferred: skip is passed over and takes the revision once it stops
// deferring after the last wave. An operator's pause holds progress (a
// failing gate still rolls back); abort rolls back; promote passes a
// manual wave.
package progressive
