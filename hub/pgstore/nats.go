package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NATSSeeds are the hub's NATS signing key seeds.
type NATSSeeds struct {
	Operator, System, Account string
}

// Sealer seals the secrets the store keeps, so that the database alone (a
// backup, a dump) does not give them away; *keyring.Ring is one. The
// store passes associated data naming the row a value belongs to, so a
// sealed value moved to another row does not open.
type Sealer interface {
	// Seal encrypts plaintext bound to aad and names the key it used.
	Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error)
	// Open decrypts what Seal returned, given the same key ID and aad.
	Open(keyID string, sealed, aad []byte) ([]byte, error)
}

// natsKeysAAD binds the sealed seeds to their row: the table has one row,
// id 1.
var natsKeysAAD = []byte("atoll pgstore nats_keys id=1 seeds")

// sealedSeeds is the plaintext of nats_keys.sealed.
type sealedSeeds struct {
	Operator string `json:"operator"`
	System   string `json:"system"`
	Account  string `json:"account"`
}

// natsKeysRow is nats_keys' one row as read: sealed, or clear (written
// before the seeds were sealed).
type natsKeysRow struct {
	sealed                    []byte
	keyID                     *string
	operator, system, account *string
}

func (r natsKeysRow) clear() bool { return r.sealed == nil }

const selectNATSKeys = `SELECT sealed, key_id, operator_seed, system_seed, account_seed FROM nats_keys WHERE id = 1`

func scanNATSKeys(row pgx.Row) (natsKeysRow, error) {
	var r natsKeysRow
	err := row.Scan(&r.sealed, &r.keyID, &r.operator, &r.system, &r.account)
	return r, err
}

// seeds opens the row with ring (a clear row needs none).
func (r natsKeysRow) seeds(ring Sealer) (NATSSeeds, error) {
	if r.clear() {
		if r.operator == nil || r.system == nil || r.account == nil {
			return NATSSeeds{}, errors.New("the nats_keys row has neither sealed nor clear seeds")
		}
		return NATSSeeds{Operator: *r.operator, System: *r.system, Account: *r.account}, nil
	}
	if r.keyID == nil {
		return NATSSeeds{}, errors.New("the sealed nats_keys row names no key")
	}
	plain, err := ring.Open(*r.keyID, r.sealed, natsKeysAAD)
	if err != nil {
		return NATSSeeds{}, err
	}
	var s sealedSeeds
	if err := json.Unmarshal(plain, &s); err != nil || s.Operator == "" || s.System == "" || s.Account == "" {
		return NATSSeeds{}, fmt.Errorf("the sealed seeds (key %s) opened to something else than three seeds", *r.keyID)
	}
	return NATSSeeds(s), nil
}

func sealSeeds(ring Sealer, k NATSSeeds) (keyID string, sealed []byte, err error) {
	plain, err := json.Marshal(sealedSeeds(k))
	if err != nil {
		return "", nil, err
	}
	return ring.Seal(plain, natsKeysAAD)
}

// NATSKeys returns the shared signing keys, opening them with ring. When
// there are none yet it stores fresh ones from gen, sealed with ring;
// hubs starting together agree on the first stored. A row an earlier
// version stored in clear is sealed on the way (once, whichever hub comes
// first). A ring without the key the seeds were sealed with is an error
// that names the key needed: never a reason to make new seeds.
func (s *Store) NATSKeys(ctx context.Context, ring Sealer, gen func() (NATSSeeds, error)) (NATSSeeds, error) {
	for range 3 {
		row, err := scanNATSKeys(s.pool.QueryRow(ctx, selectNATSKeys))
		switch {
		case isNoRows(err):
			if err := s.storeNewNATSKeys(ctx, ring, gen); err != nil {
				return NATSSeeds{}, err
			}
			continue // read what won
		case err != nil:
			return NATSSeeds{}, fmt.Errorf("read nats keys: %w", classify(err))
		}
		k, err := row.seeds(ring)
		if err != nil {
			return NATSSeeds{}, fmt.Errorf("read nats keys: %w", err)
		}
		if !row.clear() {
			return k, nil
		}
		if err := s.sealClearNATSKeys(ctx, ring, k); err != nil {
			return NATSSeeds{}, err
		}
		// Read it back: what this hub sealed, or what another sealed first.
	}
	return NATSSeeds{}, errors.New("read nats keys: the row kept changing under three reads")
}

func (s *Store) storeNewNATSKeys(ctx context.Context, ring Sealer, gen func() (NATSSeeds, error)) error {
	fresh, err := gen()
	if err != nil {
		return err
	}
	keyID, sealed, err := sealSeeds(ring, fresh)
	if err != nil {
		return fmt.Errorf("store nats keys: %w", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO nats_keys (id, sealed, key_id) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING`, sealed, keyID)
	if err != nil {
		return fmt.Errorf("store nats keys: %w", classify(err))
	}
	return nil
}

// sealClearNATSKeys seals a row an earlier version stored in clear, if it
// still holds those seeds.
func (s *Store) sealClearNATSKeys(ctx context.Context, ring Sealer, k NATSSeeds) error {
	keyID, sealed, err := sealSeeds(ring, k)
	if err != nil {
		return fmt.Errorf("seal nats keys: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE nats_keys
		SET sealed = $1, key_id = $2, operator_seed = NULL, system_seed = NULL, account_seed = NULL
		WHERE id = 1 AND sealed IS NULL AND operator_seed = $3 AND system_seed = $4 AND account_seed = $5`,
		sealed, keyID, k.Operator, k.System, k.Account)
	if err != nil {
		return fmt.Errorf("seal nats keys: %w", classify(err))
	}
	if tag.RowsAffected() == 1 {
		s.log.InfoContext(ctx, "sealed the NATS signing keys that an earlier version stored in clear; older backups of the database still hold them in clear", "key_id", keyID)
	}
	return nil
}

// Rewrapped says what RewrapSecrets did to one sealed secret.
type Rewrapped struct {
	// Secret names it, e.g. "nats signing keys".
	Secret string
	// From is the key ID it was sealed with before, "" when it was in
	// clear (written by an earlier version).
	From string
	// To is the key ID it is sealed with now.
	To string
}

// RewrapSecrets seals every secret the store keeps again (the NATS
// signing keys, then the data keys of Secret objects), under ring's
// first key, opening each with any key of ring: the middle step of a
// key-encryption key rotation. It runs in one transaction, so a hub that
// starts meanwhile reads all the old or all the new; secrets not made yet
// are skipped.
func (s *Store) RewrapSecrets(ctx context.Context, ring Sealer) ([]Rewrapped, error) {
	var out []Rewrapped
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		values, err := rewrapSecretValues(ctx, tx, ring)
		if err != nil {
			return err
		}
		defer func() { out = append(out, values...) }()
		row, err := scanNATSKeys(tx.QueryRow(ctx, selectNATSKeys+` FOR UPDATE`))
		if isNoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		k, err := row.seeds(ring)
		if err != nil {
			return fmt.Errorf("nats signing keys: %w", err)
		}
		keyID, sealed, err := sealSeeds(ring, k)
		if err != nil {
			return fmt.Errorf("nats signing keys: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE nats_keys
			SET sealed = $1, key_id = $2, operator_seed = NULL, system_seed = NULL, account_seed = NULL WHERE id = 1`, sealed, keyID); err != nil {
			return err
		}
		from := ""
		if row.keyID != nil {
			from = *row.keyID
		}
		out = append(out, Rewrapped{Secret: "nats signing keys", From: from, To: keyID})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rewrap secrets: %w", classify(err))
	}
	return out, nil
}

// NATSRevocations returns every revoked member user key with its time,
// by cluster.
func (s *Store) NATSRevocations(ctx context.Context) (map[string]map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT cluster, user_key, revoked_at FROM nats_revocations`)
	if err != nil {
		return nil, fmt.Errorf("read nats revocations: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]map[string]time.Time{}
	for rows.Next() {
		var c, k string
		var at time.Time
		if err := rows.Scan(&c, &k, &at); err != nil {
			return nil, fmt.Errorf("read nats revocations: %w", classify(err))
		}
		if out[c] == nil {
			out[c] = map[string]time.Time{}
		}
		out[c][k] = at
	}
	return out, classify(rows.Err())
}

// NATSRevoked says whether a member user key was revoked, in any cluster.
func (s *Store) NATSRevoked(ctx context.Context, userKey string) (bool, error) {
	var revoked bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM nats_revocations WHERE user_key = $1)`, userKey).Scan(&revoked)
	if err != nil {
		return false, fmt.Errorf("read nats revocations: %w", classify(err))
	}
	return revoked, nil
}

// NATSIdentities maps every registered cluster to its member's NATS user
// key (clusters whose identity was re-issued and not yet claimed have
// none).
func (s *Store) NATSIdentities(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, status->>'identity' FROM objects
		WHERE kind = 'Cluster' AND coalesce(status->>'identity', '') <> ''`)
	if err != nil {
		return nil, fmt.Errorf("read member identities: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var c, k string
		if err := rows.Scan(&c, &k); err != nil {
			return nil, fmt.Errorf("read member identities: %w", classify(err))
		}
		out[c] = k
	}
	return out, classify(rows.Err())
}

// RevokeNATSUser records a revoked member key inside the transaction.
func (t *Tx) RevokeNATSUser(ctx context.Context, userKey, cluster string, at time.Time) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO nats_revocations (user_key, cluster, revoked_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_key) DO UPDATE SET revoked_at = excluded.revoked_at`, userKey, cluster, at)
	return err
}
