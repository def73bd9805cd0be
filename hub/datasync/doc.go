// Package datasync sends each member the Configs and Secrets its
// workloads use, and nothing else ("delivery on need").
//
// A pass (on the leader, every few seconds and when a workload, a config,
// a secret or a placement changes) works out from the placement rows and
// the workloads' templates which items each cluster needs (Need, pure),
// asks each Ready member what it holds (protocol.DataSubject, an empty
// request), sends what is missing or older than the hub's (the item's
// resourceVersion is its delivery version: a key-encryption key rotation
// does not change it, a recreated secret does) and takes back what no
// workload of that cluster uses any more. A member the hub cannot reach
// keeps what it has: nothing is removed but by an answered request.
//
// Values travel over the member's leaf connection (TLS when the hub has
// certificates) on the member's own subjects, which only its NATS account
// may read; the member stores them sealed under its own data key
// (member/state.DataStore). Secrets' values are read through Values (the
// hub's vault) only when they must be sent.
//
// The package must not decide placement, nor log a value.
package datasync
