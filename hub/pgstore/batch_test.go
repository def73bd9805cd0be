package pgstore_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// TestBatchWritesTogether: writes queued on a Batch land as Mutate's and
// Create's would (a change-log row each, in resourceVersion order; the
// generation and spec hooks only for a spec change; nothing for a change
// of nothing), and a batch that fails (a taken name) leaves nothing of
// its transaction behind.
func TestBatchWritesTogether(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	var hooked atomic.Int32
	s.OnSpecChange("Workload", func(_ context.Context, _ *pgstore.Tx, cur, _ *pgstore.Record) error {
		if cur != nil {
			hooked.Add(1) // spec changes only, not the creates below
		}
		return nil
	})
	ctx := t.Context()
	var after int64 // the last create's version
	for _, n := range []string{"a", "b", "c"} {
		rec, err := s.Create(ctx, testActor, workloadRec(n))
		if err != nil {
			t.Fatal(err)
		}
		after = rec.RV()
	}

	var got map[string]*pgstore.Record
	err := s.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
		var err error
		if got, err = tx.LockAll(ctx, "Workload", []string{"c", "a", "b", "missing"}); err != nil {
			return err
		}
		b := tx.Batch()
		if _, err := b.Update(ctx, "place", got["a"], func(cur *pgstore.Record) error {
			cur.Status = []byte(`{"observedGeneration":1}`)
			return nil
		}); err != nil {
			return err
		}
		if out, err := b.Update(ctx, "place", got["b"], func(*pgstore.Record) error { return nil }); err != nil || out != got["b"] {
			t.Errorf("a change of nothing: want the record as it was and no error; got %v, %v", out, err)
		}
		if _, err := b.Update(ctx, "update", got["c"], func(cur *pgstore.Record) error {
			cur.Spec = []byte(`{"replicas":2,"template":{"driver":"sim"}}`)
			return nil
		}); err != nil {
			return err
		}
		if _, err := b.Update(ctx, "place", got["a"], func(*pgstore.Record) error { return nil }); api.ErrorCode(err) != api.CodeInvalid {
			t.Errorf("a second write of a in one batch: want Invalid; got %v", err)
		}
		if _, err := b.Create(ctx, &pgstore.Record{Kind: "Event", Meta: api.ObjectMeta{Name: "ev-1"}, Spec: []byte(`{}`)}); err != nil {
			return err
		}
		return b.Send(ctx)
	})
	if err != nil {
		t.Fatalf("want the batch committed; got %v", err)
	}
	if len(got) != 3 || got["missing"] != nil {
		t.Errorf("LockAll: want a, b and c; got %d records", len(got))
	}
	cs := changesUntil(t, s, "Workload", after, func(cs []pgstore.Change) bool { return len(cs) >= 2 })
	if len(cs) != 2 || cs[0].Name != "a" || cs[1].Name != "c" || cs[0].ResourceVersion >= cs[1].ResourceVersion {
		t.Errorf("want the changes of a then c (b changed nothing); got %v", names(cs))
	}
	c, err := s.Get(ctx, "Workload", "c")
	if err != nil || c.Meta.Generation != 2 || strconv.FormatInt(cs[1].ResourceVersion, 10) != c.Meta.ResourceVersion {
		t.Errorf("c after its spec change: want generation 2 at the change's version; got %+v, %v", c, err)
	}
	if a, err := s.Get(ctx, "Workload", "a"); err != nil || a.Meta.Generation != 1 || !strings.Contains(string(a.Status), "observedGeneration") {
		t.Errorf("a after its status change: want generation 1 and the status; got %+v, %v", a, err)
	}
	if n := hooked.Load(); n != 1 {
		t.Errorf("spec hooks: want one run (c's spec change); got %d", n)
	}
	if _, err := s.Get(ctx, "Event", "ev-1"); err != nil {
		t.Errorf("the event created in the batch: %v", err)
	}

	// A taken name fails the batch; the update queued with it is gone too.
	before := cs[len(cs)-1].ResourceVersion
	err = s.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
		locked, err := tx.LockAll(ctx, "Workload", []string{"b"})
		if err != nil {
			return err
		}
		b := tx.Batch()
		if _, err := b.Update(ctx, "place", locked["b"], func(cur *pgstore.Record) error {
			cur.Meta.Labels = map[string]string{"x": "y"}
			return nil
		}); err != nil {
			return err
		}
		if _, err := b.Create(ctx, workloadRec("a")); err != nil {
			return err
		}
		return b.Send(ctx)
	})
	if api.ErrorCode(err) != api.CodeAlreadyExists {
		t.Fatalf("a batch creating a taken name: want AlreadyExists; got %v", err)
	}
	if b, err := s.Get(ctx, "Workload", "b"); err != nil || len(b.Meta.Labels) != 0 {
		t.Errorf("b after the failed batch: want it unchanged; got %+v, %v", b, err)
	}
	if cs, err := s.Changes(ctx, "Workload", before, 10); err != nil || len(cs) > 0 {
		t.Errorf("the failed batch: want no change logged; got %v, %v", names(cs), err)
	}
	if ws, err := s.List(ctx, "Workload", pgstore.ListOptions{Limit: -1}); err != nil || !slices.EqualFunc(ws.Items, []string{"a", "b", "c"}, func(r *pgstore.Record, n string) bool { return r.Meta.Name == n }) {
		t.Errorf("want workloads a, b, c; got %v", err)
	}
}

// TestBatchRefreshAndLater: a Batch.Refresh runs the prepare hooks and
// hands the spec hooks Refreshing and the cause; a revision put in the
// transaction is what LatestRevision answers after LatestRevisions read
// ahead; Later's writes land before COMMIT, and one that fails (a taken
// name) fails the whole transaction.
func TestBatchRefreshAndLater(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	s.OnSpecPrepare("Workload", func(_ context.Context, tx *pgstore.Tx, next *pgstore.Record) error {
		if tx.Refreshing() {
			next.Spec = []byte(`{"replicas":1,"template":{"driver":"sim","annotations":{"pin":"2"}}}`)
		}
		return nil
	})
	var causes []string
	var readAhead []int64 // the latest revision numbers the hook found
	s.OnSpecChange("Workload", func(ctx context.Context, tx *pgstore.Tx, cur, next *pgstore.Record) error {
		if cur == nil {
			return nil
		}
		causes = append(causes, strconv.FormatBool(tx.Refreshing())+" "+tx.ChangeCause())
		latest, _, err := tx.LatestRevision(ctx, next.Meta.UID)
		if err != nil {
			return err
		}
		readAhead = append(readAhead, latest.Number)
		if err := tx.PutRevision(ctx, next.Meta.UID, pgstore.RevisionRow{Number: latest.Number + 1, TemplateHash: "h", Template: []byte(`{}`), Generation: next.Meta.Generation}, 10); err != nil {
			return err
		}
		if again, ok, err := tx.LatestRevision(ctx, next.Meta.UID); err != nil || !ok || again.Number != latest.Number+1 {
			t.Errorf("LatestRevision after PutRevision: want %d; got %d, %v, %v", latest.Number+1, again.Number, ok, err)
		}
		_, err = tx.Later().Create(ctx, &pgstore.Record{Kind: "Event", Meta: api.ObjectMeta{Name: "ev-" + next.Meta.Name}, Spec: []byte(`{}`)})
		return err
	})
	ctx := t.Context()
	for _, n := range []string{"a", "b"} {
		if _, err := s.Create(ctx, testActor, workloadRec(n)); err != nil {
			t.Fatal(err)
		}
	}
	refresh := func() error {
		return s.InTx(ctx, testActor, func(tx *pgstore.Tx) error {
			got, err := tx.LockAll(ctx, "Workload", []string{"a", "b"})
			if err != nil {
				return err
			}
			if err := tx.LatestRevisions(ctx, []string{got["a"].Meta.UID, got["b"].Meta.UID}); err != nil {
				return err
			}
			b := tx.Batch()
			for _, n := range []string{"a", "b"} {
				if _, err := b.Refresh(ctx, "update", got[n], "secret db v2"); err != nil {
					return err
				}
			}
			return b.Send(ctx)
		})
	}
	if err := refresh(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"true secret db v2", "true secret db v2"}; !slices.Equal(causes, want) {
		t.Errorf("spec hooks: want %q; got %q", want, causes)
	}
	if !slices.Equal(readAhead, []int64{0, 0}) {
		t.Errorf("LatestRevision after LatestRevisions read none: want 0, 0; got %v", readAhead)
	}
	for _, n := range []string{"a", "b"} {
		w, err := s.Get(ctx, "Workload", n)
		if err != nil || w.Meta.Generation != 2 || !strings.Contains(strings.ReplaceAll(string(w.Spec), " ", ""), `"pin":"2"`) {
			t.Errorf("workload %s: want generation 2 with the prepared spec; got %v %s", n, err, w.Spec)
		}
		if _, err := s.Get(ctx, "Event", "ev-"+n); err != nil {
			t.Errorf("the event queued on Later for %s: %v", n, err)
		}
		revs, err := s.Revisions(ctx, n)
		if err != nil || len(revs) != 1 {
			t.Errorf("revisions of %s: want 1; got %d, %v", n, len(revs), err)
		}
	}

	// Again with the events' names taken: nothing of it lands.
	causes, readAhead = nil, nil
	s.OnSpecPrepare("Workload", func(_ context.Context, tx *pgstore.Tx, next *pgstore.Record) error {
		if tx.Refreshing() {
			next.Spec = []byte(`{"replicas":1,"template":{"driver":"sim","annotations":{"pin":"3"}}}`)
		}
		return nil
	})
	if err := refresh(); api.ErrorCode(err) != api.CodeAlreadyExists {
		t.Fatalf("a Later create whose name is taken: want AlreadyExists; got %v", err)
	}
	if !slices.Equal(readAhead, []int64{1, 1}) {
		t.Errorf("LatestRevision after LatestRevisions: want the revisions read ahead, 1, 1; got %v", readAhead)
	}
	if w, err := s.Get(ctx, "Workload", "a"); err != nil || w.Meta.Generation != 2 {
		t.Errorf("after the failed transaction: want workload a at generation 2; got %v", err)
	}
}
