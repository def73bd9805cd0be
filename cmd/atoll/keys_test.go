package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/hub/keyring"
	"github.com/atollhq/atoll/hub/pgtest"
)

// genKey runs `atoll hub gen-key --output` into dir and returns the path
// and the key's id.
func genKey(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if _, _, err := runAtoll(t, "hub", "gen-key", "--output", path); err != nil {
		t.Fatalf("want a key written to %s; got %v", path, err)
	}
	k, err := keyring.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, k.ID()
}

// storedKeyID is the key id the database's NATS signing keys are sealed
// with, read as the superuser.
func storedKeyID(t *testing.T, adminURL string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var id *string
	if err := conn.QueryRow(t.Context(), `SELECT key_id FROM nats_keys WHERE id = 1`).Scan(&id); err != nil {
		t.Fatalf("read nats_keys: %v", err)
	}
	if id == nil {
		t.Fatal("want the NATS signing keys sealed; the row is in clear")
	}
	return *id
}

func TestGenKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "atoll.key")
	_, stderr, err := runAtoll(t, "hub", "gen-key", "--output", path)
	if err != nil || !strings.Contains(stderr, "wrote key-encryption key") {
		t.Fatalf("want a new key written; got %q, %v", stderr, err)
	}
	first, _ := os.ReadFile(path)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("want %s with mode 0600; got %v, %v", path, fi.Mode().Perm(), err)
	}
	// A one-shot job runs it again at every start.
	_, stderr, err = runAtoll(t, "hub", "gen-key", "--output", path)
	if err != nil || !strings.Contains(stderr, "exists") {
		t.Errorf("want a second run to keep the file and say so; got %q, %v", stderr, err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Errorf("want %s unchanged by the second run", path)
	}
	stdout, stderr, err := runAtoll(t, "hub", "gen-key")
	k, perr := keyring.ParseKey(stdout)
	if err != nil || perr != nil || !strings.Contains(stderr, k.ID()) {
		t.Errorf("want a key printed (and its id on standard error); got %q %q, %v, %v", stdout, stderr, err, perr)
	}
}

// TestRotateKey runs the documented rotation against a real database:
// the secrets are rewrapped under the new key, after which the old key
// alone is refused with a message saying what to do, and the new key
// reads the same NATS signing keys.
func TestRotateKey(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	dir := t.TempDir()
	oldKey, oldID := genKey(t, dir, "old.key")
	newKey, newID := genKey(t, dir, "new.key")
	db := []string{"--database-url", r.Hub, "--migrate-database-url", r.Owner}
	natsConfig := func(keys ...string) ([]byte, error) {
		out := filepath.Join(t.TempDir(), "atoll-nats.conf")
		args := append([]string{"hub", "nats-config", "--output", out}, db...)
		for _, k := range keys {
			args = append(args, "--key-file", k)
		}
		_, _, err := runAtoll(t, args...)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(out)
		return jwtSubjects(t, b), err
	}
	before, err := natsConfig(oldKey)
	if err != nil {
		t.Fatalf("want the NATS signing keys made and sealed with the old key; got %v", err)
	}
	if got := storedKeyID(t, r.Admin); got != oldID {
		t.Fatalf("want the keys sealed with %s; got %s", oldID, got)
	}
	// Step 2: hubs run with both keys, the new one first.
	if during, err := natsConfig(newKey, oldKey); err != nil || !bytes.Equal(during, before) {
		t.Fatalf("want both keys to read the same NATS signing keys; got %v", err)
	}

	stdout, _, err := runAtoll(t, append([]string{"hub", "rotate-key", "--new-key-file", newKey, "--old-key-file", oldKey}, db...)...)
	if err != nil || !strings.Contains(stdout, "sealed with key "+oldID+", now with key "+newID) {
		t.Fatalf("want the rotation to say what it rewrapped (from %s to %s); got %q, %v", oldID, newID, stdout, err)
	}
	if got := storedKeyID(t, r.Admin); got != newID {
		t.Errorf("want the keys sealed with %s after the rotation; got %s", newID, got)
	}

	_, err = natsConfig(oldKey)
	if err == nil || !strings.Contains(err.Error(), "this hub was not given") || !strings.Contains(err.Error(), newID) {
		t.Errorf("want the old key alone refused, naming the key needed (%s); got %v", newID, err)
	}
	if after, err := natsConfig(newKey); err != nil || !bytes.Equal(after, before) {
		t.Errorf("want the new key alone to read the same NATS signing keys; got %v", err)
	}
	if _, _, err := runAtoll(t, append([]string{"hub", "rotate-key", "--new-key-file", newKey}, db...)...); err == nil {
		t.Error("want rotate-key without --old-key-file refused")
	}
}

// TestHubRefusesWrongKey: a hub given another key than the one the
// database's secrets are sealed with stops at start with an error that
// says what to do; it neither panics nor makes new NATS signing keys.
func TestHubRefusesWrongKey(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	dir := t.TempDir()
	right, rightID := genKey(t, dir, "right.key")
	wrong, _ := genKey(t, dir, "wrong.key")
	db := []string{"--database-url", r.Hub, "--migrate-database-url", r.Owner}
	if _, _, err := runAtoll(t, append([]string{"hub", "nats-config", "--key-file", right}, db...)...); err != nil {
		t.Fatalf("want the NATS signing keys made; got %v", err)
	}
	args := append([]string{"hub", "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--key-file", wrong, "--log-level", "error"}, db...)
	_, _, err := runAtoll(t, args...)
	if err == nil || !strings.Contains(err.Error(), "this hub was not given") || !strings.Contains(err.Error(), rightID) || !strings.Contains(err.Error(), "--key-file") {
		t.Errorf("want the hub refused at start, naming the key it needs (%s) and the flag; got %v", rightID, err)
	}
	if got := storedKeyID(t, r.Admin); got != rightID {
		t.Errorf("want the stored keys untouched (sealed with %s); got %s", rightID, got)
	}
}

// TestHubWithoutKey: no --key-file, no ATOLL_KEY and no key file in the
// data folder: the hub says how to make one before it touches the
// database.
func TestHubWithoutKey(t *testing.T) {
	t.Setenv(keyEnv, "")
	dataDir := t.TempDir()
	_, _, err := runAtoll(t, "hub", "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--database-url", "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	want := filepath.Join(dataDir, "atoll.key")
	if err == nil || !strings.Contains(err.Error(), "atoll hub gen-key --output "+want) {
		t.Errorf("want the hub refused without a key, saying how to make %s; got %v", want, err)
	}
	if _, err := os.Stat(want); err == nil {
		t.Errorf("want no key made by `atoll hub` (only `atoll dev` makes one)")
	}
	t.Setenv(keyEnv, "not-a-key")
	if _, _, err := runAtoll(t, "hub", "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--database-url", "postgres://nobody@127.0.0.1:1/none?sslmode=disable"); err == nil || !strings.Contains(err.Error(), keyEnv) {
		t.Errorf("want a bad %s refused, naming it; got %v", keyEnv, err)
	}
}
