package pgstore

import (
	"context"
	"errors"
	"fmt"
)

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("dry run: roll back")

// DryRun runs fn in a transaction as a write would (the same locks, checks,
// versions and validation), then rolls it back: nothing is stored, no
// audit row, change-log row or notification survives, so no watch sees
// it. What fn returns (the records it would have written) is the answer.
// A failure is returned as the write's would be, but not audited: nothing
// was attempted.
func (s *Store) DryRun(ctx context.Context, actor Actor, verb, kind, name string, fn func(tx *Tx) error) error {
	err := s.InTx(ctx, actor, func(tx *Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if tx.later != nil { // as a write would, before its COMMIT
			if err := tx.later.Send(ctx); err != nil {
				return err
			}
		}
		return errDryRun
	})
	if errors.Is(err, errDryRun) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s %s (dry run): %w", verb, kind, name, err)
	}
	return errors.New("dry run committed") // cannot happen: fn's success rolls back
}
