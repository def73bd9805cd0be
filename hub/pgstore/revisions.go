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
	// ImageDigest is what the template's image tag resolved to (empty
	// until resolved, or when there is no tag to resolve).
	ImageDigest string
}

// LatestRevision is the workload's newest revision (ok false when it has
// none).
func (t *Tx) LatestRevision(ctx context.Context, workloadUID string) (RevisionRow, bool, error) {
	if r, ok := t.latest[workloadUID]; ok {
		return r, r.Number > 0, nil
	}
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

// LatestRevisions reads ahead, in one statement, the newest revision of
// each workload whose uid is given, for LatestRevision to answer from in
// the rest of the transaction (a write of a hundred workloads reads them
// once). Call it with the workloads' rows locked (Tx.LockAll): no other
// transaction adds their revisions until this one ends, and PutRevision
// keeps what was read up to date.
func (t *Tx) LatestRevisions(ctx context.Context, workloadUIDs []string) error {
	rows, err := t.tx.Query(ctx, `SELECT DISTINCT ON (workload_uid) workload_uid::text, `+revisionColumns+`
		FROM workload_revisions WHERE workload_uid = ANY($1::uuid[]) ORDER BY workload_uid, number DESC`, workloadUIDs)
	if err != nil {
		return err
	}
	if t.latest == nil {
		t.latest = make(map[string]RevisionRow, len(workloadUIDs))
	}
	for _, uid := range workloadUIDs {
		t.latest[uid] = RevisionRow{} // none, unless read below
	}
	list, err := pgx.CollectRows(rows, scanKeyedRevision)
	if err != nil {
		return err
	}
	for _, l := range list {
		t.latest[l.key] = l.row
	}
	return nil
}

// PutRevision adds a revision, then keeps only the newest keep of the
// workload's revisions. Both statements go with the transaction's next
// statement or its COMMIT (no round trip of their own); an error of
// theirs fails the transaction there.
func (t *Tx) PutRevision(_ context.Context, workloadUID string, r RevisionRow, keep int) error {
	if _, ok := t.latest[workloadUID]; ok {
		t.latest[workloadUID] = r
	}
	t.pending.hold(`INSERT INTO workload_revisions (workload_uid, number, template_hash, template, generation, actor, change_cause, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		workloadUID, r.Number, r.TemplateHash, r.Template, r.Generation, storable(r.Actor), storable(r.ChangeCause), r.CreatedAt)
	if cut := r.Number - int64(max(keep, 1)); cut > 0 { // numbers start at 1: below that there is nothing to trim
		t.pending.hold(trimRevisionsSQL, workloadUID, cut)
	}
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

// RevisionsOf reads the revisions of several workloads in one statement,
// by workload name, oldest first; a workload that does not exist (or has
// no revision) is absent.
func (s *Store) RevisionsOf(ctx context.Context, workloads []string) (map[string][]RevisionRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT o.name, `+prefixed("r", revisionColumns)+` FROM workload_revisions r
		JOIN objects o ON o.uid = r.workload_uid WHERE o.kind = 'Workload' AND o.name = ANY($1) ORDER BY o.name, r.number`, workloads)
	if err != nil {
		return nil, fmt.Errorf("read revisions of %d workloads: %w", len(workloads), classify(err))
	}
	list, err := pgx.CollectRows(rows, scanKeyedRevision)
	if err != nil {
		return nil, fmt.Errorf("read revisions of %d workloads: %w", len(workloads), classify(err))
	}
	out := make(map[string][]RevisionRow, len(workloads))
	for _, n := range list {
		out[n.key] = append(out[n.key], n.row)
	}
	return out, nil
}

const revisionColumns = `number, template_hash, template, generation, actor, change_cause, created_at, image_digest`

func scanRevision(row pgx.CollectableRow) (RevisionRow, error) {
	return scanRevisionAfter(row)
}

// keyedRevision is a revision read with a key ahead of its columns (the
// workload's uid or name).
type keyedRevision struct {
	key string
	row RevisionRow
}

func scanKeyedRevision(row pgx.CollectableRow) (keyedRevision, error) {
	var k keyedRevision
	var err error
	k.row, err = scanRevisionAfter(row, &k.key)
	return k, err
}

// scanRevisionAfter scans revisionColumns, after the lead columns.
func scanRevisionAfter(row pgx.CollectableRow, lead ...any) (RevisionRow, error) {
	var r RevisionRow
	var tmpl []byte
	err := row.Scan(append(lead, &r.Number, &r.TemplateHash, &tmpl, &r.Generation, &r.Actor, &r.ChangeCause, &r.CreatedAt, &r.ImageDigest)...)
	r.Template, r.CreatedAt = tmpl, r.CreatedAt.UTC()
	return r, err
}

// UnpinnedRevision is a revision whose oci image is named by a tag that
// has not been resolved to a digest yet.
type UnpinnedRevision struct {
	Workload    string
	WorkloadUID string
	Number      int64
	Generation  int64
	Image       string
	// Template is the revision's template as stored (its imagePullSecret
	// and the data versions it pins say which credentials resolve it).
	Template json.RawMessage
	// Latest: the workload's newest revision (older ones are resolved for
	// a progressive rollout that still delivers them).
	Latest bool
}

// UnpinnedRevisions lists at most limit revisions whose oci image tag is
// not resolved yet, oldest first: each workload's newest, and the older
// ones of workloads that roll out progressively (a cluster may still be
// delivered one); the others are never delivered again.
func (s *Store) UnpinnedRevisions(ctx context.Context, limit int) ([]UnpinnedRevision, error) {
	rows, err := s.pool.Query(ctx, `SELECT o.name, r.workload_uid::text, r.number, r.generation, r.template->>'image', r.template,
		r.number = (SELECT max(x.number) FROM workload_revisions x WHERE x.workload_uid = r.workload_uid)
		FROM workload_revisions r JOIN objects o ON o.uid = r.workload_uid
		WHERE r.template->>'driver' = 'oci' AND r.image_digest = '' AND strpos(coalesce(r.template->>'image', ''), '@') = 0
		  AND (o.spec ? 'rollout' OR r.number = (SELECT max(x.number) FROM workload_revisions x WHERE x.workload_uid = r.workload_uid))
		ORDER BY r.created_at, r.number LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read unpinned revisions: %w", classify(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (UnpinnedRevision, error) {
		var u UnpinnedRevision
		var img *string
		var tmpl []byte
		err := row.Scan(&u.Workload, &u.WorkloadUID, &u.Number, &u.Generation, &img, &tmpl, &u.Latest)
		u.Template = tmpl
		if img != nil {
			u.Image = *img
		}
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("read unpinned revisions: %w", classify(err))
	}
	return out, nil
}

// PinRevisionImage records the digest a revision's image tag resolved
// to. A pin is never changed: a revision pinned already keeps its digest
// (pinned reports whether this call pinned it).
func (s *Store) PinRevisionImage(ctx context.Context, workloadUID string, number int64, digest string) (pinned bool, err error) {
	tag, err := s.pool.Exec(ctx, `UPDATE workload_revisions SET image_digest = $3 WHERE workload_uid = $1 AND number = $2 AND image_digest = ''`,
		workloadUID, number, digest)
	if err != nil {
		return false, fmt.Errorf("pin the image of revision %d: %w", number, classify(err))
	}
	return tag.RowsAffected() == 1, nil
}

// RevisionImageAt is the image and its pinned digest of the revision in
// force at a workload's generation (the newest introduced at or before
// it); ok is false when no kept revision covers it.
func (s *Store) RevisionImageAt(ctx context.Context, workloadUID string, generation int64) (image, digest string, ok bool, err error) {
	var img *string
	err = s.pool.QueryRow(ctx, `SELECT template->>'image', image_digest FROM workload_revisions
		WHERE workload_uid = $1 AND generation <= $2 ORDER BY generation DESC, number DESC LIMIT 1`, workloadUID, generation).Scan(&img, &digest)
	if isNoRows(err) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("read the image of a revision: %w", classify(err))
	}
	if img != nil {
		image = *img
	}
	return image, digest, true, nil
}

// StaleImageConditions names the workloads that carry an ImageResolved
// condition though their template has no tag to resolve any more (no
// image, or one named by digest).
func (s *Store) StaleImageConditions(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM objects WHERE kind = 'Workload'
		AND status->'conditions' @> '[{"type":"ImageResolved"}]'
		AND NOT (spec->'template'->>'driver' = 'oci' AND strpos(coalesce(spec->'template'->>'image', ''), '@') = 0)`)
	if err != nil {
		return nil, fmt.Errorf("read stale image conditions: %w", classify(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read stale image conditions: %w", classify(err))
	}
	return out, nil
}

// PinnedRevision is a revision's generation, image and pinned digest
// (empty when not pinned).
type PinnedRevision struct {
	WorkloadUID string
	Generation  int64
	Image       string
	Digest      string
}

// PinnedRevisions lists every revision's image and pin, so a hub that
// starts leading reads them in one query rather than one per delivery.
func (s *Store) PinnedRevisions(ctx context.Context) ([]PinnedRevision, error) {
	rows, err := s.pool.Query(ctx, `SELECT workload_uid::text, generation, coalesce(template->>'image', ''), image_digest
		FROM workload_revisions`)
	if err != nil {
		return nil, fmt.Errorf("read pinned revisions: %w", classify(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PinnedRevision])
	if err != nil {
		return nil, fmt.Errorf("read pinned revisions: %w", classify(err))
	}
	return out, nil
}
