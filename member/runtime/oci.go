package runtime

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/image"
	"github.com/google/go-containerregistry/pkg/name"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sys/unix"
)

// nobody is the uid and gid a container runs as when neither the
// template nor the image names a user other than root.
const nobody = 65534

// containerFilesDir is where a container finds its replica's files
// (configs and secrets): the files directory bind-mounted read-only;
// $ATOLL_FILES names it.
const containerFilesDir = "/run/atoll/files"

// ociBundle is one run's OCI bundle: config.json, the overlay's upper
// and work directories, and rootfs, the empty directory runc mounts the
// container's overlay root onto inside the container's own mount
// namespace (containerSpec's first mount): the node's mount table never
// holds containers' roots. Every runc start reads that table and copies
// it into the new namespace, so with the roots there each start cost more
// with every container the node ran.
type ociBundle struct {
	dir string // DataDir/bundles/<fs>
	id  string // the runc container ID
}

func (b *ociBundle) rootfs() string { return filepath.Join(b.dir, "rootfs") }

var badContainerID = regexp.MustCompile(`[^A-Za-z0-9_.+-]`)

// containerID is the runc ID of a replica: "atoll-" and the replica ID,
// with a hash when characters had to be replaced.
func containerID(replicaID string) string {
	id := badContainerID.ReplaceAllString(replicaID, "_")
	if id != replicaID || len(id) > 100 {
		h := sha256.Sum256([]byte(replicaID))
		id = id[:min(len(id), 80)] + "-" + hex.EncodeToString(h[:6])
	}
	return "atoll-" + id
}

func (rep *replica) isOCI() bool { return rep.spec.Template.Driver == "oci" }

// findRunc is the runc binary: configured, else on PATH, else "".
func findRunc(configured string) (string, string) {
	if configured != "" {
		if _, err := os.Stat(configured); err != nil {
			return "", fmt.Sprintf("runc %s: %v", configured, err)
		}
		return configured, ""
	}
	for _, p := range []string{"runc", "/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, ""
		}
	}
	return "", "runc is not installed on this node (Debian: apt-get install runc)"
}

// pinKey names a workload generation's image: a tag resolves to one
// digest per generation on this node.
func pinKey(spec ReplicaSpec) string {
	return spec.Workload + "\x00" + strconv.FormatInt(spec.Generation, 10) + "\x00" + spec.Template.Image
}

// pullRef is what to pull for spec: the digest pinned for its generation
// when there is one, else its image as written.
func (r *Runtime) pullRef(spec ReplicaSpec) string {
	d, ok := r.pins[pinKey(spec)]
	if !ok {
		return spec.Template.Image
	}
	ref, err := name.ParseReference(spec.Template.Image)
	if err != nil {
		return spec.Template.Image
	}
	return ref.Context().Name() + "@" + d
}

// startContainerLocked starts an oci replica: its image first (pulled in
// the background; the replica is Pulling meanwhile), then runc.
func (r *Runtime) startContainerLocked(rep *replica, now time.Time) {
	switch {
	case r.cfg.Images == nil:
		r.terminalLocked(rep, PhaseFailed, "this node has no image store: it cannot run oci replicas")
		return
	case r.runc == "":
		r.terminalLocked(rep, PhaseFailed, "this node cannot run oci replicas: "+r.runcWhy)
		return
	case rep.img == nil && (rep.spec.Data == nil || len(rep.spec.Data.Missing) == 0):
		r.pullLocked(rep)
		return
	}
	// Pulled, or waiting for its configuration (which may hold its pull
	// credentials): startProcessLocked holds a start that misses data.
	r.startProcessLocked(rep, now)
}

// pullLocked pulls rep's image in the background. A failure is a
// PullFailed backoff; success makes the replica due to start at once.
func (r *Runtime) pullLocked(rep *replica) {
	if rep.pulling {
		return
	}
	rep.pulling = true
	ref := r.pullRef(rep.spec)
	var opts []image.PullOption
	if d := rep.spec.Data; d != nil && d.RegistryAuth != nil {
		opts = append(opts, image.WithCredentials(d.RegistryAuth, "the workload's imagePullSecret"))
	}
	rep.st.Phase, rep.st.Message, rep.st.NextStartAt = PhasePulling, "pulling image "+ref, time.Time{}
	r.notify()
	ctx := r.ctx
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, span := otel.Tracer("github.com/atollhq/atoll/member/runtime").Start(ctx, "runtime.pull_image")
		span.SetAttributes(attribute.String("replica", rep.spec.ID), attribute.String("image.ref", ref))
		img, err := r.cfg.Images.Pull(ctx, ref, opts...)
		span.End()
		r.mu.Lock()
		defer r.mu.Unlock()
		rep.pulling = false
		if r.state != stateRunning || r.reps[rep.spec.ID] != rep || rep.intent != intentNone {
			return
		}
		now := r.now()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			msg := err.Error()
			r.log.Warn("image pull failed", "replica", rep.spec.ID, "image", ref, "err", msg)
			rep.st.Reason, rep.st.LastError = ReasonPullFailed, msg
			delay := rep.backoff
			rep.backoff = min(rep.backoff*2, r.cfg.Backoff.Max)
			rep.st.Phase, rep.st.Message, rep.st.NextStartAt = PhaseBackoff, "pull failed: "+msg, now.Add(delay)
			r.schedule(rep, now.Add(delay))
			r.notify()
			return
		}
		r.pins[pinKey(rep.spec)] = img.Digest
		r.cfg.Images.Acquire(img.Digest)
		rep.img = img
		if rep.st.Reason == ReasonPullFailed {
			rep.st.Reason, rep.st.LastError = "", ""
		}
		rep.st.Phase, rep.st.Message = PhasePending, "image "+img.Digest+" present"
		r.schedule(rep, now)
		r.notify()
	}()
}

// containerStart is one start of an oci replica handed to the node's
// start pool: what the start needs, copied under the lock, so that the
// pool reads nothing of the replica without it.
type containerStart struct {
	rep   *replica
	spec  ReplicaSpec
	img   *image.Image
	fs    string
	env   []string
	files string // the replica's files directory on the node, "" without files
	logs  *replicaLogs
	now   time.Time
}

// launchContainerLocked hands rep's start to the start pool. Until it
// ends the replica is Pending "starting the container" with starting
// set: a stop waits for the start's end (which then stops what it
// started), a fencing Kill marks it to be killed as soon as it runs.
func (r *Runtime) launchContainerLocked(rep *replica, now time.Time, files string) {
	rep.st.LimitsEnforced, rep.st.LimitsMessage = true, ""
	rep.starting, rep.fenceStart = true, false
	rep.st.Phase, rep.st.Message = PhasePending, "starting the container"
	if rep.logs != nil {
		rep.logs.markRun(now)
	}
	job := &containerStart{
		rep: rep, spec: rep.spec, img: rep.img, fs: rep.fs, env: containerEnv(rep, rep.img, files != ""),
		files: files, logs: rep.logs, now: now,
	}
	r.wg.Add(1)
	go r.startContainer(job)
	r.notify()
}

// startContainer is a start in the pool: it waits for one of the node's
// start slots, prepares the bundle (overlay, config.json) and forks
// `runc run`, all without the runtime's lock, then attaches the run
// under the lock and keeps its slot until the container's process runs
// (runc wrote its pid file) or runc ended: the slots bound how many runc
// processes build containers at once, not only how many are forked.
func (r *Runtime) startContainer(j *containerStart) {
	defer r.wg.Done()
	select {
	case r.startSlots <- struct{}{}:
	case <-r.ctx.Done():
		r.mu.Lock()
		j.rep.starting = false
		r.mu.Unlock()
		return
	}
	defer func() { <-r.startSlots }()
	if r.startGate != nil {
		r.startGate(j.spec.ID)
	}
	b, cmd, err := r.prepareContainer(j)
	if err == nil {
		var stdout, stderr *os.File
		if j.logs != nil {
			var lerr error
			if stdout, stderr, lerr = j.logs.childFiles(); lerr != nil {
				r.log.Warn("replica output will not be captured", "replica", j.spec.ID, "err", lerr)
			}
		}
		r.childAttrs(cmd, stdout, stderr)
		err = r.startCmd(cmd)
		if stdout != nil {
			stdout.Close()
			stderr.Close()
		}
		if err != nil {
			r.removeContainer(b)
		}
	} else {
		err = fmt.Errorf("prepare the container: %w", err)
	}
	r.mu.Lock()
	run := r.containerStartedLocked(j, b, cmd, err)
	r.mu.Unlock()
	if run == nil {
		return
	}
	r.waitContainerInit(b, run.gone)
	close(run.initDone)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.containerInitLocked(j.rep, run)
}

// containerInitLocked ends a start once the container's process runs
// (or runc ended): a stop that came during the start is carried out now,
// not while runc built the container (a runc that a SIGTERM ends in the
// middle leaves its mounts behind); a restart that came due meanwhile is
// due again.
func (r *Runtime) containerInitLocked(rep *replica, run *procRun) {
	rep.starting = false
	if r.state != stateRunning || r.reps[rep.spec.ID] != rep {
		return
	}
	switch {
	case rep.run == run && !run.exited && !run.stopping && rep.intent != intentNone:
		r.beginStop(rep, rep.intent, "")
	case rep.run == run && run.exited && rep.intent == intentNone && rep.qidx < 0 &&
		(rep.st.Phase == PhasePending || rep.st.Phase == PhaseBackoff):
		due := r.now()
		if rep.st.NextStartAt.After(due) {
			due = rep.st.NextStartAt
		}
		r.schedule(rep, due)
	}
}

// containerStartedLocked attaches a start of the pool once runc was
// forked: a failure is a failed run; a container that started becomes
// the replica's run (the start still holds the replica, starting, until
// the container's process runs), is killed when it was fenced, and left
// running (recorded, for the next agent run to adopt) when the runtime
// stopped.
func (r *Runtime) containerStartedLocked(j *containerStart, b *ociBundle, cmd *exec.Cmd, err error) *procRun {
	rep := j.rep
	if err != nil {
		rep.starting = false
		switch {
		case r.state != stateRunning || r.reps[rep.spec.ID] != rep:
		case rep.intent != intentNone:
			r.finalizeLocked(rep)
		default:
			r.startFailedLocked(rep, r.now(), err)
		}
		return nil
	}
	if r.reps[rep.spec.ID] != rep {
		rep.starting = false
		// Forgotten meanwhile (a stop waits for the start's end, so
		// this should not happen): nothing may run for it.
		r.log.Error("container started for a replica the node forgot: removing it", "replica", rep.spec.ID)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			_ = cmd.Wait()
			r.killContainer(b)
			r.removeContainer(b)
		}()
		return nil
	}
	pid := cmd.Process.Pid
	_, _, ticks, _ := procStat(pid)
	run := &procRun{pid: pid, pgid: pid, ticks: ticks, started: j.now, env: j.env, dir: j.spec.Template.WorkingDir,
		gone: make(chan struct{}), initDone: make(chan struct{})}
	rep.bundle = b
	r.attachRunLocked(rep, run, cmd)
	switch {
	case r.state != stateRunning:
		run.detach()
	case run.reason != "":
	case rep.fenceStart:
		run.killed = true
		run.reason, run.failure = "killed: the node's lease on the hub ran out (fenced)", ReasonFenced
		r.log.Warn("killing replica: its lease ran out while it started", "replica", rep.spec.ID, "pid", pid)
		r.killGroup(rep, run)
	case rep.intent != intentNone:
		// Stopped once its process runs (containerInitLocked).
	default:
		r.log.Info("replica started", "replica", rep.spec.ID, "pid", pid, "port", rep.port, "restarts", rep.st.Restarts)
		r.runningLocked(rep, run)
	}
	r.notify()
	return run
}

// waitContainerInit returns once runc wrote the container's pid file
// (its process runs), runc exited, the runtime stopped, or a minute
// passed (a runc that hangs gives its slot back).
func (r *Runtime) waitContainerInit(b *ociBundle, gone <-chan struct{}) {
	delay := 2 * time.Millisecond
	t := time.NewTimer(delay)
	defer t.Stop()
	deadline := time.Now().Add(time.Minute)
	for containerPid(b) == 0 && time.Now().Before(deadline) {
		select {
		case <-gone:
			return
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		delay = min(2*delay, 50*time.Millisecond)
		t.Reset(delay)
	}
}

// prepareContainer makes a start's bundle and returns the runc command
// that runs it in the foreground: runc forwards signals to the container and exits with its
// status, so the process machinery (process group, exit codes, records,
// adoption) applies to it unchanged. It touches only that replica's
// bundle and runs without the runtime's lock.
func (r *Runtime) prepareContainer(j *containerStart) (*ociBundle, *exec.Cmd, error) {
	b, err := r.makeBundle(j.fs, j.spec.ID)
	if err != nil {
		return nil, nil, err
	}
	spec, err := containerSpec(j.spec, j.img, b, j.env, j.files)
	if err == nil && j.files != "" {
		err = chownTree(j.files, int(spec.Process.User.UID), int(spec.Process.User.GID))
	}
	if err != nil {
		r.removeContainer(b)
		return nil, nil, err
	}
	data, err := json.Marshal(spec)
	if err == nil {
		err = os.WriteFile(filepath.Join(b.dir, "config.json"), data, 0o600)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(b.dir, "id"), []byte(b.id), 0o600)
	}
	if err != nil {
		r.removeContainer(b)
		return nil, nil, err
	}
	// --keep: the stopped container (and its cgroup, whose OOM count
	// says why it died) stays until ociWaitCleanup deletes it.
	cmd := exec.Command(r.runc, "--root", r.runcRoot, "--log", filepath.Join(b.dir, "runc.log"), "--log-format", "json", "run", "--keep", "--bundle", b.dir, "--pid-file", filepath.Join(b.dir, "pid"), b.id)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = b.dir
	return b, cmd, nil
}

// makeBundle makes a fresh bundle directory for a replica's run
// (whatever an earlier run left is removed first). It touches only that
// replica's bundle and runs without the runtime's lock.
func (r *Runtime) makeBundle(fs, replicaID string) (*ociBundle, error) {
	b := &ociBundle{dir: filepath.Join(r.bundleDir, fs), id: containerID(replicaID)}
	r.removeContainer(b)
	if err := os.MkdirAll(b.dir, 0o711); err != nil {
		return nil, err
	}
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.Mkdir(filepath.Join(b.dir, d), 0o755); err != nil {
			_ = os.RemoveAll(b.dir)
			return nil, err
		}
	}
	return b, nil
}

// containerPid is the container's init process (0 when not known yet).
func containerPid(b *ociBundle) int {
	if b == nil {
		return 0
	}
	raw, err := os.ReadFile(filepath.Join(b.dir, "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	return pid
}

// killContainer SIGKILLs the container's init: the kernel then kills
// everything in its pid namespace, and runc exits with 137.
func (r *Runtime) killContainer(b *ociBundle) {
	if pid := containerPid(b); pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// removeContainer deletes a container and its bundle: runc's state (and
// whatever still runs), the overlay and the directories. Safe on a
// bundle that is already gone.
func (r *Runtime) removeContainer(b *ociBundle) {
	if b.id != "" {
		// A runc killed while it started leaves the bind mount of its
		// own binary (runc.XXXXXX) in its state directory.
		left, _ := filepath.Glob(filepath.Join(r.runcRoot, b.id, "runc.*"))
		for _, p := range left {
			_ = unix.Unmount(p, unix.MNT_DETACH)
			_ = os.Remove(p)
		}
	}
	if r.runc != "" {
		if _, err := os.Stat(filepath.Join(r.runcRoot, b.id)); err == nil {
			out, err := exec.Command(r.runc, "--root", r.runcRoot, "delete", "--force", b.id).CombinedOutput()
			if err != nil {
				r.log.Warn("runc delete", "container", b.id, "err", err, "output", strings.TrimSpace(string(out)))
			}
		}
	}
	// Agents before the root moved into the container's namespace
	// mounted it on the node: a bundle one of them left is unmounted.
	for range 50 {
		err := unix.Unmount(b.rootfs(), unix.MNT_DETACH)
		if err != nil {
			break
		}
	}
	// The root's overlay lives in the container's mount namespace, which
	// goes only once its last process is gone, a moment after runc
	// returns: until then the overlay may still write in its upper and
	// work directories, and a removal finds them not empty (or busy).
	// That alone is retried, for up to about two seconds; any other
	// failure would not pass by waiting (and the sweep at Start runs
	// this under the runtime's lock).
	var err error
	for delay := 10 * time.Millisecond; ; delay *= 2 {
		err = os.RemoveAll(b.dir)
		if !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EBUSY) || delay > time.Second {
			break
		}
		time.Sleep(delay)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		r.log.Warn("remove container bundle", "dir", b.dir, "err", err)
	}
}

// sweepContainersLocked removes the bundles and runc containers no
// adopted replica owns (left by an agent that died while they ran).
func (r *Runtime) sweepContainersLocked() {
	owned := map[string]bool{}
	for _, rep := range r.reps {
		if rep.isOCI() {
			owned[rep.fs] = true
			owned[containerID(rep.spec.ID)] = true
		}
	}
	entries, _ := os.ReadDir(r.bundleDir)
	for _, e := range entries {
		if !owned[e.Name()] {
			r.log.Info("leftover container bundle removed", "bundle", e.Name())
			b := &ociBundle{dir: filepath.Join(r.bundleDir, e.Name())}
			if raw, err := os.ReadFile(filepath.Join(b.dir, "id")); err == nil {
				b.id = string(raw)
			}
			r.removeContainer(b)
		}
	}
	if r.runc == "" {
		return
	}
	states, _ := os.ReadDir(r.runcRoot)
	for _, e := range states {
		if !owned[e.Name()] && strings.HasPrefix(e.Name(), "atoll-") {
			r.log.Info("leftover container removed", "container", e.Name())
			_ = exec.Command(r.runc, "--root", r.runcRoot, "delete", "--force", e.Name()).Run()
		}
	}
}

// containerSpec is the OCI runtime spec of rep's container: the image's
// root under an overlay whose upper and work directories are bundle b's,
// mounted by runc in the container's mount namespace; the image's
// entrypoint, cmd, env and working directory under the template's
// overrides; pid, ipc, uts and mount namespaces with the host's network
// (or a network of its own when its ports are mapped);
// no capabilities and no new privileges; the template's cpu and memory
// as cgroup limits; the replica's files directory (files, "" without
// files) bind-mounted read-only at containerFilesDir.
func containerSpec(spec ReplicaSpec, img *image.Image, b *ociBundle, env []string, files string) (*specs.Spec, error) {
	t := spec.Template
	ic := img.Config
	var args []string
	switch {
	case t.Command != "":
		args = append([]string{t.Command}, t.Args...)
	case len(t.Args) > 0:
		args = append(append([]string{}, ic.Entrypoint...), t.Args...)
	default:
		args = append(append([]string{}, ic.Entrypoint...), ic.Cmd...)
	}
	if len(args) == 0 {
		return nil, errors.New("nothing to run: the image has no entrypoint or cmd and the template no command")
	}
	uid, gid, err := resolveUser(img.Rootfs, t.User, ic.User)
	if err != nil {
		return nil, err
	}
	cwd := t.WorkingDir
	if cwd == "" {
		cwd = ic.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	if !filepath.IsAbs(cwd) {
		return nil, fmt.Errorf("working directory %q is not absolute", cwd)
	}
	noCaps := &specs.LinuxCapabilities{Bounding: []string{}, Effective: []string{}, Permitted: []string{}, Inheritable: []string{}, Ambient: []string{}}
	hostname := spec.ID
	if len(hostname) > 63 || !api.IsDNSLabel(hostname) {
		hostname = strings.ToLower(containerID(spec.ID))[:min(63, len(containerID(spec.ID)))]
	}
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: hostname,
		Root:     &specs.Root{Path: "rootfs", Readonly: t.ReadOnlyRoot},
		Process: &specs.Process{
			Args:            args,
			Env:             env,
			Cwd:             cwd,
			User:            specs.User{UID: uid, GID: gid},
			Capabilities:    noCaps,
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			// The root first, inside the container's mount namespace
			// (runc mounts it over rootfs before the rest; see ociBundle).
			{Destination: "/", Type: "overlay", Source: "overlay", Options: []string{
				"lowerdir=" + img.Rootfs, "upperdir=" + filepath.Join(b.dir, "upper"), "workdir=" + filepath.Join(b.dir, "work")}},
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: containerCgroupsPath(containerID(spec.ID)),
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if t.PortsMapped() {
		// A network of its own: runc brings its loopback up, and the
		// agent forwards the host ports into it (package portfwd).
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	// The container resolves names as the node does.
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: f, Type: "bind", Source: f, Options: []string{"rbind", "ro", "nosuid", "nodev"}})
		}
	}
	if files != "" {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: containerFilesDir, Type: "bind", Source: files,
			Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
	}
	milli, mem := t.Resources.Quantities()
	if milli > 0 {
		period := uint64(100000)
		quota := max(milli*100, 1000)
		s.Linux.Resources.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if mem > 0 {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
	}
	return s, nil
}

// containerEnv is a container's environment: the image's, a default
// PATH, the template's variables (those from configs and secrets filled
// in, as for processes), ATOLL_FILES when it has files, then PORT,
// ATOLL_REPLICA and ATOLL_WORKLOAD (these win, as for processes).
func containerEnv(rep *replica, img *image.Image, files bool) []string {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	for _, e := range img.Config.Env {
		k, v, _ := strings.Cut(e, "=")
		set(k, v)
	}
	for _, e := range rep.spec.Template.Env {
		v := e.Value
		if e.ValueFrom != nil && rep.spec.Data != nil {
			v = rep.spec.Data.Env[e.Name]
		}
		set(e.Name, v)
	}
	if files {
		set("ATOLL_FILES", containerFilesDir)
	}
	port := rep.port
	if rep.mapped() {
		port = int(rep.spec.Template.Ports[0].ContainerPort)
	}
	set("PORT", strconv.Itoa(port))
	set("ATOLL_REPLICA", rep.spec.ID)
	set("ATOLL_WORKLOAD", rep.spec.Workload)
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out
}

// resolveUser turns the template's user (else the image's) into a uid
// and gid, names looked up in the image's /etc/passwd and /etc/group.
// Root is used only when the template asks for it: an image whose user is
// root (or unset) runs as nobody.
func resolveUser(rootfs, tmpl, img string) (uint32, uint32, error) {
	u := tmpl
	if u == "" {
		u = img
	}
	if u == "" {
		return nobody, nobody, nil
	}
	user, group, hasGroup := strings.Cut(u, ":")
	uid, pgid, err := lookupID(filepath.Join(rootfs, "etc/passwd"), user, true)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q: %w", u, err)
	}
	gid := pgid
	if hasGroup {
		if gid, _, err = lookupID(filepath.Join(rootfs, "etc/group"), group, false); err != nil {
			return 0, 0, fmt.Errorf("group %q: %w", group, err)
		}
	}
	if uid == 0 && tmpl == "" {
		return nobody, nobody, nil
	}
	return uid, gid, nil
}

// lookupID finds a user (passwd: name:x:uid:gid:...) or group
// (group: name:x:gid:...) by name or number; for a user it also returns
// the primary group (the uid when the user is a number not in the file).
func lookupID(file, who string, user bool) (uint32, uint32, error) {
	if n, err := strconv.ParseUint(who, 10, 32); err == nil {
		id := uint32(n)
		gid := id
		if user {
			if _, g, err := lookupID(file, who+"\x00byid", true); err == nil {
				gid = g
			}
		}
		return id, gid, nil
	}
	byID, isByID := strings.CutSuffix(who, "\x00byid")
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, fmt.Errorf("no such user in the image (%s: %v)", filepath.Base(file), err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 {
			continue
		}
		if (isByID && fields[2] == byID) || (!isByID && fields[0] == who) {
			id, err := strconv.ParseUint(fields[2], 10, 32)
			if err != nil {
				break
			}
			gid := id
			if user && len(fields) > 3 {
				if g, err := strconv.ParseUint(fields[3], 10, 32); err == nil {
					gid = g
				}
			}
			return uint32(id), uint32(gid), nil
		}
	}
	return 0, 0, fmt.Errorf("not found in the image's /%s", filepath.Join("etc", filepath.Base(file)))
}

// ociWaitCleanup runs after an oci run's runc exited (code is its exit
// code, -1 when unknown): the container is deleted and its bundle
// removed (a restart makes a fresh one). When runc itself failed (the
// container could not start), its error becomes the run's reason; when
// the container failed and its cgroup counted an OOM kill, the reason is
// OOMKilled.
func (r *Runtime) ociWaitCleanup(rep *replica, run *procRun, code int) {
	r.mu.Lock()
	b := rep.bundle
	limit := rep.spec.Template.Resources.Memory
	r.mu.Unlock()
	if b == nil {
		return
	}
	r.killContainer(b)
	why := runcError(filepath.Join(b.dir, "runc.log"))
	kills, _ := containerOOMKills(containerCgroupsPath(b.id))
	r.removeContainer(b)
	if run == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case run.reason != "" || code == 0:
	case kills > 0:
		run.reason, run.failure = "out of memory: the kernel's OOM killer killed the container (memory limit "+cmp.Or(limit, "none")+")", ReasonOOMKilled
	case why != "" && !run.adopted:
		run.reason, run.failure = "runc: "+why, ReasonExecFailed
	}
}

// containerCgroupsPath is the cgroup of a container (runc's
// cgroupsPath, under each hierarchy's root).
func containerCgroupsPath(id string) string { return "/atoll-oci/" + id }

// containerOOMKills reads how many processes the kernel's OOM killer
// killed in the container cgroup at path: memory.oom_control's oom_kill
// under the cgroup v1 memory hierarchy where one is mounted (a hybrid
// host, where runc puts the memory limit), else memory.events' oom_kill
// under cgroup v2. ok is false when neither can be read (no memory
// controller, or the cgroup is gone).
func containerOOMKills(path string) (n int64, ok bool) {
	read := func(file string) (int64, bool) {
		b, err := os.ReadFile(file)
		if err != nil {
			return 0, false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, found := strings.CutPrefix(line, "oom_kill "); found {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n, err == nil
			}
		}
		return 0, false
	}
	if m := cgroup1Mount("memory"); m != "" {
		return read(filepath.Join(m, path, "memory.oom_control"))
	}
	for _, m := range cgroup2Mounts() {
		if n, ok := read(filepath.Join(m, path, "memory.events")); ok {
			return n, true
		}
	}
	return 0, false
}

// runcError is the last error runc logged (its JSON log), "" when none.
func runcError(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Level == "error" {
			last = e.Msg
		}
	}
	return last
}

// probesInContainer returns t with its exec probes run inside the
// container (runc exec); http and tcp probes reach the container on the
// host's network as they are.
func (r *Runtime) probesInContainer(t api.ReplicaTemplate, id string) api.ReplicaTemplate {
	wrap := func(p *api.Probe) *api.Probe {
		if p == nil || p.Exec == nil {
			return p
		}
		c := *p
		c.Exec = &api.ExecProbe{Command: append([]string{r.runc, "--root", r.runcRoot, "exec", id}, p.Exec.Command...)}
		return &c
	}
	t.Startup, t.Liveness, t.Readiness = wrap(t.Startup), wrap(t.Liveness), wrap(t.Readiness)
	return t
}

// ContainerSupport says whether this machine can run oci replicas with
// the given runc (empty: looked up) and, when it cannot, why: runc must
// be installed and the agent must run as root (the container's root is
// an overlay mount; runc makes namespaces and cgroups).
func ContainerSupport(runc string) (bool, string) {
	if _, why := findRunc(runc); why != "" {
		return false, why
	}
	if os.Geteuid() != 0 {
		return false, "the node agent does not run as root (containers need mounts, namespaces and cgroups)"
	}
	return true, ""
}
