package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RevisionRow is one stored revision of a workload's template.
type RevisionRow struct {
	Number       int64
	TemplateHash string
	Template     json.RawMessage
	Generation   int64
	Actor        string
	ChangeCause  string
	CreatedAt    time.Time
}

// LatestRevision is the workload's newest revision (ok false when it has
// none).
func (t *Tx) LatestRevision(ctx context.Context, workloadUID string) (RevisionRow, bool, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+revisionColumns+` FROM workload_revisions WHERE workload_uid = $1 ORDER BY number DESC LIMIT 1`, workloadUID)
	if err != nil {
		return RevisionRow{}, false, err
	}
	list, err := pgx.CollectRows(rows, scanRevision)
	if err != nil || len(list) == 0 {
		return RevisionRow{}, false, err
	}
	return list[0], true, nil
}

// PutRevision adds a revision, then keeps only the newest keep of the
// workload's revisions. Both statements go with the transaction's next
// statement or its COMMIT (no round trip of their own); an error of
// theirs fails the transaction there.
func (t *Tx) PutRevision(_ context.Context, workloadUID string, r RevisionRow, keep int) error {
	t.pending.hold(`INSERT INTO workload_revisions (workload_uid, number, template_hash, template, generation, actor, change_cause, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		workloadUID, r.Number, r.TemplateHash, r.Template, r.Generation, storable(r.Actor), storable(r.ChangeCause), r.CreatedAt)
	t.pending.hold(trimRevisionsSQL, workloadUID, r.Number-int64(max(keep, 1)))
	return nil
}

const trimRevisionsSQL = `DELETE FROM workload_revisions WHERE workload_uid = $1 AND number <= $2`

// TrimRevisions keeps only the newest keep of the workload's revisions,
// counted back from number newest.
func (t *Tx) TrimRevisions(ctx context.Context, workloadUID string, newest int64, keep int) error {
	_, err := t.tx.Exec(ctx, trimRevisionsSQL, workloadUID, newest-int64(max(keep, 1)))
	return err
}

// Revisions reads a workload's revisions, oldest first; the workload must
// exist (NotFound otherwise).
func (s *Store) Revisions(ctx context.Context, workload string) ([]RevisionRow, error) {
	var out []RevisionRow
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var b [16]byte
		if err := tx.QueryRow(ctx, `SELECT uid FROM objects WHERE kind = 'Workload' AND name = $1`, workload).Scan(&b); err != nil {
			if isNoRows(err) {
				return notFound("Workload", workload)
			}
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+revisionColumns+` FROM workload_revisions WHERE workload_uid = $1 ORDER BY number`, formatUUID(b))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanRevision)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read revisions of workload %s: %w", workload, classify(err))
	}
	return out, nil
}

const revisionColumns = `number, template_hash, template, generation, actor, change_cause, created_at`

func scanRevision(row pgx.CollectableRow) (RevisionRow, error) {
	var r RevisionRow
	var tmpl []byte
	err := row.Scan(&r.Number, &r.TemplateHash, &tmpl, &r.Generation, &r.Actor, &r.ChangeCause, &r.CreatedAt)
	r.Template = tmpl
	r.CreatedAt = r.CreatedAt.UTC()
	return r, err
}
