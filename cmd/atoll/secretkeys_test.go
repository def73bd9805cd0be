package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
	"github.com/atollhq/atoll/hub/secrets"
)

// storeSecrets opens the database as the hub does and stores secrets
// sealed with the key in keyFile, as the API would.
func storeSecrets(t *testing.T, r pgtest.Roles, keyFile string, values map[string]string) {
	t.Helper()
	ctx := context.Background()
	ring, _, err := keySource{files: []string{keyFile}}.ring()
	if err != nil {
		t.Fatal(err)
	}
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: r.Hub, MigrateURL: r.Owner, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	vault := secrets.New(ring)
	for name, v := range values {
		err := store.WriteTx(ctx, pgstore.Actor{Name: "test"}, pgstore.VerbCreate, "Secret", name, func(tx *pgstore.Tx) error {
			rec, err := tx.Create(ctx, &pgstore.Record{Kind: "Secret", Meta: api.ObjectMeta{Name: name}, Spec: []byte("{}")})
			if err != nil {
				return err
			}
			return vault.Write(ctx, tx, rec.Meta.UID, rec.RV(), api.DataSpec{Data: map[string]string{"value": v}})
		})
		if err != nil {
			t.Fatalf("store secret %s: %v", name, err)
		}
	}
}

// readSecrets reads every secret's value with the keys in keyFiles alone.
func readSecrets(t *testing.T, r pgtest.Roles, keyFiles ...string) (map[string]string, error) {
	t.Helper()
	ctx := context.Background()
	ring, _, err := keySource{files: keyFiles}.ring()
	if err != nil {
		t.Fatal(err)
	}
	store, err := pgstore.Open(ctx, pgstore.Config{DatabaseURL: r.Hub, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	list, err := store.List(ctx, "Secret", pgstore.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, rec := range list.Items {
		d, err := secrets.New(ring).Read(ctx, store, rec.Meta.UID)
		if err != nil {
			return nil, err
		}
		out[rec.Meta.Name] = d.Data["value"]
	}
	return out, nil
}

// secretKeyIDs are the key IDs that wrap the secrets' data keys, read as
// the superuser.
func secretKeyIDs(t *testing.T, adminURL string) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(t.Context(), `SELECT DISTINCT key_id FROM secret_values ORDER BY 1`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestRotateKeyRewrapsSecrets: `atoll hub rotate-key` rewraps every
// secret's data key under the new key-encryption key, in one
// transaction; every secret then reads the same with the new key alone,
// and no longer with the old.
func TestRotateKeyRewrapsSecrets(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	dir := t.TempDir()
	oldKey, oldID := genKey(t, dir, "old.key")
	newKey, newID := genKey(t, dir, "new.key")
	want := map[string]string{"db": "pw-one", "api": "pw-two", "tls": "pw-three"}
	storeSecrets(t, r, oldKey, want)
	if ids := secretKeyIDs(t, r.Admin); len(ids) != 1 || ids[0] != oldID {
		t.Fatalf("want every secret wrapped by %s; got %v", oldID, ids)
	}
	db := []string{"--database-url", r.Hub, "--migrate-database-url", r.Owner}
	stdout, _, err := runAtoll(t, append([]string{"hub", "rotate-key", "--new-key-file", newKey, "--old-key-file", oldKey}, db...)...)
	if err != nil || !strings.Contains(stdout, "secret db: sealed with key "+oldID+", now with key "+newID) {
		t.Fatalf("want the rotation to name each secret rewrapped; got %q, %v", stdout, err)
	}
	if ids := secretKeyIDs(t, r.Admin); len(ids) != 1 || ids[0] != newID {
		t.Errorf("want every secret wrapped by %s after the rotation; got %v", newID, ids)
	}
	got, err := readSecrets(t, r, newKey)
	if err != nil || len(got) != len(want) {
		t.Fatalf("want every secret readable with the new key alone; got %v, %v", got, err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("secret %s: want %q after the rotation; got %q", k, v, got[k])
		}
	}
	if _, err := readSecrets(t, r, oldKey); err == nil || !strings.Contains(err.Error(), newID) {
		t.Errorf("want the old key alone refused, naming %s; got %v", newID, err)
	}
}

// TestHubRefusesKeyThatDoesNotOpenSecrets: a hub started with a key that
// does not open the stored secrets stops with a message naming the key
// they need, and changes nothing: no NATS signing keys, no admin token.
func TestHubRefusesKeyThatDoesNotOpenSecrets(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	dir := t.TempDir()
	right, rightID := genKey(t, dir, "right.key")
	wrong, _ := genKey(t, dir, "wrong.key")
	storeSecrets(t, r, right, map[string]string{"db": "pw"})
	args := []string{"hub", "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--key-file", wrong, "--log-level", "error", "--database-url", r.Hub, "--migrate-database-url", r.Owner}
	_, _, err := runAtoll(t, args...)
	if err == nil || !strings.Contains(err.Error(), "secret db") || !strings.Contains(err.Error(), rightID) || !strings.Contains(err.Error(), "--key-file") {
		t.Fatalf("want the hub refused at start, naming the secret and the key it needs (%s); got %v", rightID, err)
	}
	conn, err := pgx.Connect(t.Context(), r.Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var nats, tokens int
	if err := conn.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM nats_keys), (SELECT count(*) FROM objects WHERE kind = 'Token')`).Scan(&nats, &tokens); err != nil {
		t.Fatal(err)
	}
	if nats != 0 || tokens != 0 {
		t.Errorf("want nothing written by the refused hub; got %d NATS key rows and %d tokens", nats, tokens)
	}
	if ids := secretKeyIDs(t, r.Admin); len(ids) != 1 || ids[0] != rightID {
		t.Errorf("want the secret still wrapped by %s; got %v", rightID, ids)
	}
}

// TestSecretsFromTheCLI: apply a config and a secret, list them (keys and
// versions, no values), read the secret's values only with --show-values,
// apply the same manifest again (no new version), delete them.
func TestSecretsFromTheCLI(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	const value = "s3cret-Wm5Vq2Lx"
	manifest := `apiVersion: atoll.dev/v1
kind: Config
metadata: {name: app}
spec:
  data: {region: eu, quota: "10"}
---
apiVersion: atoll.dev/v1
kind: Secret
metadata: {name: db}
spec:
  data: {password: ` + value + `}
  binaryData: {key.bin: AAEC}
`
	path := t.TempDir() + "/data.yaml"
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	h.must(t, "apply", "-f", path)
	out := h.must(t, "get", "secrets,configs")
	for _, want := range []string{"key.bin,password", "quota,region", "VERSION"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in the listing; got\n%s", want, out)
		}
	}
	if strings.Contains(out, value) || strings.Contains(h.must(t, "get", "secret", "db", "-o", "yaml"), value) || strings.Contains(h.must(t, "describe", "secret", "db"), value) {
		t.Errorf("want no value in get or describe; got\n%s", out)
	}
	if got := h.must(t, "get", "secret", "db", "--show-values", "-o", "jsonpath={.spec.data.password}"); strings.TrimSpace(got) != value {
		t.Errorf("want --show-values to print the value; got %q", got)
	}
	if _, _, err := h.run(t, "get", "secrets", "--show-values"); err == nil {
		t.Error("want --show-values without names refused")
	}
	h.must(t, "apply", "-f", path)
	if got := h.must(t, "get", "secret", "db", "-o", "jsonpath={.status.version}"); strings.TrimSpace(got) != "1" {
		t.Errorf("want the same manifest applied again to keep version 1; got %q", got)
	}
	h.must(t, "delete", "-f", path)
}

// TestDescribeWorkloadInCluster: describe workload W --cluster C shows
// the overrides that select C and the template C runs.
func TestDescribeWorkloadInCluster(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	ctx := context.Background()
	for name, region := range map[string]string{"eu-1": "eu", "us-1": "us"} {
		if _, err := h.store.Create(ctx, pgstore.Actor{Name: "test"}, &pgstore.Record{Kind: "Cluster",
			Meta: api.ObjectMeta{Name: name, Labels: map[string]string{api.LabelRegion: region}}, Spec: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	manifest := `apiVersion: atoll.dev/v1
kind: Workload
metadata: {name: web}
spec:
  replicas: 2
  template:
    driver: process
    command: /bin/app
    env: [{name: REGION_NAME, value: eu}]
  overrides:
  - name: us
    regions: [us]
    replicas: 4
    env: [{name: REGION_NAME, value: us}]
`
	path := t.TempDir() + "/web.yaml"
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	h.must(t, "apply", "-f", path)
	us := h.must(t, "describe", "workload", "web", "--cluster", "us-1")
	for _, want := range []string{"Overrides:  us (in this order)", "an override makes it 4", "value: us"} {
		if !strings.Contains(us, want) {
			t.Errorf("describe --cluster us-1: want %q; got\n%s", want, us)
		}
	}
	eu := h.must(t, "describe", "workload", "web", "--cluster", "eu-1")
	if !strings.Contains(eu, "none select this cluster") || !strings.Contains(eu, "value: eu") {
		t.Errorf("describe --cluster eu-1: want the template as written; got\n%s", eu)
	}
	if _, _, err := h.run(t, "describe", "config", "x", "--cluster", "eu-1"); err == nil {
		t.Error("want --cluster refused for a config")
	}
}
