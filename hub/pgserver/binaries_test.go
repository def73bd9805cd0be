package pgserver

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func fakeBin(t *testing.T, root, version string, programs ...string) {
	t.Helper()
	bin := filepath.Join(root, version, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range programs {
		if err := os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindBinariesPicksHighestVersion(t *testing.T) {
	root := t.TempDir()
	fakeBin(t, root, "9.6", "initdb", "postgres")
	fakeBin(t, root, "15", "initdb", "postgres")
	fakeBin(t, root, "100", "initdb", "postgres")
	fakeBin(t, root, "16", "initdb", "postgres")
	fakeBin(t, root, "101", "initdb") // incomplete: no postgres
	fakeBin(t, root, "latest", "initdb", "postgres")
	searchRoot = root
	t.Cleanup(func() { searchRoot = debianRoot })
	t.Setenv("PATH", "")

	b, err := findBinaries()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "100", "bin", "postgres"); b.postgres != want {
		t.Errorf("postgres = %s, want %s", b.postgres, want)
	}
	if want := filepath.Join(root, "100", "bin", "initdb"); b.initdb != want {
		t.Errorf("initdb = %s, want %s", b.initdb, want)
	}

	// PATH comes first.
	onPath := t.TempDir()
	fakeBin(t, onPath, "x", "initdb", "postgres")
	t.Setenv("PATH", filepath.Join(onPath, "x", "bin"))
	if b, err = findBinaries(); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(onPath, "x", "bin", "postgres"); b.postgres != want {
		t.Errorf("postgres = %s, want %s from PATH", b.postgres, want)
	}
}

func TestFindBinariesNone(t *testing.T) {
	searchRoot = filepath.Join(t.TempDir(), "missing")
	t.Cleanup(func() { searchRoot = debianRoot })
	t.Setenv("PATH", "")
	_, err := findBinaries()
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
	if !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("err = %v, want the install hint", err)
	}
}

func TestEnsureTraversable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to act for another account")
	}
	other := account{name: "test", uid: 54321, gid: 54321, groups: []uint32{54321}, switchUser: true}
	log := slog.New(slog.DiscardHandler)

	// Ours and closed: given o+x and nothing else.
	mine := filepath.Join(t.TempDir(), "mine")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(mine, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := ensureTraversable(mine, other, log); err != nil {
		t.Fatal(err)
	}
	for d := mine; d != "/"; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !other.canSearch(fi.Sys().(*syscall.Stat_t)) {
			t.Errorf("%s (mode %04o) still closed", d, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(mine); fi.Mode().Perm() != 0o751 {
		t.Errorf("mode = %04o, want 0751", fi.Mode().Perm())
	}

	// Someone else's and closed: an error naming it, no change.
	theirs := filepath.Join(t.TempDir(), "theirs")
	if err := os.MkdirAll(filepath.Join(theirs, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	err := ensureTraversable(filepath.Join(theirs, "data"), other, log)
	if err == nil || !strings.Contains(err.Error(), theirs) {
		t.Fatalf("err = %v, want one naming %s", err, theirs)
	}
	if fi, _ := os.Stat(theirs); fi.Mode().Perm() != 0o700 {
		t.Errorf("changed someone else's folder: mode %04o", fi.Mode().Perm())
	}
}

func TestParseVersion(t *testing.T) {
	for name, want := range map[string][]int{"15": {15}, "9.6": {9, 6}, "100": {100}} {
		got, ok := parseVersion(name)
		if !ok || len(got) != len(want) {
			t.Errorf("parseVersion(%q) = %v, %v", name, got, ok)
		}
	}
	for _, name := range []string{"", "x", "16beta", "-1", "1..2"} {
		if _, ok := parseVersion(name); ok {
			t.Errorf("parseVersion(%q) accepted", name)
		}
	}
}
