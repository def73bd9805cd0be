// Package hub is Atoll's control plane: the REST API under /api/v1 (with
// its OpenAPI 3.1 document at /openapi.json), authentication and roles,
// watches over Server-Sent Events, health and readiness, and the
// background services that keep the store tidy.
//
// The API is declared with huma on a chi router, so the OpenAPI document is
// generated from the Go types in package api. Every error is an RFC 9457
// problem (application/problem+json) with a stable code; problems about
// input carry the location of each bad field ("body.spec.replicas",
// "query.labelSelector"). Input problems are always 4xx; a database that
// cannot be reached is 503 with Retry-After; only a bug is 500, and then
// the user gets a request id while the detail goes to the log.
//
// Each route declares the role it needs (viewer, operator, admin) in its
// operation metadata; one huma middleware authenticates the bearer token
// and enforces it, and refused writes are audited.
//
// Several hubs may share one PostgreSQL (hubs.go): all serve the API and
// watches and hear every heartbeat; the one package leader elects runs the
// controllers (placer, health monitor, status folder, drills), whose writes are
// fenced by its leader epoch and audited with it.
//
// # Failover drills
//
// A Drill is a resource whose creation starts a fault: an evacuation (a
// NoExecute taint), an outage or a partition (a command each target member
// must acknowledge). drillplan.go decides (a pure plan of where the
// targets' replicas go, workload after workload, each using the capacity
// the ones before took); drills.go serves the API (create refuses what
// the plan shows cannot be absorbed, and an overlap with a running drill
// under the store's write lock); drillrun.go is the leader's controller,
// which puts the fault in place, samples recovery every 200 ms from the
// members' fresh status reports and the placements (drillmeasure.go
// measures), lifts the fault at the end or on abort, measures failback
// and writes the report. A drill found running without the hub that ran
// it is restored and ended as interrupted.
package hub
