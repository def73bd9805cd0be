// Package member is a regional member cluster's agent: it registers with
// the hub, keeps its identity on local disk, runs the region's own NATS
// server as a leaf node of the hub's NATS (with its own JetStream domain,
// so the region keeps a bus and state when cut off) and heartbeats to the
// hub.
//
// # Identity
//
// On first start the member makes a NATS user key pair, registers with a
// join token sending only the public key, and keeps the seed, the member
// token the hub returns and the signed user JWT in its data folder (files
// of mode 0600). Later starts re-register with the member token, never the
// join token. When the hub cannot be reached at a later start, the member
// starts with the credentials it kept and retries in the background: a
// region does not stop because the hub is away.
//
// # Heartbeats
//
// Every interval the member sends a heartbeat request with its capacity
// summary; the hub's ack is the member's lease on the hub (LastAck).
//
// Member packages never import the hub's packages or a database driver;
// the wire contract is package protocol, the API contract package api.
package member
