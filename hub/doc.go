// Package hub wires Atoll's control plane together: Server builds the
// parts from Config, starts and stops them, and follows the leadership.
// It owns no behaviour of its own beyond that wiring and what it does
// when it gains or loses the leadership (the atoll_leader gauge, a
// LeaderElected event). The parts live in their own packages:
//
//   - httpapi: the REST API, auth, watches, logs and the console's mount;
//   - members: registration, heartbeat serving and the health monitor;
//   - placer: the placement controller and status folding, deciding
//     through package failover (pure) and package placement (pure);
//   - drill: failover drills (plan, run, measure);
//   - compactor: change-log and event retention;
//   - imagepin, standby: oci images' tags resolved once per revision and
//     delivered pinned; images kept warm where workloads may fail over;
//   - pgstore, natsbus, leader: PostgreSQL, NATS and leader election.
//
// Several hubs may share one PostgreSQL: all serve the API and watches
// and hear every heartbeat; the one package leader elects runs the
// controllers (placer, health writes, status folder, drills), whose writes
// are fenced by its leader epoch and audited with it.
//
// It must not grow logic of its own: a new capability gets its own
// package, and Server only builds, starts and stops it (ARCHITECTURE.md).
package hub
