package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/internal/syncbuf"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the output got")

// startCLIHub starts a hub (startHub) and returns the flags that point
// the CLI at it as its admin.
func startCLIHub(t *testing.T) []string {
	t.Helper()
	h := startHub(t)
	return []string{"--server", h.url, "--token", testAdminSecret}
}

// volatile are the parts of get's output that change from run to run,
// and what they read as in golden files: ages (last column), and token
// prefixes (masked to their length, so columns stay as printed).
var volatile = []struct {
	re   *regexp.Regexp
	with func(string) string
}{
	{regexp.MustCompile(`(?m)\b\d+s$`), func(string) string { return "<age>" }},
	{regexp.MustCompile(`atoll_[A-Za-z0-9_-]+…`), func(s string) string {
		return "atoll_" + strings.Repeat("x", len(s)-len("atoll_…")) + "…"
	}},
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	for _, v := range volatile {
		got = v.re.ReplaceAllStringFunc(got, v.with)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestGetGolden runs `atoll get` against a real hub and compares each
// output with its golden file.
func TestGetGolden(t *testing.T) {
	t.Parallel()
	hubFlags := startCLIHub(t)
	if _, _, err := runAtoll(t, append([]string{"apply", "-f", "testdata/get/objects.yaml"}, hubFlags...)...); err != nil {
		t.Fatalf("apply: %v", err)
	}
	cases := []struct {
		golden string
		args   []string
	}{
		{"list.txt", []string{"get", "workloads"}},
		{"sorted-no-headers.txt", []string{"get", "wl", "--sort-by=.spec.replicas", "--no-headers"}},
		{"names.txt", []string{"get", "workloads", "db", "web"}},
		{"kind-slash-name.txt", []string{"get", "workload/web", "token/reader", "workload/db"}},
		{"kind-slash-name-name.txt", []string{"get", "workload/web", "token/reader", "workload/db", "-o", "name"}},
		{"custom-columns.txt", []string{"get", "workloads", "-l", "tier=backend", "--sort-by", "{.metadata.name}",
			"-o", "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas,TIER:.metadata.labels.tier,READY:.status.readyReplicas"}},
		{"jsonpath-one.txt", []string{"get", "workload", "web", "-o", "jsonpath={.metadata.name} {.spec.replicas} {.metadata.labels}"}},
		{"jsonpath-list.txt", []string{"get", "workloads", "--sort-by=.metadata.name", "-o", `jsonpath={.kind}:{range .items[*]} {.metadata.name}={.spec.replicas}{end}`}},
		{"jsonpath-named.txt", []string{"get", "workload/web", "workload/db", "-o", `jsonpath={.kind}:{range .items[*]} {.metadata.name}{end}`}},
		{"empty.txt", []string{"get", "workloads", "-l", "app=nothing"}},
		{"kinds.txt", []string{"get", "tokens,workloads", "-l", "app!=shop", "-o", "name"}},
		{"kinds-tables.txt", []string{"get", "workloads,clusters", "-l", "tier=frontend"}},
	}
	for _, c := range cases {
		stdout, stderr, err := runAtoll(t, append(c.args, hubFlags...)...)
		if err != nil {
			t.Errorf("atoll %s: %v (stderr %q)", strings.Join(c.args, " "), err, stderr)
			continue
		}
		golden(t, "get/"+c.golden, stdout)
	}

	// json and yaml carry uids and times: check their shape instead.
	stdout, _, err := runAtoll(t, append([]string{"get", "workload", "web", "-o", "json"}, hubFlags...)...)
	if err != nil || !strings.HasPrefix(stdout, "{\n  \"apiVersion\": \"atoll.dev/v1\",\n  \"kind\": \"Workload\",\n  \"metadata\": {\n    \"name\": \"web\",") {
		t.Errorf("get workload web -o json: want the object itself, its fields in the hub's order; got %v:\n%s", err, stdout)
	}
	stdout, _, err = runAtoll(t, append([]string{"get", "workload/web", "token/reader", "-o", "yaml"}, hubFlags...)...)
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Kind string `json:"kind"`
		} `json:"items"`
	}
	if err == nil {
		err = yaml.Unmarshal([]byte(stdout), &list)
	}
	if err != nil || list.Kind != "List" || len(list.Items) != 2 || list.Items[0].Kind != "Workload" || list.Items[1].Kind != "Token" {
		t.Errorf("get workload/web token/reader -o yaml: want a List of the workload and the token; got %v:\n%s", err, stdout)
	}
}

// TestGetRefuses: wrong arguments are one-line errors saying the cause.
func TestGetRefuses(t *testing.T) {
	t.Parallel()
	hubFlags := startCLIHub(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"get", "workload/web", "nosuch/x"}, `unknown kind "nosuch"`},
		{[]string{"get", "workload/web", "db"}, `"db": want KIND/NAME`},
		{[]string{"get", "workloads", "web", "cluster/x"}, "give KIND NAME... or KIND/NAME..., not both"},
		{[]string{"get", "workloads", "web", "-l", "app=web"}, "give names or -l, not both"},
		{[]string{"get", "workloads", "web", "db", "-w"}, "-w watches one kind or one object"},
		{[]string{"get", "workload", "nosuch"}, `Workload "nosuch" not found`},
		{[]string{"get", "workload", "nosuch", "-w"}, `Workload "nosuch" not found`},
		{[]string{"get", "workloads", "-o", "xml"}, "-o xml: use table, wide, name"},
		{[]string{"get", "workloads,tokens", "web"}, "names go with one kind"},
		{[]string{"get", "workloads,nothings"}, `unknown kind "nothings"`},
		{[]string{"get", "workloads,tokens", "-w"}, "-w watches one kind or one object"},
		{[]string{"get", "workloads", "-o", "jsonpath={.metadata"}, "jsonpath: unclosed action"},
		{[]string{"get", "replicas", "web-1"}, "get replicas lists what members run now: filter it with --workload"},
		{[]string{"get", "nodes", "-w"}, "get nodes lists what members run now"},
		{[]string{"get", "replicas", "-w", "-o", "json"}, "get replicas -w prints table rows"},
		{[]string{"get", "workloads", "--cluster", "x"}, "--workload, --cluster and --node go with get replicas and get nodes"},
		{[]string{"get", "nodes", "--node", "n1"}, "get nodes takes --cluster only"},
		{[]string{"get", "replicas", "--workload", "nosuch"}, `Workload "nosuch" not found`},
		{[]string{"get", "nodes", "--cluster", "nowhere"}, `Cluster "nowhere" not found`},
		{[]string{"get", "replicas", "--workload", "Bad_Name"}, "workload"},
	}
	for _, c := range cases {
		_, _, err := runAtoll(t, append(c.args, hubFlags...)...)
		if err == nil || !strings.Contains(oneLine(err), c.want) || strings.Contains(oneLine(err), "\n") {
			t.Errorf("atoll %s: want one line with %q; got %v", strings.Join(c.args, " "), c.want, err)
		}
	}
}

// TestGetWatchOneObject: `get workload web -w` prints web, then its
// changes only, each row under an EVENT column named in the header and
// aligned with it.
func TestGetWatchOneObject(t *testing.T) {
	t.Parallel()
	hubFlags := startCLIHub(t)
	if _, _, err := runAtoll(t, append([]string{"apply", "-f", "testdata/get/objects.yaml"}, hubFlags...)...); err != nil {
		t.Fatalf("apply: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		root := newRoot()
		root.SetArgs(append([]string{"get", "workload", "web", "-w"}, hubFlags...))
		root.SetOut(&out)
		root.SetErr(&out)
		done <- root.ExecuteContext(ctx)
	}()
	waitFor := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok(out.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("want %s within 30s; output so far:\n%s", what, out.String())
			}
			select {
			case err := <-done:
				t.Fatalf("watch ended early (%v) before %s; output:\n%s", err, what, out.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitFor("the header and web's row", func(s string) bool { return strings.Count(s, "\n") >= 2 })

	// A change to db must not show; web's must.
	dir := t.TempDir()
	objects, err := os.ReadFile("testdata/get/objects.yaml")
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(strings.Replace(string(objects), "replicas: 2\n", "replicas: 4\n", 1), "replicas: 3\n", "replicas: 5\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "changed.yaml"), []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runAtoll(t, append([]string{"apply", "-f", filepath.Join(dir, "changed.yaml")}, hubFlags...)...); err != nil {
		t.Fatalf("apply the change: %v", err)
	}
	scaled := regexp.MustCompile(`(?m)^MODIFIED +web +5 .*\n`)
	waitFor("a MODIFIED row for web with 5 replicas", scaled.MatchString)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("want the watch to end quietly when cancelled; got %v", err)
	}
	// Every row lines up with the header, and none is db's. The hub may
	// also report web's status changing: the golden file holds the
	// header, the listed row and the row of the change made here.
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	name := strings.Index(lines[0], "NAME")
	for _, l := range lines[1:] {
		if strings.Index(l, "web") != name {
			t.Errorf("want web under NAME (column %d) in every row; got %q in:\n%s", name, l, out.String())
		}
	}
	golden(t, "get/watch-one.txt", lines[0]+"\n"+lines[1]+"\n"+scaled.FindString(out.String()))
}
