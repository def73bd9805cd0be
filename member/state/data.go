package state

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
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
// member, one KV entry per item and version (key <Kind>.<name>.<version>;
// a rollout's clusters may run old and new values side by side), sealed
// with AES-256-GCM under the member's data key (a file in its data
// folder, never sent anywhere) and bound to the entry's key: the region's
// JetStream files hold only ciphertext. It keeps what it holds when the
// hub is gone; only the hub's Delete removes an item or a version.
type DataStore struct {
	kv   jetstream.KeyValue
	aead cipher.AEAD

	mu    sync.Mutex
	items map[string]map[int64]held // by DataID and version, opened
}

// held is one version of an item and the KV key it is stored under (an
// entry written before versions were kept apart has the key of its item).
type held struct {
	item protocol.DataItem
	key  string
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
		Bucket: DataBucket, Description: "configs and secrets from the hub, sealed with the member's data key, keys <Kind>.<name>.<version>",
		History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open member data: %w", err)
	}
	d := &DataStore{kv: kv, aead: aead, items: map[string]map[int64]held{}}
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
		d.keep(item, k)
	}
	return d, nil
}

// kvKey is an item version's KV key: "Secret/db" at 40 -> "Secret.db.40".
func kvKey(id string, version int64) string {
	return strings.Replace(id, "/", ".", 1) + "." + strconv.FormatInt(version, 10)
}

// keep records an opened item under its KV key.
func (d *DataStore) keep(item protocol.DataItem, key string) {
	vs := d.items[item.ID()]
	if vs == nil {
		vs = map[int64]held{}
		d.items[item.ID()] = vs
	}
	vs[item.Version] = held{item: item, key: key}
}

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

// Put stores an item at its version (beside the other versions held).
func (d *DataStore) Put(ctx context.Context, item protocol.DataItem) error {
	key := kvKey(item.ID(), item.Version)
	sealed, err := d.seal(key, item)
	if err != nil {
		return fmt.Errorf("store %s: %w", item.ID(), err)
	}
	if _, err := d.kv.Put(ctx, key, sealed); err != nil {
		return fmt.Errorf("store %s: %w", item.ID(), err)
	}
	d.mu.Lock()
	d.keep(item, key)
	d.mu.Unlock()
	return nil
}

// Delete removes a version of an item (version 0: every version);
// removing one not held is no error.
func (d *DataStore) Delete(ctx context.Context, id string, version int64) error {
	d.mu.Lock()
	var keys []string
	for v, h := range d.items[id] {
		if version == 0 || v == version {
			keys = append(keys, h.key)
		}
	}
	d.mu.Unlock()
	for _, k := range keys {
		if err := d.kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("remove %s: %w", id, err)
		}
	}
	d.mu.Lock()
	if version == 0 {
		delete(d.items, id)
	} else if vs := d.items[id]; vs != nil {
		delete(vs, version)
		if len(vs) == 0 {
			delete(d.items, id)
		}
	}
	d.mu.Unlock()
	return nil
}

// Held is what the store holds: DataID -> newest version.
func (d *DataStore) Held() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int64, len(d.items))
	for id, vs := range d.items {
		for v := range vs {
			out[id] = max(out[id], v)
		}
	}
	return out
}

// Versions is every version the store holds: DataID -> versions, sorted.
func (d *DataStore) Versions() map[string][]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string][]int64, len(d.items))
	for id, vs := range d.items {
		out[id] = slices.Sorted(maps.Keys(vs))
	}
	return out
}

// Items is a copy of the map of what the store holds, DataID -> version
// -> item (the values shared).
func (d *DataStore) Items() map[string]map[int64]protocol.DataItem {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]map[int64]protocol.DataItem, len(d.items))
	for id, vs := range d.items {
		m := make(map[int64]protocol.DataItem, len(vs))
		for v, h := range vs {
			m[v] = h.item
		}
		out[id] = m
	}
	return out
}
