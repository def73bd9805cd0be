package state

import (
	"context"
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
	ctx := context.Background()
	st, err := Open(ctx, jetStream(t))
	if err != nil {
		t.Fatal(err)
	}
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
