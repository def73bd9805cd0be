package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/api"
)

// SecretValue is a Secret's row of secret_values as the store hands it
// out: its data key, opened, and its data, still sealed under that key
// (package hub/secrets seals and opens the data; the store only wraps the
// data key under the key-encryption key).
type SecretValue struct {
	DataKey []byte
	Sealed  []byte
	// Version is the resourceVersion of the write that set the value.
	Version int64
	// KeyID names the key-encryption key that wraps the data key.
	KeyID string
}

// dataKeyAAD binds a wrapped data key to the object it belongs to: moved
// to another row, it does not open.
func dataKeyAAD(uid string) []byte {
	return []byte("atoll pgstore secret_values uid=" + uid + " data_key")
}

// PutSecretValue stores the value of the Secret whose uid is given at
// version (the resourceVersion of the object's write that sets it), in
// the transaction of that write: the data key wrapped under ring's
// sealing key, the sealed data as is. Older versions stay while a kept
// workload revision pins them (PruneDataVersions).
func (t *Tx) PutSecretValue(ctx context.Context, ring Sealer, uid string, version int64, dataKey, sealed []byte) error {
	keyID, wrapped, err := ring.Seal(dataKey, dataKeyAAD(uid))
	if err != nil {
		return fmt.Errorf("put secret value: %w", err)
	}
	t.dataVersions = nil
	_, err = t.tx.Exec(ctx, `INSERT INTO secret_values (uid, version, key_id, data_key, sealed) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (uid, version) DO UPDATE SET key_id = EXCLUDED.key_id, data_key = EXCLUDED.data_key, sealed = EXCLUDED.sealed`,
		uid, version, keyID, wrapped, sealed)
	return err
}

// SecretValue reads the newest value of the Secret whose uid is given,
// within the transaction.
func (t *Tx) SecretValue(ctx context.Context, ring Sealer, uid string) (SecretValue, error) {
	return secretValue(ctx, t.tx, ring, uid, 0)
}

// SecretValue reads the newest value of the Secret whose uid is given
// and opens its data key with ring. NotFound when the secret has no value
// row.
func (s *Store) SecretValue(ctx context.Context, ring Sealer, uid string) (SecretValue, error) {
	return s.SecretValueAt(ctx, ring, uid, 0)
}

// SecretValueAt reads the Secret's value at version (0: the newest).
// NotFound when that version is not kept.
func (s *Store) SecretValueAt(ctx context.Context, ring Sealer, uid string, version int64) (SecretValue, error) {
	v, err := secretValue(ctx, s.pool, ring, uid, version)
	if err != nil {
		return SecretValue{}, classify(err)
	}
	return v, nil
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func secretValue(ctx context.Context, q queryRower, ring Sealer, uid string, version int64) (SecretValue, error) {
	var keyID string
	var wrapped, sealed []byte
	err := q.QueryRow(ctx, `SELECT version, key_id, data_key, sealed FROM secret_values WHERE uid = $1 AND ($2::bigint = 0 OR version = $2::bigint)
		ORDER BY version DESC LIMIT 1`, uid, version).Scan(&version, &keyID, &wrapped, &sealed)
	if isNoRows(err) {
		return SecretValue{}, api.Errorf(api.CodeNotFound, "the secret has no stored value at that version")
	}
	if err != nil {
		return SecretValue{}, err
	}
	dk, err := ring.Open(keyID, wrapped, dataKeyAAD(uid))
	if err != nil {
		return SecretValue{}, fmt.Errorf("secret data key: %w", err)
	}
	return SecretValue{DataKey: dk, Sealed: sealed, KeyID: keyID, Version: version}, nil
}

// CheckSecretKeys opens the data key of every Secret with ring, changing
// nothing, and returns how many it opened; the first that does not open
// fails it, naming the secret and its key. A hub runs it before it
// changes anything, so that a wrong or missing key-encryption key stops
// it at start rather than at the first read.
func (s *Store) CheckSecretKeys(ctx context.Context, ring Sealer) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT v.uid::text, o.name, v.key_id, v.data_key FROM secret_values v JOIN objects o ON o.uid = v.uid ORDER BY o.name`)
	if err != nil {
		return 0, fmt.Errorf("check secret keys: %w", classify(err))
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var uid, name, keyID string
		var wrapped []byte
		if err := rows.Scan(&uid, &name, &keyID, &wrapped); err != nil {
			return n, fmt.Errorf("check secret keys: %w", classify(err))
		}
		if _, err := ring.Open(keyID, wrapped, dataKeyAAD(uid)); err != nil {
			return n, fmt.Errorf("secret %s: %w", name, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("check secret keys: %w", classify(err))
	}
	return n, nil
}

// rewrapSecretValues wraps every Secret's data key again under ring's
// sealing key, inside tx (RewrapSecrets' transaction); the sealed data is
// not touched, nor are the objects (no new resourceVersion: a rotation
// changes no secret).
func rewrapSecretValues(ctx context.Context, tx pgx.Tx, ring Sealer) ([]Rewrapped, error) {
	rows, err := tx.Query(ctx, `SELECT v.uid::text, v.version, o.name, v.key_id, v.data_key FROM secret_values v JOIN objects o ON o.uid = v.uid
		ORDER BY o.name, v.version FOR UPDATE OF v`)
	if err != nil {
		return nil, err
	}
	type row struct {
		uid, name, keyID string
		version          int64
		wrapped          []byte
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.uid, &r.version, &r.name, &r.keyID, &r.wrapped); err != nil {
			rows.Close()
			return nil, err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	newest := map[string]int64{}
	for _, r := range all {
		newest[r.uid] = max(newest[r.uid], r.version)
	}
	var out []Rewrapped
	for _, r := range all {
		dk, err := ring.Open(r.keyID, r.wrapped, dataKeyAAD(r.uid))
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", r.name, err)
		}
		keyID, wrapped, err := ring.Seal(dk, dataKeyAAD(r.uid))
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", r.name, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE secret_values SET key_id = $2, data_key = $3 WHERE uid = $1 AND version = $4`, r.uid, keyID, wrapped, r.version); err != nil {
			return nil, err
		}
		what := "secret " + r.name
		if r.version != newest[r.uid] {
			what += fmt.Sprintf(" (version %d, kept for a workload revision)", r.version)
		}
		out = append(out, Rewrapped{Secret: what, From: r.keyID, To: keyID})
	}
	return out, nil
}

// AuditRead records a read that is worth an audit row: a secret's values
// given out.
func (s *Store) AuditRead(ctx context.Context, actor Actor, verb, kind, name string) {
	s.AuditRefusal(ctx, actor, verb, kind, name, "ok", "")
}

// WriteTx runs fn in one transaction as Store.Create and Store.Mutate run
// their writes: a failure is audited as the refusal of verb on kind/name
// and wrapped with what was attempted. Kinds whose writes keep rows
// beside the object (a Secret's value) write through it.
func (s *Store) WriteTx(ctx context.Context, actor Actor, verb, kind, name string, fn func(tx *Tx) error) error {
	return s.single(ctx, actor, verb, kind, name, false, fn)
}
