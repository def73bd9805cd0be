package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atollhq/atoll/api"
)

// ConsoleSession is a console sign-in as stored: what the console sealed,
// under the hash of the session's id.
type ConsoleSession struct {
	IDHash  []byte
	Sealed  []byte
	Created time.Time
	Expires time.Time
}

// PutConsoleSession stores a new sign-in, and removes the sign-ins that
// expired by its creation (sign-ins are rare; the sweep rides on them).
func (s *Store) PutConsoleSession(ctx context.Context, cs ConsoleSession) error {
	// Not through InTx: sessions are no object (no resourceVersion).
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, cs.Created); err != nil {
			return fmt.Errorf("sweep console sessions: %w", classify(err))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO console_sessions (id_hash, sealed, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			cs.IDHash, cs.Sealed, cs.Created, cs.Expires); err != nil {
			return fmt.Errorf("store console session: %w", classify(err))
		}
		return nil
	})
}

// ConsoleSession reads the sign-in stored under idHash; NotFound when
// there is none or it expired by now.
func (s *Store) ConsoleSession(ctx context.Context, idHash []byte, now time.Time) (ConsoleSession, error) {
	cs := ConsoleSession{IDHash: idHash}
	err := s.pool.QueryRow(ctx, `SELECT sealed, created_at, expires_at FROM console_sessions WHERE id_hash = $1 AND expires_at > $2`,
		idHash, now).Scan(&cs.Sealed, &cs.Created, &cs.Expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return cs, api.Errorf(api.CodeNotFound, "no such console session")
	case err != nil:
		return cs, fmt.Errorf("read console session: %w", classify(err))
	}
	return cs, nil
}

// DeleteConsoleSession ends a sign-in (gone already is fine).
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash); err != nil {
		return fmt.Errorf("delete console session: %w", classify(err))
	}
	return nil
}
