package pgserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoBinaries is returned (wrapped) by Start when neither PATH nor
// /usr/lib/postgresql/*/bin holds the initdb and postgres programs.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries (initdb, postgres) on PATH or under " +
	debianRoot + "/*/bin: install them, on Debian or Ubuntu with \"apt-get install postgresql\"")

// debianRoot is where Debian-style packages put one bin folder per major
// version. Tests point searchRoot elsewhere.
const debianRoot = "/usr/lib/postgresql"

var searchRoot = debianRoot

// binaries are the programs Start needs.
type binaries struct {
	initdb   string
	postgres string
}

// findBinaries looks for initdb and postgres on PATH first, then in the bin
// folder of the highest version under searchRoot.
func findBinaries() (binaries, error) {
	initdb, err1 := exec.LookPath("initdb")
	postgres, err2 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil {
		return binaries{initdb: initdb, postgres: postgres}, nil
	}

	entries, err := os.ReadDir(searchRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return binaries{}, fmt.Errorf("find binaries: %w", err)
	}
	type candidate struct {
		version []int
		bin     string
	}
	var found []candidate
	for _, e := range entries {
		v, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		bin := filepath.Join(searchRoot, e.Name(), "bin")
		if isExecutable(filepath.Join(bin, "initdb")) && isExecutable(filepath.Join(bin, "postgres")) {
			found = append(found, candidate{version: v, bin: bin})
		}
	}
	if len(found) == 0 {
		return binaries{}, fmt.Errorf("find binaries: %w", ErrNoBinaries)
	}
	best := slices.MaxFunc(found, func(a, b candidate) int { return slices.Compare(a.version, b.version) })
	return binaries{
		initdb:   filepath.Join(best.bin, "initdb"),
		postgres: filepath.Join(best.bin, "postgres"),
	}, nil
}

// parseVersion reads a folder name such as "16" or "9.6" as a list of
// numbers, so that versions compare numerically (15 < 16 < 100).
func parseVersion(name string) ([]int, bool) {
	parts := strings.Split(name, ".")
	v := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
