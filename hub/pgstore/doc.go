// Package pgstore keeps the hub's truth in PostgreSQL: objects of every
// kind, the change log that watches read, the audit log and token hashes.
//
// # Writes
//
// Every mutation is one transaction that writes the object, a change-log
// row and an audit row, then NOTIFYs watchers. The resourceVersion comes
// from one global sequence. To make the change log a gap-free, ordered
// stream, a writing transaction takes a transaction-scoped advisory lock
// first thing and holds it until commit: resourceVersions are therefore
// committed in increasing order, and a reader that has seen version N has
// seen every version below N. Taking it before any row lock also rules out
// deadlocks between writers. Reads never take it.
//
// A SpecHook (OnSpecChange) runs inside the transaction of every write
// that creates an object of its kind or changes its spec, so rows that
// must agree with the object (a workload's revisions) commit with it or
// not at all.
//
// # Watches
//
// LISTEN/NOTIFY carries only wake-ups. A woken watcher reads the changes
// table from the last version it delivered, so a lost notification delays
// an event but never loses it. A compactor trims the change log; a watch
// that resumes from before the trimmed horizon gets ErrGone (HTTP 410) and
// must list again.
//
// # Errors
//
// Domain failures come back as *api.Error with a stable code (NotFound,
// AlreadyExists, Conflict, Gone). When PostgreSQL cannot be reached the
// error has code Unavailable, which the API turns into 503 with
// Retry-After, never 500.
//
// # Secrets and roles
//
// The NATS signing seeds are never stored in clear: NATSKeys seals them
// with a Sealer (package hub/keyring, under a key kept outside the
// database), bound to their row, and seals on the way a row an earlier
// version wrote in clear; RewrapSecrets seals everything again under a new
// key in one transaction. A Sealer that lacks the key is an error, never a
// reason to make new seeds.
//
// The hub's pool need not own anything: Open runs the migrations as
// Config.MigrateURL's role (the schema's owner) and then grants the pool's
// role what the hub uses, on today's tables and, through default
// privileges, on those of later migrations. Open warns when the pool's
// role is a superuser.
//
// It owns the schema, the change log and the audit log. It must not
// decide anything about the objects it stores: controllers and the API do.
package pgstore
