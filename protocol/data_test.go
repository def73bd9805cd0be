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
	items := map[string]map[int64]DataItem{
		"Secret/db": {
			3: {Kind: DataSecret, Name: "db", Version: 3, Values: map[string][]byte{"password": []byte("old")}},
			7: {Kind: DataSecret, Name: "db", Version: 7, Values: map[string][]byte{"password": []byte("pw")}},
		},
		"Config/app": {4: {Kind: DataConfig, Name: "app", Version: 4, Values: map[string][]byte{"region": []byte("eu")}}},
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

// TestResolveDataAtPins: a template that pins versions gets those, an
// older one while a newer is held too; a pinned version not held holds
// the replica, naming it.
func TestResolveDataAtPins(t *testing.T) {
	items := map[string]map[int64]DataItem{"Secret/db": {
		3: {Kind: DataSecret, Name: "db", Version: 3, Values: map[string][]byte{"password": []byte("old")}},
		7: {Kind: DataSecret, Name: "db", Version: 7, Values: map[string][]byte{"password": []byte("new")}},
	}}
	tmpl := func(pin string) api.ReplicaTemplate {
		return api.ReplicaTemplate{Annotations: map[string]string{api.AnnotationData: pin},
			Env:   []api.EnvVar{{Name: "PW", ValueFrom: &api.EnvSource{Secret: &api.KeyRef{Name: "db", Key: "password"}}}},
			Files: []api.FileSource{{Secret: "db", Dir: "db"}}}
	}
	for pin, want := range map[string]string{"Secret/db=3": "old", "Secret/db=7": "new"} {
		d := ResolveData(tmpl(pin), items)
		if d.Env["PW"] != want || len(d.Files) != 1 || string(d.Files[0].Values["password"]) != want || len(d.Missing) != 0 {
			t.Errorf("pinned %s: want env and file %q; got %+v", pin, want, d)
		}
	}
	d := ResolveData(tmpl("Secret/db=9"), items)
	if len(d.Env) != 0 || len(d.Files) != 0 || !slices.Equal(d.Missing, []string{"Secret/db version 9 is not in this cluster yet"}) {
		t.Errorf("pinned a version not held: want nothing given and the version named; got %+v", d)
	}
}
