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
// # The region's NATS
//
// Nobody connects to it anonymously (nodeauth.go): the member's own
// connection uses a key made at start and kept in memory; tools on the
// member's machine use the admin key in its data folder (admin.nk); a
// node agent enrolls its own key once with the node join token
// (node-join-token) and connects with that key afterwards, allowed only its
// own subjects (heartbeats, its bindings, its logs, its inbox), never
// JetStream or desired state. Enrolled keys live in the region's KV; a key
// deleted there (RevokeNode) has its connections closed at once. Node
// agents never read the member's KV: the member answers their bindings
// requests and tells them when their bindings changed (nodeserve.go).
//
// # Heartbeats
//
// Every interval the member sends a heartbeat request with its capacity
// summary; the hub's ack is the member's lease on the hub (LastAck).
//
// Member packages never import the hub's packages or a database driver;
// the wire contract is package protocol, the API contract package api.
package member
