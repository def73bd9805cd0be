package pgserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// launch starts postgres and waits until it is ready.
func (s *Server) launch(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.launchLocked(ctx)
}

func (s *Server) launchLocked(ctx context.Context) error {
	if err := s.waitForOrphan(ctx); err != nil {
		return err
	}
	attempts := 1
	pick := s.pickPort && s.port.Load() == 0
	if pick {
		attempts = portAttempts
	}
	for i := 1; ; i++ {
		port := int(s.port.Load())
		if pick {
			var err error
			if port, err = freePort(); err != nil {
				return err
			}
		}
		p, err := s.spawn(port)
		if err != nil {
			return err
		}
		err = p.waitReady(ctx, readyTimeout)
		if err == nil {
			s.port.Store(int32(port))
			s.proc = p
			return nil
		}
		if pick && i < attempts && p.tail.contains("Address already in use") {
			s.log.Info("pgserver: port taken meanwhile, trying another", "port", port)
			continue
		}
		return err
	}
}

// spawn starts postgres on port, from a goroutine that keeps its OS thread
// locked for the child's whole life (see startPinned).
func (s *Server) spawn(port int) (*process, error) {
	args := []string{
		"-D", s.dataDir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
		"-c", "logging_collector=off",
		"-c", "log_destination=stderr",
		"-c", "lc_messages=C",
	}
	if !s.durable {
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
		)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spawn postgres: %w", err)
	}
	cmd := exec.Command(s.bins.postgres, args...)
	cmd.Dir = s.dataDir
	cmd.Env = childEnv()
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: s.acct.credential(),
		// Its own process group: a Ctrl-C in our terminal reaches us, and
		// we decide when the server stops.
		Setpgid: true,
	}
	setParentDeathSignal(cmd.SysProcAttr, syscall.SIGQUIT)

	p := &process{
		cmd:     cmd,
		exited:  make(chan struct{}),
		ready:   make(chan struct{}),
		logDone: make(chan struct{}),
		tail:    &logTail{max: tailLines},
	}
	waited, err := startPinned(cmd)
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("spawn postgres: %w", err)
	}
	go func() {
		p.waitErr = <-waited
		close(p.exited)
	}()
	go p.readLog(r, s.log)
	return p, nil
}

// startPinned starts cmd from a goroutine that keeps its OS thread locked
// for the child's whole life, and returns a channel that receives the
// result of cmd.Wait. The parent-death signal fires when the thread that
// started the child ends, so that thread must outlive the child unless
// our whole process dies.
func startPinned(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine ends the thread ends with it,
		// and by then the child has exited.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return waited, nil
}

// waitForOrphan waits for a postmaster that still holds the data folder,
// typically one whose parent was killed and which is shutting down.
func (s *Server) waitForOrphan(ctx context.Context) error {
	pid := postmasterPID(s.dataDir)
	if pid <= 0 || !postgresAlive(pid) {
		return nil
	}
	s.log.Info("pgserver: waiting for an earlier PostgreSQL to exit", "pid", pid, "data", s.dataDir)
	deadline := time.NewTimer(orphanWait)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for postgresAlive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for earlier postgres: %w", ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("wait for earlier postgres: %s is in use by a running PostgreSQL (pid %d, from postmaster.pid) that did not exit within %s: stop it, or use another data folder",
				s.dataDir, pid, orphanWait)
		case <-tick.C:
		}
	}
	return nil
}

// postmasterPID reads the pid in DataDir/postmaster.pid, or returns 0.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	return pid
}

// postgresAlive tells whether pid is a live process that may be a
// postgres. Where /proc exists, a zombie or a process of another program
// (the pid was reused) counts as gone.
func postgresAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist) || !procMounted()
	}
	// "pid (comm) state ...": comm may hold spaces and parentheses.
	stat := string(b)
	open, end := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if open < 0 || end < open || end+2 >= len(stat) {
		return true
	}
	comm, state := stat[open+1:end], stat[end+2]
	if state == 'Z' || state == 'X' {
		return false
	}
	return strings.HasPrefix(comm, "postgres")
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pick port: %w", err)
	}
	return port, nil
}

// childEnv is our environment with messages and locale forced to C, so
// that the log lines we watch for are in English.
func childEnv() []string {
	return append(os.Environ(), "LC_ALL=C", "LANG=C")
}

// process is one run of the postmaster.
type process struct {
	cmd     *exec.Cmd
	waitErr error         // set before exited is closed
	exited  chan struct{} // closed when the postmaster has exited
	ready   chan struct{} // closed when the log says it is ready
	logDone chan struct{} // closed when its log pipe is drained
	tail    *logTail
}

// readLog passes the server's log to log and watches it for readiness.
func (p *process) readLog(r *os.File, log *slog.Logger) {
	defer close(p.logDone)
	defer r.Close()
	br := bufio.NewReader(r)
	isReady := false
	for {
		line, err := br.ReadString('\n')
		if line = strings.TrimRight(line, "\r\n"); line != "" {
			log.Debug(line, "component", "postgres")
			p.tail.add(line)
			if !isReady && strings.Contains(line, readyMessage) {
				isReady = true
				close(p.ready)
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Debug("pgserver: read server log", "err", err)
			}
			return
		}
	}
}

// waitReady waits until the server is ready; on failure it makes sure
// the server is gone and returns its last log lines.
func (p *process) waitReady(ctx context.Context, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.ready:
		return nil
	case <-p.exited:
		p.waitLog(5 * time.Second)
		return fmt.Errorf("postgres exited before it was ready (%v); its last log lines:\n%s", p.waitErr, p.tail)
	case <-ctx.Done():
		err := p.shutdown(syscall.SIGQUIT, 10*time.Second)
		return errors.Join(fmt.Errorf("wait for postgres: %w; its last log lines:\n%s", ctx.Err(), p.tail), err)
	case <-timer.C:
		err := p.shutdown(syscall.SIGQUIT, 10*time.Second)
		return errors.Join(fmt.Errorf("postgres not ready after %s; its last log lines:\n%s", timeout, p.tail), err)
	}
}

// shutdown sends sig and waits up to grace for the exit, then kills.
func (p *process) shutdown(sig syscall.Signal, grace time.Duration) error {
	select {
	case <-p.exited:
		// It had already exited on its own: say so unless it was clean.
		p.waitLog(5 * time.Second)
		if p.waitErr != nil {
			return fmt.Errorf("postgres had already exited (%w); its last log lines:\n%s", p.waitErr, p.tail)
		}
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal postgres: %w", err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.exited:
		p.waitLog(5 * time.Second)
		return nil
	case <-timer.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill postgres: %w", err)
	}
	<-p.exited
	p.waitLog(5 * time.Second)
	return fmt.Errorf("postgres did not exit within %s of %v and was killed", grace, sig)
}

// waitLog waits a bounded time for the log pipe to be drained: after a
// normal exit every server process is gone and it ends at once, but after
// a kill, orphaned backends may hold it open a little longer.
func (p *process) waitLog(limit time.Duration) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-p.logDone:
	case <-timer.C:
	}
}

// logTail keeps the last lines of the server's log for error messages.
type logTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *logTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		t.lines = append(t.lines[:0], t.lines[1:]...)
	}
	t.lines = append(t.lines, line)
}

func (t *logTail) contains(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func (t *logTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return "(none)"
	}
	return strings.Join(t.lines, "\n")
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
