package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"golang.org/x/sys/unix"
)

// cgroup2Usable reports, independently of the runtime, whether
// /sys/fs/cgroup is a writable cgroup v2 hierarchy with the cpu and memory
// controllers.
func cgroup2Usable() (bool, string) {
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil {
		return false, err.Error()
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return false, fmt.Sprintf("/sys/fs/cgroup is not cgroup2 (filesystem magic %#x)", fs.Type)
	}
	b, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	have := strings.Fields(string(b))
	if !slices.Contains(have, "cpu") || !slices.Contains(have, "memory") {
		return false, "no cpu or memory controller: " + string(b)
	}
	if unix.Access("/sys/fs/cgroup", unix.W_OK) != nil {
		return false, "/sys/fs/cgroup is not writable"
	}
	return true, ""
}

func TestCgroupLimits(t *testing.T) {
	t.Parallel()
	usable, why := cgroup2Usable()
	root := ""
	if usable {
		root = fmt.Sprintf("/sys/fs/cgroup/atoll-test-%d", time.Now().UnixNano())
		t.Cleanup(func() { _ = unix.Rmdir(root) })
	}
	h := start(t, func(c *Config) { c.CgroupRoot = root })
	spec := shSpec("cg-1", "exec sleep 300")
	spec.Template.Resources = api.Resources{CPU: "250m", Memory: "64Mi"}
	h.rt.Apply([]ReplicaSpec{spec})
	st := h.waitFor("cg-1 running", running("cg-1"))["cg-1"]
	if !usable {
		t.Logf("this host cannot enforce limits (%s); the runtime says: %s", why, st.LimitsMessage)
		if st.LimitsEnforced || !strings.HasPrefix(st.LimitsMessage, "limits not enforced: ") || len(st.LimitsMessage) < len("limits not enforced: ")+10 {
			t.Fatalf("LimitsEnforced=%v LimitsMessage=%q, want false and the reason", st.LimitsEnforced, st.LimitsMessage)
		}
		return
	}
	if !st.LimitsEnforced {
		t.Fatalf("cgroup v2 is usable here but limits are not enforced: %s", st.LimitsMessage)
	}
	dir := filepath.Join(root, "cg-1")
	if got := readFile(filepath.Join(dir, "cpu.max")); got != "25000 100000" {
		t.Fatalf("cpu.max = %q, want 25000 100000 for 250m", got)
	}
	if got := readFile(filepath.Join(dir, "memory.max")); got != "67108864" {
		t.Fatalf("memory.max = %q, want 67108864 for 64Mi", got)
	}
	if got := readFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid)); !strings.HasSuffix(got, strings.TrimPrefix(dir, "/sys/fs/cgroup")) {
		t.Fatalf("the replica runs in cgroup %q, want %s", got, dir)
	}
	h.rt.Apply(nil)
	h.waitFor("cg-1 removed", gone("cg-1"))
	poll(t, "the replica's cgroup to be removed", func() bool { _, err := os.Stat(dir); return os.IsNotExist(err) })
}

func TestCgroupLimitValues(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		millicores int64
		want       string
	}{{0, "max 100000"}, {250, "25000 100000"}, {1000, "100000 100000"}, {2500, "250000 100000"}, {1, "1000 100000"}} {
		if got := cpuMax(c.millicores); got != c.want {
			t.Errorf("cpuMax(%d) = %q, want %q", c.millicores, got, c.want)
		}
	}
	if got := memoryMax(0); got != "max" {
		t.Errorf("memoryMax(0) = %q", got)
	}
	if got := memoryMax(256 << 20); got != "268435456" {
		t.Errorf("memoryMax(256Mi) = %q", got)
	}
}

func TestCgroupRootOutsideAnyHierarchyIsReported(t *testing.T) {
	t.Parallel()
	cg := detectCgroups(t.TempDir())
	if cg.root != "" || !strings.Contains(cg.why, "not inside a cgroup v2 hierarchy") && !strings.Contains(cg.why, "no cgroup v2") {
		t.Fatalf("a temp dir as cgroup root: %+v", cg)
	}
}
