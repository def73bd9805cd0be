package pgstore_test

import (
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// TestHeldStatementsKeepOrderAndAtomicity: a revision's statements, held
// back to go with the transaction's next statement or its COMMIT, are
// seen by the transaction's later reads, and when one fails at COMMIT
// nothing of the transaction is stored.
func TestHeldStatementsKeepOrderAndAtomicity(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	ctx := t.Context()
	rev := func(n int64) pgstore.RevisionRow {
		return pgstore.RevisionRow{Number: n, TemplateHash: "h", Template: []byte(`{}`), Generation: n, Actor: "test", CreatedAt: time.Now().UTC()}
	}
	var uid string
	err := s.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
		rec, err := tx.Create(ctx, workloadRec("w"))
		if err != nil {
			return err
		}
		uid = rec.Meta.UID
		if err := tx.PutRevision(ctx, uid, rev(1), 10); err != nil {
			return err
		}
		latest, ok, err := tx.LatestRevision(ctx, uid)
		if err != nil || !ok || latest.Number != 1 {
			t.Errorf("a read after a held revision: want revision 1; got %+v %v %v", latest, ok, err)
		}
		return tx.PutRevision(ctx, uid, rev(2), 10) // held until COMMIT
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := s.Revisions(ctx, "w"); err != nil || len(rows) != 2 {
		t.Fatalf("want revisions 1 and 2 stored (the second with COMMIT); got %d, %v", len(rows), err)
	}

	// Revision 2 again: the held insert fails at COMMIT, and the create
	// before it in the same transaction is not stored either.
	err = s.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
		if _, err := tx.Create(ctx, workloadRec("x")); err != nil {
			return err
		}
		return tx.PutRevision(ctx, uid, rev(2), 10)
	})
	if err == nil {
		t.Fatal("a held statement that fails: want the transaction's error")
	}
	if _, err := s.Get(ctx, "Workload", "x"); api.ErrorCode(err) != api.CodeNotFound {
		t.Errorf("the create before the failed held statement: want it not stored; got %v", err)
	}
}
