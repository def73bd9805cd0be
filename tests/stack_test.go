//go:build linux

package tests

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	readyTimeout = 60 * time.Second // from starting `atoll dev` to its banner
	stopTimeout  = 45 * time.Second // SIGTERM to exit: PostgreSQL may take 30 s, the hub 10 s
	goneTimeout  = 15 * time.Second // for PostgreSQL processes to go after the dev process did
	cliTimeout   = 30 * time.Second // for one client command
)

// readyBanner is the first line `atoll dev` prints on its standard output
// once it serves (its logs go to standard error).
const readyBanner = "Atoll dev is ready."

// atollBin is the binary TestMain built.
var atollBin string

// devStack is a running `atoll dev` process.
type devStack struct {
	dataDir string
	startup time.Duration // from starting the process to its banner
	addr    string        // host:port it listens on
	url     string        // http://host:port
	token   string        // the admin token from <dataDir>/admin-token

	cmd    *exec.Cmd
	stderr *lineLog
	child

	// stopSignal is what stop sends the process group: SIGTERM (zero) as
	// a service manager would, or SIGINT as Ctrl-C in a terminal does
	// (`go run` passes that on and exits as its child did).
	stopSignal syscall.Signal
	// goRun is set when cmd is `go run`, which exits 1 whenever it was
	// interrupted, whatever its child did (cmd/go sets that status when
	// its build loop sees the signal): then only its child's own error
	// line counts.
	goRun    bool
	stopOnce sync.Once
	stopErr  error
}

// child is a started process: exited closes once it has exited, waitErr
// set before.
type child struct {
	exited  chan struct{}
	waitErr error
}

// start starts cmd, whose SysProcAttr carries a parent-death signal. That
// signal fires when the thread that started the child ends, so start and
// wait from one goroutine that keeps its thread locked (never unlocked, so
// the thread ends only after the child has).
func (c *child) start(cmd *exec.Cmd) error {
	c.exited = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return <-started
}

// startDev starts `atoll dev` on dataDir, listening on listen (port 0 picks
// one), with extra flags, and returns once it printed its readiness banner. On failure the
// process is gone and the error quotes its standard error.
func startDev(dataDir, listen string, extra ...string) (*devStack, error) {
	return startDevCmd(exec.Command(atollBin, append([]string{"dev", "--data-dir", dataDir, "--listen", listen}, extra...)...), dataDir)
}

// startDevCmd is startDev for a command of the caller's (`go run
// ./cmd/atoll dev ...`, as the README says), whose data folder is
// dataDir.
func startDevCmd(cmd *exec.Cmd, dataDir string) (*devStack, error) {
	d := &devStack{
		dataDir: dataDir,
		stderr:  &lineLog{max: 400},
	}
	d.cmd = cmd
	d.cmd.Env = append(os.Environ(), "ATOLL_ADMIN_TOKEN=", "ATOLL_KEY=") // the token and the key come from files
	d.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true, // so that stop and kill reach the whole group
		// If the test binary dies (a go test timeout), the dev stack goes too.
		Pdeathsig: syscall.SIGKILL,
	}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("start atoll dev: %w", err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start atoll dev: %w", err)
	}
	if err := d.start(d.cmd); err != nil {
		return nil, fmt.Errorf("start atoll dev: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			d.stderr.add(sc.Text())
		}
		_, _ = io.Copy(io.Discard, stderr) // after a too-long line, keep draining
	}()

	ready := make(chan string, 1) // the API URL from the banner
	go func() {
		sc := bufio.NewScanner(stdout)
		inBanner := false
		for sc.Scan() {
			line := sc.Text()
			d.stderr.add("stdout: " + line)
			if strings.TrimSpace(line) == readyBanner {
				inBanner = true
				continue
			}
			// "  API:          http://127.0.0.1:8080/api/v1  (OpenAPI: ...)"
			if f := strings.Fields(line); inBanner && len(f) >= 2 && f[0] == "API:" {
				inBanner = false
				ready <- strings.TrimSuffix(f[1], "/api/v1")
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()

	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	select {
	case d.url = <-ready:
		d.startup = time.Since(begin)
	case <-d.exited:
		return nil, fmt.Errorf("atoll dev exited before printing %q (%v); its standard error:\n%s", readyBanner, d.waitErr, d.stderr)
	case <-ctx.Done():
		err := d.stop()
		return nil, errors.Join(fmt.Errorf("atoll dev did not print %q within %s; its standard error:\n%s", readyBanner, readyTimeout, d.stderr), err)
	}
	d.addr = strings.TrimPrefix(d.url, "http://")
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("atoll dev is ready but its admin token is not readable: %w", err), d.stop())
	}
	d.token = strings.TrimSpace(string(tok))
	return d, nil
}

// startDevT is startDev for a test: it fails the test on error and stops
// the stack when the test ends.
func startDevT(t *testing.T, dataDir, listen string, extra ...string) *devStack {
	t.Helper()
	d, err := startDev(dataDir, listen, extra...)
	if err != nil {
		t.Fatalf("want atoll dev running on %s; got: %v", dataDir, err)
	}
	t.Logf("atoll dev on %s ready in %s", d.url, d.startup.Round(time.Millisecond))
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("want atoll dev on %s to stop cleanly and leave no PostgreSQL behind; got: %v", dataDir, err)
		}
	})
	return d
}

// stop ends the stack as Ctrl-C would (SIGTERM to its process group), kills
// it if it takes longer than stopTimeout, then makes sure its PostgreSQL
// is gone. Calling it again returns the first result.
func (d *devStack) stop() error {
	d.stopOnce.Do(func() {
		var errs []error
		var pg []proc // a killed stack's postmaster.pid may be stale: then only postmastersOn counts
		select {
		case <-d.exited:
		default:
			pg = d.postgresProcs()
			sig := cmp.Or(d.stopSignal, syscall.SIGTERM)
			_ = syscall.Kill(-d.cmd.Process.Pid, sig)
			select {
			case <-d.exited:
				var exit *exec.ExitError
				interrupted := d.goRun && sig == syscall.SIGINT && errors.As(d.waitErr, &exit) && exit.ExitCode() == 1
				if d.waitErr != nil && !(interrupted && !d.stderr.has("error: ")) {
					errs = append(errs, fmt.Errorf("atoll dev exited with %v after %v; its standard error:\n%s", d.waitErr, sig, d.stderr))
				}
			case <-time.After(stopTimeout):
				_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
				<-d.exited
				errs = append(errs, fmt.Errorf("atoll dev did not exit within %s of %v and was killed; its standard error:\n%s", stopTimeout, sig, d.stderr))
			}
		}
		if err := waitGone(pg, d.pgDataDir(), goneTimeout); err != nil {
			errs = append(errs, err)
		}
		d.stopErr = errors.Join(errs...)
	})
	return d.stopErr
}

// kill SIGKILLs the dev process's group and waits for the process to exit.
// It does not wait for PostgreSQL: that is what a test checks.
func (d *devStack) kill() {
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
}

func (d *devStack) pgDataDir() string { return filepath.Join(d.dataDir, "postgres") }

// postgresProcs is the postmaster of the stack's data folder and its
// children, as they are now.
func (d *devStack) postgresProcs() []proc {
	b, err := os.ReadFile(filepath.Join(d.pgDataDir(), "postmaster.pid"))
	if err != nil {
		return nil
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil
	}
	return procTree(pid)
}

// request sends a request to path, with token as bearer unless empty, and returns status and body.
func (d *devStack) request(method, path, token string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, d.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// checkReady fails the test unless GET /readyz answers 200.
func (d *devStack) checkReady(t *testing.T) {
	t.Helper()
	status, body, err := d.request(http.MethodGet, "/readyz", "", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("want GET %s/readyz to answer 200 once the banner is printed; got status %d, body %q, error %v", d.url, status, body, err)
	}
}

// cliResult is what one client command did.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int // exit code; -1 when it did not exit on its own
}

func (r cliResult) String() string {
	return fmt.Sprintf("`atoll %s` exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// atoll runs one client command against the stack as the admin, with env
// entries (KEY=VALUE) overriding the defaults, and stdin as its input.
func (d *devStack) atoll(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	return d.atollWithin(t, cliTimeout, env, stdin, args...)
}

// atollWithin is atoll for a command that may take up to timeout (one
// that follows something, like `atoll drill run`).
func (d *devStack) atollWithin(t *testing.T, timeout time.Duration, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, atollBin, args...)
	cmd.Env = append(os.Environ(),
		"ATOLL_CONFIG="+filepath.Join(d.dataDir, "no-such-config.yaml"), // never the user's contexts
		"ATOLL_SERVER="+d.url,
		"ATOLL_TOKEN="+d.token,
	)
	cmd.Env = append(cmd.Env, env...) // the last of duplicate keys wins
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.Exited():
		r.code = exit.ExitCode()
	case ctx.Err() != nil:
		t.Fatalf("want `atoll %s` to finish within %s; it did not and was killed\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, r.stdout, r.stderr)
	default:
		t.Fatalf("want `atoll %s` to run; got %v", strings.Join(args, " "), err)
	}
	return r
}

// mustAtoll is atoll for commands that must succeed.
func (d *devStack) mustAtoll(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	r := d.atoll(t, nil, stdin, args...)
	if r.code != 0 {
		t.Fatalf("want exit code 0; got %s", r)
	}
	return r
}

// lineLog keeps the last lines of a process's output for failure messages.
type lineLog struct {
	mu    sync.Mutex
	max   int
	lines []string
}

// find returns the first line kept that contains sub, or "".
func (l *lineLog) find(sub string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}

// grep is the last n lines kept that hold any of subs, one a line.
func (l *lineLog) grep(n int, subs ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if slices.ContainsFunc(subs, func(s string) bool { return strings.Contains(line, s) }) {
			out = append(out, line)
		}
	}
	return strings.Join(out[max(0, len(out)-n):], "\n")
}

// has says whether a line kept starts with prefix.
func (l *lineLog) has(prefix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

func (l *lineLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == l.max {
		l.lines = append(l.lines[:0], l.lines[1:]...)
	}
	l.lines = append(l.lines, line)
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}

// proc names one process for its lifetime: pid numbers are reused, start
// times tell the processes apart.
type proc struct {
	pid   int
	start string
}

// procStat reads /proc/pid/stat: parent pid, state and start time.
func procStat(pid int) (ppid int, state byte, start string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, "", false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, 0, "", false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return 0, 0, "", false
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0][0], f[19], true
}

// procTree is root and its descendants, as they are now.
func procTree(root int) []proc {
	_, _, start, ok := procStat(root)
	if !ok {
		return nil
	}
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, _, ok := procStat(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	tree := []proc{{root, start}}
	for i := 0; i < len(tree); i++ {
		for _, c := range children[tree[i].pid] {
			if _, _, st, ok := procStat(c); ok {
				tree = append(tree, proc{c, st})
			}
		}
	}
	return tree
}

// running tells whether the process still runs (a zombie has ended).
func (p proc) running() bool {
	_, state, start, ok := procStat(p.pid)
	return ok && start == p.start && state != 'Z' && state != 'X'
}

func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// postmastersOn lists running processes whose command line names pgData
// as their data folder ("-D pgData").
func postmastersOn(pgData string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-D" && args[i+1] == pgData {
				if _, state, _, ok := procStat(pid); ok && state != 'Z' {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

// waitGone waits until none of procs runs and no postmaster runs on pgData.
// These processes are not our children (the dev process started them),
// so there is no exit to wait on: this polls /proc, for a bounded time.
func waitGone(procs []proc, pgData string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var left []string
		for _, p := range procs {
			if p.running() {
				left = append(left, fmt.Sprintf("pid %d (%s)", p.pid, cmdline(p.pid)))
			}
		}
		for _, pid := range postmastersOn(pgData) {
			left = append(left, fmt.Sprintf("pid %d (%s)", pid, cmdline(pid)))
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("want no PostgreSQL process left on %s; %d still running after %s: %s", pgData, len(left), timeout, strings.Join(left, "; "))
		}
		<-tick.C
	}
}
