// Package pgserver starts a private PostgreSQL server from the machine's
// binaries.
//
// It serves two callers: `atoll dev`, which keeps its data across restarts
// (Config.Durable = true), and tests, which want a throwaway server that is
// as fast as possible (Config.Durable = false turns fsync,
// synchronous_commit and full_page_writes off). Nothing is downloaded: the
// server is built from the initdb and postgres programs found on PATH or,
// failing that, from the newest version under /usr/lib/postgresql/*/bin
// (the Debian layout). When neither exists Start returns an error wrapping
// ErrNoBinaries, whose message says what to install.
//
// Start runs initdb when Config.DataDir holds no cluster yet. initdb builds
// the cluster in the sibling folder <DataDir>.initdb-tmp, which is renamed
// to DataDir only once initdb has succeeded, so a start that is cancelled
// or killed during initdb never leaves a half-built cluster that a later
// Start would take for a finished one; a leftover temporary folder is
// removed at the next Start. (A DataDir that already exists, empty, such as
// a mount point, cannot be replaced: initdb runs in it and a failed run is
// cleared out again.) After the database "atoll" exists, Start writes the
// marker file DataDir/atoll-ready. A cluster without it is checked before
// use: its database "atoll" is created if missing, and a cluster that an
// interrupted initdb of an older version left half-built makes Start fail
// with a one-line error naming the folder to delete, as does a non-empty
// DataDir with no cluster in it.
//
// Start then runs postgres directly as a child process (not through
// pg_ctl), listening on 127.0.0.1 only and with unix sockets turned off, so
// socket path length limits and stray socket files never matter.
// Readiness is detected by watching the server's log for "database system
// is ready to accept connections"; every log line is also passed to the
// Logger at debug level, and the last few lines are quoted in the error
// when the server exits early or does not get ready in time. With Config.Port = 0 a free loopback
// port is picked at the first start and kept by Restart, so URLs stay
// valid; a port lost to a race is retried with a new one.
//
// Authentication is by password (scram-sha-256). initdb makes the
// superuser "atoll"; its password is generated at the first initdb and
// kept, mode 0600, in the file <DataDir>.password beside the data folder,
// so that it survives restarts while the data folder itself holds only the
// cluster and the marker.
//
// Nothing of Atoll's runs as that superuser once Start returns. Every
// Start makes sure of two more login roles, neither of them a superuser
// nor allowed to create databases or roles: Owner ("atoll_owner"), which
// owns the database "atoll" and its schema and runs the migrations
// (OwnerURL), and Hub ("atoll_hub"), the hub's own login (HubURL), which
// may not create anything and uses only what the migrations grant it
// (package pgstore grants it the tables and sequences after migrating).
// Their passwords are derived from the superuser's (an HMAC, so neither
// tells anything of it) and set at every start as SCRAM verifiers, so no
// password appears in a statement. PrepareDatabase hands a database, its
// schema public and every table, view and sequence in it to Owner, and
// takes CREATE on public from PUBLIC (the default since PostgreSQL 15):
// Start runs it for "atoll" at every start, so a data folder made before
// the roles existed, whose objects the superuser owns, is converted the
// first time. Every hub session is Hub, so the leader election may end a
// stuck leader's session (pg_terminate_backend works on sessions of one's
// own role) without pg_signal_backend.
//
// The database "atoll" is created on the first start, and again on any
// start that finds it missing; HubURL and OwnerURL point at it, URLAs at
// any database as any role, and SuperuserURL at any database as the
// superuser.
//
// initdb and postgres refuse to run as root. When the current process is
// root, both run as the unprivileged "postgres" account instead: the data
// folder and the password file are handed to it, and folders above the data
// folder that it cannot traverse are given o+x when they belong to us (never
// read or write for others, never "/", a top-level folder or the home
// folder); otherwise Start explains which folder is in the way.
//
// The server must not outlive its parent. The child is started from a
// goroutine that locks its OS thread for the child's whole life and asks
// the kernel (Pdeathsig) to send SIGQUIT, PostgreSQL's immediate shutdown,
// when that thread dies, which happens when our process is killed, even by
// SIGKILL (initdb is started the same way, and gets SIGKILL). WAL recovery
// at the next start loses no committed write. If such an orphan is still
// shutting down when Start runs again, Start waits a few seconds for it to
// go away before giving up with a clear error. Stop asks for a fast
// shutdown (SIGINT) and waits for the exit, killing the server only if it
// does not exit within 30 seconds.
//
// The package is for Unix; the parent-death signal is only requested on
// Linux.
//
// It owns starting and stopping the server process. It must not hold
// Atoll's data model (package pgstore does).
package pgserver
