package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

// TestReplicaData: a replica whose configuration is missing waits
// (MissingData, naming what is missing) and starts once it arrives, with
// its env var and its files (0400 for a secret, 0444 for a config); the
// record on disk never holds the values; its files go with it.
func TestReplicaData(t *testing.T) {
	h := start(t, nil)
	out := filepath.Join(t.TempDir(), "out")
	tmpl := api.ReplicaTemplate{Driver: "process", Command: "/bin/sh",
		Args: []string{"-c", `printf '%s %s %s' "$TOKEN" "$(cat $ATOLL_FILES/creds/token)" "$(stat -c %a $ATOLL_FILES/creds/token $ATOLL_FILES/cfg/region | tr '\n' ' ')" > ` + out + `.tmp && mv ` + out + `.tmp ` + out + `; exec sleep 600`},
		Env:  []api.EnvVar{{Name: "TOKEN", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "creds", Key: "token"}}}}}
	spec := ReplicaSpec{ID: "r1", Workload: "w", Generation: 1, Template: tmpl,
		Data: &ReplicaData{Missing: []string{`env TOKEN: secret "creds" has no key "token"`}}}
	h.rt.Apply([]ReplicaSpec{spec})
	h.waitFor("the start held for missing data", func(st map[string]ReplicaStatus) bool {
		return st["r1"].Reason == ReasonMissingData && strings.Contains(st["r1"].LastError, `secret "creds" has no key "token"`)
	})
	const token = "tok-Xq81mZp"
	spec.Data = &ReplicaData{Env: map[string]string{"TOKEN": token}, Files: []ReplicaFiles{
		{Dir: "creds", Secret: true, Values: map[string][]byte{"token": []byte(token)}},
		{Dir: "cfg", Values: map[string][]byte{"region": []byte("eu")}},
	}}
	h.rt.Apply([]ReplicaSpec{spec})
	h.waitFor("the replica running", func(st map[string]ReplicaStatus) bool { return st["r1"].Phase == PhaseRunning })
	var got string
	for deadline := time.Now().Add(20 * time.Second); got == ""; {
		if time.Now().After(deadline) {
			t.Fatal("no output from the replica within 20s")
		}
		b, _ := os.ReadFile(out)
		got = string(b)
		time.Sleep(20 * time.Millisecond) // polling a file the replica writes
	}
	if strings.TrimSpace(got) != token+" "+token+" 400 444" {
		t.Fatalf("want the env var, the file and modes 400 and 444; got %q", got)
	}
	recs, _ := os.ReadDir(filepath.Join(h.cfg.DataDir, "replicas"))
	for _, e := range recs {
		if b, _ := os.ReadFile(filepath.Join(h.cfg.DataDir, "replicas", e.Name())); bytes.Contains(b, []byte(token)) {
			t.Errorf("the replica's record %s holds the secret", e.Name())
		}
	}
	h.rt.Apply(nil)
	h.waitFor("the replica gone", func(st map[string]ReplicaStatus) bool { _, ok := st["r1"]; return !ok })
	if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "files", fsName("r1"))); !os.IsNotExist(err) {
		t.Errorf("want the replica's files removed with it; got %v", err)
	}
}

// TestDataArrivalEndsTheWait: a replica held for its configuration starts
// as soon as the configuration comes, not at the end of its backoff
// (here an hour): waiting for data is no failure.
func TestDataArrivalEndsTheWait(t *testing.T) {
	h := start(t, func(c *Config) { c.Backoff.Initial, c.Backoff.Max = time.Hour, time.Hour })
	tmpl := api.ReplicaTemplate{Driver: "process", Command: "/bin/sh", Args: []string{"-c", "exec sleep 600"},
		Env: []api.EnvVar{{Name: "TOKEN", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "creds", Key: "token"}}}}}
	spec := ReplicaSpec{ID: "r1", Workload: "w", Generation: 1, Template: tmpl,
		Data: &ReplicaData{Missing: []string{"Secret/creds version 9 is not in this cluster yet"}}}
	h.rt.Apply([]ReplicaSpec{spec})
	h.waitFor("the start held for missing data", func(st map[string]ReplicaStatus) bool {
		return st["r1"].Phase == PhaseBackoff && st["r1"].Reason == ReasonMissingData
	})
	spec.Data = &ReplicaData{Env: map[string]string{"TOKEN": "t"}}
	h.rt.Apply([]ReplicaSpec{spec})
	h.waitFor("the replica running once its data came", func(st map[string]ReplicaStatus) bool { return st["r1"].Phase == PhaseRunning })
}
