package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/member"
	"github.com/atollhq/atoll/member/node"
)

// The scale harness's processes: the hub is the real `atoll hub` binary
// (built once per run), and members with their sim node fleets run in a
// few "member fleet" processes, which are this test binary run again
// with scaleFleetEnv set (TestMain hands it to runScaleFleet). Every
// child runs in its own process group with a parent-death signal, and the
// benchmark's cleanup SIGKILLs each group and waits for it; a fleet also
// exits when its standard input (a pipe from the benchmark) closes, so no
// child outlives a failed or killed run.

// scaleFleetEnv holds a fleet process's scaleFleetSpec (JSON).
const scaleFleetEnv = "ATOLL_SCALE_FLEET"

// scaleFleetSpec is what one member fleet process runs.
type scaleFleetSpec struct {
	JoinToken string   `json:"joinToken"`
	Members   []string `json:"members"` // cluster (and region) names
	NodesPer  int      `json:"nodesPer"`
	DataDir   string   `json:"dataDir"`
}

// The fleet's lines on standard output, each "@scale <verb> ...":
//
//	up <cluster>                      its member heartbeats and every sim node is Ready
//	ready <cluster> <replica> <unix ns> a replica became Ready on a node
//	gap <cluster> <ms>                the longest time between two heartbeats of one of its nodes over the last 2 s, when over 1 s
//	error <text>                      the fleet failed (it exits 1)
//
// and the benchmark's on its standard input: "profile <path>" starts a
// CPU profile to path, "profile-stop" ends it. End of input ends the
// process.
const scaleLinePrefix = "@scale "

// scaleFleetLogger is the members' log in a fleet process: warnings to
// standard error (the process's log file), where the benchmark counts
// the nodes they found lost ("node lost").
var scaleFleetLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// nodesLost is, for each fleet and each "node lost" warning in its log so
// far, how long its node had been silent.
func nodesLost(fleets []*scaleProc) [][]time.Duration {
	out := make([][]time.Duration, len(fleets))
	for i, p := range fleets {
		for _, line := range p.lines("node lost") {
			_, v, _ := strings.Cut(line, "silent_for=")
			v, _, _ = strings.Cut(v, " ")
			d, _ := time.ParseDuration(v)
			out[i] = append(out[i], d)
		}
	}
	return out
}

// heldLate counts the times the fleets' members fell behind reading
// their nodes' heartbeats (and held their judgements of silence).
func heldLate(fleets []*scaleProc) int {
	n := 0
	for _, p := range fleets {
		n += len(p.lines("heartbeats read late"))
	}
	return n
}

// lostSince is what nodesLost found in now and not in before.
func lostSince(before, now [][]time.Duration) []time.Duration {
	var out []time.Duration
	for i := range now {
		if i < len(before) {
			out = append(out, now[i][min(len(before[i]), len(now[i])):]...)
		} else {
			out = append(out, now[i]...)
		}
	}
	return out
}

// silences sums up how long lost nodes had been silent: "n (silent
// p50 / max)".
func silences(ds []time.Duration) string {
	if len(ds) == 0 {
		return "0"
	}
	ds = slices.Sorted(slices.Values(ds))
	return fmt.Sprintf("%d (silent %v p50, %v max)", len(ds), ds[len(ds)/2], ds[len(ds)-1])
}

// runScaleFleet is the fleet process's main; it never returns.
func runScaleFleet(specJSON string) {
	out := newScaleLines(os.Stdout)
	fail := func(format string, args ...any) {
		out.printf("error "+format, args...)
		out.flush()
		os.Exit(1)
	}
	var spec scaleFleetSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fail("%s: %v", scaleFleetEnv, err)
	}
	go func() { // commands; the benchmark gone, the fleet goes
		var prof *os.File
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			verb, arg, _ := strings.Cut(sc.Text(), " ")
			switch verb {
			case "profile":
				f, err := os.Create(arg)
				if err == nil {
					err = pprof.StartCPUProfile(f)
				}
				if err != nil {
					fail("profile: %v", err)
				}
				prof = f
			case "profile-stop":
				if prof != nil {
					pprof.StopCPUProfile()
					prof.Close()
					prof = nil
				}
			}
		}
		os.Exit(0)
	}()
	ctx := context.Background()
	var started []*member.Member
	for _, name := range spec.Members {
		m, err := member.New(member.Config{JoinToken: spec.JoinToken, Name: name, Region: name,
			DataDir: filepath.Join(spec.DataDir, name), NATSListen: "127.0.0.1:0", Logger: scaleFleetLogger})
		if err != nil {
			fail("member %s: %v", name, err)
		}
		go func() {
			if err := m.Run(ctx); err != nil {
				fail("member %s: %v", name, err)
			}
		}()
		for deadline := time.Now().Add(time.Minute); m.LastAck().IsZero(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				fail("member %s: no heartbeat ack within 1m", name)
			}
		}
		sims := make([]node.SimNode, spec.NodesPer)
		for k := range sims {
			sims[k] = node.SimNode{Name: fmt.Sprintf("%s-n%04d", name, k), Zone: fmt.Sprintf("z%d", k%3), MilliCPU: 4000, Memory: 8 << 30}
		}
		fleet, err := node.NewFleet(node.FleetConfig{MemberURL: m.NATSURL(), Auth: m.AdminOption(), Nodes: sims,
			DataDir: filepath.Join(spec.DataDir, name+"-nodes"),
			OnReady: func(_, replica string, at time.Time) { out.printf("ready %s %s %d", name, replica, at.UnixNano()) }})
		if err != nil {
			fail("fleet %s: %v", name, err)
		}
		go func() {
			if err := fleet.Run(ctx); err != nil {
				fail("fleet %s: %v", name, err)
			}
		}()
		go func() {
			for range time.Tick(2 * time.Second) {
				if g := fleet.LongestGap(); g > time.Second {
					out.printf("gap %s %d", name, g.Milliseconds())
				}
			}
		}()
		started = append(started, m)
	}
	for i, m := range started {
		for deadline := time.Now().Add(2 * time.Minute); m.Capacity().NodesReady < spec.NodesPer; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				fail("member %s: %d of %d nodes Ready after 2m", spec.Members[i], m.Capacity().NodesReady, spec.NodesPer)
			}
		}
		out.printf("up %s", spec.Members[i])
	}
	select {}
}

// scaleLines writes protocol lines from many goroutines, buffered and
// flushed every 10 ms (the lines carry their own times).
type scaleLines struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func newScaleLines(w io.Writer) *scaleLines {
	l := &scaleLines{w: bufio.NewWriterSize(w, 64<<10)}
	go func() {
		for range time.Tick(10 * time.Millisecond) {
			l.flush()
		}
	}()
	return l
}

func (l *scaleLines) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.WriteString(scaleLinePrefix)
	fmt.Fprintf(l.w, format, args...)
	l.w.WriteByte('\n')
}

func (l *scaleLines) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.w.Flush()
}

// scaleProc is a child process of the harness.
type scaleProc struct {
	name   string
	cmd    *exec.Cmd
	log    string // its standard error
	stdin  io.WriteCloser
	exited chan struct{}
	err    error // after exited
}

// startScaleProc starts path with args (and extra environment) in its own
// process group, standard error to a file; b's cleanup SIGKILLs the group
// and waits. stdout, when not nil, gets each line of standard output.
func startScaleProc(b *testing.B, name, path string, args, env []string, stdout func(line string)) *scaleProc {
	b.Helper()
	dir := b.TempDir()
	p := &scaleProc{name: name, log: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		b.Fatal(err)
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	var lines io.ReadCloser
	if stdout != nil {
		if lines, err = p.cmd.StdoutPipe(); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	logf.Close()
	var reading sync.WaitGroup
	if lines != nil {
		reading.Go(func() {
			sc := bufio.NewScanner(lines)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				stdout(sc.Text())
			}
		})
	}
	go func() {
		reading.Wait() // Wait closes the pipe: read it all first
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	b.Cleanup(p.kill)
	return p
}

// kill SIGKILLs the process group and waits for the process to exit.
func (p *scaleProc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.stdin.Close()
	<-p.exited
}

// alive reports an error if the process has exited.
func (p *scaleProc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); its standard error ends:\n%s", p.name, p.err, p.tail(30))
	default:
		return nil
	}
}

// tail is the last n lines of the process's standard error.
func (p *scaleProc) tail(n int) string {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// lines are the lines of p's standard error that hold any of the
// strings given.
func (p *scaleProc) lines(subs ...string) []string {
	data, _ := os.ReadFile(p.log)
	var out []string
	for line := range strings.Lines(string(data)) {
		if slices.ContainsFunc(subs, func(s string) bool { return strings.Contains(line, s) }) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// send writes one command line to the process's standard input.
func (p *scaleProc) send(line string) {
	_, _ = io.WriteString(p.stdin, line+"\n")
}

// buildAtoll builds cmd/atoll into dir and returns the binary's path.
func buildAtoll(b *testing.B, dir string) string {
	b.Helper()
	bin := filepath.Join(dir, "atoll")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/atollhq/atoll/cmd/atoll").CombinedOutput()
	if err != nil {
		b.Fatalf("go build ./cmd/atoll: %v\n%s", err, out)
	}
	return bin
}

// scaleHub is an `atoll hub` process on its own database.
type scaleHub struct {
	*scaleProc
	url   string
	token string
	debug string // its --debug-listen, as a URL
}

// startScaleHub runs `atoll hub` (bin) on a fresh database, its NATS
// embedded, and waits until it serves. ATOLL_SCALE_HUB_ENV adds to its
// environment (KEY=VALUE separated by spaces, e.g. "GOGC=50
// GOMEMLIMIT=300MiB"), and to its alone; ATOLL_SCALE_HUB_ARGS adds to
// its flags (e.g. "--leaf-compression off").
func startScaleHub(b *testing.B, bin string, db pgtest.Roles) *scaleHub {
	b.Helper()
	dir := b.TempDir()
	key := filepath.Join(dir, "atoll.key")
	if out, err := exec.Command(bin, "hub", "gen-key", "--output", key).CombinedOutput(); err != nil {
		b.Fatalf("atoll hub gen-key: %v\n%s", err, out)
	}
	freeAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	addr, debug := freeAddr(), freeAddr()
	h := &scaleHub{url: "http://" + addr, debug: "http://" + debug}
	h.scaleProc = startScaleProc(b, "hub", bin, append([]string{"hub", "--listen", addr, "--data-dir", dir, "--name", "scale-hub",
		"--nats-listen", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0", "--database-url", db.Hub, "--migrate-database-url", db.Owner,
		"--key-file", key, "--log-level", "warn", "--log-format", "json", "--debug-listen", debug}, strings.Fields(os.Getenv("ATOLL_SCALE_HUB_ARGS"))...),
		strings.Fields(os.Getenv("ATOLL_SCALE_HUB_ENV")), nil)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if err := h.alive(); err != nil {
			b.Fatal(err)
		}
		if resp, err := http.Get(h.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("atoll hub not ready within 2m; its standard error ends:\n%s", h.tail(30))
		}
	}
	tok, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	if err != nil {
		b.Fatalf("atoll hub's first admin token: %v", err)
	}
	h.token = strings.TrimSpace(string(tok))
	return h
}

// goHeap is the hub's Go heap as runtime.MemStats says it, in bytes.
type goHeap struct {
	alloc, inuse, sys, released int64 // HeapAlloc, HeapInuse, HeapSys, HeapReleased
	gcs                         int64 // NumGC
}

// heap reads the hub's MemStats from its debug listener (the text form of
// the heap profile ends with them); with gc, after a garbage collection,
// so that alloc is the live heap.
func (h *scaleHub) heap(b *testing.B, gc bool) goHeap {
	b.Helper()
	u := h.debug + "/debug/pprof/heap?debug=1"
	if gc {
		u += "&gc=1"
	}
	resp, err := http.Get(u)
	if err != nil {
		b.Fatalf("the hub's heap: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("the hub's heap: %d %v %.200s", resp.StatusCode, err, body)
	}
	stats := map[string]int64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "# "), " = ")
		if n, err := strconv.ParseInt(value, 10, 64); ok && err == nil && strings.HasPrefix(line, "# ") {
			stats[name] = n
		}
	}
	g := goHeap{alloc: stats["HeapAlloc"], inuse: stats["HeapInuse"], sys: stats["HeapSys"], released: stats["HeapReleased"], gcs: stats["NumGC"]}
	if g.inuse == 0 || g.sys == 0 {
		b.Fatalf("the hub's heap: no HeapInuse or HeapSys in its MemStats: %.300s", body)
	}
	return g
}

// saveHeapProfile writes the hub's heap profile (after a garbage
// collection) to path.
func (h *scaleHub) saveHeapProfile(b *testing.B, path string) {
	b.Helper()
	if err := h.saveProfile("heap?gc=1", path); err != nil {
		b.Fatal(err)
	}
}

// saveProfile writes the hub's pprof profile named by query (as
// /debug/pprof/ takes it) to path; safe from any goroutine.
func (h *scaleHub) saveProfile(query, path string) error {
	resp, err := http.Get(h.debug + "/debug/pprof/" + query)
	if err != nil {
		return fmt.Errorf("the hub's profile %s: %w", query, err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the hub's profile %s: %d %v", query, resp.StatusCode, err)
	}
	return nil
}

// procUsage is a process's CPU time and memory from /proc.
type procUsage struct {
	cpu      time.Duration // user + system
	children time.Duration // of its reaped children
	ppid     int
	rss, hwm int64 // resident now, and its peak
}

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat's times.
const clockTick = 10 * time.Millisecond

func readProcUsage(pid int) (procUsage, error) {
	var u procUsage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// Fields after the command's closing parenthesis, from field 3 (state).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 15 {
		return u, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	num := func(i int) int64 { n, _ := strconv.ParseInt(f[i], 10, 64); return n }
	u.ppid = int(num(1))
	u.cpu = time.Duration(num(11)+num(12)) * clockTick
	u.children = time.Duration(num(13)+num(14)) * clockTick
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		kb := func(v string) int64 {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.rss = kb(v)
		} else if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			u.hwm = kb(v)
		}
	}
	return u, nil
}

// postgresPID is the PID of the postmaster serving adminURL: the parent
// of a backend.
func postgresPID(b *testing.B, adminURL string) int {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var backend int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	u, err := readProcUsage(backend)
	if err != nil {
		b.Fatalf("PostgreSQL's backend: %v", err)
	}
	return u.ppid
}

// postgresCPU is the CPU time the PostgreSQL server has used so far: the
// postmaster's, its reaped children's, and its live children's.
func postgresCPU(postmaster int) time.Duration {
	u, err := readProcUsage(postmaster)
	if err != nil {
		return 0
	}
	total := u.cpu + u.children
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if c, err := readProcUsage(pid); err == nil && c.ppid == postmaster {
			total += c.cpu
		}
	}
	return total
}
