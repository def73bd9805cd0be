package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/hub/pgstore"
)

// editorScript writes an $EDITOR for the tests: body runs with the file
// as $1 and the invocation's number (1, 2, ...) as $n; every version the
// editor was given is kept as $dir/seen-$n.yaml.
func editorScript(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "editor.sh")
	script := "#!/bin/sh\nset -e\ndir=" + dir + "\nn=$(( $(cat $dir/count 2>/dev/null || echo 0) + 1 ))\necho $n > $dir/count\ncp \"$1\" $dir/seen-$n.yaml\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEdit sets $EDITOR, so it does not run in parallel.
func TestEdit(t *testing.T) {
	h := startHub(t)
	h.must(t, "apply", "-f", writeTemp(t, "w.yaml", workloadYAML("web", "app: web")))
	replicas := func() int32 {
		var w api.Workload
		if err := h.admin.Get(t.Context(), "workloads", "web", &w); err != nil {
			t.Fatal(err)
		}
		return w.Spec.Replicas
	}

	t.Run("saved", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("EDITOR", editorScript(t, dir, `sed -i 's/replicas: 2/replicas: 5/' "$1"`))
		sameOutput(t, h.must(t, "edit", "workload", "web"), "workload/web edited\n")
		if r := replicas(); r != 5 {
			t.Fatalf("want replicas 5; got %d", r)
		}
		if seen := readFile(t, filepath.Join(dir, "seen-1.yaml")); !strings.Contains(seen, "resourceVersion:") || strings.Contains(seen, "status:") {
			t.Errorf("want the object shown with its resourceVersion and without status; got\n%s", seen)
		}
	})

	t.Run("unchanged", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("EDITOR", editorScript(t, dir, `true`))
		sameOutput(t, h.must(t, "edit", "wl", "web"), "Edit cancelled, no changes made.\n")
	})

	t.Run("conflict", func(t *testing.T) {
		dir := t.TempDir()
		// The first edit waits while the test changes the object under it.
		t.Setenv("EDITOR", editorScript(t, dir, `if [ $n = 1 ]; then
  sed -i 's/replicas: 5/replicas: 6/' "$1"
  touch $dir/opened
  while [ ! -f $dir/go ]; do sleep 0.05; done
else
  sed -i 's/replicas: 5/replicas: 7/' "$1"
fi`))
		done := make(chan error, 1)
		go func() {
			deadline := time.Now().Add(30 * time.Second)
			for {
				if _, err := os.Stat(filepath.Join(dir, "opened")); err == nil {
					break
				}
				if time.Now().After(deadline) {
					done <- os.ErrDeadlineExceeded
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			err := h.admin.PatchAs(t.Context(), "workloads", "web", client.MergePatch, []byte(`{"metadata":{"labels":{"meanwhile":"yes"}}}`), nil)
			_ = os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
			done <- err
		}()
		out := h.must(t, "edit", "workload", "web")
		if err := <-done; err != nil {
			t.Fatalf("the concurrent write failed: %v", err)
		}
		sameOutput(t, out, "workload/web edited\n")
		second := readFile(t, filepath.Join(dir, "seen-2.yaml"))
		if !strings.Contains(second, "# error: the object changed while you edited it") || !strings.Contains(second, "meanwhile: \"yes\"") {
			t.Fatalf("want the editor reopened on the new version with the conflict as a comment; got\n%s", second)
		}
		var w api.Workload
		if err := h.admin.Get(t.Context(), "workloads", "web", &w); err != nil {
			t.Fatal(err)
		}
		if w.Spec.Replicas != 7 || w.Metadata.Labels["meanwhile"] != "yes" {
			t.Fatalf("want the second edit (replicas 7) saved over the concurrent write (label kept); got %d %v", w.Spec.Replicas, w.Metadata.Labels)
		}
	})

	t.Run("refused, then fixed", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("EDITOR", editorScript(t, dir, `if [ $n = 1 ]; then sed -i 's/replicas: 7/replicas: -1/' "$1"; else sed -i 's/replicas: -1/replicas: 3/' "$1"; fi`))
		sameOutput(t, h.must(t, "edit", "workload", "web"), "workload/web edited\n")
		if second := readFile(t, filepath.Join(dir, "seen-2.yaml")); !strings.Contains(second, "# error: ") || !strings.Contains(second, "spec.replicas") || !strings.Contains(second, "replicas: -1") {
			t.Fatalf("want the editor reopened on the user's edit with the hub's error; got\n%s", second)
		}
		if r := replicas(); r != 3 {
			t.Fatalf("want replicas 3; got %d", r)
		}
	})

	t.Run("a cluster, served without PUT", func(t *testing.T) {
		status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthUnknown, Identity: "Ueu"})
		if _, err := h.store.Create(t.Context(), pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster",
			Meta: api.ObjectMeta{Name: "eu", Labels: map[string]string{"region": "eu"}}, Spec: []byte("{}"), Status: status}); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		t.Setenv("EDITOR", editorScript(t, dir, `sed -i 's/^spec: {}$/spec:\n  unschedulable: true/' "$1"`))
		sameOutput(t, h.must(t, "edit", "cluster", "eu"), "cluster/eu edited\n")
		var c api.Cluster
		if err := h.admin.Get(t.Context(), "clusters", "eu", &c); err != nil || !c.Spec.Unschedulable || c.Status.Identity != "Ueu" {
			t.Fatalf("want the cluster cordoned, its status kept; got %+v, %v", c, err)
		}
	})

	t.Run("refused twice the same", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("EDITOR", editorScript(t, dir, `sed -i 's/replicas: 3/replicas: -1/' "$1"`))
		if _, _, err := h.run(t, "edit", "workload", "web"); err == nil || !strings.Contains(err.Error(), "abandoned") {
			t.Fatalf("want the edit abandoned when the same refused edit is saved again; got %v", err)
		}
		if r := replicas(); r != 3 {
			t.Fatalf("want replicas still 3; got %d", r)
		}
	})
}

// TestEditAndLabelSecret: `atoll label secret` and `atoll edit secret`
// go through the secret's merge patch. The editor is shown no value (the
// hub never answers them but through the admins' data route), names the
// keys and how to set and remove one; a key set or nulled in the editor
// changes that key alone. Sets $EDITOR, so it does not run in parallel.
func TestEditAndLabelSecret(t *testing.T) {
	h := startHub(t)
	ctx := t.Context()
	const pw, pw2 = "pw-Xc7Nh2Lb", "pw2-Gf4Sd9Wm"
	s := api.Secret{Metadata: api.ObjectMeta{Name: "db"}, Spec: api.DataSpec{Data: map[string]string{"password": pw, "user": "app"}}}
	if err := h.admin.Create(ctx, "secrets", s, nil); err != nil {
		t.Fatal(err)
	}
	sameOutput(t, h.must(t, "label", "secret", "db", "team=db"), "secret/db labeled\n")

	dir := t.TempDir()
	t.Setenv("EDITOR", editorScript(t, dir, `sed -i 's/^spec: {}$/spec:\n  data:\n    password: `+pw2+`\n    user: null/' "$1"`))
	sameOutput(t, h.must(t, "edit", "secret", "db"), "secret/db edited\n")
	seen := readFile(t, filepath.Join(dir, "seen-1.yaml"))
	if strings.Contains(seen, pw) || !strings.Contains(seen, "write-only") || !strings.Contains(seen, "password (11 bytes), user (3 bytes)") || !strings.Contains(seen, "team: db") {
		t.Errorf("want the secret shown with its label and keys, no value; got\n%s", seen)
	}
	var got api.Secret
	if err := h.admin.Raw(ctx, "GET", "/api/v1/secrets/db/data", nil, nil, &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Data["password"] != pw2 || len(got.Spec.Data) != 1 || got.Status.Version != 2 || got.Metadata.Labels["team"] != "db" {
		t.Errorf("want password changed, user removed (version 2), the label kept; got %d keys at version %d, labels %v",
			len(got.Spec.Data), got.Status.Version, got.Metadata.Labels)
	}
}
