package keyring_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/atollhq/atoll/hub/keyring"
)

func newKey(t *testing.T) keyring.Key {
	t.Helper()
	k, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRing(t *testing.T, keys ...keyring.Key) *keyring.Ring {
	t.Helper()
	r, err := keyring.New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	r := newRing(t, k)
	secret := []byte("SOAEXAMPLESEEDTHATMUSTNOTLEAK")
	aad := []byte("nats_keys id=1")
	id, sealed, err := r.Seal(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if id != k.ID() || id != r.PrimaryID() {
		t.Errorf("want the value sealed with the first key %s; got %s", k.ID(), id)
	}
	if bytes.Contains(sealed, secret) || bytes.Contains(sealed, secret[:8]) {
		t.Errorf("want no plaintext in the sealed bytes; got %q", sealed)
	}
	got, err := r.Open(id, sealed, aad)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("want the secret back; got %q, %v", got, err)
	}
	_, again, err := r.Seal(secret, aad)
	if err != nil || bytes.Equal(again, sealed) {
		t.Errorf("want a fresh nonce at every seal (two different values); got the same twice (%v)", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	k, other := newKey(t), newKey(t)
	r := newRing(t, k)
	aad := []byte("nats_keys id=1")
	id, sealed, err := r.Seal([]byte("seed"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	// The same bytes under another key's ID: the ring holds that key too.
	both := newRing(t, k, other)
	cases := []struct {
		name   string
		ring   *keyring.Ring
		id     string
		sealed []byte
		aad    []byte
		want   error
	}{
		{"another row (associated data)", r, id, sealed, []byte("nats_keys id=2"), keyring.ErrCorrupt},
		{"no associated data", r, id, sealed, nil, keyring.ErrCorrupt},
		{"a flipped bit", r, id, flipped, aad, keyring.ErrCorrupt},
		{"truncated", r, id, sealed[:10], aad, keyring.ErrCorrupt},
		{"empty", r, id, nil, aad, keyring.ErrCorrupt},
		{"relabelled with another key id", both, other.ID(), sealed, aad, keyring.ErrCorrupt},
		{"a key the ring lacks", newRing(t, other), id, sealed, aad, keyring.ErrUnknownKey},
	}
	for _, c := range cases {
		got, err := c.ring.Open(c.id, c.sealed, c.aad)
		if !errors.Is(err, c.want) || got != nil {
			t.Errorf("%s: want %v; got %q, %v", c.name, c.want, got, err)
		}
	}
	_, err = newRing(t, other).Open(id, sealed, aad)
	if err == nil || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), other.ID()) {
		t.Errorf("want the error to name the key needed (%s) and the keys given (%s); got %v", id, other.ID(), err)
	}
}

func TestRingRotation(t *testing.T) {
	t.Parallel()
	old, fresh := newKey(t), newKey(t)
	aad := []byte("row")
	oldID, sealed, err := newRing(t, old).Seal([]byte("seed"), aad)
	if err != nil {
		t.Fatal(err)
	}
	during := newRing(t, fresh, old, fresh)
	if got := during.IDs(); len(got) != 2 || got[0] != fresh.ID() || got[1] != old.ID() {
		t.Errorf("want IDs [new old] without repeats; got %v", got)
	}
	plain, err := during.Open(oldID, sealed, aad)
	if err != nil || string(plain) != "seed" {
		t.Fatalf("want a ring with the old key second to open the old value; got %q, %v", plain, err)
	}
	newID, resealed, err := during.Seal(plain, aad)
	if err != nil || newID != fresh.ID() {
		t.Fatalf("want the new key (first) to seal; got %s, %v", newID, err)
	}
	if _, err := newRing(t, old).Open(newID, resealed, aad); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Errorf("want the old key alone refused after the rewrap; got %v", err)
	}
	if got, err := newRing(t, fresh).Open(newID, resealed, aad); err != nil || string(got) != "seed" {
		t.Errorf("want the new key alone to open the rewrapped value; got %q, %v", got, err)
	}
	if _, err := keyring.New(); err == nil {
		t.Error("want a ring without keys refused")
	}
	if _, err := keyring.New(keyring.Key{}); err == nil {
		t.Error("want a zero Key refused")
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{0xfb}, keyring.KeySize) // '+' and '/' in standard base64
	want, err := keyring.ParseKey(base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		base64.StdEncoding.EncodeToString(raw) + "\n",
		"  " + base64.RawStdEncoding.EncodeToString(raw),
		base64.URLEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw),
	} {
		k, err := keyring.ParseKey(text)
		if err != nil || k.ID() != want.ID() || k.Text() != want.Text() {
			t.Errorf("ParseKey(%q): want key %s; got %s, %v", text, want.ID(), k.ID(), err)
		}
	}
	for text, wantErr := range map[string]string{
		"":    "empty",
		"   ": "empty",
		base64.StdEncoding.EncodeToString(raw[:16]): "16 bytes, want 32",
		"not base64 at all!":                        "not base64",
	} {
		if _, err := keyring.ParseKey(text); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseKey(%q): want an error with %q; got %v", text, wantErr, err)
		}
	}
	other := newKey(t)
	if other.ID() == want.ID() || len(want.ID()) != 16 {
		t.Errorf("want 16-hex-digit IDs that differ between keys; got %s and %s", want.ID(), other.ID())
	}
	for _, s := range []string{fmt.Sprint(want), fmt.Sprintf("%v %+v %#v %s", want, want, want, want)} {
		if strings.Contains(s, want.Text()) || strings.Contains(s, "251") {
			t.Errorf("want a printed Key to hide its secret; got %q", s)
		}
	}
}

func TestCreateFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "atoll.key")
	var wg sync.WaitGroup
	keys := make([]keyring.Key, 8)
	created := make([]bool, 8)
	errs := make([]error, 8)
	for i := range keys {
		wg.Go(func() { keys[i], created[i], errs[i] = keyring.CreateFile(path) })
	}
	wg.Wait()
	n := 0
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if keys[i].ID() != keys[0].ID() {
			t.Errorf("want every concurrent caller to get the one key %s; caller %d got %s", keys[0].ID(), i, keys[i].ID())
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("want exactly one caller to create the file; %d did", n)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("want %s with mode 0600; got %v, %v", path, fi.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("want only the key file left in its folder; got %d entries", len(entries))
	}
	read, err := keyring.ReadFile(path)
	if err != nil || read.ID() != keys[0].ID() {
		t.Errorf("want ReadFile to give the created key; got %s, %v", read.ID(), err)
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := keyring.CreateFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("want a broken existing key file refused (never replaced), naming it; got %v", err)
	}
	if b, _ := os.ReadFile(bad); string(b) != "short" {
		t.Errorf("want the broken file left as it was; got %q", b)
	}
}
