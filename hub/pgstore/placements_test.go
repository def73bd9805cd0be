package pgstore_test

import (
	"fmt"
	"slices"
	"testing"
	"unsafe"

	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// putPlacements stores rows in one transaction.
func putPlacements(t testing.TB, s *pgstore.Store, rows []pgstore.Placement) {
	t.Helper()
	if err := s.InTx(t.Context(), pgstore.Actor{Name: "test"}, func(tx *pgstore.Tx) error {
		return tx.PutPlacements(t.Context(), rows)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestPlacementsReadBackEveryRowSortedSharingNames(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.NewDatabaseRoles(t))
	if rows, err := s.Placements(t.Context()); err != nil || rows != nil {
		t.Fatalf("an empty table: want nil, nil; got %v, %v", rows, err)
	}
	var want []pgstore.Placement
	for w := range 5 {
		for c := range 3 {
			want = append(want, pgstore.Placement{Workload: fmt.Sprintf("w%d", w), Cluster: fmt.Sprintf("c%d", c),
				Replicas: int32(w + c), Epoch: int64(10*w + c + 1), Generation: int64(w + 1), Deleted: (w+c)%4 == 0})
		}
	}
	shuffled := slices.Clone(want)
	slices.Reverse(shuffled)
	putPlacements(t, s, shuffled)
	for range 2 { // the second read is sized from the first
		got, err := s.Placements(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Placements:\nwant %v\ngot  %v", want, got)
		}
		// One string per workload and per cluster, not one per row.
		for i := 1; i < len(got); i++ {
			if got[i].Workload == got[i-1].Workload && unsafe.StringData(got[i].Workload) != unsafe.StringData(got[i-1].Workload) {
				t.Fatalf("rows %d and %d of workload %s hold two copies of its name", i-1, i, got[i].Workload)
			}
			if j := i - 3; j >= 0 && unsafe.StringData(got[i].Cluster) != unsafe.StringData(got[j].Cluster) {
				t.Fatalf("rows %d and %d of cluster %s hold two copies of its name", j, i, got[i].Cluster)
			}
		}
	}
	one, err := s.PlacementsOf(t.Context(), "w3")
	if err != nil || !slices.Equal(one, want[9:12]) {
		t.Fatalf("PlacementsOf(w3): want %v; got %v, %v", want[9:12], one, err)
	}
	if size := unsafe.Sizeof(pgstore.Placement{}); size > 64 {
		t.Errorf("a Placement takes %d bytes; want at most 64 (the leader placer holds every row)", size)
	}
}

// BenchmarkPlacements reads 16,000 rows (1,600 workloads over 10 of 16
// clusters: the scale harness at 1.6%).
//
//	go test ./hub/pgstore -run '^$' -bench BenchmarkPlacements -benchmem
func BenchmarkPlacements(b *testing.B) {
	s := open(b, pgtest.NewDatabaseRoles(b))
	var rows []pgstore.Placement
	for w := range 1600 {
		for c := range 10 {
			rows = append(rows, pgstore.Placement{Workload: fmt.Sprintf("workload-%06d", w), Cluster: fmt.Sprintf("region-%02d", (w+c)%16),
				Replicas: 1, Epoch: int64(w*10 + c), Generation: 1})
		}
	}
	putPlacements(b, s, rows)
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.Placements(b.Context())
		if err != nil || len(got) != len(rows) {
			b.Fatalf("want %d rows; got %d, %v", len(rows), len(got), err)
		}
	}
	b.ReportMetric(float64(len(rows)), "rows/op")
}
