package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// WorkloadsWithClusterRow names, for each of clusters, the workloads
// whose stored status has a row of it in status.clusters (the status
// folder checks them against what the cluster reports): one read of
// every workload's status for all of them.
func (s *Store) WorkloadsWithClusterRow(ctx context.Context, clusters []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(clusters) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT o.name, c->>'cluster' FROM objects o, jsonb_array_elements(
			CASE WHEN jsonb_typeof(o.status->'clusters') = 'array' THEN o.status->'clusters' ELSE '[]'::jsonb END) AS c
		WHERE o.kind = 'Workload' AND c->>'cluster' = ANY($1)`, clusters)
	if err != nil {
		return nil, fmt.Errorf("read workloads' cluster rows: %w", classify(err))
	}
	var name, cluster string
	_, err = pgx.ForEachRow(rows, []any{&name, &cluster}, func() error {
		out[cluster] = append(out[cluster], name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read workloads' cluster rows: %w", classify(err))
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
