package runtime

import (
	"cmp"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/atollhq/atoll/member/image"
	"github.com/atollhq/atoll/member/portfwd"
)

// stopIntent says what happens once a replica's process is gone.
type stopIntent int

const (
	intentNone    stopIntent = iota // restart per policy (a liveness kill)
	intentReplace                   // forget it; a replica of the new generation follows
	intentForget                    // forget it and its logs
)

// replica is the runtime's state for one replica. Every field is guarded
// by Runtime.mu.
type replica struct {
	spec     ReplicaSpec
	fs       string // ID made safe as a file name
	st       ReplicaStatus
	due      time.Time // when dueLocked must run (while queued)
	qidx     int       // index in Runtime.queue, -1 when not queued
	backoff  time.Duration
	launched bool // a start was attempted at least once
	intent   stopIntent
	port     int
	run      *procRun     // the current (or last) process; nil for sim
	logs     *replicaLogs // nil for sim, or when the log pipes could not be made
	cgroup   string       // this replica's cgroup directory, "" when none
	oomKills int64        // memory.events oom_kill last seen
	rng      *rand.Rand   // sim only: deterministic per replica ID
	img      *image.Image // oci: the pulled image (held in the cache while set)
	pulling  bool         // oci: a pull is under way
	bundle   *ociBundle   // oci: the current run's bundle
	// starting is set while the start pool starts its container (oci);
	// fenceStart when a fencing Kill came meanwhile.
	starting   bool
	fenceStart bool
	// fwds forward the host ports of a container with mapped ports
	// (oci, its own network); extraPorts are the host ports of its ports
	// after the first, held in Runtime.ports.
	fwds       []*portfwd.Forward
	extraPorts []int
}

func (rep *replica) isSim() bool { return rep.spec.Template.Driver == "sim" }

// status is the snapshot of rep.
func (rep *replica) status() ReplicaStatus {
	s := rep.st
	if rep.logs != nil {
		s.LogBytesDropped = rep.logs.dropped()
	}
	return s
}

// fsName turns a replica ID into a file name: IDs are normally DNS labels
// and stay as they are; anything else is escaped.
func fsName(id string) string {
	s := url.PathEscape(id)
	if s == "." || s == ".." || strings.HasPrefix(s, ".") {
		s = "%2E" + s[1:]
	}
	return s
}

// createLocked makes a new replica for spec, due to start now.
func (r *Runtime) createLocked(spec ReplicaSpec) {
	now := r.now()
	rep := &replica{
		spec:    spec,
		fs:      fsName(spec.ID),
		qidx:    -1,
		backoff: r.cfg.Backoff.Initial,
		st: ReplicaStatus{
			ID: spec.ID, Workload: spec.Workload, Generation: spec.Generation,
			Phase: PhasePending,
		},
	}
	r.reps[spec.ID] = rep
	switch spec.Template.Driver {
	case "sim":
		rep.rng = simRand(spec.ID)
		rep.st.LimitsMessage = "limits not enforced: simulated replicas have no process"
		if len(spec.Template.Ports) > 0 {
			rep.port = int(spec.Template.Ports[0].HostPort)
			rep.st.Port = rep.port
		}
	case "process", "oci":
		if spec.Template.Driver == "process" && strings.TrimSpace(spec.Template.Command) == "" {
			r.terminalLocked(rep, PhaseFailed, "the process driver needs a command")
			return
		}
		if spec.Template.Driver == "oci" && spec.Template.Image == "" {
			r.terminalLocked(rep, PhaseFailed, "the oci driver needs an image")
			return
		}
		if l := r.keepLogs[spec.ID]; l != nil {
			delete(r.keepLogs, spec.ID)
			rep.logs = l
		} else if l, err := r.openLogs(rep.fs); err != nil {
			r.log.Warn("replica output will not be captured", "replica", spec.ID, "err", err)
		} else {
			rep.logs = l
		}
	default:
		r.terminalLocked(rep, PhaseFailed, fmt.Sprintf("unknown driver %q: use process, oci or sim", spec.Template.Driver))
		return
	}
	r.schedule(rep, now)
}

// terminalLocked parks rep in a phase it leaves only through Apply.
func (r *Runtime) terminalLocked(rep *replica, phase, msg string) {
	rep.st.Phase, rep.st.Message, rep.st.Ready, rep.st.Pid = phase, msg, false, 0
	if phase == PhaseFailed {
		rep.st.Reason, rep.st.LastError = ReasonConfig, msg
	}
	r.unschedule(rep)
}

// dueLocked does what was due for rep.
func (r *Runtime) dueLocked(rep *replica, now time.Time) {
	switch rep.st.Phase {
	case PhasePending, PhaseBackoff:
		if rep.intent != intentNone || rep.starting {
			return
		}
		switch {
		case rep.isSim():
			r.startSimLocked(rep, now)
		case rep.isOCI():
			r.startContainerLocked(rep, now)
		default:
			r.startProcessLocked(rep, now)
		}
	case PhaseStarting:
		if rep.isSim() {
			r.settleSimLocked(rep, now)
		}
	case PhaseStopping:
		if run := rep.run; run != nil && !run.exited && !run.killed {
			run.killed = true
			r.log.Info("replica did not stop in time: killing it", "replica", rep.spec.ID, "pid", run.pid, "grace", r.cfg.StopGrace)
			r.killGroup(rep, run)
		}
	}
}

// beginStop stops rep gracefully: SIGTERM to its process group now,
// SIGKILL when StopGrace ends. What happens once it is gone depends on
// intent; reason (for intentNone) becomes the Message.
func (r *Runtime) beginStop(rep *replica, intent stopIntent, reason string) {
	if intent > rep.intent {
		rep.intent = intent
	}
	if rep.starting {
		return // the start's end stops what it started
	}
	run := rep.run
	if run == nil || run.exited {
		if rep.intent != intentNone {
			r.finalizeLocked(rep)
		}
		return
	}
	if run.stopping {
		return
	}
	run.stopping, run.reason = true, reason
	run.stopProbes()
	rep.st.Phase, rep.st.Ready = PhaseStopping, false
	if reason != "" {
		rep.st.Message = reason
	}
	why := reason
	switch {
	case why != "":
	case intent == intentReplace:
		why = "replaced by a new generation"
	default:
		why = "not desired"
	}
	r.log.Info("stopping replica", "replica", rep.spec.ID, "pid", run.pid, "reason", why)
	if err := signalGroup(run, sigTERM); err != nil {
		r.log.Debug("signal replica", "replica", rep.spec.ID, "err", err)
	}
	r.schedule(rep, r.now().Add(r.cfg.StopGrace))
	r.notify()
}

// exitedLocked handles the end of rep's run: restart per policy, or
// forget rep when it was being removed.
func (r *Runtime) exitedLocked(rep *replica, run *procRun, code int, how string) {
	now := r.now()
	run.exited = true
	run.stopProbes()
	rep.st.Pid, rep.st.Ready, rep.st.FinishedAt, rep.st.ExitCode = 0, false, now, code
	r.unschedule(rep)
	if rep.intent != intentNone {
		r.log.Info("replica stopped", "replica", rep.spec.ID, "pid", run.pid, "exit", how)
		r.finalizeLocked(rep)
		return
	}
	msg := how
	failed := code != 0
	reason := ReasonExited
	switch {
	case run.reason != "":
		msg, failed = run.reason, true
		reason = cmp.Or(run.failure, ReasonProbeFailed)
	case code > 128 && strings.HasPrefix(how, "killed by signal"):
		reason = ReasonSignaled
		if r.oomKilled(rep) {
			reason, msg = ReasonOOMKilled, how+": out of memory (the kernel's OOM killer, memory limit reached)"
		}
	}
	if failed {
		rep.st.Reason, rep.st.LastError = reason, msg
	}
	r.log.Info("replica exited", "replica", rep.spec.ID, "pid", run.pid, "exit", how, "reason", run.reason)
	if now.Sub(run.started) >= r.cfg.Backoff.ResetAfter {
		rep.backoff = r.cfg.Backoff.Initial
		if !failed {
			rep.st.Reason, rep.st.LastError = "", ""
		}
	}
	r.afterRunLocked(rep, now, failed, msg)
}

// afterRunLocked applies the restart policy once a run (or a start
// attempt) ended.
func (r *Runtime) afterRunLocked(rep *replica, now time.Time, failed bool, msg string) {
	rep.st.Message, rep.st.Ready, rep.st.Pid = msg, false, 0
	policy := cmp.Or(rep.spec.Template.RestartPolicy, "Always")
	if policy == "Never" || (policy == "OnFailure" && !failed) {
		rep.st.Phase = PhaseSucceeded
		if failed {
			rep.st.Phase = PhaseFailed
		}
		r.unschedule(rep)
		r.notify()
		return
	}
	delay := rep.backoff
	rep.backoff = min(rep.backoff*2, r.cfg.Backoff.Max)
	rep.st.Phase, rep.st.NextStartAt = PhaseBackoff, now.Add(delay)
	r.schedule(rep, now.Add(delay))
	r.notify()
}

// finalizeLocked forgets rep once nothing of it runs.
func (r *Runtime) finalizeLocked(rep *replica) {
	r.unschedule(rep)
	delete(r.reps, rep.spec.ID)
	r.unforwardLocked(rep)
	if rep.port != 0 && r.ports[rep.port] == rep.spec.ID {
		delete(r.ports, rep.port)
	}
	if !rep.isSim() {
		if err := os.Remove(r.recordPath(rep.fs)); err != nil && !os.IsNotExist(err) {
			r.log.Warn("remove replica record", "replica", rep.spec.ID, "err", err)
		}
	}
	if rep.img != nil && r.cfg.Images != nil {
		r.cfg.Images.Release(rep.img.Digest)
		rep.img = nil
	}
	next, wanted := r.desired[rep.spec.ID]
	if wanted && rep.intent == intentReplace && (next.Template.Driver == "process" || next.Template.Driver == "oci") && !rep.isSim() {
		// The successor continues the logs and reuses the cgroup: start
		// it right away, so the replica does not vanish from Status.
		if rep.logs != nil {
			r.keepLogs[rep.spec.ID] = rep.logs
		}
		r.createLocked(next)
	} else if rep.logs != nil || rep.cgroup != "" {
		r.cleanupLocked(rep.spec.ID, rep.logs, rep.cgroup)
	}
	if !wanted || rep.intent != intentReplace {
		r.removeFiles(rep.spec.ID) // its configs and secrets go with it
	}
	r.reconcile = true
	r.poke()
	r.signalRemovedLocked()
	r.notify()
}

// cleanupLocked removes a forgotten replica's logs, pipes and cgroup in
// the background (the log pumps drain what is left in the pipes first); until it is done no
// replica with that ID starts.
func (r *Runtime) cleanupLocked(id string, logs *replicaLogs, cgroup string) {
	r.cleaning[id] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if logs != nil {
			logs.close(100 * time.Millisecond)
			_ = os.RemoveAll(logs.dir)
			_ = os.RemoveAll(logs.runDir)
		}
		if cgroup != "" {
			if err := removeCgroup(cgroup); err != nil {
				r.log.Warn("remove replica cgroup", "replica", id, "err", err)
			}
		}
		r.mu.Lock()
		delete(r.cleaning, id)
		r.reconcile = true
		r.signalRemovedLocked()
		r.mu.Unlock()
		r.poke()
	}()
}

// sweepOrphanFilesLocked removes the pipes and logs of replicas that
// neither run nor are desired (left by a crash in the middle of a
// removal, or by replicas that died while no agent ran).
func (r *Runtime) sweepOrphanFilesLocked() {
	keep := map[string]bool{}
	for id := range r.reps {
		keep[fsName(id)] = true
	}
	for id := range r.desired {
		keep[fsName(id)] = true
	}
	for id := range r.keepLogs {
		keep[fsName(id)] = true
	}
	for _, dir := range []string{r.logDir, r.runDir} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !keep[e.Name()] {
				_ = os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// dueQueue is a min-heap of replicas by due time: the supervisor sleeps
// until the first one, so thousands of replicas cost no goroutines.
type dueQueue []*replica

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q dueQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].qidx, q[j].qidx = i, j
}
func (q *dueQueue) Push(x any) {
	rep := x.(*replica)
	rep.qidx = len(*q)
	*q = append(*q, rep)
}
func (q *dueQueue) Pop() any {
	old := *q
	rep := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	rep.qidx = -1
	return rep
}

// schedule makes rep due at t (replacing an earlier due time).
func (r *Runtime) schedule(rep *replica, t time.Time) {
	rep.due = t
	if rep.qidx >= 0 {
		heap.Fix(&r.queue, rep.qidx)
	} else {
		heap.Push(&r.queue, rep)
	}
	r.poke()
}

func (r *Runtime) unschedule(rep *replica) {
	if rep.qidx >= 0 {
		heap.Remove(&r.queue, rep.qidx)
	}
}
