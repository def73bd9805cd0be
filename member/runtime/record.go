package runtime

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// record is what the runtime keeps on disk per process replica so that
// the next agent run can adopt the process: written (atomically) at each
// start, removed when the replica is forgotten.
type record struct {
	Spec     ReplicaSpec `json:"spec"`
	SpecHash string      `json:"specHash"`
	Pid      int         `json:"pid"`
	Pgid     int         `json:"pgid"`
	// StartTicks is the process's start time (/proc/<pid>/stat field
	// 22): a pid reused by another process has another start time.
	StartTicks uint64    `json:"startTicks"`
	Port       int       `json:"port"`
	Cgroup     string    `json:"cgroup,omitempty"`
	Restarts   int       `json:"restarts"`
	StartedAt  time.Time `json:"startedAt"`
	// Image is the digest an oci replica runs.
	Image string `json:"image,omitempty"`
}

func (r *Runtime) recordPath(fs string) string { return filepath.Join(r.recDir, fs+".json") }

// specHash identifies a spec's content.
func specHash(s ReplicaSpec) string {
	b, _ := json.Marshal(s)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

// writeRecord saves rep's record for run: temp file, then rename. No
// fsync: the record must outlive the agent, not the machine (a machine
// that crashes takes its replicas with it, and a record it tore is
// removed as unreadable at the next start). Under the runtime's lock an
// fsync per start serialized a node's starts behind a busy disk: a
// goroutine dump of 100 containers starting at once on this project's
// shared machine had the supervisor in fsync and 158 goroutines waiting
// for the lock.
func (r *Runtime) writeRecord(rep *replica, run *procRun) error {
	rec := record{
		Spec: rep.spec, SpecHash: specHash(rep.spec),
		Pid: run.pid, Pgid: run.pgid, StartTicks: run.ticks,
		Port: rep.port, Cgroup: rep.cgroup, Restarts: rep.st.Restarts, StartedAt: rep.st.StartedAt,
	}
	if rep.img != nil {
		rec.Image = rep.img.Digest
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	path := r.recordPath(rep.fs)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// adoptLocked reads the records a previous agent run left: processes
// still alive (same pid, same start time) are supervised again, the
// others' records, pipes and cgroups are cleaned up, and whatever is left
// of their process groups is killed.
func (r *Runtime) adoptLocked() error {
	entries, err := os.ReadDir(r.recDir)
	if err != nil {
		return fmt.Errorf("read replica records: %w", err)
	}
	for _, e := range entries {
		path := filepath.Join(r.recDir, e.Name())
		if !strings.HasSuffix(e.Name(), ".json") {
			_ = os.Remove(path) // a temp file of an interrupted write
			continue
		}
		b, err := os.ReadFile(path)
		var rec record
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil || rec.Spec.ID == "" || fsName(rec.Spec.ID)+".json" != e.Name() {
			r.log.Warn("unreadable replica record removed", "file", path, "err", err)
			_ = os.Remove(path)
			continue
		}
		if _, dup := r.reps[rec.Spec.ID]; dup {
			_ = os.Remove(path)
			continue
		}
		if !r.adoptOneLocked(rec) {
			r.cleanStaleLocked(rec)
			_ = os.Remove(path)
		}
	}
	return nil
}

// adoptOneLocked supervises rec's process again when it is still the
// process the record names.
func (r *Runtime) adoptOneLocked(rec record) bool {
	if !sameProcessAlive(rec.Pid, rec.StartTicks) {
		return false
	}
	// Open the pidfd first, then check again: the pidfd then surely
	// names the recorded process, even if it died in between.
	pidfd, pidfdErr := unix.PidfdOpen(rec.Pid, unix.PIDFD_NONBLOCK)
	if !sameProcessAlive(rec.Pid, rec.StartTicks) {
		if pidfdErr == nil {
			unix.Close(pidfd)
		}
		return false
	}
	spec := rec.Spec
	rep := &replica{
		spec:     spec,
		fs:       fsName(spec.ID),
		qidx:     -1,
		backoff:  r.cfg.Backoff.Initial,
		launched: true,
		port:     rec.Port,
		cgroup:   rec.Cgroup,
		st: ReplicaStatus{
			ID: spec.ID, Workload: spec.Workload, Generation: spec.Generation,
			Restarts: rec.Restarts, Pid: rec.Pid, Port: rec.Port, StartedAt: rec.StartedAt,
			Adopted: true, Message: "adopted from a previous agent run",
		},
	}
	if rec.Cgroup != "" {
		rep.st.LimitsEnforced = true
	} else {
		rep.st.LimitsMessage = "limits not enforced: " + cmp.Or(r.cg.why, "the replica was started outside a cgroup")
	}
	if l, err := r.openLogs(rep.fs); err != nil {
		r.log.Warn("adopted replica's output will not be captured", "replica", spec.ID, "err", err)
	} else {
		rep.logs = l
	}
	if rec.Port != 0 {
		r.ports[rec.Port] = spec.ID
	}
	run := &procRun{
		pid: rec.Pid, pgid: rec.Pgid, ticks: rec.StartTicks, started: rec.StartedAt, adopted: true,
		env: r.envFor(rep, ""), dir: spec.Template.WorkingDir,
	}
	rep.run = run
	if spec.Template.Driver == "oci" {
		rep.bundle = &ociBundle{dir: filepath.Join(r.bundleDir, rep.fs), id: containerID(spec.ID)}
		rep.st.LimitsEnforced, rep.st.LimitsMessage = true, ""
		if rec.Image != "" {
			r.pins[pinKey(spec)] = rec.Image
			// The running container's root lies over this image: GC
			// must keep it, and a restart starts from it.
			if r.cfg.Images != nil {
				if img, ok := r.cfg.Images.Local(r.pullRef(spec)); ok {
					r.cfg.Images.Acquire(img.Digest)
					rep.img = img
				}
			}
		}
	}
	r.reps[spec.ID] = rep
	r.log.Info("replica adopted", "replica", spec.ID, "pid", rec.Pid, "port", rec.Port)
	if rep.mapped() {
		if err := r.forwardLocked(rep); err != nil {
			// It runs, unreachable: probes say so, and its next start
			// tries again.
			r.log.Warn("adopted container's ports are not forwarded", "replica", spec.ID, "err", err)
			rep.st.Message = "ports not forwarded: " + err.Error()
		}
	}

	ctx, cancel := context.WithCancel(r.ctx)
	run.watchStop = cancel
	r.wg.Add(1)
	if pidfdErr == nil {
		f := os.NewFile(uintptr(pidfd), "pidfd")
		run.watchStop = func() { cancel(); f.Close() }
		go r.watchPidfd(ctx, rep, run, f)
	} else {
		r.log.Debug("no pidfd: polling /proc for an adopted replica", "replica", spec.ID, "err", pidfdErr)
		go r.watchProc(ctx, rep, run)
	}
	r.runningLocked(rep, run)
	return true
}

// watchPidfd waits for an adopted process to exit: a pidfd becomes
// readable when its process exits, and the runtime's poller waits for
// that without holding a thread.
func (r *Runtime) watchPidfd(ctx context.Context, rep *replica, run *procRun, f *os.File) {
	defer r.wg.Done()
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(fds, 0)
			return n > 0
		})
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		// Not pollable after all: fall back to /proc.
		r.wg.Add(1)
		r.watchProc(ctx, rep, run)
		return
	}
	f.Close()
	r.adoptedExited(rep, run)
}

// watchProc polls /proc for an adopted process when pidfds are not
// available.
func (r *Runtime) watchProc(ctx context.Context, rep *replica, run *procRun) {
	defer r.wg.Done()
	t := time.NewTicker(r.pollDur)
	defer t.Stop()
	for sameProcessAlive(run.pid, run.ticks) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	r.adoptedExited(rep, run)
}

// adoptedExited handles the exit of a process that is not our child: its
// exit code is unknown.
func (r *Runtime) adoptedExited(rep *replica, run *procRun) {
	if rep.isOCI() {
		r.ociWaitCleanup(rep, run, -1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != stateRunning || rep.run != run || run.detached || run.exited {
		return
	}
	killOrphans(run.pgid, run.ticks)
	if rep.cgroup != "" {
		_ = os.WriteFile(rep.cgroup+"/cgroup.kill", []byte("1"), 0)
	}
	r.exitedLocked(rep, run, -1, "exited (exit code unknown: the process was adopted from a previous agent run)")
}

// killOrphans kills what is left of a process group whose leader (started
// at leaderTicks) is gone. A process group ID cannot be reused while any
// member lives, so signalling -pgid is safe unless the leader's pid now
// belongs to another process (then the old group is gone altogether).
func killOrphans(pgid int, leaderTicks uint64) {
	if pgid <= 1 {
		return
	}
	if _, _, t, err := procStat(pgid); err == nil && t != leaderTicks {
		return
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// cleanStaleLocked removes what a dead replica's record points to.
func (r *Runtime) cleanStaleLocked(rec record) {
	r.log.Info("stale replica record cleaned up", "replica", rec.Spec.ID, "pid", rec.Pid)
	killOrphans(rec.Pgid, rec.StartTicks)
	if rec.Cgroup != "" {
		if err := removeCgroup(rec.Cgroup); err != nil {
			r.log.Warn("remove stale replica cgroup", "replica", rec.Spec.ID, "err", err)
		}
	}
	_ = os.RemoveAll(filepath.Join(r.runDir, fsName(rec.Spec.ID)))
	if rec.Spec.Template.Driver == "oci" {
		r.removeContainer(&ociBundle{dir: filepath.Join(r.bundleDir, fsName(rec.Spec.ID)), id: containerID(rec.Spec.ID)})
	}
}
