package state

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/internal/natstest"
	"github.com/atollhq/atoll/protocol"
)

func jetStream(t *testing.T) *nats.Conn {
	_, nc := natstest.JetStream(t)
	return nc
}

// TestConcurrentEpochs: many writers with different epochs at once; the
// highest wins and no write ever lowers the epoch.
func TestConcurrentEpochs(t *testing.T) {
	t.Parallel()
	for _, mirrored := range []bool{false, true} {
		t.Run(map[bool]string{false: "bucket", true: "mirror"}[mirrored], func(t *testing.T) { concurrentEpochs(t, mirrored) })
	}
}

// openStore opens a store on a private JetStream, mirrored or not.
func openStore(t *testing.T, mirrored bool) *Store {
	t.Helper()
	ctx := context.Background()
	st, err := Open(ctx, jetStream(t))
	if err != nil {
		t.Fatal(err)
	}
	if mirrored {
		if err := st.Mirror(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func concurrentEpochs(t *testing.T, mirrored bool) {
	ctx := context.Background()
	st := openStore(t, mirrored)
	var wg sync.WaitGroup
	accepted := make(chan int64, 64)
	for epoch := int64(1); epoch <= 40; epoch++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ack, err := st.PutDesired(ctx, protocol.DesiredWorkload{Version: protocol.Version, Workload: "w", Epoch: epoch, Replicas: int32(epoch), Template: api.ReplicaTemplate{Driver: "sim"}})
			if err != nil {
				t.Errorf("epoch %d: %v", epoch, err)
				return
			}
			if ack.Current < epoch {
				t.Errorf("epoch %d: ack says the member holds %d, lower than what it was just given", epoch, ack.Current)
			}
			if ack.Accepted {
				accepted <- epoch
			}
		}()
	}
	wg.Wait()
	close(accepted)
	held, err := st.Desired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if held["w"].Epoch != 40 || held["w"].Replicas != 40 {
		t.Errorf("after concurrent writes the member holds %+v, want epoch 40", held["w"])
	}
	n := 0
	for range accepted {
		n++
	}
	if n == 0 {
		t.Error("no write was accepted")
	}
}

// TestSameEpochOtherContent: a change must come with a new epoch; other
// content under a held epoch is refused, the same content acked.
func TestSameEpochOtherContent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := Open(ctx, jetStream(t))
	if err != nil {
		t.Fatal(err)
	}
	d := protocol.DesiredWorkload{Version: protocol.Version, Workload: "w", Epoch: 3, Replicas: 2, Template: api.ReplicaTemplate{Driver: "sim"}}
	if ack, err := st.PutDesired(ctx, d); err != nil || !ack.Accepted {
		t.Fatalf("first: %+v %v", ack, err)
	}
	if ack, err := st.PutDesired(ctx, d); err != nil || !ack.Accepted {
		t.Errorf("the same delivery again: %+v %v", ack, err)
	}
	d.Replicas = 5
	if ack, err := st.PutDesired(ctx, d); err != nil || ack.Accepted || ack.Reason == "" {
		t.Errorf("other content under the same epoch must be refused with a reason: %+v %v", ack, err)
	}
	held, _ := st.Desired(ctx)
	if held["w"].Replicas != 2 {
		t.Errorf("the refused content was applied: %+v", held["w"])
	}
}

// TestOldEpochSentAgainAfterAnUpgrade: desired state stored by a member
// before protocol.ExclusiveSince is stored again when the hub sends the
// same epoch in the new version (so the next start does not ask again),
// learning Exclusive; a second identical send writes nothing.
func TestOldEpochSentAgainAfterAnUpgrade(t *testing.T) {
	t.Parallel()
	for _, mirrored := range []bool{false, true} {
		t.Run(map[bool]string{false: "bucket", true: "mirror"}[mirrored], func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t, mirrored)
			old := protocol.DesiredWorkload{Version: protocol.ExclusiveSince - 1, Workload: "w", Epoch: 3, Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}}
			if ack, err := st.PutDesired(ctx, old); err != nil || !ack.Accepted {
				t.Fatalf("stored by the old member: %+v %v", ack, err)
			}
			for _, exclusive := range []bool{false, true} {
				d := old
				d.Version, d.Exclusive, d.Term = protocol.Version, exclusive, 7
				if ack, err := st.PutDesired(ctx, d); err != nil || !ack.Accepted {
					t.Fatalf("sent again (exclusive %v): %+v %v", exclusive, ack, err)
				}
				held, _ := st.Desired(ctx)
				if got := held["w"]; got.Version != protocol.Version || got.Exclusive != exclusive || got.Epoch != 3 {
					t.Errorf("exclusive %v: want the epoch stored again in version %d; holds %+v", exclusive, protocol.Version, got)
				}
			}
		})
	}
}

// TestMirror: a mirrored store answers from memory what it wrote, and a
// write behind its back (another writer) is caught by the revision check,
// never overwritten with an older epoch.
func TestMirror(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nc := jetStream(t)
	st, err := Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	dw := func(epoch int64) protocol.DesiredWorkload {
		return protocol.DesiredWorkload{Version: protocol.Version, Workload: "w", Epoch: epoch, Replicas: 1, Template: api.ReplicaTemplate{Driver: "sim"}}
	}
	if _, err := st.PutDesired(ctx, dw(3)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutBinding(ctx, protocol.Binding{Replica: "w-1", Workload: "w", Node: "n1", Epoch: 3}); err != nil {
		t.Fatal(err)
	}
	if err := st.Mirror(ctx); err != nil {
		t.Fatal(err)
	}
	if held, _ := st.Desired(ctx); held["w"].Epoch != 3 {
		t.Errorf("want the mirror loaded with epoch 3; got %+v", held["w"])
	}
	// Another writer moves the bucket to epoch 10.
	other, err := Open(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := other.PutDesired(ctx, dw(10)); err != nil || !ack.Accepted {
		t.Fatalf("other writer: %+v %v", ack, err)
	}
	ack, err := st.PutDesired(ctx, dw(5))
	if err != nil || ack.Accepted || ack.Current != 10 {
		t.Errorf("want epoch 5 refused against the bucket's 10 despite the mirror's 3; got %+v %v", ack, err)
	}
	if ack, err := st.PutDesired(ctx, dw(11)); err != nil || !ack.Accepted {
		t.Errorf("want epoch 11 accepted; got %+v %v", ack, err)
	}
	if held, _ := st.Desired(ctx); held["w"].Epoch != 11 {
		t.Errorf("want the mirror at epoch 11; got %+v", held["w"])
	}
	// Bindings: written and deleted through the mirror, in key order.
	if err := st.PutBinding(ctx, protocol.Binding{Replica: "w-0", Workload: "w", Node: "n0", Epoch: 11}); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteBinding(ctx, "n1", "w-1"); err != nil {
		t.Fatal(err)
	}
	bs, _ := st.Bindings(ctx)
	fromBucket, _ := other.Bindings(ctx)
	if len(bs) != 1 || bs[0].Replica != "w-0" || len(fromBucket) != 1 || fromBucket[0].Replica != "w-0" {
		t.Errorf("want only w-0 bound, in the mirror and the bucket alike; got %+v and %+v", bs, fromBucket)
	}
}

// TestAllocatedFollowsBindings: what each node's bindings request is kept
// as bindings are put, replaced and deleted, and agrees with a walk over
// the bucket (an unmirrored store).
func TestAllocatedFollowsBindings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, true)
	bind := func(node, replica, cpu, mem string) {
		t.Helper()
		b := protocol.Binding{Replica: replica, Workload: "w", Node: node, Epoch: 1, Generation: 1,
			Template: api.ReplicaTemplate{Driver: "sim", Resources: api.Resources{CPU: cpu, Memory: mem}}}
		if err := st.PutBinding(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	bind("n1", "a", "250m", "64Mi")
	bind("n1", "b", "250m", "")
	bind("n2", "c", "", "")
	bind("n1", "a", "500m", "64Mi") // replaced: counted once, at its new size
	want := map[string]protocol.Resources{"n1": {MilliCPU: 750, Memory: 64 << 20}}
	got, err := st.Allocated(ctx)
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("after the puts: want %v; got %v (%v)", want, got, err)
	}
	plain := &Store{desired: st.desired, bindings: st.bindings, nodes: st.nodes, keys: st.keys}
	if walked, err := plain.Allocated(ctx); err != nil || !maps.Equal(walked, want) {
		t.Errorf("a walk over the bucket: want %v; got %v (%v)", want, walked, err)
	}
	if err := st.DeleteBinding(ctx, "n1", "a"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteBinding(ctx, "n1", "b"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Allocated(ctx); len(got) != 0 {
		t.Errorf("after deleting n1's bindings: want nothing allocated; got %v", got)
	}
}

// TestWriteBindingsInBatches: a batch of deletes and puts lands in the
// bucket (a store that reads the bucket sees it), in the mirror, and
// tells each node once.
func TestWriteBindingsInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, true)
	var mu sync.Mutex
	told := map[string]int{}
	st.OnBindingChange(func(node string) {
		mu.Lock()
		told[node]++
		mu.Unlock()
	})
	var first []protocol.Binding
	for i := range 600 { // more than bindingsInFlight
		first = append(first, protocol.Binding{Replica: fmt.Sprintf("w-%03d", i), Workload: "w", Node: fmt.Sprintf("n%d", i%3), Epoch: 1, Generation: 1})
	}
	if err := st.WriteBindings(ctx, nil, first); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteBindings(ctx, first[:300], []protocol.Binding{{Replica: "v-0", Workload: "v", Node: "n9", Epoch: 1, Generation: 1}}); err != nil {
		t.Fatal(err)
	}
	plain := &Store{desired: st.desired, bindings: st.bindings, nodes: st.nodes, keys: st.keys}
	for name, s := range map[string]*Store{"mirror": st, "bucket": plain} {
		bs, err := s.Bindings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, b := range bs {
			got[b.Replica] = true
		}
		if len(got) != 301 || got["w-000"] || !got["w-300"] || !got["v-0"] {
			t.Errorf("%s: want w-300..w-599 and v-0 (301 bindings); got %d (w-000 %v, w-300 %v, v-0 %v)", name, len(got), got["w-000"], got["w-300"], got["v-0"])
		}
	}
	if n1, _ := st.NodeBindings(ctx, "n1"); len(n1) != 100 {
		t.Errorf("n1: want 100 bindings left; got %d", len(n1))
	}
	mu.Lock()
	defer mu.Unlock()
	if want := map[string]int{"n0": 2, "n1": 2, "n2": 2, "n9": 1}; !maps.Equal(told, want) {
		t.Errorf("want each node told once per batch that touched it %v; got %v", want, told)
	}
}

// TestPutDesiredBatch: a batch is judged workload by workload as
// PutDesired judges one (new, newer, the same again, stale, other content
// under a held epoch), and a workload another writer moved behind the
// mirror's back is caught by the revision check, never rolled back.
func TestPutDesiredBatch(t *testing.T) {
	t.Parallel()
	for _, mirrored := range []bool{false, true} {
		t.Run(map[bool]string{false: "bucket", true: "mirror"}[mirrored], func(t *testing.T) {
			ctx := context.Background()
			nc := jetStream(t)
			st, err := Open(ctx, nc)
			if err != nil {
				t.Fatal(err)
			}
			dw := func(name string, epoch int64, replicas int32) protocol.DesiredWorkload {
				return protocol.DesiredWorkload{Version: protocol.Version, Workload: name, Epoch: epoch, Replicas: replicas, Template: api.ReplicaTemplate{Driver: "sim"}}
			}
			for _, d := range []protocol.DesiredWorkload{dw("newer", 3, 1), dw("same", 3, 1), dw("stale", 5, 1), dw("other", 3, 1), dw("moved", 3, 1)} {
				if ack, err := st.PutDesired(ctx, d); err != nil || !ack.Accepted {
					t.Fatalf("%s: %+v %v", d.Workload, ack, err)
				}
			}
			if mirrored {
				if err := st.Mirror(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// Another writer moves "moved" to epoch 10: the mirror still says 3.
			other, err := Open(ctx, nc)
			if err != nil {
				t.Fatal(err)
			}
			if ack, err := other.PutDesired(ctx, dw("moved", 10, 4)); err != nil || !ack.Accepted {
				t.Fatalf("other writer: %+v %v", ack, err)
			}
			batch := []protocol.DesiredWorkload{dw("fresh", 7, 2), dw("newer", 7, 2), dw("same", 3, 1), dw("stale", 4, 9), dw("other", 3, 9), dw("moved", 7, 9)}
			want := []struct {
				accepted bool
				current  int64
			}{{true, 7}, {true, 7}, {true, 3}, {false, 5}, {false, 3}, {false, 10}}
			var heard []int
			acks, errs := st.PutDesiredBatch(ctx, batch, func(i int) { heard = append(heard, i) })
			if slices.Sort(heard); fmt.Sprint(heard) != "[0 1 2]" {
				t.Errorf("want the accepted ones heard (0, 1, 2), each once; heard %v", heard)
			}
			for i, d := range batch {
				if errs[i] != nil {
					t.Errorf("%s: %v", d.Workload, errs[i])
					continue
				}
				if a := acks[i]; a.Workload != d.Workload || a.Accepted != want[i].accepted || a.Current != want[i].current || (!a.Accepted && a.Reason == "") {
					t.Errorf("%s: want accepted %v holding epoch %d (a reason when refused); got %+v", d.Workload, want[i].accepted, want[i].current, a)
				}
			}
			// What the bucket holds (the other store is not mirrored).
			held, err := other.Desired(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for name, replicas := range map[string]int32{"fresh": 2, "newer": 2, "same": 1, "stale": 1, "other": 1, "moved": 4} {
				if held[name].Replicas != replicas {
					t.Errorf("%s holds %+v, want %d replicas", name, held[name], replicas)
				}
			}
		})
	}
}
