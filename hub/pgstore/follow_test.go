package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// TestFollow: the first read lists the kind whole, later ones bring only
// the changes since, in order; compaction past the follower, its relist
// period and Relist each make the next read a whole list again.
func TestFollow(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	ctx := t.Context()
	create := func(name string) {
		t.Helper()
		if _, err := s.Create(ctx, testActor, workloadRec(name)); err != nil {
			t.Fatal(err)
		}
	}
	create("w1")
	create("w2")
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f := pgstore.NewFollow(s, "Workload", time.Minute, func() time.Time { return now })
	read := func() pgstore.FollowUpdate {
		t.Helper()
		u, err := f.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if u := read(); !u.Full || fmt.Sprint(listed(t, u)) != "[w1 w2]" {
		t.Fatalf("the first read: full %v, %v", u.Full, listed(t, u))
	}
	create("w3")
	if _, _, err := s.Delete(ctx, testActor, "Workload", "w1", ""); err != nil {
		t.Fatal(err)
	}
	// Changes become readable once the watch horizon passes them; the
	// list may already have shown the first two (a list's version can
	// lie below changes it shows, which then come again).
	var got []string
	for deadline := time.Now().Add(30 * time.Second); !slices.Contains(got, "DELETED w1"); {
		u := read()
		if u.Full {
			t.Fatal("a read after a few writes listed whole")
		}
		for _, c := range u.Changes {
			got = append(got, c.Type+" "+c.Name)
		}
		if time.Now().After(deadline) {
			t.Fatalf("changes after 30 s: %v", got)
		}
	}
	again := got[:len(got)-2]
	if len(got) < 2 || got[len(got)-2] != "ADDED w3" || got[len(got)-1] != "DELETED w1" ||
		slices.ContainsFunc(again, func(c string) bool { return c != "ADDED w1" && c != "ADDED w2" }) {
		t.Fatalf("changes: %v", got)
	}
	last, err := s.Changes(ctx, "Workload", 0, 100)
	if err != nil || len(last) == 0 {
		t.Fatalf("changes from 0: %d, %v", len(last), err)
	}
	rec, err := last[len(last)-1].Record()
	if err != nil || rec.Meta.Name != "w1" || rec.Meta.UID == "" || string(rec.Spec) != `{"replicas":1,"template":{"driver":"sim"}}` {
		t.Fatalf("a change's record: %+v, %v", rec, err)
	}
	if u := read(); u.Full || len(u.Changes) != 0 {
		t.Fatalf("nothing changed, yet: %+v", u)
	}

	// Compacted past the follower: a whole list (w2..w5).
	create("w4")
	create("w5")
	// Compaction stops below the watch horizon: wait until it passed w5.
	changesUntil(t, s, "Workload", 0, func(cs []pgstore.Change) bool {
		return len(cs) > 0 && cs[len(cs)-1].Name == "w5"
	})
	if _, err := s.Compact(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if u := read(); !u.Full || fmt.Sprint(listed(t, u)) != "[w2 w3 w4 w5]" {
		t.Fatalf("after compaction: full %v, %v, %d changes", u.Full, listed(t, u), len(u.Changes))
	}
	now = now.Add(time.Minute)
	if u := read(); !u.Full {
		t.Fatal("no whole list after the relist period")
	}
	if u := read(); u.Full {
		t.Fatal("a whole list again right after one")
	}
	f.Relist()
	if u := read(); !u.Full {
		t.Fatal("no whole list after Relist")
	}
}

// listed is what a whole list's Each gives, by name.
func listed(t *testing.T, u pgstore.FollowUpdate) []string {
	t.Helper()
	var names []string
	if err := u.Each(t.Context(), func(rec *pgstore.Record) error {
		names = append(names, rec.Meta.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestFollowPages: a whole list is read a page at a time, and what
// changes while its later pages are read comes again as changes, from
// the first page's version on.
func TestFollowPages(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	ctx := t.Context()
	for _, name := range []string{"p1", "p2", "p3", "p4", "p5"} {
		if _, err := s.Create(ctx, testActor, workloadRec(name)); err != nil {
			t.Fatal(err)
		}
	}
	changesUntil(t, s, "Workload", 0, func(cs []pgstore.Change) bool { return len(cs) > 0 && cs[len(cs)-1].Name == "p5" })
	f := pgstore.NewFollow(s, "Workload", time.Minute, nil)
	f.SetPage(2)
	u, err := f.Read(ctx)
	if err != nil || !u.Full {
		t.Fatalf("the first read: full %v, %v", u.Full, err)
	}
	// While the first page is handed over, p5 (on the last page) is
	// deleted and p6 (after every page) created.
	var got []string
	err = u.Each(ctx, func(rec *pgstore.Record) error {
		got = append(got, rec.Meta.Name)
		if rec.Meta.Name == "p1" {
			if _, _, err := s.Delete(ctx, testActor, "Workload", "p5", ""); err != nil {
				return err
			}
			if _, err := s.Create(ctx, testActor, workloadRec("p6")); err != nil {
				return err
			}
			changesUntil(t, s, "Workload", 0, func(cs []pgstore.Change) bool { return len(cs) > 0 && cs[len(cs)-1].Name == "p6" })
		}
		return nil
	})
	if err != nil || fmt.Sprint(got) != "[p1 p2 p3 p4 p6]" {
		t.Fatalf("the pages: %v, %v", got, err)
	}
	// From the first page's version: p5's deletion and p6 come again.
	var changes []string
	for deadline := time.Now().Add(30 * time.Second); !slices.Contains(changes, "ADDED p6"); {
		u, err := f.Read(ctx)
		if err != nil || u.Full {
			t.Fatalf("the read after the list: full %v, %v", u.Full, err)
		}
		for _, c := range u.Changes {
			changes = append(changes, c.Type+" "+c.Name)
		}
		if time.Now().After(deadline) {
			t.Fatalf("changes after 30 s: %v", changes)
		}
	}
	if !slices.Contains(changes, "DELETED p5") {
		t.Fatalf("changes after the list: %v; want p5's deletion among them", changes)
	}
}

// TestFollowChunks: a follower behind by more changes than a Read returns
// reads them a chunk at a time, with More, while it has read in a row no
// more changes than the kind had objects at its last list; further
// behind, it lists whole, unless hurried (Hurry).
func TestFollowChunks(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	ctx := t.Context()
	createReadable(t, s, "p1", "p2", "p3", "p4", "p5", "p6")
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f := pgstore.NewFollow(s, "Workload", time.Minute, func() time.Time { return now })
	f.SetChunk(2)
	u, err := f.Read(ctx)
	if err != nil || !u.Full || len(listed(t, u)) != 6 {
		t.Fatalf("the first read: full %v, %v", u.Full, err)
	}
	reads := func(n int) string {
		t.Helper()
		var got []string
		for range n {
			u, err := f.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case u.Full:
				got = append(got, fmt.Sprintf("list of %d", len(listed(t, u))))
			case u.More:
				got = append(got, fmt.Sprint(changeNames(u), "+"))
			default:
				got = append(got, fmt.Sprint(changeNames(u)))
			}
		}
		return strings.Join(got, " ")
	}
	// Five behind, six known: read in chunks, caught up at the third.
	createReadable(t, s, "q1", "q2", "q3", "q4", "q5")
	if got, want := reads(3), "[q1 q2]+ [q3 q4]+ [q5]"; got != want {
		t.Fatalf("five changes behind: %s; want %s", got, want)
	}
	// Eight behind, six known: three chunks, then a list of all 19.
	createReadable(t, s, "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8")
	if got, want := reads(4), "[r1 r2]+ [r3 r4]+ [r5 r6]+ list of 19"; got != want {
		t.Fatalf("eight changes behind: %s; want %s", got, want)
	}
	// The list counted 19: caught up, nothing more.
	if got, want := reads(1), "[]"; got != want {
		t.Fatalf("after the list: %s; want %s", got, want)
	}
	// Hurried, a follower reads a chunk however far behind, once.
	names := make([]string, 25)
	for i := range names {
		names[i] = fmt.Sprintf("s%02d", i)
	}
	createReadable(t, s, names...)
	if got := reads(9); strings.Count(got, "+") != 9 || !strings.HasSuffix(got, "[s16 s17]+") {
		t.Fatalf("25 behind, 19 known: %s; want nine chunks, to s17", got)
	}
	// 18 read in a row: the next chunk would pass the 19 known.
	f.Hurry()
	if got, want := reads(1), "[s18 s19]+"; got != want {
		t.Fatalf("hurried, 20 read in a row, 19 known: %s; want %s", got, want)
	}
	if got, want := reads(1), "list of 44"; got != want {
		t.Fatalf("after the hurried read: %s; want %s", got, want)
	}
	// Nor does a hurried read list for the relist period; Relist it
	// does.
	now = now.Add(2 * time.Minute)
	f.Hurry()
	if got, want := reads(1), "[]"; got != want {
		t.Fatalf("hurried, past the relist period: %s; want %s", got, want)
	}
	if got, want := reads(1), "list of 44"; got != want {
		t.Fatalf("past the relist period: %s; want %s", got, want)
	}
	f.Relist()
	f.Hurry()
	if got, want := reads(1), "list of 44"; got != want {
		t.Fatalf("hurried after Relist: %s; want %s", got, want)
	}
}

// changeNames is the names of u's changes, in order.
func changeNames(u pgstore.FollowUpdate) []string {
	names := []string{}
	for _, c := range u.Changes {
		names = append(names, c.Name)
	}
	return names
}

// TestFollowHurryOutlivesAFailedRead: a hurried Read that fails leaves
// the next one hurried (On an error the next Read starts from the same
// place): it reads a chunk rather than the list it was told to spare.
func TestFollowHurryOutlivesAFailedRead(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	ctx := t.Context()
	createReadable(t, s, "p1", "p2")
	src := &failingChanges{Store: s}
	f := pgstore.NewFollow(src, "Workload", time.Hour, nil)
	f.SetChunk(2)
	if u, err := f.Read(ctx); err != nil || !u.Full || len(listed(t, u)) != 2 {
		t.Fatalf("the first read: full %v, %v", u.Full, err)
	}
	createReadable(t, s, "q1", "q2", "q3", "q4", "q5")
	// Two known, two read in a row: the next unhurried Read lists.
	if u, err := f.Read(ctx); err != nil || !u.More || len(u.Changes) != 2 {
		t.Fatalf("five behind: more %v, %d changes, %v; want a chunk of 2", u.More, len(u.Changes), err)
	}
	f.Hurry()
	src.fail = true
	if _, err := f.Read(ctx); err == nil {
		t.Fatal("a Read whose read of the log failed did not fail")
	}
	src.fail = false
	u, err := f.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Full || !u.More || fmt.Sprint(changeNames(u)) != "[q3 q4]" {
		t.Fatalf("the Read after a hurried one failed: full %v, more %v, %v; want the chunk [q3 q4]", u.Full, u.More, changeNames(u))
	}
}

// failingChanges is a store whose reads of the change log fail while
// fail is set.
type failingChanges struct {
	*pgstore.Store
	fail bool
}

func (f *failingChanges) Changes(ctx context.Context, kind string, after int64, limit int) ([]pgstore.Change, error) {
	if f.fail {
		return nil, errors.New("the log is unreachable")
	}
	return f.Store.Changes(ctx, kind, after, limit)
}

// createReadable creates workloads named names and waits until the change
// log shows the last of them (the watch horizon passed it).
func createReadable(t *testing.T, s *pgstore.Store, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := s.Create(t.Context(), testActor, workloadRec(name)); err != nil {
			t.Fatal(err)
		}
	}
	last := names[len(names)-1]
	changesUntil(t, s, "Workload", 0, func(cs []pgstore.Change) bool { return len(cs) > 0 && cs[len(cs)-1].Name == last })
}
