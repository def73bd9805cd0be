package runtime

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
	"golang.org/x/sys/unix"
)

// cgroupSupport is what New found: the directory replica cgroups go
// under, or why there is none.
type cgroupSupport struct {
	root string // "" when limits cannot be enforced
	why  string
}

// cgroup2Mounts lists where cgroup v2 hierarchies are mounted.
func cgroup2Mounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if !ok || len(fields) < 5 || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		out = append(out, unescapeMount(fields[4]))
	}
	return out
}

// cgroup1Mount is where the cgroup v1 hierarchy holding controller is
// mounted, "" when none is.
func cgroup1Mount(controller string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, super := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(super) < 3 || super[0] != "cgroup" {
			continue
		}
		if slices.Contains(strings.Split(super[2], ","), controller) {
			return unescapeMount(fields[4])
		}
	}
	return ""
}

// unescapeMount undoes the octal escapes of mountinfo (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// detectCgroups finds (or makes) the parent cgroup for replicas and
// enables the cpu and memory controllers down to it. Anything missing is
// reported, not fatal: replicas then run without enforced limits.
func detectCgroups(configured string) cgroupSupport {
	mounts := cgroup2Mounts()
	if len(mounts) == 0 {
		return cgroupSupport{why: "no cgroup v2 hierarchy is mounted"}
	}
	var mount, root string
	if configured != "" {
		root = filepath.Clean(configured)
		for _, m := range mounts {
			if (root == m || strings.HasPrefix(root, m+"/")) && len(m) > len(mount) {
				mount = m
			}
		}
		if mount == "" {
			return cgroupSupport{why: fmt.Sprintf("%s is not inside a cgroup v2 hierarchy (mounted at %s)", root, strings.Join(mounts, ", "))}
		}
	} else {
		mount = mounts[0]
		if slices.Contains(mounts, "/sys/fs/cgroup") {
			mount = "/sys/fs/cgroup"
		}
		root = filepath.Join(mount, "atoll")
	}
	b, err := os.ReadFile(filepath.Join(mount, "cgroup.controllers"))
	if err != nil {
		return cgroupSupport{why: fmt.Sprintf("cannot read the cgroup v2 controllers: %v", err)}
	}
	have := strings.Fields(string(b))
	var missing []string
	for _, c := range []string{"cpu", "memory"} {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		what := missing[0] + " controller"
		if len(missing) == 2 {
			what = "cpu and memory controllers"
		}
		return cgroupSupport{why: fmt.Sprintf("the cgroup v2 hierarchy at %s has no %s (it has: %s); this host leaves them to cgroup v1",
			mount, what, cmp.Or(strings.Join(have, " "), "none"))}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return cgroupSupport{why: fmt.Sprintf("cannot create cgroup %s: %v", root, err)}
	}
	// Each level from the mount down to root hands cpu and memory to its
	// children.
	dir := mount
	rel, _ := filepath.Rel(mount, root)
	parts := []string{}
	if rel != "." {
		parts = strings.Split(rel, "/")
	}
	for i := 0; ; i++ {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+cpu +memory"), 0); err != nil {
			return cgroupSupport{why: fmt.Sprintf("cannot enable the cpu and memory controllers in %s: %v", dir, err)}
		}
		if i == len(parts) {
			break
		}
		dir = filepath.Join(dir, parts[i])
	}
	return cgroupSupport{root: root}
}

// cpuMax is the cgroup v2 cpu.max line for a request in millicores (0:
// unlimited).
func cpuMax(millicores int64) string {
	const period = 100000
	if millicores <= 0 {
		return "max " + strconv.Itoa(period)
	}
	return fmt.Sprintf("%d %d", max(millicores*period/1000, 1000), period)
}

// memoryMax is the cgroup v2 memory.max value for a request in bytes (0:
// unlimited).
func memoryMax(bytes int64) string {
	if bytes <= 0 {
		return "max"
	}
	return strconv.FormatInt(bytes, 10)
}

// cgroupForLocked prepares rep's cgroup with its limits and returns a
// descriptor of its directory for CLONE_INTO_CGROUP, or -1 (limits are
// then not enforced and the status says why).
func (r *Runtime) cgroupForLocked(rep *replica) int {
	fail := func(why string) int {
		rep.st.LimitsEnforced, rep.st.LimitsMessage = false, "limits not enforced: "+why
		return -1
	}
	if r.cg.root == "" {
		return fail(r.cg.why)
	}
	res := rep.spec.Template.Resources
	var cpu, mem int64
	var err error
	if res.CPU != "" {
		if cpu, err = api.ParseCPU(res.CPU); err != nil {
			return fail(fmt.Sprintf("cpu %q: %v", res.CPU, err))
		}
	}
	if res.Memory != "" {
		if mem, err = api.ParseMemory(res.Memory); err != nil {
			return fail(fmt.Sprintf("memory %q: %v", res.Memory, err))
		}
	}
	dir := filepath.Join(r.cg.root, rep.fs)
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return fail(err.Error())
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(cpuMax(cpu)), 0); err != nil {
		return fail(err.Error())
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(memoryMax(mem)), 0); err != nil {
		return fail(err.Error())
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err.Error())
	}
	rep.cgroup = dir
	rep.st.LimitsEnforced, rep.st.LimitsMessage = true, ""
	return fd
}

// removeCgroup kills whatever is still in a replica's cgroup and removes
// it.
func removeCgroup(dir string) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	var err error
	for range 50 {
		if err = unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the killed processes are still exiting
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

// oomKilled says whether the kernel's OOM killer killed a process of
// rep's cgroup since the last time it was asked (memory.events'
// oom_kill grew).
func (r *Runtime) oomKilled(rep *replica) bool {
	if rep.cgroup == "" {
		return false
	}
	b, err := os.ReadFile(rep.cgroup + "/memory.events")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if n, ok := strings.CutPrefix(line, "oom_kill "); ok {
			v, _ := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
			grew := v > rep.oomKills
			rep.oomKills = v
			return grew
		}
	}
	return false
}
