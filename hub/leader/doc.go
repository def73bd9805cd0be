// Package leader elects the one hub replica that runs the controllers
// (placement, health, failover, drills) when several hubs share one
// PostgreSQL, and fences the writes of a hub that has lost the election.
//
// # Election
//
// An Elector holds its own PostgreSQL connection, opened from a database
// URL and never taken from a pool: a session advisory lock lives exactly as
// long as the session that took it, so the connection must point straight
// at PostgreSQL (a transaction-pooling proxy such as PgBouncer would hand
// the lock to whichever session happens to run the statement). Every
// RetryEvery a follower tries pg_try_advisory_lock; the winner, in one
// transaction on the same connection, locks the single leader_epoch row
// FOR UPDATE, bumps its epoch and records its name, backend pid and a
// heartbeat time. The leader then refreshes heartbeat_at every RetryEvery;
// a refresh that fails or times out means the session (and with it the
// lock) may be gone, so the elector steps down at once, closes the
// connection and campaigns again from a new one. Changes signals every
// gain and loss.
//
// # Takeover
//
// When a leader process dies or stops cleanly, PostgreSQL ends its session
// and frees the lock, and a follower takes it at its next attempt: within
// RetryEvery (1 s by default). A leader that is paused (SIGSTOP, a long GC
// or VM pause) or cut off keeps its TCP session, and with it the lock, for
// as long as the kernel answers keepalives for it, so waiting for
// PostgreSQL to notice is not enough. Hence the lease: a follower that
// finds heartbeat_at older than Lease (3 s by default, measured on the
// database clock, so hub clocks need not agree) terminates the backend that
// holds the lock with pg_terminate_backend, provided it is the one whose
// pid the row records, and takes the lock. A stuck leader is therefore
// replaced within Lease + RetryEvery (about 4 s by default).
// pg_terminate_backend needs the follower to connect as the same role as
// the holder, or as a member of pg_signal_backend.
//
// # Fencing
//
// Losing the lock does not stop a paused leader's goroutines from finishing
// what they were doing when it resumes. Every leader-only write therefore
// calls Fence (or CheckEpoch with the epoch its work began under) inside
// its own transaction: it reads the epoch with SELECT ... FOR KEY SHARE and
// fails with ErrNotLeader when a newer leader has bumped it. The row lock
// orders the check against a takeover: the new leader's FOR UPDATE waits
// for fenced transactions in flight to commit, and a fenced transaction
// that starts after the bump sees the new epoch. FOR KEY SHARE does not
// conflict with the holder's heartbeat UPDATE, so a long leader
// transaction never delays its own heartbeat. In REPEATABLE READ or
// SERIALIZABLE transactions a check that races a takeover fails with a
// serialization error instead of ErrNotLeader; either way nothing commits.
//
// A takeover waits for fenced transactions in flight for at most
// RetryEvery. A process stopped in the middle of one (SIGSTOP between two
// statements) leaves its session idle in the transaction, holding the row
// for as long as the session lives; the new leader, which already holds the
// lock, terminates such sessions (they roll back) and takes the row. A
// transaction that is still running is never terminated: the campaign gives
// up after Lease and tries again.
//
// IsLeader also turns false (and Epoch 0) as soon as the elector's own last
// successful heartbeat is older than Lease on its own clock, so a resumed
// leader stops starting new work straight away; Changes fires when its next
// round finds the session gone.
//
// # Seeing the hubs
//
// Every elector's connection carries application_name "atoll-leader
// <holder>", leader and followers alike, so Hubs lists the hubs sharing
// the database from pg_stat_activity, with the current term from the
// leader_epoch row: no registry of its own to keep.
//
// # Use
//
// A hub runs one Elector (Start, and Stop on shutdown: Stop unlocks at once,
// so a rolling restart hands over without waiting for a round) and starts
// its controllers when Changes reports IsLeader, stopping them when it no
// longer does. Leader-only transactions should be short, well under Lease:
// a takeover waits for them, and gives up and retries a round later after
// Lease.
//
// It owns the election and the fence; Leadership, Sole and Audited are
// what every controller takes. It must not know what the controllers do.
package leader
