package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/api"
)

// RegisterNonce is a registration challenge as stored: the hash of the
// nonce, whom it was issued to and for which cluster.
type RegisterNonce struct {
	Hash     []byte
	TokenUID string
	Cluster  string
	Created  time.Time
	Expires  time.Time
}

// PutRegisterNonce stores a new challenge. It removes the challenges that
// expired by its creation, and keeps at most keep of the token's
// outstanding ones (the newest), so that a token holder asking again and
// again fills nothing.
func (s *Store) PutRegisterNonce(ctx context.Context, n RegisterNonce, keep int) error {
	// Not through InTx: nonces are no object (no resourceVersion).
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM register_nonces WHERE expires_at <= $1`, n.Created); err != nil {
			return fmt.Errorf("sweep register nonces: %w", classify(err))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO register_nonces (nonce_hash, token_uid, cluster, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
			n.Hash, n.TokenUID, n.Cluster, n.Created, n.Expires); err != nil {
			return fmt.Errorf("store register nonce: %w", classify(err))
		}
		if _, err := tx.Exec(ctx, `DELETE FROM register_nonces WHERE token_uid = $1 AND nonce_hash NOT IN
			(SELECT nonce_hash FROM register_nonces WHERE token_uid = $1 ORDER BY created_at DESC, nonce_hash LIMIT $2)`, n.TokenUID, keep); err != nil {
			return fmt.Errorf("trim register nonces: %w", classify(err))
		}
		return nil
	})
}

// TakeRegisterNonce uses up the challenge stored under hash if it was
// issued to tokenUID for cluster and has not expired by now: it is
// deleted whatever comes of the registration. NotFound otherwise (unknown,
// used, expired, or another token's or cluster's).
func (s *Store) TakeRegisterNonce(ctx context.Context, hash []byte, tokenUID, cluster string, now time.Time) error {
	var expires time.Time
	err := s.pool.QueryRow(ctx, `DELETE FROM register_nonces WHERE nonce_hash = $1 AND token_uid = $2 AND cluster = $3 RETURNING expires_at`,
		hash, tokenUID, cluster).Scan(&expires)
	switch {
	case isNoRows(err):
		return api.Errorf(api.CodeNotFound, "no such register nonce")
	case err != nil:
		return fmt.Errorf("take register nonce: %w", classify(err))
	case !now.Before(expires):
		return api.Errorf(api.CodeNotFound, "the register nonce expired at %s", expires.UTC().Format(time.RFC3339))
	}
	return nil
}
