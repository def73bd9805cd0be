// Package failover holds the hub's failover rules as pure functions: what
// one workload's placement becomes, given the workload, where its replicas
// run now, every cluster's live health and the members' reports, and the
// time. Package placement splits replicas over the clusters it is shown;
// this package decides what it is shown (an Unreachable cluster keeps its
// replicas within the workload's failover grace, an exclusive workload is
// confined to one cluster) and then applies the rules placement knows
// nothing of:
//
//   - graceful purge: a cluster evacuated by a NoExecute taint keeps its
//     replicas until the replacements elsewhere are ready (purge: graceful,
//     a drain or an evacuate drill), and a workload with a disruption
//     budget loses at once, from any such cluster, only what its budget
//     allows;
//   - exclusive sequencing: an exclusive workload starts somewhere new only
//     once every cluster it leaves can run none of it any more;
//   - failback: replicas failover moved off a cluster go back once it has
//     been Ready for the stabilisation window, within the workload's
//     failback rate, make-before-break for a stateless workload;
//   - the capacity ledger: one pass's decisions use up the free capacity
//     in turn, so a mass failover does not pile everything on the cluster
//     that looked emptiest.
//
// Decide composes them; the hub's placement controller gathers the inputs,
// calls it once per workload and commits what it returns. This package
// does no I/O and reads no clock: it must not import the hub, a store or
// NATS (tests/layout_test.go checks).
package failover
