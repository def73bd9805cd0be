package pgstore_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/hub/keyring"
	"github.com/atollhq/atoll/hub/natsbus"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

func ring(t *testing.T, keys ...keyring.Key) *keyring.Ring {
	t.Helper()
	r, err := keyring.New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newKey(t *testing.T) keyring.Key {
	t.Helper()
	k, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// gen makes real seeds and counts its calls.
func gen(calls *atomic.Int32) func() (pgstore.NATSSeeds, error) {
	return func() (pgstore.NATSSeeds, error) {
		calls.Add(1)
		s, err := natsbus.NewSeeds()
		return pgstore.NATSSeeds(s), err
	}
}

// natsRow is nats_keys as stored, read as the superuser.
type natsRow struct {
	sealed                    []byte
	keyID                     *string
	operator, system, account *string
}

func readRow(t *testing.T, adminURL string) natsRow {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var r natsRow
	err = conn.QueryRow(t.Context(), `SELECT sealed, key_id, operator_seed, system_seed, account_seed FROM nats_keys WHERE id = 1`).
		Scan(&r.sealed, &r.keyID, &r.operator, &r.system, &r.account)
	if err != nil {
		t.Fatalf("read nats_keys: %v", err)
	}
	return r
}

// wantNotInRow fails if any seed, or a long piece of one, is in the
// stored row.
func wantNotInRow(t *testing.T, row natsRow, k pgstore.NATSSeeds) {
	t.Helper()
	if row.operator != nil || row.system != nil || row.account != nil {
		t.Errorf("want the clear seed columns empty; got operator=%v system=%v account=%v", row.operator != nil, row.system != nil, row.account != nil)
	}
	for _, seed := range []string{k.Operator, k.System, k.Account} {
		for i := 0; i+12 <= len(seed); i += 6 {
			if bytes.Contains(row.sealed, []byte(seed[i:i+12])) {
				t.Fatalf("want no piece of a seed in the stored bytes; found %q", seed[i:i+12])
			}
		}
	}
}

func TestNATSKeysSealedAtRest(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	s := open(t, r)
	key := newKey(t)
	var calls atomic.Int32
	k, err := s.NATSKeys(t.Context(), ring(t, key), gen(&calls))
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || !strings.HasPrefix(k.Operator, "SO") || !strings.HasPrefix(k.Account, "SA") {
		t.Fatalf("want one set of fresh seeds (operator SO..., account SA...); got %d calls, %q %q", calls.Load(), k.Operator[:2], k.Account[:2])
	}
	row := readRow(t, r.Admin)
	if row.keyID == nil || *row.keyID != key.ID() || len(row.sealed) == 0 {
		t.Fatalf("want the row sealed under key %s; got key %v, %d bytes", key.ID(), row.keyID, len(row.sealed))
	}
	wantNotInRow(t, row, k)

	// Another hub (a new store) with the same key reads the same seeds and
	// makes none.
	again, err := open(t, r).NATSKeys(t.Context(), ring(t, key), gen(&calls))
	if err != nil || again != k || calls.Load() != 1 {
		t.Errorf("want the same seeds read back and none made; got equal=%v calls=%d err=%v", again == k, calls.Load(), err)
	}
}

// TestNATSKeysWrongKey: a hub without the key the seeds were sealed with
// fails, naming the key it needs, and neither makes new seeds nor touches
// the row; altered rows fail as such.
func TestNATSKeysWrongKey(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	s := open(t, r)
	right, wrong := newKey(t), newKey(t)
	var calls atomic.Int32
	if _, err := s.NATSKeys(t.Context(), ring(t, right), gen(&calls)); err != nil {
		t.Fatal(err)
	}
	before := readRow(t, r.Admin)

	_, err := s.NATSKeys(t.Context(), ring(t, wrong), gen(&calls))
	if !errors.Is(err, keyring.ErrUnknownKey) || !strings.Contains(err.Error(), right.ID()) || !strings.Contains(err.Error(), wrong.ID()) {
		t.Errorf("want ErrUnknownKey naming the key needed (%s) and the one given (%s); got %v", right.ID(), wrong.ID(), err)
	}
	if calls.Load() != 1 {
		t.Errorf("want no new seeds made with the wrong key; gen ran %d times", calls.Load())
	}
	if after := readRow(t, r.Admin); !bytes.Equal(after.sealed, before.sealed) || *after.keyID != *before.keyID {
		t.Errorf("want the row untouched by a hub with the wrong key")
	}

	// The bytes altered, or relabelled as sealed by a key the hub holds.
	execAdmin(t, r.Admin, `UPDATE nats_keys SET sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1)`)
	if _, err := s.NATSKeys(t.Context(), ring(t, right), gen(&calls)); !errors.Is(err, keyring.ErrCorrupt) {
		t.Errorf("want a flipped bit refused with ErrCorrupt; got %v", err)
	}
	execAdmin(t, r.Admin, `UPDATE nats_keys SET sealed = $1, key_id = $2`, before.sealed, wrong.ID())
	if _, err := s.NATSKeys(t.Context(), ring(t, right, wrong), gen(&calls)); !errors.Is(err, keyring.ErrCorrupt) {
		t.Errorf("want a value relabelled with another key's id refused with ErrCorrupt; got %v", err)
	}
	if calls.Load() != 1 {
		t.Errorf("want no new seeds made for an altered row; gen ran %d times", calls.Load())
	}
}

// TestRewrapSecrets: a rotation rewraps the seeds under the new key in one
// go; then the old key alone fails and the new one alone reads the same
// seeds.
func TestRewrapSecrets(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	s := open(t, r)
	old, fresh := newKey(t), newKey(t)
	var calls atomic.Int32

	if got, err := s.RewrapSecrets(t.Context(), ring(t, fresh, old)); err != nil || len(got) != 0 {
		t.Errorf("want nothing rewrapped before there are seeds; got %v, %v", got, err)
	}
	k, err := s.NATSKeys(t.Context(), ring(t, old), gen(&calls))
	if err != nil {
		t.Fatal(err)
	}
	// During the rotation, hubs run with both keys (the new one first) and
	// still read the old wrapping.
	if during, err := s.NATSKeys(t.Context(), ring(t, fresh, old), gen(&calls)); err != nil || during != k {
		t.Fatalf("want a hub with both keys to read the old wrapping; got equal=%v, %v", during == k, err)
	}
	if row := readRow(t, r.Admin); *row.keyID != old.ID() {
		t.Fatalf("want reading with a new primary key to leave the row as it was (only the rotation rewraps); key is now %s", *row.keyID)
	}

	got, err := s.RewrapSecrets(t.Context(), ring(t, fresh, old))
	if err != nil || len(got) != 1 || got[0].From != old.ID() || got[0].To != fresh.ID() {
		t.Fatalf("want the NATS seeds rewrapped from %s to %s; got %+v, %v", old.ID(), fresh.ID(), got, err)
	}
	row := readRow(t, r.Admin)
	if *row.keyID != fresh.ID() {
		t.Errorf("want the row sealed under the new key %s; got %s", fresh.ID(), *row.keyID)
	}
	wantNotInRow(t, row, k)
	if _, err := s.NATSKeys(t.Context(), ring(t, old), gen(&calls)); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Errorf("want the old key alone refused after the rotation; got %v", err)
	}
	if after, err := s.NATSKeys(t.Context(), ring(t, fresh), gen(&calls)); err != nil || after != k {
		t.Errorf("want the new key alone to read the same seeds; got equal=%v, %v", after == k, err)
	}
	if _, err := s.RewrapSecrets(t.Context(), ring(t, newKey(t))); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Errorf("want a rotation without the current key refused; got %v", err)
	}
	if calls.Load() != 1 {
		t.Errorf("want the seeds made once; gen ran %d times", calls.Load())
	}
}

// TestNATSKeysSealsClearRow: a row an earlier version wrote in clear is
// sealed by the first hub that starts with a key, once, and reads the same.
func TestNATSKeysSealsClearRow(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	s := open(t, r)
	legacy, err := natsbus.NewSeeds()
	if err != nil {
		t.Fatal(err)
	}
	// What migration 00002 let earlier versions write; 00008 keeps it
	// valid until it is sealed.
	execAdmin(t, r.Admin, `INSERT INTO nats_keys (id, operator_seed, system_seed, account_seed) VALUES (1, $1, $2, $3)`,
		legacy.Operator, legacy.System, legacy.Account)

	key := newKey(t)
	var calls atomic.Int32
	var wg sync.WaitGroup
	got := make([]pgstore.NATSSeeds, 4)
	errs := make([]error, 4)
	for i := range got {
		// Hubs starting at once on the old database.
		st := open(t, r)
		wg.Go(func() { got[i], errs[i] = st.NATSKeys(t.Context(), ring(t, key), gen(&calls)) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != pgstore.NATSSeeds(legacy) {
			t.Errorf("hub %d: want the legacy seeds; got equal=%v, %v", i, got[i] == pgstore.NATSSeeds(legacy), errs[i])
		}
	}
	if calls.Load() != 0 {
		t.Errorf("want no new seeds made over a legacy row; gen ran %d times", calls.Load())
	}
	row := readRow(t, r.Admin)
	if row.keyID == nil || *row.keyID != key.ID() {
		t.Fatalf("want the legacy row sealed under key %s; got %v", key.ID(), row.keyID)
	}
	wantNotInRow(t, row, pgstore.NATSSeeds(legacy))

	// Again: nothing left to seal, the row stays as it is.
	if k, err := s.NATSKeys(t.Context(), ring(t, key), gen(&calls)); err != nil || k != pgstore.NATSSeeds(legacy) {
		t.Errorf("want the same seeds at the next start; got equal=%v, %v", k == pgstore.NATSSeeds(legacy), err)
	}
	if again := readRow(t, r.Admin); !bytes.Equal(again.sealed, row.sealed) {
		t.Errorf("want a sealed row left alone at the next start")
	}
}

// TestNATSKeysFirstStartTogether: hubs starting at once on an empty
// database agree on one set of seeds.
func TestNATSKeysFirstStartTogether(t *testing.T) {
	t.Parallel()
	r := pgtest.NewDatabaseRoles(t)
	key := newKey(t)
	var calls atomic.Int32
	var wg sync.WaitGroup
	got := make([]pgstore.NATSSeeds, 4)
	errs := make([]error, 4)
	for i := range got {
		s := open(t, r)
		wg.Go(func() { got[i], errs[i] = s.NATSKeys(t.Context(), ring(t, key), gen(&calls)) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != got[0] {
			t.Errorf("hub %d: want the seeds every hub got; got equal=%v, %v", i, got[i] == got[0], errs[i])
		}
	}
}
