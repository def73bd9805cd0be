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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	superuser       = "atoll"
	defaultDatabase = "atoll"

	readyMessage = "database system is ready to accept connections"

	readyTimeout = 60 * time.Second // from spawning postgres to readiness
	stopTimeout  = 30 * time.Second // from SIGINT to exit, before SIGKILL
	orphanWait   = 10 * time.Second // for an earlier postmaster to go away
	portAttempts = 3                // with Port 0, when the picked port is taken
	tailLines    = 30               // log lines quoted in errors
	initdbGrace  = 5 * time.Second  // for initdb's output to end once it exited

	// readyMarker is the file, in the data folder, that says the cluster
	// was fully set up: initdb finished and the database "atoll" exists.
	readyMarker = "atoll-ready"
	// initdbSuffix names the sibling folder initdb builds a new cluster
	// in, renamed to the data folder once initdb has succeeded.
	initdbSuffix = ".initdb-tmp"
)

// Config says where and how to run the server.
type Config struct {
	// DataDir is the folder of the cluster. initdb runs when it holds no
	// cluster yet; a later Start reuses it. The password is kept beside
	// it, in DataDir + ".password".
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one at the first
	// start (Restart keeps it).
	Port int
	// Durable false turns fsync, synchronous_commit and full_page_writes
	// off, for tests; true keeps PostgreSQL's default durability.
	Durable bool
	// Logger receives the server's log at debug level; nil discards it.
	Logger *slog.Logger

	hooks *hooks // for tests
}

// hooks let tests watch the start from inside.
type hooks struct {
	// initdbOutput is called with each piece of initdb's output as it
	// arrives, from a goroutine of its own.
	initdbOutput func(string)
}

// Server is a running private PostgreSQL server.
type Server struct {
	dataDir  string
	durable  bool
	bins     binaries
	acct     account
	log      *slog.Logger
	password string
	pickPort bool // Config.Port was 0
	hooks    *hooks

	port atomic.Int32 // fixed after the first successful start

	mu   sync.Mutex // serialises Stop and Restart
	proc *process   // nil once stopped
}

// Start starts a server on cfg.DataDir, creating the cluster and the
// database "atoll" if needed, and returns once it accepts connections.
// ctx bounds the start only, not the life of the server: call Stop.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("start postgres: Config.DataDir is empty")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("start postgres: bad port %d", cfg.Port)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{
		dataDir:  dataDir,
		durable:  cfg.Durable,
		bins:     bins,
		acct:     acct,
		log:      log,
		pickPort: cfg.Port == 0,
		hooks:    cfg.hooks,
	}
	s.port.Store(int32(cfg.Port))
	marked, err := s.initCluster(ctx)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := s.launch(ctx); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := s.createDatabase(ctx, marked); err != nil {
		stopErr := s.Stop()
		return nil, errors.Join(fmt.Errorf("start postgres: %w", err), stopErr)
	}
	log.Info("pgserver: PostgreSQL is ready", "data", dataDir, "port", s.port.Load(), "postgres", bins.postgres)
	return s, nil
}

// URL is the connection URL of the database "atoll".
func (s *Server) URL() string {
	return s.DatabaseURL(defaultDatabase)
}

// DatabaseURL is the connection URL of the database name on this server.
func (s *Server) DatabaseURL(name string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, s.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(int(s.port.Load()))),
		Path:     "/" + name,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Stop shuts the server down fast (SIGINT: open transactions are rolled
// back, committed data is kept) and waits for it to exit, killing it if
// it takes longer than 30 seconds. Calling Stop again does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if err := p.shutdown(syscall.SIGINT, stopTimeout); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	s.log.Info("pgserver: PostgreSQL stopped", "data", s.dataDir)
	return nil
}

// Restart stops the server if it runs and starts it again on the same
// data folder and port, so URLs given out before stay valid. Tests use it
// after a Stop that simulated PostgreSQL being down.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if err := s.stopLocked(); err != nil {
		// A server that had crashed is what a restart is for: go on.
		select {
		case <-p.exited:
			s.log.Warn("pgserver: restarting after an unclean exit", "err", err)
		default:
			return fmt.Errorf("restart postgres: %w", err)
		}
	}
	if err := s.launchLocked(ctx); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	return nil
}

// initCluster makes sure the data folder holds a cluster, running initdb
// when it holds none, and reads or creates the password. It reports
// whether the folder holds the ready marker.
//
// A new cluster is built in a sibling folder and renamed to the data
// folder only once initdb has succeeded, so an interrupted initdb never
// leaves a half-built cluster where a later Start would take it for a
// finished one. An existing empty data folder (say a mount point, which
// cannot be replaced) is initialised in place and emptied again if
// initdb fails.
func (s *Server) initCluster(ctx context.Context) (marked bool, err error) {
	state, err := inspectDataDir(s.dataDir)
	if err != nil {
		return false, fmt.Errorf("init cluster: %w", err)
	}
	switch state {
	case dirNotCluster:
		return false, fmt.Errorf("init cluster: %s is not empty but holds no PostgreSQL cluster (no PG_VERSION): if an interrupted start left it, delete the folder %s; otherwise choose another data folder",
			s.dataDir, s.dataDir)
	case dirCluster:
		return s.openCluster()
	}

	target := s.dataDir
	if state == dirAbsent {
		target = s.dataDir + initdbSuffix
		// Left over from an interrupted start.
		if err := os.RemoveAll(target); err != nil {
			return false, fmt.Errorf("init cluster: remove an unfinished cluster: %w", err)
		}
	}
	if err := prepareDataDir(target, s.acct, s.log); err != nil {
		return false, fmt.Errorf("init cluster: %w", err)
	}
	if err := s.readOrCreatePassword(); err != nil {
		return false, err
	}
	if err := s.initdb(ctx, target); err != nil {
		if rmErr := removeUnfinished(target, state == dirAbsent); rmErr != nil {
			s.log.Warn("pgserver: could not remove an unfinished cluster", "folder", target, "err", rmErr)
		}
		return false, err
	}
	if target != s.dataDir {
		if err := os.Rename(target, s.dataDir); err != nil {
			return false, fmt.Errorf("init cluster: %w", err)
		}
		if s.durable {
			if err := syncDir(filepath.Dir(s.dataDir)); err != nil {
				return false, fmt.Errorf("init cluster: %w", err)
			}
		}
	}
	return false, nil
}

// openCluster checks a data folder that holds a cluster and reads the
// password. Without the ready marker the cluster may be one that an
// interrupted initdb left half-built, so the files it needs to start are
// checked first.
func (s *Server) openCluster() (marked bool, err error) {
	_, err = os.Stat(filepath.Join(s.dataDir, readyMarker))
	marked = err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("init cluster: %w", err)
	}
	if !marked {
		for _, name := range []string{"postgresql.conf", filepath.Join("global", "pg_control"), "base"} {
			_, err := os.Stat(filepath.Join(s.dataDir, name))
			if errors.Is(err, fs.ErrNotExist) {
				return false, unusableCluster(s.dataDir, "it has no "+name)
			}
			if err != nil {
				return false, fmt.Errorf("init cluster: %w", err)
			}
		}
	}
	if err := prepareDataDir(s.dataDir, s.acct, s.log); err != nil {
		return false, fmt.Errorf("init cluster: %w", err)
	}
	pwFile := passwordFile(s.dataDir)
	pw, err := readPassword(pwFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("init cluster: %s holds a cluster but its password file %s is missing: restore the file, or remove the folder to start afresh", s.dataDir, pwFile)
	}
	if err != nil {
		return false, fmt.Errorf("init cluster: password: %w", err)
	}
	s.password = pw
	return marked, nil
}

// readOrCreatePassword reads the password for a new cluster, which an
// interrupted earlier start may have created already, or creates it.
func (s *Server) readOrCreatePassword() error {
	pwFile := passwordFile(s.dataDir)
	pw, err := readPassword(pwFile)
	if errors.Is(err, fs.ErrNotExist) {
		pw, err = createPassword(pwFile, s.acct)
	}
	if err != nil {
		return fmt.Errorf("init cluster: password: %w", err)
	}
	s.password = pw
	return nil
}

// initdb creates a cluster in dir, an empty folder. Cancelling ctx kills
// initdb and the postgres it runs. Like postgres, initdb is killed if our
// process dies, so it never writes into a folder a later start reuses.
func (s *Server) initdb(ctx context.Context, dir string) error {
	s.log.Info("pgserver: creating a PostgreSQL cluster", "data", s.dataDir, "initdb", s.bins.initdb)
	args := []string{
		"-D", dir,
		"--auth=scram-sha-256",
		"--pwfile=" + passwordFile(s.dataDir),
		"-U", superuser,
		"--encoding=UTF8",
		"--locale=C",
	}
	if !s.durable {
		args = append(args, "--no-sync")
	}
	out := &initdbOutput{}
	if s.hooks != nil {
		out.hook = s.hooks.initdbOutput
	}
	cmd := exec.CommandContext(ctx, s.bins.initdb, args...)
	cmd.Dir = filepath.Dir(dir)
	cmd.Env = childEnv()
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.acct.credential(), Setpgid: true}
	setParentDeathSignal(cmd.SysProcAttr, syscall.SIGKILL)
	// Kill its whole process group: the postgres that initdb runs too.
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = initdbGrace
	waited, err := startPinned(cmd)
	if err == nil {
		err = <-waited
	}
	text := out.String()
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		s.log.Debug(line, "component", "initdb")
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("init cluster: initdb interrupted: %w", ctx.Err())
	case err != nil:
		return fmt.Errorf("init cluster: initdb: %w; its output:\n%s", err, lastLines(text, tailLines))
	}
	return nil
}

// initdbOutput collects initdb's output and passes it to a hook.
type initdbOutput struct {
	mu   sync.Mutex
	buf  strings.Builder
	hook func(string)
}

func (o *initdbOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	o.buf.Write(p)
	o.mu.Unlock()
	if o.hook != nil {
		o.hook(string(p))
	}
	return len(p), nil
}

func (o *initdbOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// createDatabase creates the database "atoll" unless it exists, then
// writes the ready marker if the cluster lacked it (marked false). A
// cluster without the marker that has no database "postgres" or rejects
// us is one that initdb left half-built: the error says to delete it.
func (s *Server) createDatabase(ctx context.Context, marked bool) error {
	conn, err := pgx.Connect(ctx, s.DatabaseURL("postgres"))
	if err != nil {
		var pgErr *pgconn.PgError
		if !marked && errors.As(err, &pgErr) && halfBuilt(pgErr.Code) {
			return unusableCluster(s.dataDir, pgErr.Message)
		}
		return fmt.Errorf("create database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", defaultDatabase).Scan(&exists)
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	if !exists {
		s.log.Info("pgserver: creating the database", "database", defaultDatabase)
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{defaultDatabase}.Sanitize())
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
			err = nil
		}
		if err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	}
	if !marked {
		if err := writeMarker(filepath.Join(s.dataDir, readyMarker), s.acct, s.durable); err != nil {
			return fmt.Errorf("create database: ready marker: %w", err)
		}
	}
	return nil
}

// halfBuilt tells whether a server error on connecting to the database
// "postgres" shows that initdb did not finish: that database is the last
// thing it creates, and the superuser gets its password shortly before.
func halfBuilt(code string) bool {
	switch {
	case code == "3D000": // invalid_catalog_name: no database "postgres"
		return true
	case strings.HasPrefix(code, "28"): // invalid authorization: no password yet
		return true
	case strings.HasPrefix(code, "58"), strings.HasPrefix(code, "XX"): // missing files, broken catalogs
		return true
	}
	return false
}

// unusableCluster is the one-line error for a data folder that holds a
// cluster Start cannot use and will not repair.
func unusableCluster(dataDir, reason string) error {
	reason, _, _ = strings.Cut(reason, "\n")
	return fmt.Errorf("%s is not a usable PostgreSQL cluster (%s), probably left by an interrupted first start: delete the folder %s and start again",
		dataDir, reason, dataDir)
}

// dirState is what a data folder holds.
type dirState int

const (
	dirAbsent     dirState = iota // no such folder
	dirEmpty                      // an empty folder
	dirCluster                    // a folder with PG_VERSION
	dirNotCluster                 // a folder with other things in it
)

func inspectDataDir(dir string) (dirState, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return dirAbsent, nil
	}
	if err != nil {
		return 0, err
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("%s is not a folder", dir)
	}
	_, err = os.Stat(filepath.Join(dir, "PG_VERSION"))
	if err == nil {
		return dirCluster, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	empty, err := isEmptyDir(dir)
	if err != nil {
		return 0, err
	}
	if empty {
		return dirEmpty, nil
	}
	return dirNotCluster, nil
}

// removeUnfinished removes what a failed initdb left in dir: the folder
// itself when we created it (whole), else only its contents.
func removeUnfinished(dir string, whole bool) error {
	if whole {
		return os.RemoveAll(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

// writeMarker writes the ready marker, owned by the server account like
// the rest of the data folder.
func writeMarker(path string, acct account, durable bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString("initdb finished and the database \"" + defaultDatabase + "\" was created\n")
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && acct.switchUser {
		err = os.Chown(path, int(acct.uid), int(acct.gid))
	}
	return err
}

// syncDir flushes a folder's entries, such as a rename, to disk.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

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
