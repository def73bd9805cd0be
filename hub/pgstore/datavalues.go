package pgstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/atollhq/atoll/api"
)

// PutConfigValue keeps a Config's spec at version (the resourceVersion of
// the write that set it), in that write's transaction: a workload
// revision that pins it can still be delivered once the config moved on.
func (t *Tx) PutConfigValue(ctx context.Context, uid string, version int64, spec json.RawMessage) error {
	t.dataVersions = nil
	_, err := t.tx.Exec(ctx, `INSERT INTO config_values (uid, version, spec) VALUES ($1, $2, $3)
		ON CONFLICT (uid, version) DO UPDATE SET spec = EXCLUDED.spec`, uid, version, spec)
	return err
}

// ConfigValueAt reads a Config's spec at version (0: the newest kept).
// NotFound when that version is not kept.
func (s *Store) ConfigValueAt(ctx context.Context, uid string, version int64) (json.RawMessage, int64, error) {
	var spec []byte
	err := s.pool.QueryRow(ctx, `SELECT version, spec FROM config_values WHERE uid = $1 AND ($2::bigint = 0 OR version = $2::bigint)
		ORDER BY version DESC LIMIT 1`, uid, version).Scan(&version, &spec)
	if isNoRows(err) {
		return nil, 0, api.Errorf(api.CodeNotFound, "the config has no kept value at version %d", version)
	}
	if err != nil {
		return nil, 0, classify(err)
	}
	return spec, version, nil
}

// DataVersion is the newest version of the values of the Config or
// Secret kind/name (ok false when it has none: no such object, or one
// from before values were versioned that was never written since). It is
// read once per transaction and object (a hundred workloads pinning one
// secret in one write cost one statement); storing a value, or deleting a
// config or secret, in the transaction reads it again.
func (t *Tx) DataVersion(ctx context.Context, kind, name string) (int64, bool, error) {
	table := "config_values"
	if kind == "Secret" {
		table = "secret_values"
	} else if kind != "Config" {
		return 0, false, fmt.Errorf("data version of a %s", kind)
	}
	id := kind + "/" + name
	if v, ok := t.dataVersions[id]; ok {
		return v, v != 0, nil
	}
	var v *int64
	err := t.tx.QueryRow(ctx, `SELECT max(v.version) FROM `+table+` v JOIN objects o ON o.uid = v.uid WHERE o.kind = $1 AND o.name = $2`, kind, name).Scan(&v)
	if err != nil {
		return 0, false, err
	}
	if t.dataVersions == nil {
		t.dataVersions = map[string]int64{}
	}
	if v == nil {
		t.dataVersions[id] = 0
		return 0, false, nil
	}
	t.dataVersions[id] = *v
	return *v, true, nil
}

// pruneDataSQL deletes, of one table of versioned values, every version
// but the newest of its object that no kept workload revision pins: the
// revision's template names it in its api.AnnotationData ("Secret/db=40").
const pruneDataSQL = `DELETE FROM %[1]s v USING objects o
	WHERE o.uid = v.uid
	AND v.version < (SELECT max(w.version) FROM %[1]s w WHERE w.uid = v.uid)
	AND NOT EXISTS (SELECT 1 FROM workload_revisions r
		WHERE position(',' || o.kind || '/' || o.name || '=' || v.version::text || ',' IN
			',' || coalesce(r.template->'annotations'->>'` + api.AnnotationData + `', '') || ',') > 0)`

// PruneDataVersions deletes the older versions of Configs' and Secrets'
// values that no kept workload revision pins any more, and says how many
// it deleted. The newest version of each object is always kept.
func (s *Store) PruneDataVersions(ctx context.Context) (int64, error) {
	var n int64
	for _, table := range []string{"secret_values", "config_values"} {
		tag, err := s.pool.Exec(ctx, fmt.Sprintf(pruneDataSQL, table))
		if err != nil {
			return n, fmt.Errorf("prune kept versions of %s: %w", table, classify(err))
		}
		n += tag.RowsAffected()
	}
	return n, nil
}

// NewestDataVersions is the newest version of every Config's and
// Secret's values, by "Kind/name".
func (s *Store) NewestDataVersions(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT o.kind || '/' || o.name, max(v.version) FROM secret_values v JOIN objects o ON o.uid = v.uid GROUP BY o.kind, o.name
		UNION ALL SELECT o.kind || '/' || o.name, max(v.version) FROM config_values v JOIN objects o ON o.uid = v.uid GROUP BY o.kind, o.name`)
	if err != nil {
		return nil, fmt.Errorf("newest data versions: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			return nil, fmt.Errorf("newest data versions: %w", classify(err))
		}
		out[id] = v
	}
	return out, classify(rows.Err())
}
