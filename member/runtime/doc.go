// Package runtime runs the replicas of one node: the part of a node agent
// that turns "these replicas should run here" into processes, containers
// (or simulated replicas), keeps them running and reports what it sees.
//
// # Shape
//
// The node agent hands a Runtime the whole desired set with Apply
// (level-triggered; call it whenever the set may have changed, repeating
// it is harmless). A single supervisor goroutine — a service with Start,
// Stop and a runOnce pass — compares the desired set with the replicas it
// has: it starts what is missing, stops what is no longer desired, and
// replaces a replica whose Generation changed (stop, then start the new
// template). Everything that must happen later (a restart after backoff,
// SIGKILL after the stop grace, the end of a simulated start) is a due
// time in one min-heap; the supervisor sleeps until the first one or
// until something pokes it. Status is a snapshot; Changes carries a
// coalesced signal after every status change, so the agent reports
// upward without polling:
//
//	for range rt.Changes() { report(rt.Status()) } // plus a periodic full report
//
// # Process replicas
//
// A process replica is a real process in its own process group, with a
// minimal environment (the node's PATH, the template's env, then PORT,
// ATOLL_REPLICA, ATOLL_WORKLOAD), its port (the template's first hostPort,
// or a free one from PortRange, kept across restarts) and, when the host
// allows it, its own cgroup v2 directory with cpu.max and memory.max from
// the template's resources; the process is created inside it
// (clone3 CLONE_INTO_CGROUP). When there is no usable cgroup v2 hierarchy
// with the cpu and memory controllers, replicas run anyway and report
// LimitsEnforced=false with the reason.
//
// Exits go through the restart policy (Always, OnFailure, Never) and an
// exponential backoff (Initial, doubling, Max; reset by a run that lasted
// ResetAfter). A start that fails — a command that does not exist — is a
// failed run like any other: its error is the Message and it backs off,
// so nothing hot-loops. A replica ends with its leader process: the
// runtime waits for the leader without reaping it (waitid WNOWAIT), kills
// what is left of the group while the zombie still pins the group ID,
// then reaps. A graceful stop sends SIGTERM to the group and SIGKILL (and
// cgroup.kill) after StopGrace.
//
// Probes run in one goroutine per process run: the startup probe first,
// then liveness and readiness on their periods. Every check is bounded by
// its timeout (an exec probe's whole process group is killed at the
// timeout). Readiness sets Ready; a liveness (or startup) probe that
// reaches its failure threshold stops the process, and the restart policy
// decides (it counts as a failure and as a restart). Until a run first
// passes its readiness (or startup) probe, a failed HTTP or TCP check is
// retried after 50 ms, doubling up to every 250 ms, in the run's first
// 10 s: a replica is ready within a fraction of a second of answering
// rather than a period later
// (a failover's replacements wait on nothing else). Those retries never
// count toward the failure threshold; exec probes and liveness keep their
// period. A container's probes begin when its process runs (runc wrote
// its pid file), not while runc builds it.
//
// # Logs
//
// A replica's stdout and stderr are named pipes in DataDir/run/<replica>/
// that the replica and the runtime both hold open read-write. The replica
// never gets EPIPE, even while no agent runs (it blocks once the 1 MiB
// pipe buffer is full, and the next agent run drains it), so an agent
// restart does not kill replicas through their output. The runtime pumps
// the pipes into DataDir/logs/<replica>/stdout.log and stderr.log, capped
// at LogMaxBytes and rotated to .1, .2 ... (LogMaxFiles files in all).
// Writes that fail (a full disk) are dropped and counted in
// LogBytesDropped; the replica does not notice. Logs reads the files,
// oldest first, and with follow waits for new output across rotations.
// A forgotten replica's logs are deleted; a replaced one's continue.
//
// # Agent restarts
//
// Stop leaves processes running. At each start the runtime writes a
// record in DataDir/replicas/<replica>.json: the spec and its hash, pid,
// process group, the process's start time from /proc/<pid>/stat (which
// defeats pid reuse), port and cgroup. Start reads the records before
// supervising: a process that is still alive with the same start time is
// adopted — supervised again, never restarted. It is not our child, so
// its exit is watched through a pidfd on the runtime's poller (polling
// /proc where pidfds are missing) and reported with an unknown exit code.
// A stale record (the process is gone) is removed, with whatever was left
// of its process group or cgroup. Adopted replicas are left alone until
// the first Apply; from then on an adopted replica that is not desired is
// stopped gracefully. A start whose record cannot be written is killed at
// once: a replica the next agent run could not find would be an orphan.
//
// # Container replicas
//
// An oci replica is a process replica whose process is `runc run` in the
// foreground: runc forwards signals to the container and exits with its
// status, so process groups, exit codes, backoff, probes, records and
// adoption apply unchanged. Before its first start the replica is
// Pulling: Config.Images (member/image) pulls its image in the
// background; a failure is a Backoff with Reason PullFailed and the
// registry's answer as LastError. The digest a tag resolved to is pinned
// for the replica's workload generation, so restarts and the other
// replicas of that generation on the node start from the cache without
// asking the registry again.
//
// Each run gets a bundle in DataDir/bundles/<replica>: an overlay of the
// image's shared, read-only root (from the cache) with an upper directory
// of its own, so a run's writes never reach the cache nor the next run,
// and a start costs no copy. The overlay is the spec's first mount, made
// by runc inside the container's mount namespace, never on the node:
// every runc start reads the node's mount table and copies it into the
// new namespace, and with every container's root there each start cost
// more the more containers the node ran (70 against 47 ms of CPU per
// container at 300). The generated runtime spec gives the
// container pid, ipc, uts and mount namespaces, the host's network
// unless its ports are mapped (the replica's PORT is then a host port, as
// for processes; probes reach it on 127.0.0.1), no capabilities and no new privileges, the template's user
// (else the image's when it is not root, else 65534), a read-only root
// when the template asks (with a writable /tmp), and the template's cpu
// and memory as cgroup limits that runc sets. The container's stdio are
// the replica's log pipes.
//
// Starts do not hold the runtime's lock. The supervisor hands a due
// container to the node's start pool (Config.StartConcurrency slots,
// default 8 per CPU): a start takes a slot, makes its bundle and
// spec and forks `runc run`, then attaches the run under the lock
// (record, exit watcher, probes) and keeps its slot until runc wrote the
// container's pid file (the container's process runs) or exited. So at
// most that many runc processes build containers at once, each one's
// dozen mounts beside the others', while probes and Status go on. Until
// its start ends the replica is Pending "starting the container": a stop
// or replacement waits for the start's end, which then stops what it
// started (so one bundle and one container ID never have two owners); a
// fencing Kill marks it, and it is killed as soon as it runs; a start
// that ends after Stop is recorded and left running, for the next agent
// run to adopt. `runc run --detach` would spare the resident runc per
// container (about 10 MiB) but make the container nobody's child: the
// exit code, and the process machinery above, would need the agent as
// a child subreaper, which is process-wide.
//
// A template whose ports set containerPort maps them: the container gets
// a network namespace of its own (runc brings its loopback up; it reaches
// nothing outside), PORT is the first port's container port, and the
// runtime opens a forward (package portfwd) from each host port (the
// first allocated as for any replica, the others fixed) to its container
// port. The forwards hold the host ports from the first start until the
// replica is forgotten, across the container's restarts; the replica's
// Port (what probes use and gateways are told) is the host port, and a
// probe aimed at a container port goes through its host port. Forwards
// live in the agent: an adopted container is forwarded again by the next
// agent run.
//
// runc's own errors (its JSON log) become the
// run's reason. runc runs with --keep, so the stopped container's cgroup
// outlives it until the runtime deletes it: a failed container whose
// cgroup counted an OOM kill (memory.oom_control under cgroup v1, where
// a hybrid host keeps the memory controller; memory.events under v2)
// ends with reason OOMKilled. A fence (Kill) SIGKILLs the container's init, which takes
// its whole pid namespace; when runc exits the container is deleted and
// its bundle removed (its root went with its mount namespace). At Start, bundles and runc containers
// no adopted replica owns are removed, and a stale record's container is
// deleted with it. With DieWithAgent, runc dies with the agent but the
// container does not (OCI has no parent-death signal): the next agent
// run deletes it through the stale record.
//
// # Simulated replicas
//
// The sim driver runs no process and costs no goroutine: a simulated
// replica is Starting for its start latency (a due time in the heap), then
// either Running and Ready or, with probability failureRate (a random
// source seeded by the replica ID, so runs are reproducible), a failed
// start that goes through the restart policy and backoff like a process.
// One runtime hosts thousands of them.
package runtime
