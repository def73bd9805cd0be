// Package datasync sends each member the Configs and Secrets its
// workloads use, and nothing else ("delivery on need").
//
// A pass (on the leader, every few seconds and when a workload, a config,
// a secret or a placement changes) works out from the placement rows, the
// workloads' revisions and their rollouts which versions of which items
// each cluster needs (Need, pure): a version is the resourceVersion of the
// write that set an item's values, and a workload's template pins the
// versions it uses (api.AnnotationData), so a cluster needs those of the
// revision it is given, of the one before while it is not settled on it,
// and of a rollout's stable revision while the rollout is under way (old
// and new values side by side on a wave's clusters; a later wave's are
// not sent the new values before their wave). It asks each Ready member
// what it holds (protocol.DataSubject, an empty request), sends the
// versions it lacks and takes back the versions and items no workload of
// that cluster needs any more. A member the hub cannot reach keeps what
// it has: nothing is removed but by an answered request. Then it lets
// the store drop the older versions no kept revision pins
// (pgstore.PruneDataVersions).

// Values travel over the member's leaf connection (TLS when the hub has
// certificates) on the member's own subjects, which only its NATS account
// may read; the member stores them sealed under its own data key
// (member/state.DataStore). Secrets' values are read through Values (the
// hub's vault) only when they must be sent.
//
// The package must not decide placement, nor log a value.
package datasync
