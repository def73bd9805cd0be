package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

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
		"-U", string(Superuser),
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

// createDatabase creates the roles and the database "atoll" unless they
// exist, hands the database to the Owner role (PrepareDatabase), then
// writes the ready marker if the cluster lacked it (marked false). A
// cluster without the marker that has no database "postgres" or rejects
// us is one that initdb left half-built: the error says to delete it.
func (s *Server) createDatabase(ctx context.Context, marked bool) error {
	conn, err := pgx.Connect(ctx, s.SuperuserURL("postgres"))
	if err != nil {
		var pgErr *pgconn.PgError
		if !marked && errors.As(err, &pgErr) && halfBuilt(pgErr.Code) {
			return unusableCluster(s.dataDir, pgErr.Message)
		}
		return fmt.Errorf("create database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := s.ensureRoles(ctx, conn); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", defaultDatabase).Scan(&exists)
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	if !exists {
		s.log.Info("pgserver: creating the database", "database", defaultDatabase)
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{defaultDatabase}.Sanitize()+" OWNER "+pgx.Identifier{string(Owner)}.Sanitize())
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
			err = nil
		}
		if err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	}
	if err := s.PrepareDatabase(ctx, defaultDatabase); err != nil {
		return fmt.Errorf("create database: %w", err)
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
