// Package controller is a member's replica controller: it keeps, inside
// one region, the desired number of replicas of every workload the hub
// gave the member, on healthy nodes, and reports how they are doing.
//
// It is level-triggered. Each pass (RunOnce) reads the desired workloads
// and the bindings from the member's KV and the node registry's view of
// liveness, decides with package scheduler, and writes bindings; node
// agents run what is bound to them. A node whose heartbeats stop for the
// grace (default 3 s) is NotReady and its replicas are bound elsewhere;
// when it returns, its bindings are gone, so its agent stops the replicas
// that moved. After a member restart every known node gets one grace
// before it can be declared NotReady, so a restart does not reshuffle the
// region. A member that has not read its nodes' heartbeats (more than an
// eighth of a beat's worth unread) judges no node whose grace runs out
// meanwhile lost for up to two graces (a node lost before stays lost):
// an overloaded member does not move the replicas of healthy nodes for
// its own lateness. Each node lost is told (a Warn line,
// member.nodes.lost). Only explicit tombstones from the hub remove a
// workload's replicas.
//
// A pass covers every workload at least every resync period (1 s), and at
// once when a node appears, changes or is lost. In between, a pass woken
// by a delivery or by a node's replica changes (WakeFor) plans only the
// workloads concerned, scheduled around everything else bound in the
// region, so a burst of a thousand deliveries does not plan the whole
// region a thousand times.
//
// Deciding is separate from doing: plan (pure) computes the changes from a
// snapshot; RunOnce reads the snapshot, calls plan and applies the result.
package controller
