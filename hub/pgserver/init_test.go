package pgserver_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atollhq/atoll/hub/pgserver"
)

// TestInterruptedInitdb cancels the first Start while initdb is in its
// post-bootstrap phase, when the cluster already has a PG_VERSION but no
// database "postgres" yet, and checks that nothing half-built is left and
// that the next Start on the same folder gives a working server.
func TestInterruptedInitdb(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		preMake  bool // the data folder exists, empty, before Start
		leftover bool // a temporary folder from an earlier run is in the way
	}{
		{name: "new folder"},
		{name: "new folder with leftover temporary folder", leftover: true},
		{name: "existing empty folder", preMake: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "pg")
			tmp := dir + pgserver.InitdbSuffix
			if tc.preMake {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.leftover {
				if err := os.MkdirAll(filepath.Join(tmp, "base"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(tmp, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var out strings.Builder // only the hook touches it, one call at a time
			cfg := pgserver.WithInitdbOutput(pgserver.Config{DataDir: dir, Logger: testLogger(t)}, func(chunk string) {
				out.WriteString(chunk)
				if strings.Contains(out.String(), "performing post-bootstrap initialization") {
					cancel()
				}
			})
			s, err := pgserver.Start(ctx, cfg)
			if err == nil {
				s.Stop()
				t.Fatal("Start succeeded although it was cancelled during initdb's post-bootstrap phase (did initdb's output change?)")
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Start cancelled during initdb: err = %v, want one wrapping context.Canceled", err)
			}
			if tc.preMake {
				if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
					t.Errorf("after the interrupted initdb, %s holds %v (err %v), want it empty", dir, entries, err)
				}
			} else if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after the interrupted initdb, stat %s: err = %v, want it not to exist", dir, err)
			}
			if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after the interrupted initdb, stat %s: err = %v, want it removed", tmp, err)
			}

			s = start(t, pgserver.Config{DataDir: dir})
			conn := connect(t, s.OwnerURL())
			var db string
			if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
				t.Fatalf("query after the second Start: %v", err)
			}
			if db != "atoll" {
				t.Errorf("current_database() = %q, want atoll", db)
			}
			if _, err := os.Stat(filepath.Join(dir, pgserver.ReadyMarker)); err != nil {
				t.Errorf("ready marker after the second Start: %v", err)
			}
			if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after the second Start, stat %s: err = %v, want it not to exist", tmp, err)
			}
			checkFiles(t, dir)
		})
	}
}

// TestMissingDatabaseIsCreated drops the database "atoll" and checks that
// the next Start creates it again, whether the ready marker is kept (the
// database was dropped by hand) or gone (an earlier start was interrupted
// between initdb and creating the database).
func TestMissingDatabaseIsCreated(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pg")
	cfg := pgserver.Config{DataDir: dir}
	s := start(t, cfg)
	marker := filepath.Join(dir, pgserver.ReadyMarker)
	for _, removeMarker := range []bool{false, true} {
		admin := connect(t, s.SuperuserURL("postgres"))
		if _, err := admin.Exec(t.Context(), "DROP DATABASE atoll"); err != nil {
			t.Fatal(err)
		}
		admin.Close(t.Context())
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		if removeMarker {
			if err := os.Remove(marker); err != nil {
				t.Fatal(err)
			}
		}

		s = start(t, cfg)
		conn := connect(t, s.OwnerURL())
		if err := conn.Ping(t.Context()); err != nil {
			t.Fatalf("marker removed %v: database atoll after the next Start: %v", removeMarker, err)
		}
		conn.Close(t.Context())
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("marker removed %v: ready marker after the next Start: %v", removeMarker, err)
		}
	}
}

// TestUnusableDataDir checks that a data folder Start cannot use fails
// with one line that names the folder to delete.
func TestUnusableDataDir(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"no PG_VERSION", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "stray"))
		}},
		{"PG_VERSION only", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "PG_VERSION"))
		}},
		{"no database postgres", func(t *testing.T, dir string) {
			// As an initdb interrupted in its last step by an older
			// version, which ran it in the data folder itself, left it.
			s := start(t, pgserver.Config{DataDir: dir})
			conn := connect(t, s.SuperuserURL("atoll"))
			if _, err := conn.Exec(t.Context(), "DROP DATABASE postgres"); err != nil {
				t.Fatal(err)
			}
			conn.Close(t.Context())
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, pgserver.ReadyMarker)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "pg")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir)
			s, err := pgserver.Start(t.Context(), pgserver.Config{DataDir: dir, Logger: testLogger(t)})
			if err == nil {
				s.Stop()
				t.Fatal("Start succeeded on an unusable data folder")
			}
			msg := err.Error()
			t.Logf("Start: %v", err)
			if strings.Contains(msg, "\n") || !strings.Contains(msg, "delete the folder "+dir) {
				t.Errorf("Start on an unusable data folder: err = %q, want one line saying \"delete the folder %s\"", msg, dir)
			}
		})
	}
}

func writeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}
