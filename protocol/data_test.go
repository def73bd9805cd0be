package protocol

import (
	"slices"
	"strings"
	"testing"

	"github.com/atollhq/atoll/api"
)

// TestResolveData: env and files filled from the items held; what is
// missing is named, the object or the key.
func TestResolveData(t *testing.T) {
	items := map[string]DataItem{
		"Secret/db":  {Kind: DataSecret, Name: "db", Values: map[string][]byte{"password": []byte("pw")}},
		"Config/app": {Kind: DataConfig, Name: "app", Values: map[string][]byte{"region": []byte("eu")}},
	}
	tmpl := api.ReplicaTemplate{Env: []api.EnvVar{
		{Name: "PLAIN", Value: "x"},
		{Name: "PW", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "db", Key: "password"}}},
		{Name: "REGION", ValueFrom: &api.EnvSource{Config: &api.KeyRef{Name: "app", Key: "region"}}},
		{Name: "NOKEY", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "db", Key: "user"}}},
		{Name: "NOOBJ", ValueFrom: &api.EnvSource{Config: &api.KeyRef{Name: "gone", Key: "k"}}},
	}, Files: []api.FileSource{{Secret: "db", Dir: "db"}, {Config: "gone", Dir: "x"}}}
	d := ResolveData(tmpl, items)
	if d.Env["PW"] != "pw" || d.Env["REGION"] != "eu" || len(d.Env) != 2 {
		t.Errorf("env: %v", d.Env)
	}
	if len(d.Files) != 1 || d.Files[0].Dir != "db" || !d.Files[0].Secret || string(d.Files[0].Values["password"]) != "pw" {
		t.Errorf("files: %+v", d.Files)
	}
	want := []string{`env NOKEY: secret "db" has no key "user"`, `env NOOBJ: config "gone" is not in this cluster`, `files x: config "gone" is not in this cluster`}
	if !slices.Equal(d.Missing, want) {
		t.Errorf("missing:\n got %s\nwant %s", strings.Join(d.Missing, "\n     "), strings.Join(want, "\n     "))
	}
	pull := api.ReplicaTemplate{Driver: "oci", ImagePullSecret: &api.KeyRef{Name: "db", Key: "password"}}
	if d := ResolveData(pull, items); d == nil || string(d.RegistryAuth) != "pw" || len(d.Missing) != 0 {
		t.Errorf("a pull secret's key: %+v", d)
	}
	pull.ImagePullSecret.Key = "auth"
	if d := ResolveData(pull, items); d == nil || d.RegistryAuth != nil || !slices.Equal(d.Missing, []string{`imagePullSecret: secret "db" has no key "auth"`}) {
		t.Errorf("a pull secret without its key: %+v", d)
	}
	if ResolveData(api.ReplicaTemplate{Env: []api.EnvVar{{Name: "A", Value: "b"}}}, items) != nil {
		t.Error("a template without references needs no data")
	}
}
