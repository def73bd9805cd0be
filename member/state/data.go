package state

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atollhq/atoll/protocol"
)

// DataBucket holds the Configs and Secrets the hub sent, sealed.
const DataBucket = "atoll_data"

// DataKeySize is the length of a member's data key (AES-256).
const DataKeySize = 32

// DataStore keeps the Configs' and Secrets' values the hub sent this
// member, one KV entry each (key <Kind>.<name>), sealed with AES-256-GCM
// under the member's data key (a file in its data folder, never sent
// anywhere) and bound to the entry's key: the region's JetStream files
// hold only ciphertext. It keeps what it holds when the hub is gone;
// only the hub's Delete removes an item.
type DataStore struct {
	kv   jetstream.KeyValue
	aead cipher.AEAD

	mu    sync.Mutex
	items map[string]protocol.DataItem // by DataID, opened
}

// OpenData opens (or makes) the data bucket with the member's key and
// reads what it holds.
func OpenData(ctx context.Context, nc *nats.Conn, key []byte) (*DataStore, error) {
	if len(key) != DataKeySize {
		return nil, fmt.Errorf("open member data: the key is %d bytes, want %d", len(key), DataKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("open member data: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("open member data: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open member data: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: DataBucket, Description: "configs and secrets from the hub, sealed with the member's data key, keys <Kind>.<name>",
		History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open member data: %w", err)
	}
	d := &DataStore{kv: kv, aead: aead, items: map[string]protocol.DataItem{}}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("open member data: %w", err)
	}
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("open member data: %w", err)
		}
		item, err := d.open(k, e.Value())
		if err != nil {
			return nil, fmt.Errorf("open member data %s: %w", k, err)
		}
		d.items[item.ID()] = item
	}
	return d, nil
}

// kvKey is an item's KV key: "Secret/db" -> "Secret.db".
func kvKey(id string) string { return strings.Replace(id, "/", ".", 1) }

func (d *DataStore) seal(key string, item protocol.DataItem) ([]byte, error) {
	plain, err := json.Marshal(item)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	out := make([]byte, d.aead.NonceSize(), d.aead.NonceSize()+len(plain)+d.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return d.aead.Seal(out, out, plain, []byte("atoll member data "+key)), nil
}

func (d *DataStore) open(key string, sealed []byte) (protocol.DataItem, error) {
	n := d.aead.NonceSize()
	if len(sealed) < n {
		return protocol.DataItem{}, errors.New("sealed value too short")
	}
	plain, err := d.aead.Open(nil, sealed[:n], sealed[n:], []byte("atoll member data "+key))
	if err != nil {
		return protocol.DataItem{}, errors.New("does not open with this member's data key")
	}
	defer clear(plain)
	var item protocol.DataItem
	if err := json.Unmarshal(plain, &item); err != nil {
		return protocol.DataItem{}, err
	}
	return item, nil
}

// Put stores an item (replacing the one of its ID).
func (d *DataStore) Put(ctx context.Context, item protocol.DataItem) error {
	key := kvKey(item.ID())
	sealed, err := d.seal(key, item)
	if err != nil {
		return fmt.Errorf("store %s: %w", item.ID(), err)
	}
	if _, err := d.kv.Put(ctx, key, sealed); err != nil {
		return fmt.Errorf("store %s: %w", item.ID(), err)
	}
	d.mu.Lock()
	d.items[item.ID()] = item
	d.mu.Unlock()
	return nil
}

// Delete removes an item; removing one not held is no error.
func (d *DataStore) Delete(ctx context.Context, id string) error {
	if err := d.kv.Purge(ctx, kvKey(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	d.mu.Lock()
	delete(d.items, id)
	d.mu.Unlock()
	return nil
}

// Held is what the store holds: DataID -> version.
func (d *DataStore) Held() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int64, len(d.items))
	for id, it := range d.items {
		out[id] = it.Version
	}
	return out
}

// Items is a copy of the map of what the store holds (the values shared).
func (d *DataStore) Items() map[string]protocol.DataItem {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]protocol.DataItem, len(d.items))
	for id, it := range d.items {
		out[id] = it
	}
	return out
}
