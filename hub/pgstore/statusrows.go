package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// WorkloadsWithClusterRow names the workloads whose stored status has a
// row of cluster in status.clusters (the status folder checks them
// against what the cluster reports).
func (s *Store) WorkloadsWithClusterRow(ctx context.Context, cluster string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM objects WHERE kind = 'Workload'
		AND status->'clusters' @> jsonb_build_array(jsonb_build_object('cluster', $1::text))`, cluster)
	if err != nil {
		return nil, fmt.Errorf("read workloads with a row of %s: %w", cluster, classify(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read workloads with a row of %s: %w", cluster, classify(err))
	}
	return out, nil
}

// WorkloadsAmong is which of names the store holds as workloads (the
// status folder forgets the others: a member's reports name them).
func (s *Store) WorkloadsAmong(ctx context.Context, names []string) (map[string]bool, error) {
	out := make(map[string]bool, len(names))
	if len(names) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT name FROM objects WHERE kind = 'Workload' AND name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("read workload names: %w", classify(err))
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read workload names: %w", classify(err))
	}
	for _, n := range found {
		out[n] = true
	}
	return out, nil
}
