package runtime

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/member/image"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// needRunc skips when this machine cannot run containers at all (no
// runc and not root); as root a missing runc is a failure: tests/deps.sh
// installs it.
func needRunc(t testing.TB) {
	t.Helper()
	_, why := findRunc("")
	switch {
	case why != "" && os.Geteuid() != 0:
		t.Skip("runc is not installed and the tests do not run as root: oci tests need both (tests/deps.sh installs runc)")
	case os.Geteuid() != 0:
		t.Skip("oci tests need root: the container's root is an overlay mount and runc makes namespaces and cgroups")
	case why != "":
		t.Fatalf("%s: run tests/deps.sh", why)
	}
}

// testRegistry is an in-process registry on loopback. Its faults can be
// switched on: corrupt answers blobs with a flipped byte, password
// requires basic auth with that password.
type testRegistry struct {
	srv      *httptest.Server
	host     string
	mu       sync.Mutex
	corrupt  bool
	password string
}

func newTestRegistry(t testing.TB) *testRegistry {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tr := &testRegistry{}
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		corrupt, password := tr.corrupt, tr.password
		tr.mu.Unlock()
		if _, p, _ := r.BasicAuth(); password != "" && p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if corrupt && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			if len(b) > 100 {
				b[len(b)/2] ^= 0xff
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(b)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	t.Cleanup(tr.srv.Close)
	return tr
}

var (
	selfImageOnce sync.Once
	selfImage     v1.Image
	selfImageErr  error
)

// pushSelf pushes an image of this test binary (run as the http helper)
// to repo:tag and returns the image's digest.
func (tr *testRegistry) pushSelf(t testing.TB, repoTag string) string {
	t.Helper()
	selfImageOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			selfImageErr = err
			return
		}
		selfImage, selfImageErr = image.ExecutableImage(exe, "runtime.test", v1.Config{
			Env: []string{helperEnv + "=http", "READY_FILE=/nonexistent"},
		})
	})
	if selfImageErr != nil {
		t.Fatal(selfImageErr)
	}
	ref, err := name.ParseReference(tr.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, selfImage); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := selfImage.Digest()
	return d.String()
}

func ociSpec(id, ref string) ReplicaSpec {
	return ReplicaSpec{ID: id, Workload: "web", Generation: 1, Template: api.ReplicaTemplate{
		Driver: "oci", Image: ref,
		Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz"}, PeriodSeconds: 1},
	}}
}

// TestOCIExecProbeRunsInTheContainer: an exec probe runs inside the
// container (runc exec): its command is a path only the image has.
func TestOCIExecProbeRunsInTheContainer(t *testing.T) {
	needRunc(t)
	t.Parallel()
	reg := newTestRegistry(t)
	reg.pushSelf(t, "web:v1")
	h := startOCI(t, func(c *image.Config) { c.Insecure = []string{reg.host} })
	spec := ociSpec("x", reg.host+"/web:v1")
	// The image holds no shell: the probe runs the image's own binary,
	// which exists at /app/runtime.test only inside the container.
	// A runc exec of the test binary takes over a second under -race or on
	// a busy machine: the default 1 s timeout failed every check there.
	spec.Template.Readiness = &api.Probe{Exec: &api.ExecProbe{Command: []string{"/app/runtime.test", "probe-ok"}}, PeriodSeconds: 1, TimeoutSeconds: 20}
	h.rt.Apply([]ReplicaSpec{spec})
	waitLong(t, h.rt, "ready through an exec probe inside the container", ready("x"))
}

// startOCI is a runtime with an image store that trusts the test
// registries over plain HTTP.
func startOCI(t *testing.T, edit func(*image.Config)) *harness {
	t.Helper()
	return start(t, func(c *Config) {
		ic := image.Config{Dir: filepath.Join(c.DataDir, "images")}
		if edit != nil {
			edit(&ic)
		}
		s, err := image.Open(ic)
		if err != nil {
			t.Fatal(err)
		}
		c.Images = s
	})
}

// ociWait bounds every wait of the oci tests: generous, the CI machine
// is busy.
var ociWait = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("ATOLL_OCI_WAIT")); err == nil {
		return d
	}
	return 90 * time.Second
}()

func waitLong(t *testing.T, rt *Runtime, what string, cond func(map[string]ReplicaStatus) bool) map[string]ReplicaStatus {
	t.Helper()
	deadline := time.NewTimer(ociWait)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond) // Ready through a probe
	defer tick.Stop()
	for {
		st := statusMap(rt)
		if cond(st) {
			return st
		}
		select {
		case <-rt.Changes():
		case <-tick.C:
		case <-deadline.C:
			for id := range st {
				if rc, err := rt.Logs(id, "stderr", LogOptions{Tail: 10}); err == nil {
					b, _ := io.ReadAll(rc)
					rc.Close()
					t.Logf("stderr of %s:\n%s", id, b)
				}
			}
			t.Fatalf("timed out waiting for %s; status now: %s", what, describeOCI(st))
		}
	}
}

func describeOCI(st map[string]ReplicaStatus) string {
	var b strings.Builder
	for _, s := range st {
		fmt.Fprintf(&b, "\n  %s phase=%s ready=%v restarts=%d pid=%d port=%d exit=%d reason=%s msg=%q last=%q",
			s.ID, s.Phase, s.Ready, s.Restarts, s.Pid, s.Port, s.ExitCode, s.Reason, s.Message, s.LastError)
	}
	return b.String()
}

func ready(id string) func(map[string]ReplicaStatus) bool {
	return func(st map[string]ReplicaStatus) bool { s, ok := st[id]; return ok && s.Ready }
}

func get(t *testing.T, port int, path string) (int, error) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + path)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// procUID is the real uid of pid.
func procUID(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			return strings.Fields(v)[0]
		}
	}
	return ""
}

func (h *harness) containerPid(id string) int {
	h.rt.mu.Lock()
	defer h.rt.mu.Unlock()
	if rep := h.rt.reps[id]; rep != nil {
		return containerPid(rep.bundle)
	}
	return 0
}

// TestOCIContainerLifecycle: an image of this binary, pulled from an
// in-process registry, runs under runc as nobody, answers HTTP on its
// port, logs through the pipeline, restarts after a kill, dies at the
// fence, survives an agent restart (adopted) and leaves nothing behind.
func TestOCIContainerLifecycle(t *testing.T) {
	needRunc(t)
	t.Parallel()
	reg := newTestRegistry(t)
	digest := reg.pushSelf(t, "web:v1")
	h := startOCI(t, func(c *image.Config) { c.Insecure = []string{reg.host} })
	spec := ociSpec("c1", reg.host+"/web:v1")
	h.rt.Apply([]ReplicaSpec{spec})
	st := waitLong(t, h.rt, "the container to be ready", ready("c1"))["c1"]
	if code, err := get(t, st.Port, "/healthz"); err != nil || code != 200 {
		t.Fatalf("GET /healthz on the container's port %d: %d, %v", st.Port, code, err)
	}
	cpid := h.containerPid("c1")
	if uid := procUID(cpid); uid != "65534" {
		t.Errorf("the container's process runs as uid %q, want 65534 (nobody)", uid)
	}
	if got := h.rt.pins[pinKey(spec)]; got != digest {
		t.Errorf("pinned digest %q, pushed %q", got, digest)
	}
	lines := readLines(t, follow(t, h.rt, "c1", "stdout"), 1)
	if len(lines) == 0 || !strings.Contains(lines[0], "listening on "+strconv.Itoa(st.Port)) {
		t.Errorf("stdout of the container: %q, want its 'listening on' line", lines)
	}

	// A kill of the container restarts it (from the cache).
	syscall.Kill(cpid, syscall.SIGKILL)
	st = waitLong(t, h.rt, "a restart after the kill", func(m map[string]ReplicaStatus) bool {
		s := m["c1"]
		return s.Restarts >= 1 && s.Ready
	})["c1"]
	if code, err := get(t, st.Port, "/healthz"); err != nil || code != 200 {
		t.Fatalf("GET /healthz after the restart: %d, %v", code, err)
	}

	// The fence kills it at once.
	cpid = h.containerPid("c1")
	h.rt.Kill([]string{"c1"})
	waitLong(t, h.rt, "the fenced container's exit", func(m map[string]ReplicaStatus) bool { return m["c1"].Reason == ReasonFenced })
	poll(t, "the fenced container's process to be gone", func() bool { return processGone(cpid) })

	// An agent restart adopts the running container.
	st = waitLong(t, h.rt, "the restart after the fence", ready("c1"))["c1"]
	h.rt.Stop()
	h.rt = h.newRuntime()
	adopted := waitLong(t, h.rt, "the container adopted", func(m map[string]ReplicaStatus) bool { return m["c1"].Adopted })["c1"]
	if adopted.Pid != st.Pid {
		t.Errorf("adopted pid %d, was %d", adopted.Pid, st.Pid)
	}
	h.rt.Apply([]ReplicaSpec{spec})
	if code, err := get(t, st.Port, "/healthz"); err != nil || code != 200 {
		t.Fatalf("GET /healthz after the agent restart: %d, %v", code, err)
	}

	// Stop: nothing of the container is left.
	cpid = h.containerPid("c1")
	h.rt.Apply(nil)
	waitLong(t, h.rt, "the container to go", gone("c1"))
	poll(t, "the container's process to be gone", func() bool { return processGone(cpid) })
	poll(t, "the bundle and runc state to go", func() bool {
		b, _ := os.ReadDir(h.rt.bundleDir)
		s, _ := os.ReadDir(h.rt.runcRoot)
		return len(b) == 0 && len(s) == 0
	})
}

// TestOCIRootMountsInTheContainer: a container's overlay root is mounted
// in its own mount namespace, never on the node (whose mount table every
// runc start reads and copies), read-only where the template asks.
func TestOCIRootMountsInTheContainer(t *testing.T) {
	needRunc(t)
	t.Parallel()
	reg := newTestRegistry(t)
	reg.pushSelf(t, "web:v1")
	h := startOCI(t, func(c *image.Config) { c.Insecure = []string{reg.host} })
	rw, ro := ociSpec("rw", reg.host+"/web:v1"), ociSpec("ro", reg.host+"/web:v1")
	ro.Template.ReadOnlyRoot = true
	h.rt.Apply([]ReplicaSpec{rw, ro})
	waitLong(t, h.rt, "both containers ready", func(m map[string]ReplicaStatus) bool { return m["rw"].Ready && m["ro"].Ready })
	if node := readFile("/proc/self/mountinfo"); strings.Contains(node, h.rt.bundleDir) {
		t.Errorf("the node's mount table holds a container's root:\n%s", node)
	}
	for id, want := range map[string]string{"rw": "rw", "ro": "ro"} {
		var root string
		for _, l := range strings.Split(readFile(fmt.Sprintf("/proc/%d/mountinfo", h.containerPid(id))), "\n") {
			if f := strings.Fields(l); len(f) > 5 && f[4] == "/" {
				root = l
			}
		}
		// mountinfo: id parent dev root mountpoint options ... - type source superoptions
		f := strings.Fields(root)
		if len(f) < 9 || !strings.Contains(root, " - overlay ") || !strings.Contains(root, "upperdir="+filepath.Join(h.rt.bundleDir)) {
			t.Fatalf("container %s's root: %q, want an overlay with its upper directory in its bundle", id, root)
		}
		if opts := strings.Split(f[5], ","); opts[0] != want {
			t.Errorf("container %s's root is mounted %s, want %s", id, opts[0], want)
		}
	}
}

// TestOCILeftoversCleanedAtStart: a container whose agent died without a
// record (crashed between start and record) is removed by the next
// agent.
func TestOCILeftoversCleanedAtStart(t *testing.T) {
	needRunc(t)
	t.Parallel()
	reg := newTestRegistry(t)
	reg.pushSelf(t, "web:v1")
	h := startOCI(t, func(c *image.Config) { c.Insecure = []string{reg.host} })
	h.rt.Apply([]ReplicaSpec{ociSpec("left", reg.host+"/web:v1")})
	waitLong(t, h.rt, "the container to run", running("left"))
	cpid := h.containerPid("left")
	h.rt.Stop()
	os.RemoveAll(h.rt.recDir) // as if the record was never written
	os.Mkdir(h.rt.recDir, 0o750)
	h.rt = h.newRuntime()
	poll(t, "the leftover container's process to be killed", func() bool { return processGone(cpid) })
	if b, _ := os.ReadDir(h.rt.bundleDir); len(b) != 0 {
		t.Errorf("%d bundles left", len(b))
	}
	if out, _ := exec.Command(h.rt.runc, "--root", h.rt.runcRoot, "list", "-q").Output(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("runc still lists %q", out)
	}
}

// TestOCIPullFailures: each failure is the replica's PullFailed reason
// with the cause, the replica backs off, and the agent runs on.
func TestOCIPullFailures(t *testing.T) {
	needRunc(t)
	t.Parallel()
	reg := newTestRegistry(t)
	good := reg.pushSelf(t, "web:v1")
	locked := newTestRegistry(t)
	locked.pushSelf(t, "web:v1")
	locked.password = "right"
	bad := newTestRegistry(t)
	bad.pushSelf(t, "web:v1")
	bad.corrupt = true
	down := httptest.NewServer(http.NotFoundHandler())
	downHost := strings.TrimPrefix(down.URL, "http://")
	down.Close()
	creds := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(creds, []byte(`{"auths":{"`+locked.host+`":{"username":"u","password":"wrong-password"}}}`), 0o600)

	h := startOCI(t, func(c *image.Config) {
		c.Insecure = []string{reg.host, locked.host, bad.host, downHost}
		c.CredentialsFile = creds
	})
	cases := map[string]struct{ ref, want string }{
		"missing":  {reg.host + "/nope:v1", "NAME_UNKNOWN"},
		"digest":   {reg.host + "/web@sha256:" + strings.Repeat("0", 64), "MANIFEST_UNKNOWN"},
		"denied":   {locked.host + "/web:v1", "UNAUTHORIZED"},
		"down":     {downHost + "/web:v1", "connection refused"},
		"corrupt":  {bad.host + "/web@" + good, "sha256"},
		"insecure": {"127.0.0.1:1/web:v1", "not listed as insecure"},
	}
	var specs []ReplicaSpec
	for id, c := range cases {
		specs = append(specs, ociSpec(id, c.ref))
	}
	h.rt.Apply(specs)
	st := waitLong(t, h.rt, "every pull to fail", func(m map[string]ReplicaStatus) bool {
		for id := range cases {
			if m[id].Reason != ReasonPullFailed || m[id].Phase != PhaseBackoff {
				return false
			}
		}
		return true
	})
	for id, c := range cases {
		if !strings.Contains(st[id].LastError, c.want) {
			t.Errorf("%s: last error %q, want it to say %q", id, st[id].LastError, c.want)
		}
		if strings.Contains(st[id].LastError, "wrong-password") {
			t.Errorf("%s: the error quotes the password", id)
		}
	}
	for _, d := range []string{"blobs/sha256", "images"} {
		entries, _ := os.ReadDir(filepath.Join(h.cfg.DataDir, "images", d))
		for _, e := range entries {
			t.Errorf("the cache holds %s/%s after failed pulls only", d, e.Name())
		}
	}
	// The agent runs on: a good image still starts.
	h.rt.Apply(append(specs, ociSpec("good", reg.host+"/web:v1")))
	waitLong(t, h.rt, "a good container beside the failures", ready("good"))
}

// BenchmarkOCIStart measures a container's start until it answers HTTP:
// cold (empty cache: pull, unpack, start) and warm (image cached).
func BenchmarkOCIStart(b *testing.B) {
	needRunc(b)
	reg := newTestRegistry(b)
	reg.pushSelf(b, "web:v1")
	// Padded with an incompressible layer to 20 MB in all, as the issue's
	// target says.
	var size int64
	layers, _ := selfImage.Layers()
	for _, l := range layers {
		n, _ := l.Size()
		size += n
	}
	pad := make([]byte, max(20<<20-size, 0))
	rand.Read(pad)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "pad", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(pad))})
	tw.Write(pad)
	tw.Close()
	padLayer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tb.Bytes())), nil },
		tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		b.Fatal(err)
	}
	padded, err := mutate.AppendLayers(selfImage, padLayer)
	if err != nil {
		b.Fatal(err)
	}
	ref, _ := name.ParseReference(reg.host+"/web:v1", name.Insecure)
	if err := remote.Write(ref, padded); err != nil {
		b.Fatal(err)
	}
	size += int64(len(pad))
	run := func(b *testing.B, cold bool) {
		storeDir := b.TempDir()
		dataDir := b.TempDir()
		s, err := image.Open(image.Config{Dir: storeDir, Insecure: []string{reg.host}})
		if err != nil {
			b.Fatal(err)
		}
		rt, err := New(Config{DataDir: dataDir, Images: s, StopGrace: time.Second, PortRange: [2]int{31000, 31999}})
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		defer rt.Stop()
		if !cold { // fill the cache
			if _, err := s.Pull(context.Background(), reg.host+"/web:v1"); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			if cold {
				os.RemoveAll(storeDir)
				s, _ = image.Open(image.Config{Dir: storeDir, Insecure: []string{reg.host}})
				rt.mu.Lock()
				rt.cfg.Images = s
				rt.mu.Unlock()
			}
			id := fmt.Sprintf("b%d", i)
			b.StartTimer()
			rt.Apply([]ReplicaSpec{{ID: id, Workload: "bench", Generation: int64(i + 1), Template: api.ReplicaTemplate{Driver: "oci", Image: reg.host + "/web:v1"}}})
			deadline := time.Now().Add(ociWait)
			var port int
			for port == 0 {
				for _, st := range rt.Status() {
					if st.ID == id && st.Pid != 0 {
						port = st.Port
					}
				}
				if time.Now().After(deadline) {
					b.Fatalf("the container did not start: %s", describeOCI(statusMap(rt)))
				}
				time.Sleep(time.Millisecond)
			}
			for {
				if resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/healthz"); err == nil {
					resp.Body.Close()
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("the container does not answer on port %d: %s", port, describeOCI(statusMap(rt)))
				}
				time.Sleep(2 * time.Millisecond)
			}
			b.StopTimer()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			rt.Apply(nil)
			_ = rt.StopAll(ctx)
			cancel()
			b.StartTimer()
		}
	}
	b.Run("cold", func(b *testing.B) { run(b, true); b.ReportMetric(float64(size)/(1<<20), "image-MiB") })
	b.Run("warm", func(b *testing.B) { run(b, false) })
}

// freeHostPort is a port nothing on this machine listens on now.
func freeHostPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestOCIPortMapping: a container whose port maps a container port has
// a network of its own; HTTP answers through the host port (probes too,
// one aimed at the container port), never on the container port from the
// node, across a restart; the host port is free once the replica goes.
func TestOCIPortMapping(t *testing.T) {
	needRunc(t)
	t.Parallel()
	reg := newTestRegistry(t)
	reg.pushSelf(t, "web:v1")
	h := startOCI(t, func(c *image.Config) { c.Insecure = []string{reg.host} })
	inside := freeHostPort(t)
	spec := ociSpec("m1", reg.host+"/web:v1")
	spec.Template.Ports = []api.Port{{Name: "http", ContainerPort: int32(inside)}}
	spec.Template.Readiness = &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz", Port: int32(inside)}, PeriodSeconds: 1}
	h.rt.Apply([]ReplicaSpec{spec})
	st := waitLong(t, h.rt, "the mapped container to be ready (probed through its host port)", ready("m1"))["m1"]
	if st.Port == inside || st.Port == 0 {
		t.Fatalf("the replica's port is %d, want a host port other than the container port %d", st.Port, inside)
	}
	if code, err := get(t, st.Port, "/healthz"); err != nil || code != 200 {
		t.Fatalf("GET /healthz through the host port %d: %d, %v", st.Port, code, err)
	}
	if code, err := get(t, inside, "/healthz"); err == nil {
		t.Fatalf("GET /healthz on the container port %d from the node answered %d: the container shares the node's network", inside, code)
	}
	cpid := h.containerPid("m1")
	own, _ := os.Readlink("/proc/self/ns/net")
	theirs, _ := os.Readlink("/proc/" + strconv.Itoa(cpid) + "/ns/net")
	if theirs == "" || theirs == own {
		t.Errorf("the container's network namespace is %q, the node's %q: want one of its own", theirs, own)
	}
	lines := readLines(t, follow(t, h.rt, "m1", "stdout"), 1)
	if len(lines) == 0 || !strings.Contains(lines[0], "listening on "+strconv.Itoa(inside)) {
		t.Errorf("stdout of the container: %q, want it to listen on PORT=%d (the container port)", lines, inside)
	}

	// The forward outlives a restart of the container.
	syscall.Kill(cpid, syscall.SIGKILL)
	st = waitLong(t, h.rt, "a restart after the kill", func(m map[string]ReplicaStatus) bool {
		s := m["m1"]
		return s.Restarts >= 1 && s.Ready
	})["m1"]
	if code, err := get(t, st.Port, "/healthz"); err != nil || code != 200 {
		t.Fatalf("GET /healthz through the host port after the restart: %d, %v", code, err)
	}

	h.rt.Apply(nil)
	waitLong(t, h.rt, "the container to go", gone("m1"))
	poll(t, "the host port to be released", func() bool { return portFree(st.Port, false) })
}

// TestOCIOOMKilled: a container killed by the OOM killer at its memory
// limit ends with reason OOMKilled.
func TestOCIOOMKilled(t *testing.T) {
	needRunc(t)
	if _, ok := containerOOMKills("/"); !ok {
		t.Skip("no memory controller whose OOM kills can be read here (neither cgroup v1 memory.oom_control nor cgroup v2 memory.events)")
	}
	t.Parallel()
	reg := newTestRegistry(t)
	reg.pushSelf(t, "web:v1")
	h := startOCI(t, func(c *image.Config) { c.Insecure = []string{reg.host} })
	spec := ociSpec("hog", reg.host+"/web:v1")
	spec.Template.Readiness = nil
	spec.Template.RestartPolicy = "Never"
	spec.Template.Resources.Memory = "48Mi"
	spec.Template.Env = []api.EnvVar{{Name: helperEnv, Value: "oom"}}
	h.rt.Apply([]ReplicaSpec{spec})
	st := waitLong(t, h.rt, "the container to fail", func(m map[string]ReplicaStatus) bool { return m["hog"].Phase == PhaseFailed })["hog"]
	if st.Reason != ReasonOOMKilled || !strings.Contains(st.LastError, "48Mi") {
		t.Fatalf("reason %q (%q), want %s naming the limit 48Mi", st.Reason, st.LastError, ReasonOOMKilled)
	}
	if st.ExitCode != 137 {
		t.Errorf("exit code %d, want 137 (SIGKILL)", st.ExitCode)
	}
}

// TestOCIPullSecret: a registry that asks for a password refuses the
// pull without the workload's credentials (PullFailed with its 401), and
// the replica runs once they arrive; the credentials are in no status,
// record or log line.
func TestOCIPullSecret(t *testing.T) {
	needRunc(t)
	t.Parallel()
	reg := newTestRegistry(t)
	reg.pushSelf(t, "private:v1")
	reg.mu.Lock()
	reg.password = "s3cret-pw"
	reg.mu.Unlock()
	h := startOCI(t, func(c *image.Config) { c.Insecure = []string{reg.host} })
	spec := ociSpec("p1", reg.host+"/private:v1")
	h.rt.Apply([]ReplicaSpec{spec})
	st := waitLong(t, h.rt, "the pull to fail without credentials", func(m map[string]ReplicaStatus) bool {
		return m["p1"].Reason == ReasonPullFailed
	})["p1"]
	if !strings.Contains(st.LastError, "UNAUTHORIZED") && !strings.Contains(st.LastError, "401") {
		t.Fatalf("last error %q, want the registry's 401", st.LastError)
	}

	auth := base64.StdEncoding.EncodeToString([]byte("u:s3cret-pw"))
	spec.Data = &ReplicaData{RegistryAuth: []byte(`{"auths":{"` + reg.host + `":{"auth":"` + auth + `"}}}`)}
	h.rt.Apply([]ReplicaSpec{spec})
	st = waitLong(t, h.rt, "the container to run with the workload's credentials", ready("p1"))["p1"]
	if code, err := get(t, st.Port, "/healthz"); err != nil || code != 200 {
		t.Fatalf("GET /healthz: %d, %v", code, err)
	}
	for _, secret := range []string{"s3cret-pw", auth} {
		if s := fmt.Sprintf("%+v", h.rt.Status()); strings.Contains(s, secret) {
			t.Errorf("the status holds the credentials: %s", s)
		}
		if l := h.logs.lines(secret); len(l) > 0 {
			t.Errorf("the runtime logged the credentials: %q", l)
		}
		rec, _ := os.ReadFile(h.rt.recordPath(fsName("p1")))
		if strings.Contains(string(rec), secret) {
			t.Errorf("the replica's record holds the credentials")
		}
	}

	// Wrong credentials: the registry's refusal, never the password.
	bad := ociSpec("p2", reg.host+"/private:v2")
	wrong := base64.StdEncoding.EncodeToString([]byte("u:wrong-pw"))
	bad.Data = &ReplicaData{RegistryAuth: []byte(`{"auths":{"` + reg.host + `":{"auth":"` + wrong + `"}}}`)}
	h.rt.Apply([]ReplicaSpec{spec, bad})
	st = waitLong(t, h.rt, "the pull with wrong credentials to fail", func(m map[string]ReplicaStatus) bool {
		return m["p2"].Reason == ReasonPullFailed
	})["p2"]
	if strings.Contains(st.LastError, "wrong-pw") || strings.Contains(st.LastError, wrong) {
		t.Errorf("the error quotes the credentials: %q", st.LastError)
	}
}

// TestOCIStartsOutsideTheLock: container starts run in the node's start
// pool, at most StartConcurrency at once, while Status answers; a
// replica fenced while its container starts is killed once it runs, and
// one removed meanwhile is stopped and leaves nothing behind.
func TestOCIStartsOutsideTheLock(t *testing.T) {
	needRunc(t)
	t.Parallel()
	reg := newTestRegistry(t)
	reg.pushSelf(t, "web:v1")
	h := start(t, func(c *Config) {
		s, err := image.Open(image.Config{Dir: filepath.Join(c.DataDir, "images"), Insecure: []string{reg.host}})
		if err != nil {
			t.Fatal(err)
		}
		c.Images, c.StartConcurrency = s, 2
	})
	var mu sync.Mutex
	entered := map[string]bool{}
	release := map[string]chan struct{}{"fenced": make(chan struct{}), "removed": make(chan struct{}), "third": make(chan struct{})}
	arrived := make(chan string, 3)
	h.rt.mu.Lock()
	h.rt.startGate = func(id string) {
		mu.Lock()
		entered[id] = true
		ch := release[id]
		mu.Unlock()
		select {
		case arrived <- id:
		default: // a restart after the test's starts
		}
		<-ch
	}
	h.rt.mu.Unlock()
	specs := []ReplicaSpec{ociSpec("fenced", reg.host+"/web:v1"), ociSpec("removed", reg.host+"/web:v1"), ociSpec("third", reg.host+"/web:v1")}
	h.rt.Apply(specs)

	// Two starts hold both slots; the node still answers, and the third
	// waits for a slot.
	held := map[string]bool{}
	deadline := time.After(ociWait)
	for len(held) < 2 {
		select {
		case id := <-arrived:
			held[id] = true
		case <-deadline:
			t.Fatalf("starts in the pool after %s: %v, want 2", ociWait, held)
		}
	}
	// Status would block if a start held the lock; all three are handed
	// to the pool (the third once its pull ended).
	waitLong(t, h.rt, "all three starting", func(m map[string]ReplicaStatus) bool {
		for _, s := range specs {
			if st := m[s.ID]; st.Phase != PhasePending || st.Message != "starting the container" {
				return false
			}
		}
		return true
	})
	mu.Lock()
	n := len(entered)
	mu.Unlock()
	if n != 2 || len(h.rt.startSlots) != 2 {
		t.Fatalf("%d starts entered, %d slots taken; want 2 and 2 (StartConcurrency 2)", n, len(h.rt.startSlots))
	}

	// Fence "fenced" and remove "removed" while they start (whichever
	// of the three are held), then let every start go on.
	h.rt.Kill([]string{"fenced"})
	h.rt.Apply([]ReplicaSpec{specs[0], specs[2]})
	for _, ch := range release {
		close(ch)
	}
	waitLong(t, h.rt, "the fenced replica killed once started, the removed one gone, the third ready", func(m map[string]ReplicaStatus) bool {
		_, removed := m["removed"]
		return m["fenced"].Reason == ReasonFenced && !removed && m["third"].Ready
	})
	poll(t, "the removed replica's bundle and runc state to go", func() bool {
		_, berr := os.Stat(filepath.Join(h.rt.bundleDir, fsName("removed")))
		_, serr := os.Stat(filepath.Join(h.rt.runcRoot, containerID("removed")))
		return os.IsNotExist(berr) && os.IsNotExist(serr)
	})
	if code, err := get(t, statusMap(h.rt)["third"].Port, "/healthz"); err != nil || code != 200 {
		t.Fatalf("GET /healthz on the third container: %d, %v", code, err)
	}
}

// TestOCIReplicaData: a container replica waits for its configuration
// (MissingData) without pulling, then gets an env var from a secret and
// reads a secret and a config from $ATOLL_FILES, a read-only mount of its
// files directory that its user (nobody) alone owns on the node; the
// secret is in no record, log or status.
func TestOCIReplicaData(t *testing.T) {
	needRunc(t)
	t.Parallel()
	reg := newTestRegistry(t)
	reg.pushSelf(t, "web:v1")
	h := startOCI(t, func(c *image.Config) { c.Insecure = []string{reg.host} })
	spec := ociSpec("d1", reg.host+"/web:v1")
	spec.Template.Env = []api.EnvVar{{Name: "TOKEN", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "creds", Key: "token"}}}}
	spec.Data = &ReplicaData{Missing: []string{`env TOKEN: secret "creds" has no key "token"`}}
	h.rt.Apply([]ReplicaSpec{spec})
	waitLong(t, h.rt, "the start held for missing data", func(m map[string]ReplicaStatus) bool {
		return m["d1"].Reason == ReasonMissingData
	})

	const token = "tok-Oc1Zr7Qw"
	spec.Data = &ReplicaData{Env: map[string]string{"TOKEN": token}, Files: []ReplicaFiles{
		{Dir: "creds", Secret: true, Values: map[string][]byte{"token": []byte(token)}},
		{Dir: "cfg", Values: map[string][]byte{"region": []byte("eu")}},
	}}
	h.rt.Apply([]ReplicaSpec{spec})
	st := waitLong(t, h.rt, "the container to run with its data", ready("d1"))["d1"]
	body := func(query string) string {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(st.Port) + "/data?" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /data?%s: %d %s", query, resp.StatusCode, b)
		}
		return string(b)
	}
	if got, want := body("env=TOKEN&file=creds/token"), token+" "+containerFilesDir+" "+token; got != want {
		t.Errorf("the container read %q, want %q (the secret's env var, $ATOLL_FILES, the secret's file)", got, want)
	}
	if got := body("env=PORT&file=cfg/region"); !strings.HasSuffix(got, " eu") {
		t.Errorf("the container read %q, want the config's file (eu)", got)
	}
	if uid := procUID(h.containerPid("d1")); uid != strconv.Itoa(nobody) {
		t.Errorf("the container runs as uid %s, want %d", uid, nobody)
	}

	// On the node: the files are the container user's alone.
	files := filepath.Join(h.cfg.DataDir, "files")
	for _, c := range []struct {
		path string
		uid  uint32
		mode os.FileMode
	}{
		{files, 0, 0o700},
		{filepath.Join(files, fsName("d1")), nobody, 0o700},
		{filepath.Join(files, fsName("d1"), "creds"), nobody, 0o700},
		{filepath.Join(files, fsName("d1"), "creds", "token"), nobody, 0o400},
		{filepath.Join(files, fsName("d1"), "cfg", "region"), nobody, 0o444},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != c.uid || fi.Mode().Perm() != c.mode {
			t.Errorf("%s: uid %d mode %o, want uid %d mode %o", c.path, uid, fi.Mode().Perm(), c.uid, c.mode)
		}
	}

	// The secret is in no record, log file, runtime log or status.
	for _, dir := range []string{"replicas", "logs"} {
		filepath.WalkDir(filepath.Join(h.cfg.DataDir, dir), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(token)) {
					t.Errorf("%s holds the secret", p)
				}
			}
			return nil
		})
	}
	if l := h.logs.lines(token); len(l) > 0 {
		t.Errorf("the runtime logged the secret: %q", l)
	}
	if s := fmt.Sprintf("%+v", h.rt.Status()); strings.Contains(s, token) {
		t.Errorf("the status holds the secret: %s", s)
	}
}
