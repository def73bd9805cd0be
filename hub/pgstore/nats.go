package pgstore

import (
	"context"
	"fmt"
	"time"
)

// NATSSeeds are the hub's NATS signing key seeds.
type NATSSeeds struct {
	Operator, System, Account string
}

// NATSKeys returns the shared signing keys, storing fresh ones from gen
// when there are none yet. Hubs starting together agree on the first
// stored.
func (s *Store) NATSKeys(ctx context.Context, gen func() (NATSSeeds, error)) (NATSSeeds, error) {
	var k NATSSeeds
	err := s.pool.QueryRow(ctx, `SELECT operator_seed, system_seed, account_seed FROM nats_keys WHERE id = 1`).Scan(&k.Operator, &k.System, &k.Account)
	if err == nil {
		return k, nil
	}
	if !isNoRows(err) {
		return k, fmt.Errorf("read nats keys: %w", classify(err))
	}
	fresh, err := gen()
	if err != nil {
		return k, err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO nats_keys (id, operator_seed, system_seed, account_seed) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING`,
		fresh.Operator, fresh.System, fresh.Account)
	if err != nil {
		return k, fmt.Errorf("store nats keys: %w", classify(err))
	}
	return s.NATSKeys(ctx, gen)
}

// NATSRevocations returns every revoked member user key with its time.
func (s *Store) NATSRevocations(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_key, revoked_at FROM nats_revocations`)
	if err != nil {
		return nil, fmt.Errorf("read nats revocations: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var k string
		var at time.Time
		if err := rows.Scan(&k, &at); err != nil {
			return nil, fmt.Errorf("read nats revocations: %w", classify(err))
		}
		out[k] = at
	}
	return out, classify(rows.Err())
}

// RevokeNATSUser records a revoked member key inside the transaction.
func (t *Tx) RevokeNATSUser(ctx context.Context, userKey, cluster string, at time.Time) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO nats_revocations (user_key, cluster, revoked_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_key) DO UPDATE SET revoked_at = excluded.revoked_at`, userKey, cluster, at)
	return err
}
