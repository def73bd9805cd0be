// Package pgstore keeps the hub's truth in PostgreSQL: objects of every
// kind, the change log that watches read, the audit log and token hashes.
//
// # Writes
//
// Every mutation is one transaction that writes the object, a change-log
// row and an audit row, then NOTIFYs watchers. Writers take no lock that
// all of them share: a transaction locks the rows it changes (FOR UPDATE,
// or the insert's own) and nothing else, so writes to different objects
// run in parallel and a hub stopped in a transaction (SIGSTOP, a VM pause)
// holds up only writes of the rows it holds. Each write transaction bounds
// itself: lock_timeout (Config.LockTimeout, 3 s) and statement_timeout
// (10 s) for its own waits, and the pool's
// idle_in_transaction_session_timeout (Config.IdleInTxTimeout, 1 s) ends
// the session of a hub that stopped between two statements, which
// releases its rows. A deadlock victim runs again (Store.InTx).
//
// # resourceVersions and the watch horizon
//
// A transaction's first statement assigns its transaction id (xid,
// pg_current_xact_id); the k-th object it writes gets resourceVersion
// xid<<20 + k. Versions are unique and grow with transaction ids, but
// transactions commit in any order, so the change log is not always a
// gap-free prefix: version N may be committed while a lower one, of a
// transaction still running, is not yet.
//
// Readers therefore read only below the watch horizon: for the snapshot a
// read runs in, H = pg_snapshot_xmin(pg_current_snapshot())<<20, the
// oldest transaction id still in progress, shifted. The proof of order:
//
//   - Every transaction with an id below xmin has ended, so every change
//     below H is either committed, and visible in the reading snapshot, or
//     never will be (its transaction rolled back). Nothing can later
//     appear below H.
//   - Every transaction in progress, and every one yet to begin, has an id
//     at or above xmin, so all the versions it will ever write are at or
//     above H.
//   - Snapshots' xmin never decreases, so neither does H.
//
// A reader at version A that reads the changes in (A, H) in order and
// moves A to the last one read has therefore seen every change at or
// below A, and the next read returns only higher versions: no gap and no
// reorder, on any hub, since the horizon is the database's, not a
// process's. Resuming from any version A a watcher was sent gives the
// same rest. The compactor cuts only below the horizon (and below the
// newest row), so 410 means what it did: the log no longer reaches A.
//
// The price is latency, not throughput: a change becomes readable once
// every transaction that began before it has ended. The hub's own write
// transactions last milliseconds, and a stopped hub's at most
// IdleInTxTimeout; the horizon is the server's, so a long transaction
// that holds a transaction id in any database of the same PostgreSQL
// server (a batch job, a manual BEGIN left open) delays watches, never
// reorders them. Reads in transactions that write nothing take no id and
// hold nothing back.
//
// A list reads its page in one REPEATABLE READ snapshot and returns H-1
// of that snapshot as its resourceVersion: every change at or below it is
// in the list. The list may also show changes above it (transactions that
// began before the oldest one still running, and committed before the
// snapshot); a watch from the list's version repeats those, in order, so
// applying the stream to the list still ends at the log's state. The
// API's watch that starts with a list (ListOptions.Covered) skips exactly
// those. Clients that list and then watch themselves may see such an event
// again, with the resourceVersion they already hold.
//
// Why not the alternatives: the global advisory lock this replaced made
// writes one at a time and let one stopped hub stall every hub's writes
// (tens of seconds, BENCHMARKS.md); ordering per kind keeps both
// problems for the kind everyone writes (Workloads); a sequence plus a
// gap-filling reader that waits a fixed time for missing numbers turns a
// slow writer into a lost change. Transaction ids give the order
// PostgreSQL already keeps, for free.
//
// Versions from transaction ids are large numbers (a database's first
// writes are near 2^30) and grow by about a million per write
// transaction; they stay below 2^53, exact in JavaScript, for the first
// 8 billion transaction ids. A transaction writes at most 2^20 objects.
//
// A SpecHook (OnSpecChange) runs inside the transaction of every write
// that creates an object of its kind or changes its spec, so rows that
// must agree with the object (a workload's revisions) commit with it or
// not at all.
//
// Round trips are what a write costs on a busy machine, so a write sends
// as few as its checks allow: BEGIN goes with the transaction's first
// statement; an object's row goes with its change-log and audit rows;
// statements whose results no one reads (a revision's row and trim) are
// held back to go with the next statement or with COMMIT (pendingConn);
// the wake-ups go after COMMIT, many writes' in one NOTIFY transaction,
// at least wakeupGap (5 ms) apart under a stream of writes (wakeups: a
// NOTIFY inside the transaction would serialise every writer's commit,
// one per write cost a second transaction each, and every one costs each
// hub a horizon read and its followers a change-log read);
// a Batch writes many objects at once after one LockAll. Store.Create
// of a kind whose spec hooks read no resourceVersion
// (OnSpecChangeUnversioned: a workload's) is one round trip: BEGIN is
// held back too, the row's version is drawn in SQL from the
// transaction's id (the same xid<<20 + k), one statement writes the row
// and, from the version it was given, its change-log and audit rows
// (createSQL), the change-log row's object rendered in two halves
// around the version, and the hooks' held rows go with
// COMMIT; the version is known once COMMIT answered. API tokens are read
// from a short-lived cache (tokenCache). Readers of the change log share one reader per kind
// (changeFeed).
//
// # Watches
//
// LISTEN/NOTIFY carries only wake-ups. A woken watcher reads the changes
// table from the last version it delivered, up to the horizon, so a lost
// notification delays an event but never loses it. A change that was
// committed above the horizon is read on a later wake-up: the one of the
// transaction whose end moves the horizon past it (every write NOTIFYs
// once it committed), or the watcher's keepalive. A wake-up carries the
// horizon it was sent at (Subscription.Passed), and a woken reader asks
// only for the changes below it (Store.ChangesBelow): the kind's one
// reader of the log (changeFeed) answers every reader woken together
// from one read that reaches that horizon, however they come back,
// where a read begun after each call (Store.Changes) would read again
// for each that comes while a read is under way. A compactor trims the
// change log; a watch that resumes from before the trimmed horizon gets
// ErrGone (HTTP 410) and must list again.
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
