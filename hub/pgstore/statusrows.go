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
