package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/image"
)

// Phases a replica goes through.
const (
	PhasePending   = "Pending"   // desired, not started yet (or waiting for a port)
	PhasePulling   = "Pulling"   // oci: its image is being pulled
	PhaseStarting  = "Starting"  // started, startup probe (or sim start latency) not passed yet
	PhaseRunning   = "Running"   // running; Ready says whether it takes traffic
	PhaseBackoff   = "Backoff"   // exited or failed to start; restarts when the backoff ends
	PhaseSucceeded = "Succeeded" // exited 0 and the restart policy keeps it down
	PhaseFailed    = "Failed"    // failed and the restart policy keeps it down
	PhaseStopping  = "Stopping"  // being stopped (SIGTERM sent, SIGKILL after StopGrace)
)

// BackoffConfig is the crash-loop backoff between restarts: the first
// restart waits Initial, each next one twice as long up to Max, and a run
// that lasted ResetAfter starts the sequence again. Zero fields mean the
// defaults: 10s, 5m and 10m.
type BackoffConfig struct {
	Initial    time.Duration
	Max        time.Duration
	ResetAfter time.Duration
}

// Config configures a Runtime. Zero values mean the defaults.
type Config struct {
	// DataDir holds the node's replica state: pid records
	// (DataDir/replicas), log pipes (DataDir/run) and logs
	// (DataDir/logs/<replica>/stdout.log, stderr.log and rotated copies).
	// Required.
	DataDir string
	// Logger receives the runtime's own logs (nil: discarded).
	Logger *slog.Logger
	// Now is the clock for timestamps and backoff deadlines (nil: time.Now).
	Now func() time.Time
	// Backoff is the restart backoff.
	Backoff BackoffConfig
	// LogMaxBytes caps one log file before it is rotated (default 10 MiB).
	LogMaxBytes int64
	// LogMaxFiles is how many files a stream keeps, the current one
	// included (default 3).
	LogMaxFiles int
	// StopGrace is how long a replica has between SIGTERM and SIGKILL
	// (default 10s).
	StopGrace time.Duration
	// CgroupRoot is the cgroup v2 directory under which each replica gets
	// its own cgroup. Empty: <cgroup2 mount>/atoll when a cgroup v2
	// hierarchy with the cpu and memory controllers is mounted and
	// writable; otherwise limits are not enforced and every replica's
	// status says why.
	CgroupRoot string
	// PortRange is the inclusive range ports are allocated from when a
	// template does not fix a host port (default 20000-29999).
	PortRange [2]int
	// DieWithAgent gives every replica process a parent-death signal
	// (SIGKILL): when the agent dies, so do its replicas, and the member
	// places them elsewhere; no replica outlives its agent unsupervised.
	// Without it, replicas outlive the agent and a restarted agent adopts
	// them. (The signal reaches the replica's main process; processes it
	// started itself are reached only through its cgroup.)
	DieWithAgent bool
	// Path is the PATH replicas' commands and exec probes are looked up
	// in, and that replicas get (empty: the agent's own PATH). atoll dev
	// puts a folder holding a copy of itself first, so that "command:
	// atoll" runs wherever the dev stack was started from.
	Path string
	// Images is the node's image cache, which oci replicas pull through
	// (nil: oci replicas fail, saying the node cannot run them).
	Images *image.Store
	// Runc is the OCI runtime binary (empty: runc on PATH or in
	// /usr/sbin). Without one, oci replicas fail and say why.
	Runc string
	// StartConcurrency is how many containers this node starts at once:
	// each prepares its bundle (overlay mount, config.json) and runs
	// `runc run` until the container's process runs, outside the
	// runtime's lock (default: 8 per CPU, at least 16). More wait. A
	// start spends most of its time in runc waiting on the kernel, so
	// the default is well above the CPUs: with 4 slots on 2 CPUs, 100
	// containers took 10 s to start where the lock had allowed 4 s.
	StartConcurrency int
}

// ReplicaSpec is one replica this node should run.
type ReplicaSpec struct {
	ID         string
	Workload   string
	Generation int64
	Template   api.ReplicaTemplate
	// Data are the values of the template's Configs and Secrets; never
	// written to the replica's record (json "-"), refreshed at every
	// Apply.
	Data *ReplicaData `json:"-"`
}

// ReplicaData is what one replica gets of Configs and Secrets: the values
// of its env references (by variable name) and its files. Missing names
// what its member could not give: the replica does not start
// (ReasonMissingData) until it arrives.
type ReplicaData struct {
	Env   map[string]string
	Files []ReplicaFiles
	// RegistryAuth is the template's imagePullSecret (a docker
	// config.json): oci replicas pull with it.
	RegistryAuth []byte
	Missing      []string
}

// ReplicaFiles is one folder of files under the replica's $ATOLL_FILES:
// one file per key, 0400 for a secret's, 0444 for a config's.
type ReplicaFiles struct {
	Dir    string
	Secret bool
	Values map[string][]byte
}

// Reasons of a replica's last failure (ReplicaStatus.Reason).
const (
	ReasonExecFailed  = "ExecFailed"  // the process could not be started
	ReasonExited      = "Exited"      // it exited with a non-zero code
	ReasonSignaled    = "Signaled"    // a signal killed it
	ReasonOOMKilled   = "OOMKilled"   // the kernel killed it over its memory limit
	ReasonProbeFailed = "ProbeFailed" // a startup or liveness probe gave up, or readiness fails
	ReasonFenced      = "Fenced"      // killed because the node's lease on the hub ran out
	ReasonConfig      = "InvalidSpec" // the template cannot run here
	ReasonPullFailed  = "PullFailed"  // oci: the image could not be pulled (the registry's answer in LastError)
	ReasonMissingData = "MissingData" // a config or secret (or a key) it uses is not in this cluster
)

// ReplicaStatus is what the runtime observed of one replica.
type ReplicaStatus struct {
	ID         string
	Workload   string
	Generation int64
	Phase      string
	Ready      bool
	// Restarts counts starts after the first one (crashes, failed starts,
	// liveness kills).
	Restarts int
	Pid      int // 0 when no process runs
	Port     int // the replica's PORT
	// StartedAt is when the latest start was attempted; FinishedAt when
	// the latest run ended (zero while the first run lasts).
	StartedAt  time.Time
	FinishedAt time.Time
	// ExitCode of the latest run: the process's code, 128+n when signal n
	// killed it, 127 when the command was not found, 126 when it could not
	// be started otherwise, -1 when unknown (an adopted process).
	ExitCode int
	// Message says why the replica is in its phase, e.g. the exec error
	// `exec: "nope": executable file not found in $PATH`.
	Message string
	// Reason is the kind of the last failure (one of the Reason
	// constants; "" when none happened): Message may be cleared by the
	// next start, Reason and LastError stay until a run succeeds long
	// enough to reset the backoff.
	Reason    string
	LastError string
	// NextStartAt is when a replica in Backoff (or Pending on a port)
	// starts again; zero otherwise.
	NextStartAt time.Time
	// LimitsEnforced says whether the replica runs in its own cgroup with
	// its CPU and memory limits; LimitsMessage says why not.
	LimitsEnforced bool
	LimitsMessage  string
	// Adopted is set when the process was started by a previous agent run
	// and taken over by this one.
	Adopted bool
	// LogBytesDropped counts output lost because a log file could not be
	// written (e.g. a full disk). Its changes alone do not signal Changes.
	LogBytesDropped int64
}

// Runtime runs the replicas of one node. Make one with New.
type Runtime struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	cg     cgroupSupport
	prober *prober
	recDir string
	logDir string
	runDir string
	// filesDir holds each replica's files (configs and secrets),
	// filesDir/<replica>, mode 0700.
	filesDir string
	pollDur  time.Duration // /proc polling interval for adopted processes without pidfd

	mu            sync.Mutex
	state         int // stateNew, stateRunning, stateStopped
	ctx           context.Context
	cancel        context.CancelFunc
	loopDone      chan struct{}
	desired       map[string]ReplicaSpec
	desiredKnown  bool // Apply was called: replicas not desired may be stopped
	reconcile     bool // desired or the replica set changed since the last pass
	reps          map[string]*replica
	queue         dueQueue
	ports         map[int]string
	keepLogs      map[string]*replicaLogs // logs of a replica being replaced, for its successor
	cleaning      map[string]bool         // replicas whose files are being removed
	removed       chan struct{}           // closed and replaced whenever a replica goes away
	sweptOrphans  bool
	changes       chan struct{}
	wake          chan struct{}
	wg            sync.WaitGroup // probes, log pumps, watchers, cleanups
	stopOnce      sync.Once
	startFailures int // for tests: starts that failed before the process ran

	runc      string            // the OCI runtime binary, "" when none
	runcWhy   string            // why there is none
	runcRoot  string            // runc's state directory (DataDir/runc)
	bundleDir string            // containers' bundles (DataDir/bundles)
	pins      map[string]string // pinKey → image digest: one digest per workload generation
	// startSlots holds a token per container start under way (its
	// capacity is Config.StartConcurrency).
	startSlots chan struct{}
	startGate  func(replicaID string) // for tests: called by a start once it holds its slot
}

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// New checks cfg, creates DataDir and detects cgroup support. It starts
// nothing: call Start.
func New(cfg Config) (*Runtime, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("new runtime: DataDir is required")
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Backoff.Initial = cmp.Or(cfg.Backoff.Initial, 10*time.Second)
	cfg.Backoff.Max = max(cmp.Or(cfg.Backoff.Max, 5*time.Minute), cfg.Backoff.Initial)
	cfg.Backoff.ResetAfter = cmp.Or(cfg.Backoff.ResetAfter, 10*time.Minute)
	cfg.LogMaxBytes = cmp.Or(cfg.LogMaxBytes, 10<<20)
	cfg.LogMaxFiles = cmp.Or(cfg.LogMaxFiles, 3)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, 10*time.Second)
	cfg.StartConcurrency = cmp.Or(cfg.StartConcurrency, max(16, 8*goruntime.NumCPU()))
	if cfg.PortRange == [2]int{} {
		cfg.PortRange = [2]int{20000, 29999}
	}
	switch {
	case cfg.Backoff.Initial < 0 || cfg.Backoff.ResetAfter < 0:
		return nil, errors.New("new runtime: negative backoff")
	case cfg.StartConcurrency < 0:
		return nil, errors.New("new runtime: negative start concurrency")
	case cfg.LogMaxBytes < 0 || cfg.LogMaxFiles < 0 || cfg.StopGrace < 0:
		return nil, errors.New("new runtime: negative log cap or stop grace")
	case cfg.PortRange[0] < 1 || cfg.PortRange[1] > 65535 || cfg.PortRange[0] > cfg.PortRange[1]:
		return nil, fmt.Errorf("new runtime: port range %d-%d is not within 1-65535", cfg.PortRange[0], cfg.PortRange[1])
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("new runtime: %w", err)
	}
	cfg.DataDir = dir
	r := &Runtime{
		cfg:        cfg,
		log:        cfg.Logger,
		now:        cfg.Now,
		recDir:     filepath.Join(dir, "replicas"),
		logDir:     filepath.Join(dir, "logs"),
		runDir:     filepath.Join(dir, "run"),
		filesDir:   filepath.Join(dir, "files"),
		runcRoot:   filepath.Join(dir, "runc"),
		bundleDir:  filepath.Join(dir, "bundles"),
		pins:       map[string]string{},
		startSlots: make(chan struct{}, cfg.StartConcurrency),
		pollDur:    time.Second,
		desired:    map[string]ReplicaSpec{},
		reps:       map[string]*replica{},
		ports:      map[int]string{},
		keepLogs:   map[string]*replicaLogs{},
		cleaning:   map[string]bool{},
		removed:    make(chan struct{}),
		changes:    make(chan struct{}, 1),
		wake:       make(chan struct{}, 1),
	}
	r.runc, r.runcWhy = findRunc(cfg.Runc)
	for _, d := range []string{r.recDir, r.logDir, r.runDir, r.runcRoot, r.bundleDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("new runtime: %w", err)
		}
	}
	r.cg = detectCgroups(cfg.CgroupRoot)
	if r.cg.root == "" {
		r.log.Info("replica resource limits are not enforced", "reason", r.cg.why)
	}
	r.prober = newProber()
	return r, nil
}

// Start adopts the replica processes a previous agent run left (and
// cleans up the records of those that are gone), then supervises until
// Stop or until ctx ends. Replicas found running are supervised again,
// never restarted; they are stopped only when an Apply no longer wants
// them.
func (r *Runtime) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.state != stateNew {
		r.mu.Unlock()
		return errors.New("start runtime: already started")
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	r.loopDone = make(chan struct{})
	r.state = stateRunning
	if err := r.adoptLocked(); err != nil {
		r.state = stateStopped
		r.cancel()
		r.mu.Unlock()
		return fmt.Errorf("start runtime: %w", err)
	}
	r.sweepContainersLocked()
	r.reconcile = true
	r.mu.Unlock()
	go r.loop(r.ctx)
	go func() {
		<-r.ctx.Done()
		r.Stop()
	}()
	r.notify()
	return nil
}

// Stop stops supervising. Replica processes keep running (an agent
// restart must not kill replicas) and the next Runtime on the same DataDir
// adopts them; use StopAll first to stop them. Simulated replicas vanish.
// Safe to call twice, and before Start.
func (r *Runtime) Stop() {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		started := r.state == stateRunning
		r.state = stateStopped
		if r.cancel != nil {
			r.cancel()
		}
		r.signalRemovedLocked() // wakes StopAll
		r.mu.Unlock()
		if !started {
			return
		}
		<-r.loopDone
		r.mu.Lock()
		for _, rep := range r.reps {
			if rep.run != nil {
				rep.run.detach()
			}
			r.unforwardLocked(rep) // the next agent run forwards again
			if rep.logs != nil {
				rep.logs.close(0)
			}
		}
		for _, l := range r.keepLogs {
			l.close(0)
		}
		r.mu.Unlock()
		r.wg.Wait()
		r.prober.close()
	})
}

// StopAll stops every replica gracefully and forgets them (node drain, or
// the whole node shutting down), and returns when they are all gone or
// ctx ends. A later Apply starts replicas again.
func (r *Runtime) StopAll(ctx context.Context) error {
	r.mu.Lock()
	if r.state != stateRunning {
		r.mu.Unlock()
		return errors.New("stop all replicas: runtime is not running")
	}
	r.desired = map[string]ReplicaSpec{}
	r.desiredKnown = true
	r.reconcile = true
	r.mu.Unlock()
	r.poke()
	for {
		r.mu.Lock()
		n, removed, stopped := len(r.reps)+len(r.cleaning)+len(r.keepLogs), r.removed, r.state != stateRunning
		r.mu.Unlock()
		if n == 0 {
			return nil
		}
		if stopped {
			return errors.New("stop all replicas: runtime stopped")
		}
		select {
		case <-removed:
		case <-ctx.Done():
			return fmt.Errorf("stop all replicas: %d left: %w", n, ctx.Err())
		}
	}
}

// Apply sets the replicas this node should run (level-triggered: pass the
// whole set every time). Missing replicas start, replicas not in desired
// are stopped gracefully, and replicas whose Generation changed are
// stopped and started again with the new template (a changed template
// under the same Generation is not noticed). Until the first Apply,
// adopted replicas are left alone. Specs without an ID are ignored; for a
// repeated ID the last spec wins. The runtime keeps the specs as given:
// do not modify them, or the slices they hold, afterwards.
func (r *Runtime) Apply(desired []ReplicaSpec) {
	m := make(map[string]ReplicaSpec, len(desired))
	for _, s := range desired {
		if s.ID == "" {
			r.log.Warn("replica spec without an id ignored", "workload", s.Workload)
			continue
		}
		m[s.ID] = s
	}
	r.mu.Lock()
	r.desired = m
	r.desiredKnown = true
	r.reconcile = true
	r.mu.Unlock()
	r.poke()
}

// Status returns a snapshot of every replica, sorted by ID.
func (r *Runtime) Status() []ReplicaStatus {
	r.mu.Lock()
	out := make([]ReplicaStatus, 0, len(r.reps))
	for _, rep := range r.reps {
		out = append(out, rep.status())
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b ReplicaStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Changes delivers a value after any status change. Signals coalesce (the
// channel holds one), so a reader takes Status() after each receive
// rather than counting receives.
func (r *Runtime) Changes() <-chan struct{} { return r.changes }

// notify signals Changes without blocking.
func (r *Runtime) notify() {
	select {
	case r.changes <- struct{}{}:
	default:
	}
}

// poke wakes the supervisor loop.
func (r *Runtime) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// loop is the supervisor service: one pass whenever something is due or
// someone pokes it.
func (r *Runtime) loop(ctx context.Context) {
	defer close(r.loopDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := r.runOnce(ctx)
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(r.now()), 0)
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// runOnce reconciles the desired set with the replicas, then handles
// everything that is due (starts after backoff, SIGKILL after the grace,
// simulated starts) and returns when the next thing is due (zero: nothing
// is).
func (r *Runtime) runOnce(ctx context.Context) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != stateRunning || ctx.Err() != nil {
		return time.Time{}
	}
	changed := false
	if r.reconcile {
		r.reconcile = false
		changed = r.reconcileLocked()
	}
	now := r.now()
	for n := 0; len(r.queue) > 0 && !r.queue[0].due.After(now); n++ {
		if n == duePerPass {
			// More is due: the loop comes back at once, after the lock
			// was free for Status (the node's heartbeat) and probes.
			if changed {
				r.notify()
			}
			return now
		}
		rep := r.queue[0]
		r.unschedule(rep)
		r.dueLocked(rep, now)
		changed = true
	}
	if changed {
		r.notify()
	}
	if len(r.queue) == 0 {
		return time.Time{}
	}
	return r.queue[0].due
}

// duePerPass bounds what one pass of the loop does under the lock: a
// process starts under it (a fork, its log files, its record), and with
// hundreds due at once (a failover's replacements) a single pass held the
// lock for seconds, the node's heartbeat waited, its member took it for
// lost and bound the replicas again elsewhere.
const duePerPass = 32

// reconcileLocked starts what is desired and missing and stops what is
// running and not desired (or desired at another generation).
func (r *Runtime) reconcileLocked() bool {
	changed := false
	if r.desiredKnown {
		for id, rep := range r.reps {
			want, ok := r.desired[id]
			switch {
			case !ok && rep.intent != intentForget:
				r.beginStop(rep, intentForget, "")
				changed = true
			case ok && want.Generation != rep.spec.Generation && rep.intent == intentNone:
				r.beginStop(rep, intentReplace, "")
				changed = true
			case ok:
				rep.spec.Data = want.Data // what its next start uses
				if rep.st.Phase == PhaseBackoff && rep.st.Reason == ReasonMissingData && rep.intent == intentNone &&
					(want.Data == nil || len(want.Data.Missing) == 0) {
					// It waited for its configuration, which has come: start
					// it now, not at the end of a backoff that was no failure.
					rep.backoff = r.cfg.Backoff.Initial
					rep.st.NextStartAt = time.Time{}
					r.schedule(rep, r.now())
					changed = true
				}
			}
		}
		for id, l := range r.keepLogs {
			if _, ok := r.desired[id]; !ok {
				delete(r.keepLogs, id)
				r.cleanupLocked(id, l, "")
			}
		}
		if !r.sweptOrphans {
			r.sweptOrphans = true
			r.sweepOrphanFilesLocked()
		}
	}
	for id, spec := range r.desired {
		if _, ok := r.reps[id]; ok || r.cleaning[id] {
			continue
		}
		r.createLocked(spec)
		changed = true
	}
	return changed
}

// signalRemovedLocked wakes StopAll.
func (r *Runtime) signalRemovedLocked() {
	close(r.removed)
	r.removed = make(chan struct{})
}

// Kill sends SIGKILL at once to the named replicas' processes that still
// run, whatever their stop grace: a node whose lease on the hub ran out
// must have its exclusive replicas gone before the hub starts them
// elsewhere. A replica whose container is being started is killed as
// soon as it runs. Replicas not named, not running or simulated are left
// alone.
func (r *Runtime) Kill(ids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		rep, ok := r.reps[id]
		if !ok {
			continue
		}
		if rep.starting && (rep.run == nil || rep.run.exited) {
			// Its container is being started: killed as soon as runc
			// was forked.
			rep.fenceStart = true
			r.log.Warn("replica will be killed once started: its lease ran out", "replica", id)
			continue
		}
		if rep.run == nil || rep.run.exited || rep.run.killed {
			continue
		}
		rep.run.killed = true
		rep.run.reason, rep.run.failure = "killed: the node's lease on the hub ran out (fenced)", ReasonFenced
		r.log.Warn("killing replica: its lease ran out", "replica", id, "pid", rep.run.pid)
		r.killGroup(rep, rep.run)
	}
}
