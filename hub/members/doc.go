// Package members is the hub's side of its member clusters: who they are
// and how they are. The Registrar admits a member (join token, then member
// token; its Cluster, member token and NATS identity in one transaction),
// each time on proof that it holds its NATS key (it signs a nonce the
// Registrar issued, kept in PostgreSQL so that any hub accepts it), keeps
// a registered name to its key (another key is refused, as a Warning event
// on the cluster, until an admin re-issues the identity) and deregisters
// it; Heartbeats serves the members' heartbeats on NATS
// and answers each with the ack that is the member's lease; the Monitor
// turns heartbeats and their absence into cluster health (Ready, Suspect
// after two missed intervals, Unreachable after the grace), written to the
// store only on transitions, with an event, and fenced by the leader term.
//
// Every hub serves heartbeats and keeps its Monitor warm; only the leader
// writes health and gives leases (and, for LeaderAckGrace, a hub that just
// stopped leading). Live is what the other controllers read of a cluster
// now (failover.Live). This package decides no placement and serves no
// HTTP: package placer reads Live, package httpapi routes registration here.
package members
