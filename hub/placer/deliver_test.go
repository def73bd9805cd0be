package placer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// memberBus answers desired state as a member of cluster "a" would:
// batches only when batches is set (else the batch subject has no
// responder, as for a member from before them), storing the highest
// epoch per workload.
type memberBus struct {
	batches bool
	// slow: the member applies what it is sent, and answers only after
	// the request timed out (too busy to answer in time).
	slow    bool
	mu      sync.Mutex
	held    map[string]int64
	sent    map[string]int // subject -> requests
	largest int            // workloads in the largest batch
	// accepted, if set, hears every desired state the member takes
	// (under mu).
	accepted func(workload string, epoch int64)
}

func (b *memberBus) Request(ctx context.Context, cluster, subject string, data []byte) ([]byte, error) {
	b.mu.Lock()
	slow := b.slow && subject != protocol.DigestSubject(cluster)
	reply, err := b.answer(cluster, subject, data)
	b.mu.Unlock()
	if slow && err == nil {
		<-ctx.Done() // applied; the answer comes too late
		return nil, ctx.Err()
	}
	return reply, err
}

func (b *memberBus) answer(cluster, subject string, data []byte) ([]byte, error) {
	b.sent[subject]++
	store := func(d protocol.DesiredWorkload) protocol.DesiredAck {
		if d.Epoch > b.held[d.Workload] {
			b.held[d.Workload] = d.Epoch
			if b.accepted != nil {
				b.accepted(d.Workload, d.Epoch)
			}
		}
		return protocol.DesiredAck{Version: protocol.Version, Workload: d.Workload, Epoch: d.Epoch, Accepted: d.Epoch >= b.held[d.Workload], Current: b.held[d.Workload]}
	}
	switch subject {
	case protocol.DigestSubject(cluster):
		return json.Marshal(protocol.Digest{Version: protocol.Version, Workloads: maps.Clone(b.held)})
	case protocol.DesiredSubject(cluster):
		d, err := protocol.DecodeDesired(data)
		if err != nil {
			return nil, err
		}
		return json.Marshal(store(d))
	case protocol.DesiredBatchSubject(cluster):
		if !b.batches {
			return nil, errors.New("nobody listens there")
		}
		batch, err := protocol.DecodeDesiredBatch(data)
		if err != nil {
			return nil, err
		}
		b.largest = max(b.largest, len(batch.Workloads))
		ack := protocol.DesiredBatchAck{Version: protocol.Version}
		for _, d := range batch.Workloads {
			ack.Acks = append(ack.Acks, store(d))
		}
		return json.Marshal(ack)
	}
	return nil, fmt.Errorf("unexpected subject %s", subject)
}

// TestDeliveryInBatches: a member that answers batches gets a pass's
// desired state in batches no larger than desiredBatchMax, one
// that does not (its batch request finds no responder) gets one request
// per workload, and stays on those in the next pass; either way every
// row ends acknowledged, and rows acknowledged but not yet recorded are
// not sent again.
func TestDeliveryInBatches(t *testing.T) {
	t.Parallel()
	for _, batches := range []bool{true, false} {
		t.Run(map[bool]string{true: "batches", false: "singles"}[batches], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store := openStore(t)
			const n = protocol.MaxDesiredBatch + 44
			workloads := map[string]api.Workload{}
			var rows []pgstore.Placement
			for i := range n {
				name := fmt.Sprintf("w%03d", i)
				workloads[name] = api.Workload{Metadata: api.ObjectMeta{Name: name, Generation: 1},
					Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}}}
				rows = append(rows, pgstore.Placement{Workload: name, Cluster: "a", Replicas: 1, Generation: 1})
			}
			put := func(rows []pgstore.Placement) []pgstore.Placement {
				t.Helper()
				err := store.InTx(ctx, placerActor, func(tx *pgstore.Tx) error {
					epoch, err := tx.NextPlacementEpoch(ctx)
					if err != nil {
						return err
					}
					for i := range rows {
						rows[i].Epoch = epoch
					}
					return tx.PutPlacements(ctx, rows)
				})
				if err != nil {
					t.Fatal(err)
				}
				got, err := store.Placements(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			bus := &memberBus{batches: batches, held: map[string]int64{}, sent: map[string]int{}}
			monitor := fakeHealth{"a": failover.Live{Health: api.HealthReady, Version: protocol.Version}}
			p := NewPlacer(store, bus, monitor, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
			target := api.Target{Name: "a"}
			check := func(round string, got []pgstore.Placement) {
				t.Helper()
				acked, _, err := p.deliverTo(ctx, target, monitor["a"], got, workloads, false, false) // no digest check in this test
				if err != nil {
					t.Fatalf("%s: %v", round, err)
				}
				p.markDelivered(ctx, map[string][]pgstore.Placement{"a": acked})
				// The rows as read before the acknowledgements are recorded:
				// nothing is sent again.
				before := fmt.Sprint(bus.sent)
				if again, _, err := p.deliverTo(ctx, target, monitor["a"], got, workloads, false, false); err != nil || len(again) != 0 || fmt.Sprint(bus.sent) != before {
					t.Errorf("%s: acknowledged rows sent again before their record was written: %d acked, sent %v (was %v), %v", round, len(again), bus.sent, before, err)
				}
				p.waitMarks(0)
				if len(p.acking) != 0 {
					t.Errorf("%s: %d acknowledgements still remembered once written", round, len(p.acking))
				}
				after, err := store.Placements(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range after {
					if r.DeliveredEpoch != r.Epoch || bus.held[r.Workload] != r.Epoch {
						t.Errorf("%s: %s at epoch %d: delivered %d, the member holds %d", round, r.Workload, r.Epoch, r.DeliveredEpoch, bus.held[r.Workload])
					}
				}
			}
			check("first pass", put(rows))
			if batches {
				want := (n + desiredBatchMax - 1) / desiredBatchMax
				if s := bus.sent[protocol.DesiredSubject("a")]; s != 0 || bus.sent[protocol.DesiredBatchSubject("a")] != want || bus.largest > desiredBatchMax {
					t.Errorf("want %d workloads in %d batches of at most %d and no single request; got %v, largest %d", n, want, desiredBatchMax, bus.sent, bus.largest)
				}
				return
			}
			if s := bus.sent[protocol.DesiredSubject("a")]; s != n {
				t.Errorf("want %d single requests after the batch found no responder; got %v", n, bus.sent)
			}
			tried := bus.sent[protocol.DesiredBatchSubject("a")]
			check("second pass", put(rows[:10]))
			if bus.sent[protocol.DesiredBatchSubject("a")] != tried || bus.sent[protocol.DesiredSubject("a")] != n+10 {
				t.Errorf("want the next pass sent one by one without trying a batch again; got %v", bus.sent)
			}
		})
	}
}

// TestGroupByWorkload: each workload's rows, in order, shared with the
// rows read when they are one run; an append to a group never writes
// over the next workload's rows.
func TestGroupByWorkload(t *testing.T) {
	t.Parallel()
	rows := []pgstore.Placement{
		{Workload: "a", Cluster: "x", Replicas: 1}, {Workload: "a", Cluster: "y", Replicas: 2},
		{Workload: "b", Cluster: "x", Replicas: 3},
		{Workload: "a", Cluster: "z", Replicas: 4}, // out of order: copied together
	}
	got := groupByWorkload(rows)
	want := map[string][]pgstore.Placement{"a": {rows[0], rows[1], rows[3]}, "b": {rows[2]}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("want %+v\ngot  %+v", want, got)
	}
	if &got["b"][0] != &rows[2] {
		t.Errorf("b's one run was copied; want it shared with the rows read")
	}
	_ = append(got["b"], pgstore.Placement{Workload: "b", Cluster: "w"})
	if rows[3].Workload != "a" {
		t.Errorf("an append to b's rows wrote over the next row: %+v", rows[3])
	}
}

// TestFailedDeliveriesNameEachCauseOnce: a batch that timed out fails
// each of its workloads the same way; the pass's error (logged whole)
// says the cause once, with how many it failed and a few of their
// names, and still wraps the cause.
func TestFailedDeliveriesNameEachCauseOnce(t *testing.T) {
	t.Parallel()
	f := failedDeliveries{cluster: "r9"}
	for i := range 200 {
		f.add(fmt.Sprintf("w%03d", i), context.DeadlineExceeded)
	}
	refused := errors.New("the member answered for \"x\" in its place")
	f.add("w900", refused)
	errs := f.errs()
	if len(errs) != 2 {
		t.Fatalf("want one error per cause, got %d: %v", len(errs), errs)
	}
	if got, want := errs[0].Error(), "deliver 200 workloads to r9 (w000, w001, w002 and 197 more): context deadline exceeded"; got != want {
		t.Errorf("first cause:\n got %q\nwant %q", got, want)
	}
	if !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Errorf("the grouped error no longer wraps its cause: %v", errs[0])
	}
	if got, want := errs[1].Error(), `deliver w900 to r9: the member answered for "x" in its place`; got != want {
		t.Errorf("a cause with one workload:\n got %q\nwant %q", got, want)
	}
	if errs := (&failedDeliveries{cluster: "r9"}).errs(); errs != nil {
		t.Errorf("nothing failed, yet: %v", errs)
	}
}

// TestDeliveryUnansweredWaitsForTheDigest: desired state a member too
// busy to answer in time applied all the same is not sent again blindly
// on the next pass (its member still at work on it would apply it twice):
// the member's digest, checked on the next pass, acknowledges what it
// holds; only what it lacks goes again.
func TestDeliveryUnansweredWaitsForTheDigest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := openStore(t)
	workloads := map[string]api.Workload{}
	var rows []pgstore.Placement
	for i := range 3 {
		name := fmt.Sprintf("w%d", i)
		workloads[name] = api.Workload{Metadata: api.ObjectMeta{Name: name, Generation: 1},
			Spec: api.WorkloadSpec{Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}}}
		rows = append(rows, pgstore.Placement{Workload: name, Cluster: "a", Replicas: 1, Generation: 1, Epoch: 7})
	}
	bus := &memberBus{batches: true, slow: true, held: map[string]int64{}, sent: map[string]int{}}
	monitor := fakeHealth{"a": failover.Live{Health: api.HealthReady, Version: protocol.Version}}
	p := NewPlacer(store, bus, monitor, nil, nil, time.Now, noop.NewMeterProvider().Meter(""), 0)
	target := api.Target{Name: "a"}
	batchSubject := protocol.DesiredBatchSubject("a")

	acked, _, err := p.deliverTo(ctx, target, monitor["a"], rows, workloads, false, false)
	if len(acked) != 0 || err == nil || bus.sent[batchSubject] != 1 {
		t.Fatalf("the unanswered batch: %d acked, %v, sent %v", len(acked), err, bus.sent)
	}
	p.mu.Lock()
	checkDue := p.lastCheck["a"].IsZero()
	p.mu.Unlock()
	if !checkDue {
		t.Error("an unanswered batch did not have the member's digest checked next")
	}
	// The next pass without its digest: nothing goes again yet.
	bus.mu.Lock()
	bus.slow = false
	bus.mu.Unlock()
	if acked, _, err := p.deliverTo(ctx, target, monitor["a"], rows, workloads, false, false); len(acked) != 0 || err != nil || bus.sent[batchSubject] != 1 {
		t.Fatalf("sent again before the digest: %d acked, %v, sent %v", len(acked), err, bus.sent)
	}
	// With its digest: what it holds is acknowledged, nothing sent; a
	// row it lacks (w2, taken back behind the hub's back) goes again.
	bus.mu.Lock()
	delete(bus.held, "w2")
	bus.mu.Unlock()
	acked, _, err = p.deliverTo(ctx, target, monitor["a"], rows, workloads, true, false)
	got := map[string]bool{}
	for _, r := range acked {
		got[r.Workload] = true
	}
	if err != nil || len(acked) != 3 || !got["w0"] || !got["w1"] || !got["w2"] || bus.sent[batchSubject] != 2 {
		t.Fatalf("with the digest: acked %v, %v, sent %v; want all three, one batch (w2's) sent again", got, err, bus.sent)
	}
	if bus.held["w2"] != 7 {
		t.Fatalf("w2 not sent again: the member holds %v", bus.held)
	}
}
