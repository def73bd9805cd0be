// Package pgtest gives each test its own database on one private
// PostgreSQL per test binary.
//
// A test binary that needs PostgreSQL calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Main starts one server with package pgserver, in a temporary folder and
// without durability (fsync and friends off: a test database never has to
// survive a crash), runs the tests, then stops the server and removes the
// folder. Starting PostgreSQL once per binary costs about two seconds;
// after that each test pays only for a CREATE DATABASE, so tests stay
// isolated without being slow.
//
// NewDatabase creates a fresh, empty database for the calling test and
// returns its URL as the superuser; NewDatabaseRoles creates one owned by
// pgserver's Owner role, as the database "atoll" of `atoll dev` is, and
// returns its URLs as the hub's unprivileged role (for the store's pool
// and the leader elector), as the owner (for migrations) and as the
// superuser. Either database is dropped, WITH (FORCE) so that pools the
// test forgot to close do not block it, when the test ends. Database names
// are t_<counter>_<random>, valid unquoted identifiers that never collide
// across parallel tests. NewDatabase is safe to call from parallel tests.
//
// Missing PostgreSQL binaries are an error, not a reason to skip: Main
// prints what to install and exits with status 1, so that a machine
// without PostgreSQL cannot pass the tests by silently running none of
// them.
//
// Server returns the running server for tests about PostgreSQL being down:
// such a test calls Server().Stop() and later Server().Restart(ctx), which
// brings it back on the same port so that URLs stay valid. Such a test must
// not run in parallel with others, and must restart the server before it
// ends. Setting ATOLL_PGTEST_LOG=debug passes the server's log to stderr.
//
// It is for tests only: no non-test package may import it.
package pgtest
