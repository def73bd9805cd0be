package runtime

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	sigTERM = syscall.SIGTERM
	sigKILL = syscall.SIGKILL
)

// procRun is one run of a replica's process. Fields are guarded by
// Runtime.mu.
type procRun struct {
	pid, pgid int
	ticks     uint64 // start time in clock ticks since boot (/proc/<pid>/stat field 22)
	started   time.Time
	adopted   bool
	exited    bool
	stopping  bool          // SIGTERM sent
	killed    bool          // SIGKILL sent
	detached  bool          // the runtime stopped supervising; the process is left alone
	gone      chan struct{} // closed once the process exited (children only; nil when adopted)
	reason    string
	failure   string // the Reason constant that goes with reason ("" : ProbeFailed)
	env       []string
	dir       string
	// initDone, for a container's start, is closed once its process runs
	// (runc wrote the pid file) or runc gave up: its probes begin then,
	// not while runc still builds the container. nil for processes.
	initDone chan struct{}

	probeCancel context.CancelFunc
	watchStop   func() // adopted runs: stops the exit watcher
}

func (run *procRun) stopProbes() {
	if run.probeCancel != nil {
		run.probeCancel()
	}
}

// detach stops everything that watches run, leaving the process running.
func (run *procRun) detach() {
	run.detached = true
	run.stopProbes()
	if run.watchStop != nil {
		run.watchStop()
	}
}

// startProcessLocked starts rep's process: port, cgroup, log pipes,
// record, exit watcher and probes. A start that fails counts as a failed
// run (restart policy and backoff apply), so a missing command never
// hot-loops.
func (r *Runtime) startProcessLocked(rep *replica, now time.Time) {
	t := rep.spec.Template
	if rep.port == 0 {
		p, err := r.allocatePortLocked(rep)
		if err != nil {
			rep.st.Phase, rep.st.Message = PhasePending, err.Error()
			r.schedule(rep, now.Add(rep.backoff))
			rep.backoff = min(rep.backoff*2, r.cfg.Backoff.Max)
			return
		}
		rep.port, rep.st.Port = p, p
	}
	if rep.mapped() {
		if err := r.forwardLocked(rep); err != nil {
			rep.st.Phase, rep.st.Message = PhasePending, "forward the container's ports: "+err.Error()
			r.schedule(rep, now.Add(rep.backoff))
			rep.backoff = min(rep.backoff*2, r.cfg.Backoff.Max)
			return
		}
	}
	if d := rep.spec.Data; d != nil && len(d.Missing) > 0 {
		// Not a run: it waits, with backoff, for its configuration.
		msg := "missing configuration: " + strings.Join(d.Missing, "; ")
		rep.st.Reason, rep.st.LastError = ReasonMissingData, msg
		r.afterRunLocked(rep, now, true, msg)
		return
	}
	if rep.launched {
		rep.st.Restarts++
	}
	rep.launched = true
	rep.st.StartedAt, rep.st.NextStartAt = now, time.Time{}
	files, err := r.writeFiles(rep)
	if err != nil {
		msg := "cannot write the replica's files: " + err.Error()
		rep.st.FinishedAt, rep.st.Reason, rep.st.LastError = now, ReasonExecFailed, msg
		r.afterRunLocked(rep, now, true, msg)
		return
	}
	if rep.isOCI() {
		// The node's start pool prepares and starts it, outside the lock.
		r.launchContainerLocked(rep, now, files)
		return
	}
	env := r.envFor(rep, files)
	cgfd := r.cgroupForLocked(rep)
	if cgfd >= 0 {
		defer unix.Close(cgfd)
	}

	var stdout, stderr *os.File
	if rep.logs != nil {
		rep.logs.markRun(now)
		var err error
		if stdout, stderr, err = rep.logs.childFiles(); err != nil {
			r.log.Warn("replica output will not be captured", "replica", rep.spec.ID, "err", err)
		}
	}
	mk := func(cgroupFD int) *exec.Cmd {
		cmd := exec.Command(t.Command, t.Args...)
		cmd.Path, cmd.Err = lookPath(t.Command, env)
		cmd.Env, cmd.Dir = env, t.WorkingDir
		r.childAttrs(cmd, stdout, stderr)
		if cgroupFD >= 0 {
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cgroupFD
		}
		return cmd
	}
	cmd := mk(cgfd)
	err = r.startCmd(cmd)
	if err != nil && cgfd >= 0 && cmd.Err == nil && (errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EINVAL)) {
		// No clone3(CLONE_INTO_CGROUP): start it, then move it in.
		cmd = mk(-1)
		if err = r.startCmd(cmd); err == nil {
			if werr := os.WriteFile(rep.cgroup+"/cgroup.procs", []byte(strconv.Itoa(cmd.Process.Pid)), 0); werr != nil {
				rep.st.LimitsEnforced, rep.st.LimitsMessage = false, "limits not enforced: "+werr.Error()
			}
		}
	}
	if stdout != nil {
		stdout.Close()
		stderr.Close()
	}
	if err != nil {
		r.startFailedLocked(rep, now, err)
		return
	}

	pid := cmd.Process.Pid
	_, _, ticks, _ := procStat(pid)
	run := &procRun{pid: pid, pgid: pid, ticks: ticks, started: now, env: env, dir: t.WorkingDir, gone: make(chan struct{})}
	r.attachRunLocked(rep, run, cmd)
	if run.reason == "" {
		r.log.Info("replica started", "replica", rep.spec.ID, "pid", pid, "port", rep.port, "restarts", rep.st.Restarts)
		r.runningLocked(rep, run)
	}
	r.notify()
}

// attachRunLocked makes run rep's current run: its record written (a
// run without one is killed: a restarted agent could not find it again)
// and its exit watched.
func (r *Runtime) attachRunLocked(rep *replica, run *procRun, cmd *exec.Cmd) {
	rep.run = run
	rep.st.Pid, rep.st.Message, rep.st.Adopted = run.pid, "", false
	if err := r.writeRecord(rep, run); err != nil {
		r.log.Error("cannot write replica record: killing the replica", "replica", rep.spec.ID, "err", err)
		run.reason, run.failure = "cannot keep the replica's pid record: "+err.Error(), ReasonExecFailed
		run.stopping, run.killed = true, true
		r.killGroup(rep, run)
	}
	go r.waitChild(rep, run, cmd)
}

// childAttrs gives a replica's command its output pipes, its own
// process group and, with DieWithAgent, its parent-death signal.
func (r *Runtime) childAttrs(cmd *exec.Cmd, stdout, stderr *os.File) {
	if stdout != nil {
		cmd.Stdout, cmd.Stderr = stdout, stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if r.cfg.DieWithAgent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
}

// startCmd starts a replica's command: on the spawner's thread with
// DieWithAgent (its parent-death signal must outlive any Go thread).
func (r *Runtime) startCmd(cmd *exec.Cmd) error {
	if r.cfg.DieWithAgent {
		return spawnerThread().start(cmd)
	}
	return cmd.Start()
}

// startFailedLocked counts a start whose process never ran as a failed
// run: 127 when the command was not found, 126 otherwise.
func (r *Runtime) startFailedLocked(rep *replica, now time.Time, err error) {
	r.startFailures++
	code := 126
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = 127
	}
	rep.st.FinishedAt, rep.st.ExitCode = now, code
	rep.st.Reason, rep.st.LastError = ReasonExecFailed, err.Error()
	r.log.Warn("replica failed to start", "replica", rep.spec.ID, "err", err)
	r.afterRunLocked(rep, now, true, err.Error())
}

// runningLocked sets the phase of a fresh (or adopted) run and starts its
// probes.
func (r *Runtime) runningLocked(rep *replica, run *procRun) {
	t := rep.spec.Template
	rep.st.Phase = PhaseRunning
	if t.Startup != nil {
		rep.st.Phase = PhaseStarting
	}
	rep.st.Ready = rep.st.Phase == PhaseRunning && t.Readiness == nil
	if t.Startup != nil || t.Liveness != nil || t.Readiness != nil {
		ctx, cancel := context.WithCancel(r.ctx)
		run.probeCancel = cancel
		if rep.isOCI() && rep.bundle != nil {
			t = r.probesInContainer(probesThroughHostPorts(t), rep.bundle.id)
		}
		r.wg.Add(1)
		go r.probeLoop(ctx, rep, run, t, rep.port)
	}
}

// envFor is a replica's environment: the node's PATH, the template's
// variables (those from configs and secrets filled in), ATOLL_FILES when
// it has files, then PORT, ATOLL_REPLICA and ATOLL_WORKLOAD (these win).
// Nothing else of the agent's environment leaks into replicas.
func (r *Runtime) envFor(rep *replica, files string) []string {
	path := cmp.Or(r.cfg.Path, os.Getenv("PATH"))
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env := []string{"PATH=" + path}
	for _, e := range rep.spec.Template.Env {
		v := e.Value
		if e.ValueFrom != nil && rep.spec.Data != nil {
			v = rep.spec.Data.Env[e.Name]
		}
		env = append(env, e.Name+"="+v)
	}
	if files != "" {
		env = append(env, "ATOLL_FILES="+files)
	}
	return append(env,
		"PORT="+strconv.Itoa(rep.port),
		"ATOLL_REPLICA="+rep.spec.ID,
		"ATOLL_WORKLOAD="+rep.spec.Workload)
}

// lookPath finds a command in the PATH of env (the replica's), as the
// shell would: a name with a slash is taken as it is. Relative entries
// (and empty ones, the working directory) are skipped, as os/exec does
// since Go 1.19: a replica's working directory must not choose its binary.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	var path string
	for _, e := range env {
		if p, ok := strings.CutPrefix(e, "PATH="); ok {
			path = p
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		file := filepath.Join(dir, name)
		if st, err := os.Stat(file); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return file, nil
		}
	}
	return name, &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// waitChild waits for a child the runtime started. It first waits
// without reaping: while the leader is a zombie its process group ID
// cannot be reused, so killing what is left of the group is safe. Then it
// reaps and reports.
func (r *Runtime) waitChild(rep *replica, run *procRun, cmd *exec.Cmd) {
	var info unix.Siginfo
	for {
		if err := unix.Waitid(unix.P_PID, run.pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			break
		}
	}
	if run.gone != nil {
		close(run.gone)
	}
	r.mu.Lock()
	detached, cgroup := run.detached, rep.cgroup
	r.mu.Unlock()
	if !detached {
		// The replica ends with its leader: nothing of it may outlive it.
		_ = syscall.Kill(-run.pgid, syscall.SIGKILL)
		if cgroup != "" {
			_ = os.WriteFile(cgroup+"/cgroup.kill", []byte("1"), 0)
		}
	}
	err := cmd.Wait()
	code, how := exitOf(cmd.ProcessState, err)
	if !detached && rep.isOCI() {
		r.ociWaitCleanup(rep, run, code)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == stateRunning && rep.run == run && !run.detached && !run.exited {
		r.exitedLocked(rep, run, code, how)
	}
}

// exitOf turns a wait result into an exit code and a description.
func exitOf(ps *os.ProcessState, err error) (int, string) {
	if ps == nil {
		return -1, fmt.Sprintf("wait failed: %v", err)
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal()), "killed by signal " + unix.SignalName(ws.Signal())
	}
	return ps.ExitCode(), fmt.Sprintf("exited with code %d", ps.ExitCode())
}

// signalGroup sends sig to the whole process group of run.
func signalGroup(run *procRun, sig syscall.Signal) error {
	if run.pgid <= 1 {
		return errors.New("no process group")
	}
	return syscall.Kill(-run.pgid, sig)
}

// killGroup SIGKILLs everything of rep's run: its process group and, when
// it has one, its cgroup (which also catches processes that left the
// group).
func (r *Runtime) killGroup(rep *replica, run *procRun) {
	_ = signalGroup(run, sigKILL)
	if rep.bundle != nil {
		r.killContainer(rep.bundle)
	}
	if rep.cgroup != "" {
		_ = os.WriteFile(rep.cgroup+"/cgroup.kill", []byte("1"), 0)
	}
}

// killForRestartLocked stops run because a probe gave up on it; once it
// is gone the restart policy decides (it counts as a failure).
func (r *Runtime) killForRestartLocked(rep *replica, run *procRun, reason string) {
	if rep.run != run || run.exited || run.stopping || rep.intent != intentNone {
		return
	}
	run.failure = ReasonProbeFailed
	r.log.Warn("replica unhealthy: restarting it", "replica", rep.spec.ID, "pid", run.pid, "reason", reason)
	r.beginStop(rep, intentNone, reason)
}

// procStat reads state, process group and start time of pid from
// /proc/<pid>/stat.
func procStat(pid int) (state byte, pgid int, ticks uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	pgid, err = strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	ticks, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return f[0][0], pgid, ticks, nil
}

// sameProcessAlive reports whether pid is still the process that started
// at ticks and has not exited (a zombie has).
func sameProcessAlive(pid int, ticks uint64) bool {
	if pid <= 1 {
		return false
	}
	state, _, t, err := procStat(pid)
	return err == nil && t == ticks && state != 'Z' && state != 'X'
}
