package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// TestCreateDrawsItsVersionInSQL: Store.Create of a kind whose hooks read
// no version sends its transaction in one round trip, the version drawn
// by PostgreSQL. The answer, the row, the change log (the object a
// watcher gets) and the audit row agree on that version; an unversioned
// hook runs with the other fields set and its held rows commit with the
// object; a taken name is AlreadyExists with nothing of the second
// create stored, also when a hook's read sent the row before COMMIT.
func TestCreateDrawsItsVersionInSQL(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	ctx := t.Context()
	var hookSaw []pgstore.Record
	read := false // the hook reads (sends what is held) before returning
	s.OnSpecChangeUnversioned("Workload", func(ctx context.Context, tx *pgstore.Tx, cur, next *pgstore.Record) error {
		hookSaw = append(hookSaw, *next)
		if read {
			var one int
			if err := tx.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
				return err
			}
		}
		return tx.PutRevision(ctx, next.Meta.UID, pgstore.RevisionRow{Number: 1, TemplateHash: "h", Template: []byte(`{}`),
			Generation: next.Meta.Generation, Actor: tx.Actor().Name, CreatedAt: tx.Now().UTC()}, 10)
	})

	out, err := s.Create(ctx, testActor, workloadRec("a"))
	if err != nil {
		t.Fatal(err)
	}
	if out.RV() <= 0 || out.Meta.UID == "" || out.Meta.Generation != 1 {
		t.Fatalf("the answer: want a version, a uid and generation 1; got %+v", out.Meta)
	}
	if len(hookSaw) != 1 || hookSaw[0].Meta.UID != out.Meta.UID || hookSaw[0].Meta.ResourceVersion != "" || hookSaw[0].Meta.Generation != 1 {
		t.Fatalf("the unversioned hook: want it run once with the uid and generation, before the version; got %+v", hookSaw)
	}
	got, err := s.Get(ctx, "Workload", "a")
	if err != nil || got.Meta.ResourceVersion != out.Meta.ResourceVersion {
		t.Fatalf("the stored row: want version %s; got %+v, %v", out.Meta.ResourceVersion, got, err)
	}
	// The change is read once every transaction that began before it
	// ended (the watch horizon, server-wide: other tests' too).
	var changes []pgstore.Change
	deadline := time.Now().Add(30 * time.Second)
	for len(changes) == 0 && time.Now().Before(deadline) {
		if changes, err = s.Changes(ctx, "Workload", 0, 10); err != nil {
			t.Fatal(err)
		}
		if len(changes) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(changes) != 1 {
		t.Fatalf("the change log: want one change within 30 s; got %d", len(changes))
	}
	var obj api.Workload
	if err := json.Unmarshal(changes[0].Object, &obj); err != nil {
		t.Fatalf("the change's object is not JSON: %v\n%s", err, changes[0].Object)
	}
	if changes[0].ResourceVersion != out.RV() || obj.Metadata.ResourceVersion != out.Meta.ResourceVersion ||
		obj.Metadata.UID != out.Meta.UID || changes[0].Type != api.Added || obj.Spec.Replicas != 1 {
		t.Fatalf("the change: want ADDED at %s with that version in its object; got %s at %d: %s",
			out.Meta.ResourceVersion, changes[0].Type, changes[0].ResourceVersion, changes[0].Object)
	}
	audit, err := s.AuditLog(ctx, "Workload", "a", 0, 10)
	if err != nil || len(audit) != 1 || audit[0].ResourceVersion != out.Meta.ResourceVersion || audit[0].Result != "ok" || audit[0].Actor != testActor.Name {
		t.Fatalf("the audit log: want one ok row at %s by %s; got %+v, %v", out.Meta.ResourceVersion, testActor.Name, audit, err)
	}
	if revs, err := s.Revisions(ctx, "a"); err != nil || len(revs) != 1 {
		t.Fatalf("the hook's held revision: want it stored with the object; got %d, %v", len(revs), err)
	}

	// The name again, with the row held to COMMIT, then sent by the
	// hook's read.
	for _, r := range []bool{false, true} {
		read = r
		_, err := s.Create(ctx, testActor, workloadRec("a"))
		if api.ErrorCode(err) != api.CodeAlreadyExists {
			t.Fatalf("a taken name (hook reads: %v): want AlreadyExists; got %v", r, err)
		}
	}
	if changes, err := s.Changes(ctx, "Workload", 0, 10); err != nil || len(changes) != 1 {
		t.Fatalf("after the refused creates: want still one change; got %d, %v", len(changes), err)
	}
	if revs, err := s.Revisions(ctx, "a"); err != nil || len(revs) != 1 || revs[0].Generation != 1 {
		t.Fatalf("after the refused creates: want still the one revision; got %+v, %v", revs, err)
	}
	audit, err = s.AuditLog(ctx, "Workload", "a", 0, 10)
	if err != nil || len(audit) != 3 {
		t.Fatalf("after the refused creates: want the ok row and two refusals; got %+v, %v", audit, err)
	}
	for _, e := range audit {
		if e.Result != "ok" && e.Result != api.CodeAlreadyExists {
			t.Errorf("audit row %+v: want ok or %s", e, api.CodeAlreadyExists)
		}
	}

	// A hook's failure stores nothing, and the pool's connections stay
	// usable (nothing was sent: no transaction to end).
	s.OnSpecChangeUnversioned("Workload", func(context.Context, *pgstore.Tx, *pgstore.Record, *pgstore.Record) error {
		return errors.New("refused by the hook")
	})
	read = false
	for range 6 { // more than the pool's connections
		if _, err := s.Create(ctx, testActor, workloadRec("b")); err == nil {
			t.Fatal("a failing hook: want the create to fail")
		}
	}
	if _, err := s.Get(ctx, "Workload", "b"); api.ErrorCode(err) != api.CodeNotFound {
		t.Fatalf("a failing hook: want nothing stored; got %v", err)
	}
	if revs, err := s.RevisionsOf(ctx, []string{"b"}); err != nil || len(revs) != 0 {
		t.Fatalf("a failing hook: want no revision stored; got %v, %v", revs, err)
	}
}

// TestCreateWithVersionedHook: a kind with a hook that reads the version
// (OnSpecChange) still gets it in the hook, as before.
func TestCreateWithVersionedHook(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	ctx := t.Context()
	var saw string
	s.OnSpecChange("Config", func(_ context.Context, _ *pgstore.Tx, _, next *pgstore.Record) error {
		saw = next.Meta.ResourceVersion
		return nil
	})
	out, err := s.Create(ctx, testActor, &pgstore.Record{Kind: "Config", Meta: api.ObjectMeta{Name: "c"}, Spec: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if saw == "" || saw != out.Meta.ResourceVersion {
		t.Fatalf("a versioned hook: want it to see the version %s; got %q", out.Meta.ResourceVersion, saw)
	}
}
