// Package state is a member's own state, kept in JetStream KV buckets of
// the region's NATS (its own JetStream domain), so it survives a member
// restart and needs no hub: the desired workloads the hub sent (each with
// its epoch), and later the node registry and replica bindings.
//
// Desired state is epoch-fenced: a workload's entry is only ever replaced
// by one with a higher epoch, with compare-and-set on the KV revision, so
// concurrent or replayed deliveries can never roll it back. The hub's
// tombstone (Deleted) is stored like any other entry; nothing is removed
// because the hub went quiet.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atollhq/atoll/protocol"
)

// Bucket names.
const (
	DesiredBucket = "atoll_desired"
)

// Store is the member's KV state.
type Store struct {
	desired jetstream.KeyValue
}

// Open creates (or opens) the buckets on the region's JetStream.
func Open(ctx context.Context, nc *nats.Conn) (*Store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open member state: %w", err)
	}
	desired, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: DesiredBucket, Description: "desired workloads from the hub, by workload name, epoch-fenced",
		History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open member state: %w", err)
	}
	return &Store{desired: desired}, nil
}

// PutDesired stores a desired workload unless the member already holds a
// higher epoch for it. An equal epoch is accepted without a write (the
// delivery is idempotent).
func (s *Store) PutDesired(ctx context.Context, d protocol.DesiredWorkload) (protocol.DesiredAck, error) {
	ack := protocol.DesiredAck{Version: protocol.Version, Workload: d.Workload, Epoch: d.Epoch}
	value, err := json.Marshal(d)
	if err != nil {
		return ack, err
	}
	for attempt := 0; attempt < 10; attempt++ {
		entry, err := s.desired.Get(ctx, d.Workload)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := s.desired.Create(ctx, d.Workload, value); errors.Is(err, jetstream.ErrKeyExists) {
				continue // someone else wrote first: compare again
			} else if err != nil {
				return ack, fmt.Errorf("store desired %s: %w", d.Workload, err)
			}
			ack.Accepted, ack.Current = true, d.Epoch
			return ack, nil
		case err != nil:
			return ack, fmt.Errorf("read desired %s: %w", d.Workload, err)
		}
		var cur protocol.DesiredWorkload
		if err := json.Unmarshal(entry.Value(), &cur); err != nil {
			return ack, fmt.Errorf("read desired %s: %w", d.Workload, err)
		}
		switch {
		case cur.Epoch > d.Epoch:
			ack.Current, ack.Reason = cur.Epoch, fmt.Sprintf("stale epoch %d: this member holds epoch %d", d.Epoch, cur.Epoch)
			return ack, nil
		case cur.Epoch == d.Epoch:
			ack.Accepted, ack.Current = true, cur.Epoch
			return ack, nil
		}
		if _, err := s.desired.Update(ctx, d.Workload, value, entry.Revision()); errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		} else if err != nil {
			return ack, fmt.Errorf("store desired %s: %w", d.Workload, err)
		}
		ack.Accepted, ack.Current = true, d.Epoch
		return ack, nil
	}
	return ack, fmt.Errorf("store desired %s: too many concurrent writers", d.Workload)
}

// Desired returns every desired workload held, tombstones included.
func (s *Store) Desired(ctx context.Context) (map[string]protocol.DesiredWorkload, error) {
	out := map[string]protocol.DesiredWorkload{}
	keys, err := s.desired.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list desired: %w", err)
	}
	for k := range keys.Keys() {
		entry, err := s.desired.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read desired %s: %w", k, err)
		}
		var d protocol.DesiredWorkload
		if err := json.Unmarshal(entry.Value(), &d); err != nil {
			return nil, fmt.Errorf("read desired %s: %w", k, err)
		}
		out[k] = d
	}
	return out, nil
}
