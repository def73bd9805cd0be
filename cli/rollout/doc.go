// Package rollout is the logic of the CLI's `atoll scale` and `atoll
// rollout status|history|undo|restart` for a workload's in-region rolling
// update: following a rollout until every cluster runs the new template
// and is available (or it stalls), printing the hub's revisions, returning
// to one, and restarting every replica.
//
// It talks to the hub only through the REST API (package api/client);
// every change is an ordinary update or merge patch of the workload, with
// a resourceVersion precondition where a stale read could undo someone
// else's change, so the hub audits it and records its revision like any
// other.
//
// It owns what the verbs do and print. It must not parse flags (cmd/atoll
// does) or hold state between calls.
package rollout
