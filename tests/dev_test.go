//go:build linux

package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atollhq/atoll/internal/syncbuf"

	"sigs.k8s.io/yaml"
)

// examplesDir is deploy/examples, seen from this package's folder (go test
// runs tests in the package's folder).
const examplesDir = "../deploy/examples"

// TestDevApplyGet applies the sample manifests with the CLI and reads them
// back: every label and spec field from the files, idempotent re-apply,
// label selectors.
func TestDevApplyGet(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)
	d.checkReady(t)

	want := exampleWorkloads(t)
	existed := map[string]bool{} // with -count > 1 the shared stack has them already
	for name := range want {
		status, body, err := d.request(http.MethodGet, "/api/v1/workloads/"+name, d.token, nil)
		if err != nil || (status != http.StatusOK && status != http.StatusNotFound) {
			t.Fatalf("want GET workload %s to answer 200 or 404; got %d %s (%v)", name, status, body, err)
		}
		existed[name] = status == http.StatusOK
	}

	r := d.mustAtoll(t, "", "apply", "-f", examplesDir)
	for name := range want {
		line := "workload/" + name + " created"
		if existed[name] {
			line = "workload/" + name + " unchanged"
		}
		if !hasLine(r.stdout, line) {
			t.Errorf("want a line %q from the first apply; got %s", line, r)
		}
	}

	r = d.mustAtoll(t, "", "get", "workloads", "-o", "json")
	got := decodeList(t, r)
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("want workload %s in `atoll get workloads -o json`; got only %v", name, sortedKeys(got))
			continue
		}
		if g.Metadata.UID == "" || g.Metadata.ResourceVersion == "" {
			t.Errorf("want workload %s to have a uid and a resourceVersion; got uid %q, resourceVersion %q", name, g.Metadata.UID, g.Metadata.ResourceVersion)
		}
		if !reflect.DeepEqual(g.Metadata.Labels, w.Metadata.Labels) {
			t.Errorf("want workload %s labels %v, as in the file; got %v", name, w.Metadata.Labels, g.Metadata.Labels)
		}
		for _, diff := range subsetDiff("spec", w.Spec, g.Spec) {
			t.Errorf("want workload %s to keep the file's spec; %s", name, diff)
		}
	}

	r = d.mustAtoll(t, "", "apply", "-f", examplesDir)
	for name := range want {
		if line := "workload/" + name + " unchanged"; !hasLine(r.stdout, line) {
			t.Errorf("want a line %q when applying the same files again; got %s", line, r)
		}
	}

	r = d.mustAtoll(t, "", "get", "workloads", "-l", "app=web", "-o", "json")
	if names := sortedKeys(decodeList(t, r)); !slices.Equal(names, []string{"web"}) {
		t.Errorf("want only [web] with -l app=web; got %v from %s", names, r)
	}
}

// TestDevSurvivesSIGKILL kills the whole dev process without warning and
// checks that its PostgreSQL goes with it and that, after a restart on the
// same data folder and port, every acknowledged write is there unchanged.
func TestDevSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	// t.TempDir's parents are 0700 and root's: atoll dev must make the
	// data folder reachable for the postgres user on its own.
	dir := t.TempDir()
	d := startDevT(t, dir, "127.0.0.1:0")
	d.checkReady(t)

	// What the user wrote must survive: the same object (uid) with the same
	// spec (generation and content). The hub itself writes status and a
	// finalizer meanwhile, so resourceVersion may move.
	type version struct {
		uid  string
		gen  int64
		spec string
	}
	acked := map[string]version{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			name := fmt.Sprintf("w-%d", i)
			body := fmt.Sprintf(`{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":%q,"labels":{"batch":"sigkill"}},"spec":{"replicas":1,"template":{"driver":"sim"}}}`, name)
			status, resp, err := d.request(http.MethodPost, "/api/v1/workloads", d.token, []byte(body))
			if err != nil || status != http.StatusCreated {
				t.Errorf("want POST workload %s to answer 201; got %d %s (%v)", name, status, resp, err)
				return
			}
			var w workload
			if err := json.Unmarshal(resp, &w); err != nil || w.Metadata.UID == "" || w.Metadata.ResourceVersion == "" {
				t.Errorf("want the created workload %s with uid and resourceVersion in the 201 body; got %s (%v)", name, resp, err)
				return
			}
			mu.Lock()
			acked[name] = version{w.Metadata.UID, w.Metadata.Generation, specKey(w.Spec)}
			mu.Unlock()
		})
	}
	wg.Wait()
	d.mustAtoll(t, "", "apply", "-f", examplesDir)
	for name := range exampleWorkloads(t) {
		status, resp, err := d.request(http.MethodGet, "/api/v1/workloads/"+name, d.token, nil)
		var w workload
		if err != nil || status != http.StatusOK || json.Unmarshal(resp, &w) != nil {
			t.Fatalf("want GET workload %s to answer 200 after apply; got %d %s (%v)", name, status, resp, err)
		}
		acked[name] = version{w.Metadata.UID, w.Metadata.Generation, specKey(w.Spec)}
	}
	if t.Failed() {
		t.FailNow()
	}

	pg := d.postgresProcs()
	if len(pg) == 0 {
		t.Fatalf("want a running postmaster named in %s/postmaster.pid; found none", d.pgDataDir())
	}
	t.Logf("SIGKILL to atoll dev (pid %d), whose PostgreSQL has %d processes", d.cmd.Process.Pid, len(pg))
	d.kill()
	if err := waitGone(pg, d.pgDataDir(), goneTimeout); err != nil {
		t.Fatalf("want PostgreSQL to die with a SIGKILLed atoll dev (parent-death signal); %v", err)
	}

	d2 := startDevT(t, dir, d.addr)
	d2.checkReady(t)
	if d2.token != d.token {
		t.Errorf("want the admin token file kept across the restart; got a different token")
	}
	got := decodeList(t, d2.mustAtoll(t, "", "get", "workloads", "-o", "json"))
	for name, v := range acked {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("want acknowledged workload %s (uid %s) after the SIGKILL and restart; it is gone (have %v)", name, v.uid, sortedKeys(got))
		case g.Metadata.UID != v.uid || g.Metadata.Generation != v.gen || specKey(g.Spec) != v.spec:
			t.Errorf("want workload %s unchanged by the SIGKILL and restart (uid %s, generation %d, spec %s); got uid %s, generation %d, spec %s",
				name, v.uid, v.gen, v.spec, g.Metadata.UID, g.Metadata.Generation, specKey(g.Spec))
		}
	}
}

// TestCLIErrors checks that each kind of failure ends with exit code 1
// and one actionable line on standard error, and that roles and
// revocation are enforced.
func TestCLIErrors(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)

	good, bad := uniqueName("good"), uniqueName("bad")
	manifest := filepath.Join(t.TempDir(), "two.yaml")
	writeFile(t, manifest, fmt.Sprintf(`apiVersion: atoll.dev/v1
kind: Workload
metadata:
  name: %s
spec:
  replicas: 1
  template:
    driver: sim
---
apiVersion: atoll.dev/v1
kind: Workload
metadata:
  name: %s
spec:
  replicas: -1
  template:
    driver: sim
`, good, bad))

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want []string // substrings of the error line
	}{
		{"unknown kind", nil, []string{"get", "nothings"}, []string{"unknown kind", "nothings"}},
		{"missing object", nil, []string{"get", "workload", "nope"}, []string{"nope", "not found"}},
		{"bad token", []string{"ATOLL_TOKEN=wrong"}, []string{"get", "workloads"}, []string{"token"}},
		{"unreachable server", []string{"ATOLL_SERVER=http://127.0.0.1:1"}, []string{"get", "workloads"}, []string{"cannot reach the hub"}},
		{"invalid manifest", nil, []string{"apply", "-f", manifest}, []string{"spec.replicas", bad}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFailure(t, d.atoll(t, tc.env, "", tc.args...), tc.want...)
		})
	}
	for _, name := range []string{good, bad} {
		if status, body, err := d.request(http.MethodGet, "/api/v1/workloads/"+name, d.token, nil); err != nil || status != http.StatusNotFound {
			t.Errorf("want nothing of a file with one invalid document created, so GET workload %s is 404; got %d %s (%v)", name, status, body, err)
		}
	}

	t.Run("server validation", func(t *testing.T) {
		body := fmt.Sprintf(`{"apiVersion":"atoll.dev/v1","kind":"Workload","metadata":{"name":%q},"spec":{"replicas":-1,"template":{"driver":"sim"}}}`, bad)
		status, resp, err := d.request(http.MethodPost, "/api/v1/workloads", d.token, []byte(body))
		var p struct {
			Code   string `json:"code"`
			Errors []struct {
				Location string `json:"location"`
			} `json:"errors"`
		}
		if err != nil || status != http.StatusUnprocessableEntity || json.Unmarshal(resp, &p) != nil || p.Code != "Invalid" ||
			!slices.ContainsFunc(p.Errors, func(e struct {
				Location string `json:"location"`
			}) bool {
				return strings.HasSuffix(e.Location, "spec.replicas")
			}) {
			t.Errorf("want POST of replicas -1 to answer 422, code Invalid, an error on spec.replicas; got %d %s (%v)", status, resp, err)
		}
	})

	t.Run("viewer role and revocation", func(t *testing.T) {
		viewer := uniqueName("v")
		r := d.mustAtoll(t, "", "token", "create", viewer, "--role", "viewer")
		secret := strings.TrimSpace(r.stdout)
		if secret == "" || strings.Contains(secret, "\n") {
			t.Fatalf("want the secret alone on standard output; got %s", r)
		}
		asViewer := []string{"ATOLL_TOKEN=" + secret}

		if r := d.atoll(t, asViewer, "", "get", "workloads"); r.code != 0 {
			t.Errorf("want a viewer to list workloads; got %s", r)
		}
		name := uniqueName("by-viewer")
		doc := fmt.Sprintf("apiVersion: atoll.dev/v1\nkind: Workload\nmetadata: {name: %s}\nspec: {replicas: 1, template: {driver: sim}}\n", name)
		checkFailure(t, d.atoll(t, asViewer, doc, "apply", "-f", "-"), "role viewer", "operator")
		if status, body, err := d.request(http.MethodPost, "/api/v1/workloads", secret, mustJSON(t, doc)); err != nil || status != http.StatusForbidden {
			t.Errorf("want POST with a viewer token to answer 403; got %d %s (%v)", status, body, err)
		}
		if status, body, err := d.request(http.MethodGet, "/api/v1/workloads/"+name, d.token, nil); err != nil || status != http.StatusNotFound {
			t.Errorf("want nothing created by a refused apply, so GET workload %s is 404; got %d %s (%v)", name, status, body, err)
		}

		if r := d.mustAtoll(t, "", "token", "revoke", viewer); !hasLine(r.stdout, "token/"+viewer+" revoked") {
			t.Errorf("want %q; got %s", "token/"+viewer+" revoked", r)
		}
		checkFailure(t, d.atoll(t, asViewer, "", "get", "workloads"), "token")
		if status, body, err := d.request(http.MethodGet, "/api/v1/workloads", secret, nil); err != nil || status != http.StatusUnauthorized {
			t.Errorf("want a revoked token to get 401; got %d %s (%v)", status, body, err)
		}
	})
}

// TestWatchCLI runs `atoll get -w` and checks that a workload created
// after the listing shows up as an ADDED event, then ends it with Ctrl-C.
func TestWatchCLI(t *testing.T) {
	t.Parallel()
	d := sharedStack(t)

	cmd := exec.Command(atollBin, "get", "workloads", "-w", "-o", "json")
	cmd.Env = append(os.Environ(), "ATOLL_CONFIG="+filepath.Join(t.TempDir(), "none.yaml"), "ATOLL_SERVER="+d.url, "ATOLL_TOKEN="+d.token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("want `atoll get workloads -w` started; got %v", err)
	}
	values := make(chan json.RawMessage) // each JSON value it prints; closed at the end
	stopReading := make(chan struct{})
	exited := make(chan struct{})
	var waitErr error // set before exited is closed
	go func() {
		dec := json.NewDecoder(stdout)
	read:
		for {
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				break
			}
			select {
			case values <- v:
			case <-stopReading:
				break read
			}
		}
		close(values)
		_, _ = io.Copy(io.Discard, stdout)
		waitErr = cmd.Wait() // after draining: Wait closes the pipe
		close(exited)
	}()
	t.Cleanup(func() {
		close(stopReading)
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	next := func(what string) json.RawMessage {
		t.Helper()
		select {
		case v, ok := <-values:
			if !ok {
				t.Fatalf("want %s on the watch's standard output; it ended. stderr:\n%s", what, stderr)
			}
			return v
		case <-deadline.C:
			t.Fatalf("want %s on the watch's standard output within 30 s; none came. stderr:\n%s", what, stderr)
		}
		return nil
	}

	// The listing comes first; the watch resumes from its resourceVersion,
	// so anything created from now on must come as an event.
	var list struct {
		Kind string `json:"kind"`
	}
	if v := next("the initial list"); json.Unmarshal(v, &list) != nil || list.Kind != "WorkloadList" {
		t.Fatalf("want a WorkloadList first; got %s", v)
	}
	name := uniqueName("watched")
	d.mustAtoll(t, fmt.Sprintf("apiVersion: atoll.dev/v1\nkind: Workload\nmetadata: {name: %s}\nspec: {replicas: 1, template: {driver: sim}}\n", name), "apply", "-f", "-")
	for {
		var ev struct {
			Type   string   `json:"type"`
			Object workload `json:"object"`
		}
		v := next("an ADDED event for " + name)
		if err := json.Unmarshal(v, &ev); err != nil {
			t.Fatalf("want watch events as JSON objects; got %s (%v)", v, err)
		}
		if ev.Object.Metadata.Name == name {
			if ev.Type != "ADDED" {
				t.Errorf("want the first event for new workload %s to be ADDED; got %s", name, ev.Type)
			}
			break
		}
	}

	_ = cmd.Process.Signal(os.Interrupt)
	// Keep reading: other tests on the shared stack may add workloads, and
	// the reader must not block on their events while the watch exits.
	later := values
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-later:
			if !ok {
				later = nil
			}
			continue
		case <-exited:
			if waitErr != nil {
				t.Errorf("want Ctrl-C to end the watch with exit code 0; got %v; stderr:\n%s", waitErr, stderr)
			}
		case <-timeout:
			t.Errorf("want the watch to exit within 10 s of Ctrl-C; it did not. stderr:\n%s", stderr)
		}
		return
	}
}

// workload is the part of a Workload the tests look at.
type workload struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name            string            `json:"name"`
		UID             string            `json:"uid"`
		ResourceVersion string            `json:"resourceVersion"`
		Generation      int64             `json:"generation"`
		Labels          map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec map[string]any `json:"spec"`
}

// specKey is a canonical form of a spec, to compare what users wrote.
func specKey(spec map[string]any) string {
	b, _ := json.Marshal(spec)
	return string(b)
}

// exampleWorkloads reads the Workloads in deploy/examples, independently
// of the code under test.
func exampleWorkloads(t *testing.T) map[string]workload {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("want manifests in %s; got %v (%v)", examplesDir, files, err)
	}
	out := map[string]workload{}
	sep := regexp.MustCompile(`(?m)^---[ \t]*$`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range sep.Split(string(data), -1) {
			var w workload
			if err := yaml.Unmarshal([]byte(doc), &w); err != nil {
				t.Fatalf("want %s to parse; got %v", f, err)
			}
			if w.Kind == "Workload" {
				out[w.Metadata.Name] = w
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("want Workloads in %s; found none", examplesDir)
	}
	return out
}

// decodeList reads the items of a `get -o json` listing, by name.
func decodeList(t *testing.T, r cliResult) map[string]workload {
	t.Helper()
	var list struct {
		Kind  string     `json:"kind"`
		Items []workload `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || list.Kind != "WorkloadList" {
		t.Fatalf("want a WorkloadList as JSON; got %v from %s", err, r)
	}
	out := map[string]workload{}
	for _, w := range list.Items {
		out[w.Metadata.Name] = w
	}
	return out
}

// subsetDiff lists where got lacks or changes a value of want (got may
// hold more, such as defaults the hub fills in).
func subsetDiff(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object %v; got %v", path, w, got)}
		}
		var diffs []string
		for _, k := range sortedKeys(w) {
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: want %v; it is missing", path, k, w[k]))
				continue
			}
			diffs = append(diffs, subsetDiff(path+"."+k, w[k], gv)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %v; got %v", path, w, got)}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, subsetDiff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return diffs
	default:
		if !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s: want %v; got %v", path, want, got)}
		}
		return nil
	}
}

// checkFailure fails the test unless r exited 1 with exactly one line,
// "error: ...", on standard error, holding every want.
func checkFailure(t *testing.T, r cliResult, want ...string) {
	t.Helper()
	msg := strings.TrimRight(r.stderr, "\n")
	switch {
	case r.code != 1:
		t.Errorf("want exit code 1; got %s", r)
	case strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "error: "):
		t.Errorf("want one line \"error: ...\" on standard error; got %s", r)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("want the error to mention %q; got %s", w, r)
		}
	}
}

func hasLine(out, line string) bool {
	return slices.Contains(strings.Split(out, "\n"), line)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mustJSON turns a YAML document into JSON.
func mustJSON(t *testing.T, doc string) []byte {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return js
}
