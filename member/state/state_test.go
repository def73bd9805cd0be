package state

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

func jetStream(t *testing.T) *nats.Conn {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
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
