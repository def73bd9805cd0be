package pgserver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/hub/pgserver"
	"github.com/jackc/pgx/v5"
)

// childDataDirEnv makes the test binary act as a process that starts a
// server, prints its URL and waits to be killed.
const childDataDirEnv = "PGSERVER_TEST_CHILD_DATADIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDataDirEnv); dir != "" {
		runChild(dir)
		return
	}
	os.Exit(m.Run())
}

func runChild(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, pgserver.Config{DataDir: dir, Durable: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	fmt.Println(s.OwnerURL())
	// Wait to be killed; if the test goes away first, stdin ends.
	bufio.NewReader(os.Stdin).ReadString('\n')
	s.Stop()
	os.Exit(0)
}

func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("PGSERVER_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}

func start(t *testing.T, cfg pgserver.Config) *pgserver.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := pgserver.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func show(t *testing.T, conn *pgx.Conn, setting string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(t.Context(), "SHOW "+setting).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDurableRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "pg")
	s := start(t, pgserver.Config{DataDir: dir, Durable: true})

	if !strings.HasPrefix(s.OwnerURL(), "postgres://atoll_owner:") || !strings.HasSuffix(s.OwnerURL(), "/atoll?sslmode=disable") {
		t.Errorf("OwnerURL() = %q", s.OwnerURL())
	}
	conn := connect(t, s.OwnerURL())
	if got := show(t, conn, "fsync"); got != "on" {
		t.Errorf("durable server: fsync = %s", got)
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	url := s.OwnerURL()

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := pgx.Connect(t.Context(), url); err == nil {
		t.Fatal("connected to a stopped server")
	}

	checkFiles(t, dir)

	s2 := start(t, pgserver.Config{DataDir: dir, Durable: true})
	conn = connect(t, s2.OwnerURL())
	var body string
	if err := conn.QueryRow(t.Context(), "SELECT body FROM notes").Scan(&body); err != nil {
		t.Fatal(err)
	}
	if body != "kept" {
		t.Errorf("body = %q, want kept", body)
	}
}

// checkFiles checks the ownership and modes of the data folder and the
// password file.
func checkFiles(t *testing.T, dir string) {
	t.Helper()
	wantUID := os.Geteuid()
	if wantUID == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		wantUID, _ = strconv.Atoi(u.Uid)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700, dir + ".password": 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), mode)
		}
		if uid := int(fi.Sys().(*syscall.Stat_t).Uid); uid != wantUID {
			t.Errorf("%s: owner %d, want %d", path, uid, wantUID)
		}
	}
}

func TestNonDurableServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pg")
	s := start(t, pgserver.Config{DataDir: dir})

	conn := connect(t, s.SuperuserURL("postgres"))
	for setting, want := range map[string]string{
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"max_connections":         "200",
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": "",
		"server_encoding":         "UTF8",
	} {
		if got := show(t, conn, setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	var db string
	if err := conn.QueryRow(t.Context(), "SELECT datname FROM pg_database WHERE datname = 'atoll'").Scan(&db); err != nil {
		t.Fatalf("database atoll: %v", err)
	}
	conn.Close(t.Context())

	// Restart keeps the port, so URLs handed out stay valid.
	url := s.OwnerURL()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.OwnerURL() != url {
		t.Errorf("URL changed across Restart: %s, then %s", url, s.OwnerURL())
	}
	conn = connect(t, url)
	if err := conn.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	// A fixed port that is taken fails with the server's own words.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = pgserver.Start(t.Context(), pgserver.Config{DataDir: dir, Port: port, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("Start on a taken port: err = %v, want one quoting \"Address already in use\"", err)
	}
}

func TestNoBinaries(t *testing.T) {
	if _, err := os.Stat("/usr/lib/postgresql"); err == nil {
		t.Skip("binaries are installed; findBinaries is tested on a fake tree in binaries_test.go")
	}
	t.Setenv("PATH", "")
	_, err := pgserver.Start(t.Context(), pgserver.Config{DataDir: t.TempDir()})
	if !errors.Is(err, pgserver.ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
}

func TestErrNoBinariesSaysWhatToInstall(t *testing.T) {
	if msg := pgserver.ErrNoBinaries.Error(); !strings.Contains(msg, `apt-get install postgresql`) {
		t.Errorf("ErrNoBinaries = %q, want the install command", msg)
	}
}

// TestKilledParentLeavesNoServer kills a process that runs a server with
// SIGKILL and checks that the server goes away with it and that a new
// Start on the same folder recovers every committed row.
func TestKilledParentLeavesNoServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pg")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childDataDirEnv+"="+dir)
	child.Stderr = t.Output()
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			child.Process.Kill()
			child.Wait()
		}
	}()
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child did not print its URL: %v", err)
	}
	url = strings.TrimSpace(url)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	// This query only ends when the server goes away.
	queryDone := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(600)")
		queryDone <- err
	}()

	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	killed = true

	select {
	case err := <-queryDone:
		if err == nil {
			t.Fatal("query ended without error")
		}
	case <-ctx.Done():
		// Do not leave the orphan behind.
		if b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(first); err == nil {
				syscall.Kill(pid, syscall.SIGQUIT)
			}
		}
		t.Fatal("the server outlived its killed parent")
	}

	s := start(t, pgserver.Config{DataDir: dir, Durable: true})
	conn2 := connect(t, s.OwnerURL())
	var v int
	if err := conn2.QueryRow(t.Context(), "SELECT v FROM t").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 42 {
		t.Errorf("v = %d, want 42", v)
	}
}
