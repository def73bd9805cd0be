//go:build linux

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin, err := os.MkdirTemp("", "atoll-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(bin)
	atollBin = filepath.Join(bin, "atoll")
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests: want the go command on PATH to build atoll:", err)
		return 1
	}
	build := exec.Command(goTool, "build", "-o", atollBin, "github.com/atollhq/atoll/cmd/atoll")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: want `go build ./cmd/atoll` to succeed; got %v:\n%s", err, out)
		return 1
	}

	code := m.Run()

	if shared.stack != nil {
		if err := shared.stack.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "tests: want the shared atoll dev to stop cleanly and leave no PostgreSQL behind; got:", err)
			code = 1
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return code
}

// shared is the dev stack of tests that only read and write their own
// objects; it starts with the first test that asks for it and stops in
// TestMain.
var shared struct {
	once  sync.Once
	dir   string
	stack *devStack
	err   error
}

func sharedStack(t *testing.T) *devStack {
	t.Helper()
	shared.once.Do(func() {
		// A folder under the system temp folder that the postgres user can
		// traverse.
		shared.dir, shared.err = os.MkdirTemp("", "atoll-e2e-dev-")
		if shared.err == nil {
			shared.err = os.Chmod(shared.dir, 0o755)
		}
		if shared.err == nil {
			shared.stack, shared.err = startDev(shared.dir, "127.0.0.1:0")
		}
		if shared.err == nil {
			t.Logf("shared atoll dev on %s ready in %s", shared.stack.url, shared.stack.startup.Round(time.Millisecond))
		}
	})
	if shared.err != nil {
		t.Fatalf("want the shared atoll dev running; got: %v", shared.err)
	}
	return shared.stack
}

var nameSeq atomic.Int64

// uniqueName is prefix plus a number no other call in this process got,
// so that repeated runs (-count) on the shared stack do not collide.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, nameSeq.Add(1))
}
