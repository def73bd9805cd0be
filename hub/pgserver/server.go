package pgserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
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

// HubURL is the connection URL of the database "atoll" as the Hub role:
// what the hub's pool and leader election connect with.
func (s *Server) HubURL() string { return s.URLAs(Hub, defaultDatabase) }

// OwnerURL is the connection URL of the database "atoll" as the Owner
// role: what migrations run with.
func (s *Server) OwnerURL() string { return s.URLAs(Owner, defaultDatabase) }

// SuperuserURL is the connection URL of the database name as the
// superuser, for creating databases and for tests that work behind the
// hub's back.
func (s *Server) SuperuserURL(name string) string { return s.URLAs(Superuser, name) }

// URLAs is the connection URL of the database name as role.
func (s *Server) URLAs(role Role, name string) string {
	password := s.password
	if role != Superuser {
		password = rolePassword(s.password, role)
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(string(role), password),
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
