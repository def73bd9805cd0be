package pgstore

import (
	"context"
	"fmt"
)

// Placement is one workload's share in one cluster. (Its fields are
// ordered so that the struct packs into 64 bytes: the leader placer holds
// every row, a million at the full scale.)
type Placement struct {
	Workload, Cluster string
	Epoch             int64
	Generation        int64
	DeliveredEpoch    int64
	Replicas          int32
	// Deleted marks a tombstone: the cluster must drop the workload.
	Deleted bool
}

// Placements returns every placement row.
func (s *Store) Placements(ctx context.Context) ([]Placement, error) {
	return s.placements(ctx, "")
}

// PlacementsOf returns one workload's placement rows.
func (s *Store) PlacementsOf(ctx context.Context, workload string) ([]Placement, error) {
	return s.placements(ctx, workload)
}

// PlacementsFor returns the placement rows of the given workloads.
func (s *Store) PlacementsFor(ctx context.Context, workloads []string) ([]Placement, error) {
	if len(workloads) == 0 {
		return nil, nil
	}
	return s.readPlacements(ctx, false, `SELECT workload, cluster, replicas, epoch, generation, deleted, delivered_epoch FROM placements
		WHERE workload = ANY($1) ORDER BY workload, cluster`, workloads)
}

// placements reads the rows of one workload, or of all ("").
func (s *Store) placements(ctx context.Context, workload string) ([]Placement, error) {
	return s.readPlacements(ctx, workload == "", `SELECT workload, cluster, replicas, epoch, generation, deleted, delivered_epoch FROM placements
		WHERE $1 = '' OR workload = $1 ORDER BY workload, cluster`, workload)
}

// readPlacements reads the rows query selects (all: every row). The
// leader placer reads every row at each term and every minute, ten or so
// rows per workload, so a read costs what its rows do: the rows come sorted by
// workload, and each workload's name is one string for all its rows and
// each cluster's name one for the whole read (not a string per row and
// column), in a slice sized from the last read of every row.
func (s *Store) readPlacements(ctx context.Context, all bool, query string, arg any) ([]Placement, error) {
	rows, err := s.pool.Query(ctx, query, arg)
	if err != nil {
		return nil, fmt.Errorf("read placements: %w", classify(err))
	}
	defer rows.Close()
	var out []Placement
	if all {
		n := s.placementRows.Load()
		out = make([]Placement, 0, n+n/32) // a little room to grow before doubling
	}
	clusters := map[string]string{}
	var name string
	var p Placement // scanned into through dest, made once (not a row's allocations)
	dest := []any{nil, nil, &p.Replicas, &p.Epoch, &p.Generation, &p.Deleted, &p.DeliveredEpoch}
	for rows.Next() {
		raw := rows.RawValues() // text: the bytes as stored, in either format
		if len(raw) != 7 || raw[0] == nil || raw[1] == nil {
			return nil, fmt.Errorf("read placements: want 7 columns, workload and cluster not null; got %d", len(raw))
		}
		if string(raw[0]) != name {
			name = string(raw[0])
		}
		p.Workload = name
		c, ok := clusters[string(raw[1])]
		if !ok {
			c = string(raw[1])
			clusters[c] = c
		}
		p.Cluster = c
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read placements: %w", classify(err))
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read placements: %w", classify(err))
	}
	if all {
		s.placementRows.Store(int64(len(out)))
	}
	if len(out) == 0 {
		return nil, nil // as before: none read is nil (the placer's deliver reads again on nil)
	}
	return out, nil
}

// NextPlacementEpoch draws an epoch inside the transaction.
func (t *Tx) NextPlacementEpoch(ctx context.Context) (int64, error) {
	var e int64
	err := t.tx.QueryRow(ctx, `SELECT nextval('placement_epoch_seq')`).Scan(&e)
	return e, err
}

// PutPlacements stores placement rows, each to be delivered (again), in
// one statement: a pass that re-places a lost region's thousand
// workloads writes its rows in one round trip.
func (t *Tx) PutPlacements(ctx context.Context, rows []Placement) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	workloads, clusters := make([]string, n), make([]string, n)
	replicas := make([]int32, n)
	epochs, generations := make([]int64, n), make([]int64, n)
	deleted := make([]bool, n)
	for i, p := range rows {
		workloads[i], clusters[i], replicas[i], epochs[i], generations[i], deleted[i] = p.Workload, p.Cluster, p.Replicas, p.Epoch, p.Generation, p.Deleted
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO placements (workload, cluster, replicas, epoch, generation, deleted, delivered_epoch)
		SELECT w, c, r, e, g, d, 0 FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::bool[]) AS t(w, c, r, e, g, d)
		ON CONFLICT (workload, cluster) DO UPDATE SET replicas = excluded.replicas, epoch = excluded.epoch,
			generation = excluded.generation, deleted = excluded.deleted, delivered_epoch = 0`,
		workloads, clusters, replicas, epochs, generations, deleted)
	return err
}

// DeletePlacements removes a workload's rows (once every cluster confirmed
// its tombstone).
func (t *Tx) DeletePlacements(ctx context.Context, workload string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM placements WHERE workload = $1`, workload)
	return err
}

// MarkUndelivered asks for a cluster's placement of a workload to be sent
// again (its digest showed another epoch).
func (s *Store) MarkUndelivered(ctx context.Context, workload, cluster string) error {
	_, err := s.pool.Exec(ctx, `UPDATE placements SET delivered_epoch = 0 WHERE workload = $1 AND cluster = $2`, workload, cluster)
	if err != nil {
		return fmt.Errorf("mark undelivered: %w", classify(err))
	}
	return nil
}

// MarkDeliveredAll records, in one write, that a cluster acknowledged the
// given rows' epochs.
func (s *Store) MarkDeliveredAll(ctx context.Context, cluster string, rows []Placement) error {
	workloads := make([]string, len(rows))
	epochs := make([]int64, len(rows))
	for i, r := range rows {
		workloads[i], epochs[i] = r.Workload, r.Epoch
	}
	_, err := s.pool.Exec(ctx, `UPDATE placements p SET delivered_epoch = greatest(p.delivered_epoch, t.e)
		FROM unnest($2::text[], $3::bigint[]) AS t(w, e)
		WHERE p.cluster = $1 AND p.workload = t.w AND p.epoch = t.e`, cluster, workloads, epochs)
	if err != nil {
		return fmt.Errorf("mark delivered: %w", classify(err))
	}
	return nil
}
