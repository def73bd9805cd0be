package pgstore_test

import (
	"encoding/json"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// TestDataVersionsKept: a config's and a secret's values are kept by
// version (resourceVersions, far beyond 32 bits), read back at a version
// or the newest; the older one goes once no kept workload revision pins
// it, the newest never.
func TestDataVersionsKept(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	r := ring(t, newKey(t))
	ctx := t.Context()
	const old, cur = int64(5_000_000_001), int64(5_000_000_002)
	var cfg, sec, wl *pgstore.Record
	err := s.InTx(ctx, pgstore.Actor{Name: "test"}, func(tx *pgstore.Tx) (err error) {
		if cfg, err = tx.Create(ctx, &pgstore.Record{Kind: "Config", Meta: api.ObjectMeta{Name: "app"}, Spec: []byte(`{"data":{"k":"old"}}`)}); err != nil {
			return err
		}
		if sec, err = tx.Create(ctx, &pgstore.Record{Kind: "Secret", Meta: api.ObjectMeta{Name: "db"}, Spec: []byte(`{}`)}); err != nil {
			return err
		}
		if wl, err = tx.Create(ctx, &pgstore.Record{Kind: "Workload", Meta: api.ObjectMeta{Name: "web"}, Spec: []byte(`{}`)}); err != nil {
			return err
		}
		for _, v := range []int64{old, cur} {
			if err := tx.PutConfigValue(ctx, cfg.Meta.UID, v, json.RawMessage(`{"data":{"k":"v`+string(rune('0'+v%10))+`"}}`)); err != nil {
				return err
			}
			if err := tx.PutSecretValue(ctx, r, sec.Meta.UID, v, make([]byte, 32), []byte{byte(v % 10)}); err != nil {
				return err
			}
		}
		// A kept revision pins the old versions.
		return tx.PutRevision(ctx, wl.Meta.UID, pgstore.RevisionRow{Number: 1, TemplateHash: "h", Generation: 1, Actor: "test",
			Template: json.RawMessage(`{"annotations":{"` + api.AnnotationData + `":"Config/app=5000000001,Secret/db=5000000001"}}`)}, 10)
	})
	if err != nil {
		t.Fatal(err)
	}
	spec, v, err := s.ConfigValueAt(ctx, cfg.Meta.UID, old)
	if err != nil || v != old || string(spec) != `{"data": {"k": "v1"}}` {
		t.Errorf("config at %d: got %s (version %d), %v", old, spec, v, err)
	}
	if _, v, err := s.ConfigValueAt(ctx, cfg.Meta.UID, 0); err != nil || v != cur {
		t.Errorf("the newest config: want version %d; got %d, %v", cur, v, err)
	}
	if sv, err := s.SecretValueAt(ctx, r, sec.Meta.UID, old); err != nil || sv.Version != old || sv.Sealed[0] != 1 {
		t.Errorf("secret at %d: got %+v, %v", old, sv, err)
	}
	if n, err := s.PruneDataVersions(ctx); err != nil || n != 0 {
		t.Errorf("pinned: want nothing pruned; got %d, %v", n, err)
	}
	if err := s.InTx(ctx, pgstore.Actor{Name: "test"}, func(tx *pgstore.Tx) error {
		return tx.TrimRevisions(ctx, wl.Meta.UID, 2, 1)
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneDataVersions(ctx); err != nil || n != 2 {
		t.Errorf("no longer pinned: want the two old versions pruned; got %d, %v", n, err)
	}
	if _, err := s.SecretValueAt(ctx, r, sec.Meta.UID, old); api.ErrorCode(err) != api.CodeNotFound {
		t.Errorf("the pruned secret version: want NotFound; got %v", err)
	}
	if sv, err := s.SecretValue(ctx, r, sec.Meta.UID); err != nil || sv.Version != cur {
		t.Errorf("the newest secret version stays: got %+v, %v", sv, err)
	}
}
