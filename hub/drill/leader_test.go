package drill

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/pgtest"
)

// switchLeader is a Leadership a test turns on and off.
type switchLeader struct{ on atomic.Bool }

func (s *switchLeader) IsLeader() bool { return s.on.Load() }

func (s *switchLeader) Epoch() int64 { return 0 }

func (s *switchLeader) Changes() <-chan struct{} { return nil }

func (s *switchLeader) Fence(context.Context, leader.Querier) error {
	if !s.on.Load() {
		return errors.New("not the leader")
	}
	return nil
}

// unknownClusters is a monitor that has heard from no cluster yet.
type unknownClusters struct{}

func (unknownClusters) Live(string) (failover.Live, bool) { return failover.Live{}, false }

// TestDrillsRunOnTheLeaderOnly: a hub that does not lead leaves drills
// alone; the leader starts them; a hub that loses the lead forgets its
// drills, and whoever leads next finds them running without their hub,
// restores the targets and ends them as interrupted.
func TestDrillsRunOnTheLeaderOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := openStore(t)
	test := pgstore.Actor{Name: "test"}
	status, _ := json.Marshal(api.ClusterStatus{Health: api.HealthReady})
	if _, err := store.Create(ctx, test, &pgstore.Record{Kind: "Cluster", Meta: api.ObjectMeta{Name: "a"}, Spec: []byte("{}"), Status: status}); err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(api.DrillSpec{Kind: api.DrillEvacuate, Target: api.DrillTarget{Cluster: "a"}, Duration: "1h"})
	st, _ := json.Marshal(api.DrillStatus{Phase: api.DrillPending, Targets: []string{"a"}})
	if _, err := store.Create(ctx, test, &pgstore.Record{Kind: "Drill", Meta: api.ObjectMeta{Name: "d"}, Spec: spec, Status: st}); err != nil {
		t.Fatal(err)
	}
	lead := &switchLeader{}
	dc := New(store, nil, unknownClusters{}, nil, lead, nil, time.Now, noop.NewMeterProvider().Meter(""), tracenoop.NewTracerProvider().Tracer(""), "hub-1", Config{})
	phase := func() (string, bool) {
		t.Helper()
		var d api.Drill
		rec, err := store.Get(ctx, "Drill", "d")
		if err != nil {
			t.Fatal(err)
		}
		_ = rec.Decode(&d)
		c, _ := store.Get(ctx, "Cluster", "a")
		var cl api.Cluster
		_ = c.Decode(&cl)
		return d.Status.Phase, slices.ContainsFunc(cl.Spec.Taints, func(t api.Taint) bool { return t.Key == api.DrillTaintKey })
	}
	pass := func() {
		t.Helper()
		dc.Wake()
		if err := dc.RunOnce(ctx); err != nil {
			t.Fatalf("drill pass: %v", err)
		}
	}

	pass()
	if p, tainted := phase(); p != api.DrillPending || tainted {
		t.Fatalf("not leading: want the drill left Pending and a untainted; got %s, tainted %v", p, tainted)
	}
	lead.on.Store(true)
	pass()
	if p, tainted := phase(); p != api.DrillRunning || !tainted {
		t.Fatalf("leading: want the drill Running and a tainted; got %s, tainted %v", p, tainted)
	}
	lead.on.Store(false)
	pass()
	if len(dc.runs) != 0 {
		t.Fatalf("after losing the lead: want no drill run here, got %d", len(dc.runs))
	}
	if p, tainted := phase(); p != api.DrillRunning || !tainted {
		t.Fatalf("a hub that lost the lead writes nothing: want Running and tainted still; got %s, tainted %v", p, tainted)
	}
	lead.on.Store(true)
	pass()
	if p, tainted := phase(); p != api.DrillError || tainted {
		t.Errorf("leading again: want the drill ended (interrupted) and a restored; got %s, tainted %v", p, tainted)
	}
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// openStore opens a store on a new private database, closed at the end.
func openStore(t *testing.T) *pgstore.Store {
	t.Helper()
	store, err := pgstore.Open(context.Background(), pgstore.Config{DatabaseURL: pgtest.NewDatabase(t), MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	return store
}
