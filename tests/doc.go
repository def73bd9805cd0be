// Package tests holds end-to-end and fault tests over whole topologies: real binaries, real PostgreSQL, real processes.
//
// The tests build the atoll binary once (TestMain, with the go on PATH) and
// drive it the way a user does: `atoll dev` started as a child process on a
// fresh data folder, and the client verbs run as separate processes against
// it, plus a few plain HTTP requests where the test needs exact status codes.
// Nothing is faked: `atoll dev` starts a private PostgreSQL from the machine's
// binaries (as the "postgres" user when the tests run as root).
//
// Tests that only read and write distinct objects share one dev stack; a test
// that kills or restarts a stack gets its own. Every process a test starts is
// stopped by the test, and a test fails when a PostgreSQL server it caused to
// start is still running afterwards.
//
// The tests wait on signals: the readiness banner on the dev process's
// standard error, a process's exit, the next JSON value on a watch's standard
// output, a line in a member's log. Two things are polled, for bounded times,
// because they live in processes that are not our children and announce
// nothing: PostgreSQL processes (the dev process started them), which a test
// can only observe in /proc, and a cluster's health as the hub's API reports
// it (a member's heartbeats are between it and the hub).
//
// Member tests run `atoll member` processes against the shared dev stack and
// deregister their clusters when they end, so that -count > 1 can reuse the
// names. Every member runs in its own process group, killed in cleanup.
package tests
