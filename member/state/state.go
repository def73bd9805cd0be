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
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/protocol"
)

// Bucket names.
const (
	DesiredBucket  = "atoll_desired"
	BindingsBucket = "atoll_bindings"
	NodesBucket    = "atoll_nodes"
	NodeKeysBucket = "atoll_node_keys"
)

// Store is the member's KV state.
type Store struct {
	desired  jetstream.KeyValue
	bindings jetstream.KeyValue
	nodes    jetstream.KeyValue
	keys     jetstream.KeyValue
	// batch publishes binding writes without waiting for each ack
	// (WriteBindings).
	batch jetstream.JetStream
	// changed, when set, hears the node of every binding written or
	// deleted through this Store.
	changed func(node string)

	// mirror, once Mirror was called, holds the desired and bindings
	// buckets in memory (see Mirror).
	mu     sync.Mutex
	mirror *mirror
}

// mirror is the member's in-memory copy of what it wrote.
type mirror struct {
	desired  map[string]mirrored
	bindings map[string]protocol.Binding            // by BindingKey
	byNode   map[string]map[string]protocol.Binding // node -> BindingKey -> binding
	// allocated is what each node's bindings request, kept as bindings
	// come and go (a heartbeat's capacity must not walk every binding).
	allocated map[string]protocol.Resources
}

func (m *mirror) putBinding(key string, b protocol.Binding) {
	if old, ok := m.bindings[key]; ok {
		m.account(old, -1)
	}
	m.bindings[key] = b
	if m.byNode[b.Node] == nil {
		m.byNode[b.Node] = map[string]protocol.Binding{}
	}
	m.byNode[b.Node][key] = b
	m.account(b, 1)
}

func (m *mirror) deleteBinding(node, key string) {
	if old, ok := m.bindings[key]; ok {
		m.account(old, -1)
	}
	delete(m.bindings, key)
	if bs := m.byNode[node]; bs != nil {
		delete(bs, key)
		if len(bs) == 0 {
			delete(m.byNode, node)
		}
	}
}

// account adds (sign 1) or removes (-1) what a binding requests.
func (m *mirror) account(b protocol.Binding, sign int64) {
	r := Requests(b)
	if r.MilliCPU == 0 && r.Memory == 0 {
		return
	}
	a := m.allocated[b.Node]
	a.MilliCPU += sign * r.MilliCPU
	a.Memory += sign * r.Memory
	if a.MilliCPU == 0 && a.Memory == 0 {
		delete(m.allocated, b.Node)
		return
	}
	m.allocated[b.Node] = a
}

// Requests is what one bound replica asks for.
func Requests(b protocol.Binding) protocol.Resources {
	var r protocol.Resources
	r.MilliCPU, r.Memory = b.Template.Resources.Quantities()
	return r
}

// Allocated is what the bindings of each node request, by node (nodes
// whose bindings request nothing are left out). Once mirrored it costs
// one entry per node, not one per binding.
func (s *Store) Allocated(ctx context.Context) (map[string]protocol.Resources, error) {
	if m := s.mirrored(); m != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return maps.Clone(m.allocated), nil
	}
	bs, err := s.Bindings(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]protocol.Resources{}
	for _, b := range bs {
		r := Requests(b)
		if r.MilliCPU == 0 && r.Memory == 0 {
			continue
		}
		a := out[b.Node]
		a.MilliCPU += r.MilliCPU
		a.Memory += r.Memory
		out[b.Node] = a
	}
	return out, nil
}

type mirrored struct {
	d   protocol.DesiredWorkload
	rev uint64
}

// Mirror loads the desired and bindings buckets into memory; afterwards
// Desired and Bindings answer from memory and every write through this
// Store updates it. Only the bucket's single writer may use it: the
// member (node agents never touch the buckets; they ask the member). A controller
// pass then costs no KV reads and no JSON decoding, however many
// replicas the region runs.
func (s *Store) Mirror(ctx context.Context) error {
	m := &mirror{desired: map[string]mirrored{}, bindings: map[string]protocol.Binding{}, byNode: map[string]map[string]protocol.Binding{},
		allocated: map[string]protocol.Resources{}}
	entries, err := snapshot(ctx, s.desired, "")
	if err != nil {
		return err
	}
	for _, e := range entries {
		var d protocol.DesiredWorkload
		if err := json.Unmarshal(e.Value(), &d); err != nil {
			return fmt.Errorf("read %s/%s: %w", DesiredBucket, e.Key(), err)
		}
		m.desired[d.Workload] = mirrored{d: d, rev: e.Revision()}
	}
	bs, err := list[protocol.Binding](ctx, s.bindings, "")
	if err != nil {
		return err
	}
	for _, b := range bs {
		m.putBinding(protocol.BindingKey(b.Node, b.Replica), b)
	}
	s.mu.Lock()
	s.mirror = m
	s.mu.Unlock()
	return nil
}

func (s *Store) mirrored() *mirror {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mirror
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
	bindings, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BindingsBucket, Description: "replicas bound to nodes, keys <node>.<replica>",
		History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open member state: %w", err)
	}
	nodes, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: NodesBucket, Description: "the region's node registry, by node name",
		History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open member state: %w", err)
	}
	keys, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: NodeKeysBucket, Description: "the public keys node agents connect with, by node name",
		History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("open member state: %w", err)
	}
	batch, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(bindingsInFlight), jetstream.WithPublishAsyncTimeout(bindingAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("open member state: %w", err)
	}
	return &Store{desired: desired, bindings: bindings, nodes: nodes, keys: keys, batch: batch}, nil
}

// bindingsInFlight bounds the binding writes WriteBindings has sent and
// not yet seen acknowledged; bindingAckTimeout bounds the wait for one
// ack (a lost one must not hold a controller pass forever).
const (
	bindingsInFlight  = 512
	bindingAckTimeout = 30 * time.Second
)

// WriteBindings deletes bindings, then puts others, each phase in one
// batch: every write is published without waiting for its ack (at most
// bindingsInFlight outstanding), and the acks are awaited together. A
// pass that binds or removes thousands of replicas costs one round of
// acks, not thousands, and keeps the connection free sooner. The mirror
// and the node notifications follow each acknowledged write.
func (s *Store) WriteBindings(ctx context.Context, deletes, puts []protocol.Binding) error {
	return errors.Join(s.writeBatch(ctx, deletes, true), s.writeBatch(ctx, puts, false))
}

func (s *Store) writeBatch(ctx context.Context, bs []protocol.Binding, del bool) error {
	if len(bs) == 0 {
		return nil
	}
	type sent struct {
		b protocol.Binding
		f jetstream.PubAckFuture
	}
	pending := make([]sent, 0, len(bs))
	var errs []error
	for _, b := range bs {
		msg := nats.NewMsg("$KV." + BindingsBucket + "." + protocol.BindingKey(b.Node, b.Replica))
		if del {
			msg.Header.Set("KV-Operation", "DEL")
		} else {
			value, err := json.Marshal(b)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			msg.Data = value
		}
		f, err := s.batch.PublishMsgAsync(msg, jetstream.WithStallWait(time.Minute))
		if err != nil {
			errs = append(errs, fmt.Errorf("write binding %s: %w", b.Replica, err))
			break // the connection is in trouble: what was sent is awaited below
		}
		pending = append(pending, sent{b, f})
	}
	var done, unsure []protocol.Binding
wait:
	for i, p := range pending {
		select {
		case <-p.f.Ok():
			done = append(done, p.b)
		case err := <-p.f.Err():
			errs = append(errs, fmt.Errorf("write binding %s: %w", p.b.Replica, err))
			unsure = append(unsure, p.b)
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
			for _, q := range pending[i:] {
				unsure = append(unsure, q.b)
			}
			break wait
		}
	}
	// A write whose ack failed may have landed all the same: the mirror
	// learns what the bucket holds, so it never lags what the nodes run.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	type found struct {
		b    protocol.Binding
		held bool
	}
	var reread []found
	for _, b := range unsure {
		e, err := s.bindings.Get(rctx, protocol.BindingKey(b.Node, b.Replica))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			reread = append(reread, found{b: b})
		case err != nil:
			continue // the next pass reads the mirror; a restart the bucket
		default:
			var got protocol.Binding
			if json.Unmarshal(e.Value(), &got) == nil {
				reread = append(reread, found{b: got, held: true})
			}
		}
	}
	nodes := map[string]bool{}
	s.mu.Lock()
	for _, b := range done {
		key := protocol.BindingKey(b.Node, b.Replica)
		if s.mirror != nil {
			if del {
				s.mirror.deleteBinding(b.Node, key)
			} else {
				s.mirror.putBinding(key, b)
			}
		}
		nodes[b.Node] = true
	}
	for _, f := range reread {
		key := protocol.BindingKey(f.b.Node, f.b.Replica)
		if s.mirror != nil {
			if f.held {
				s.mirror.putBinding(key, f.b)
			} else {
				s.mirror.deleteBinding(f.b.Node, key)
			}
		}
		nodes[f.b.Node] = true
	}
	changed := s.changed
	s.mu.Unlock()
	if changed != nil {
		for node := range nodes {
			changed(node)
		}
	}
	return errors.Join(errs...)
}

// OnBindingChange has fn hear the node of every binding this Store writes
// or deletes (the member tells that node at once). Set it before writes.
func (s *Store) OnBindingChange(fn func(node string)) {
	s.mu.Lock()
	s.changed = fn
	s.mu.Unlock()
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
	m := s.mirrored()
	for attempt := 0; attempt < 10; attempt++ {
		if m != nil && attempt == 0 {
			// The mirror has what this store wrote: compare with it and write
			// with its revision, no read round trip; a mismatch (someone
			// else wrote) falls back to reading the bucket.
			if ack, done, err := s.putDesiredMirrored(ctx, m, d, value); done || err != nil {
				return ack, err
			}
			continue
		}
		entry, err := s.desired.Get(ctx, d.Workload)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			rev, err := s.desired.Create(ctx, d.Workload, value)
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // someone else wrote first: compare again
			} else if err != nil {
				return ack, fmt.Errorf("store desired %s: %w", d.Workload, err)
			}
			s.remember(d, rev)
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
			// The same delivery again is fine; other content under the same
			// epoch is a sender's bug, never applied silently.
			if !sameContent(cur, d) {
				ack.Current, ack.Reason = cur.Epoch, fmt.Sprintf("epoch %d already holds other content: a change needs a new epoch", d.Epoch)
				return ack, nil
			}
			if !relearns(cur, d) {
				ack.Accepted, ack.Current = true, cur.Epoch
				return ack, nil
			}
			// Stored by a member before protocol 3, which did not keep
			// Exclusive: learn it (below).
		}
		rev, err := s.desired.Update(ctx, d.Workload, value, entry.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		} else if err != nil {
			return ack, fmt.Errorf("store desired %s: %w", d.Workload, err)
		}
		s.remember(d, rev)
		ack.Accepted, ack.Current = true, d.Epoch
		return ack, nil
	}
	return ack, fmt.Errorf("store desired %s: too many concurrent writers", d.Workload)
}

// PutDesiredBatch is PutDesired for many workloads at once (each a
// different one): every write the mirror shows is needed is published
// without waiting for its ack, with compare-and-set on the revision the
// mirror holds, and the acks are awaited together, so a batch of a
// hundred costs one round of acks, not a hundred. A write whose
// compare-and-set fails (someone else wrote) or whose ack does not come
// goes through PutDesired, which reads the bucket. Without a mirror it is
// PutDesired one by one. The results are in ds's order; accepted (nil:
// none) hears each index as soon as its workload is accepted, so the
// first ones act before the last are stored.
func (s *Store) PutDesiredBatch(ctx context.Context, ds []protocol.DesiredWorkload, accepted func(i int)) ([]protocol.DesiredAck, []error) {
	if accepted == nil {
		accepted = func(int) {}
	}
	acks := make([]protocol.DesiredAck, len(ds))
	errs := make([]error, len(ds))
	m := s.mirrored()
	type sent struct {
		i int
		f jetstream.PubAckFuture
	}
	var pending []sent
	var again []int // PutDesired decides these
	for i, d := range ds {
		acks[i] = protocol.DesiredAck{Version: protocol.Version, Workload: d.Workload, Epoch: d.Epoch}
		if m == nil {
			again = append(again, i)
			continue
		}
		value, err := json.Marshal(d)
		if err != nil {
			errs[i] = err
			continue
		}
		s.mu.Lock()
		cur, ok := m.desired[d.Workload]
		s.mu.Unlock()
		var rev uint64 // 0: the key must not exist yet
		switch {
		case !ok:
		case cur.d.Epoch > d.Epoch:
			acks[i].Current, acks[i].Reason = cur.d.Epoch, fmt.Sprintf("stale epoch %d: this member holds epoch %d", d.Epoch, cur.d.Epoch)
			continue
		case cur.d.Epoch == d.Epoch && !sameContent(cur.d, d):
			acks[i].Current, acks[i].Reason = cur.d.Epoch, fmt.Sprintf("epoch %d already holds other content: a change needs a new epoch", d.Epoch)
			continue
		case cur.d.Epoch == d.Epoch && !relearns(cur.d, d):
			acks[i].Accepted, acks[i].Current = true, cur.d.Epoch
			accepted(i)
			continue
		default:
			rev = cur.rev
		}
		msg := nats.NewMsg("$KV." + DesiredBucket + "." + d.Workload)
		msg.Data = value
		f, err := s.batch.PublishMsgAsync(msg, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithStallWait(time.Minute))
		if err != nil {
			again = append(again, i)
			continue
		}
		pending = append(pending, sent{i: i, f: f})
	}
	for _, p := range pending {
		select {
		case ack := <-p.f.Ok():
			s.remember(ds[p.i], ack.Sequence)
			acks[p.i].Accepted, acks[p.i].Current = true, ds[p.i].Epoch
			accepted(p.i)
		case <-p.f.Err():
			again = append(again, p.i) // moved under the mirror, or lost: read the bucket
		case <-ctx.Done():
			errs[p.i] = fmt.Errorf("store desired %s: %w", ds[p.i].Workload, ctx.Err())
		}
	}
	for _, i := range again {
		acks[i], errs[i] = s.PutDesired(ctx, ds[i])
		if errs[i] == nil && acks[i].Accepted {
			accepted(i)
		}
	}
	return acks, errs
}

// putDesiredMirrored is PutDesired against the mirror; done is false when
// the bucket moved under it (then PutDesired reads the bucket).
func (s *Store) putDesiredMirrored(ctx context.Context, m *mirror, d protocol.DesiredWorkload, value []byte) (ack protocol.DesiredAck, done bool, err error) {
	ack = protocol.DesiredAck{Version: protocol.Version, Workload: d.Workload, Epoch: d.Epoch}
	s.mu.Lock()
	cur, ok := m.desired[d.Workload]
	s.mu.Unlock()
	var rev uint64
	switch {
	case !ok:
		rev, err = s.desired.Create(ctx, d.Workload, value)
	case cur.d.Epoch > d.Epoch:
		ack.Current, ack.Reason = cur.d.Epoch, fmt.Sprintf("stale epoch %d: this member holds epoch %d", d.Epoch, cur.d.Epoch)
		return ack, true, nil
	case cur.d.Epoch == d.Epoch && !sameContent(cur.d, d):
		ack.Current, ack.Reason = cur.d.Epoch, fmt.Sprintf("epoch %d already holds other content: a change needs a new epoch", d.Epoch)
		return ack, true, nil
	case cur.d.Epoch == d.Epoch && !relearns(cur.d, d):
		ack.Accepted, ack.Current = true, cur.d.Epoch
		return ack, true, nil
	default: // a newer epoch, or the same one learning Exclusive
		rev, err = s.desired.Update(ctx, d.Workload, value, cur.rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists):
		return ack, false, nil
	case err != nil:
		return ack, true, fmt.Errorf("store desired %s: %w", d.Workload, err)
	}
	s.remember(d, rev)
	ack.Accepted, ack.Current = true, d.Epoch
	return ack, true, nil
}

// remember records a desired write in the mirror (when there is one).
func (s *Store) remember(d protocol.DesiredWorkload, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mirror != nil {
		if cur, ok := s.mirror.desired[d.Workload]; !ok || cur.rev < rev {
			s.mirror.desired[d.Workload] = mirrored{d: d, rev: rev}
		}
	}
}

// Desired returns every desired workload held, tombstones included.
func (s *Store) Desired(ctx context.Context) (map[string]protocol.DesiredWorkload, error) {
	if m := s.mirrored(); m != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := make(map[string]protocol.DesiredWorkload, len(m.desired))
		for w, e := range m.desired {
			out[w] = e.d
		}
		return out, nil
	}
	list, err := list[protocol.DesiredWorkload](ctx, s.desired, "")
	if err != nil {
		return nil, fmt.Errorf("list desired: %w", err)
	}
	out := make(map[string]protocol.DesiredWorkload, len(list))
	for _, d := range list {
		out[d.Workload] = d
	}
	return out, nil
}

// DesiredFor returns the desired state held for the given workloads (those
// without any are left out), tombstones included.
func (s *Store) DesiredFor(ctx context.Context, workloads []string) (map[string]protocol.DesiredWorkload, error) {
	out := make(map[string]protocol.DesiredWorkload, len(workloads))
	if m := s.mirrored(); m != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, w := range workloads {
			if e, ok := m.desired[w]; ok {
				out[w] = e.d
			}
		}
		return out, nil
	}
	all, err := s.Desired(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range workloads {
		if d, ok := all[w]; ok {
			out[w] = d
		}
	}
	return out, nil
}

// PutBinding records that a replica runs on a node (a batch of one).
func (s *Store) PutBinding(ctx context.Context, b protocol.Binding) error {
	return s.WriteBindings(ctx, nil, []protocol.Binding{b})
}

// DeleteBinding removes a replica from a node; its agent stops it (a
// batch of one).
func (s *Store) DeleteBinding(ctx context.Context, node, replica string) error {
	return s.WriteBindings(ctx, []protocol.Binding{{Node: node, Replica: replica}}, nil)
}

// Bindings returns every binding, in no particular order.
func (s *Store) Bindings(ctx context.Context) ([]protocol.Binding, error) {
	if m := s.mirrored(); m != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := make([]protocol.Binding, 0, len(m.bindings))
		for _, b := range m.bindings {
			out = append(out, b)
		}
		return out, nil
	}
	return list[protocol.Binding](ctx, s.bindings, "")
}

// NodeBindings returns the bindings of one node (from memory once
// mirrored).
func (s *Store) NodeBindings(ctx context.Context, node string) ([]protocol.Binding, error) {
	if m := s.mirrored(); m != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := make([]protocol.Binding, 0, len(m.byNode[node]))
		for _, b := range m.byNode[node] {
			out = append(out, b)
		}
		return out, nil
	}
	return list[protocol.Binding](ctx, s.bindings, node+".")
}

// NodeKey is a node agent's enrolled public key. A revoked key stays,
// marked, so that neither it nor its name can join again until an admin
// forgets it.
type NodeKey struct {
	Node       string     `json:"node"`
	PublicKey  string     `json:"publicKey"`
	EnrolledAt time.Time  `json:"enrolledAt"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
}

// NodeKeys returns every enrolled (or revoked) node key, by node name.
// An entry that does not name its own key, or holds no user nkey, is
// left out and counted in bad: only the member writes the bucket, so a
// bad entry is damage, never a revocation (a revocation is marked).
func (s *Store) NodeKeys(ctx context.Context) (keys map[string]NodeKey, bad int, err error) {
	entries, err := snapshot(ctx, s.keys, "")
	if err != nil {
		return nil, 0, err
	}
	keys = make(map[string]NodeKey, len(entries))
	for _, e := range entries {
		var k NodeKey
		if json.Unmarshal(e.Value(), &k) != nil || k.Node != e.Key() || !nkeys.IsValidPublicUserKey(k.PublicKey) {
			bad++
			continue
		}
		keys[k.Node] = k
	}
	return keys, bad, nil
}

// PutNodeKey enrolls a node's key.
func (s *Store) PutNodeKey(ctx context.Context, k NodeKey) error {
	value, err := json.Marshal(k)
	if err != nil {
		return err
	}
	if _, err := s.keys.Put(ctx, k.Node, value); err != nil {
		return fmt.Errorf("enroll node %s: %w", k.Node, err)
	}
	return nil
}

// DeleteNodeKey forgets a node's key, revoked or not: its name may join
// again with a new key.
func (s *Store) DeleteNodeKey(ctx context.Context, node string) error {
	if err := s.keys.Delete(ctx, node); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("forget node %s: %w", node, err)
	}
	return nil
}

// WatchNodeKeys signals (coalesced) whenever a node key is enrolled or
// revoked, through this Store or any other client of the bucket.
func (s *Store) WatchNodeKeys(ctx context.Context) (<-chan struct{}, error) {
	w, err := s.keys.WatchAll(ctx, jetstream.MetaOnly(), jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watch node keys: %w", err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Updates():
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}

// NodeRecord is what the registry keeps about a node between member
// restarts; liveness is not kept (it comes from heartbeats).
type NodeRecord struct {
	Name        string             `json:"name"`
	Zone        string             `json:"zone,omitempty"`
	Labels      map[string]string  `json:"labels,omitempty"`
	Taints      []api.Taint        `json:"taints,omitempty"`
	Allocatable protocol.Resources `json:"allocatable"`
}

// PutNode records a node.
func (s *Store) PutNode(ctx context.Context, n NodeRecord) error {
	value, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if _, err := s.nodes.Put(ctx, n.Name, value); err != nil {
		return fmt.Errorf("store node %s: %w", n.Name, err)
	}
	return nil
}

// Nodes returns the registry.
func (s *Store) Nodes(ctx context.Context) ([]NodeRecord, error) {
	return list[NodeRecord](ctx, s.nodes, "")
}

// list reads every value of a bucket whose key starts with prefix.
func list[T any](ctx context.Context, kv jetstream.KeyValue, prefix string) ([]T, error) {
	entries, err := snapshot(ctx, kv, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(entries))
	for _, e := range entries {
		var v T
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			return nil, fmt.Errorf("read %s/%s: %w", kv.Bucket(), e.Key(), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// snapshot reads the current value of every key under prefix in one
// stream (a watch that ends after the initial values), instead of one Get
// per key: a controller pass over thousands of keys costs one round trip,
// not thousands.
func snapshot(ctx context.Context, kv jetstream.KeyValue, prefix string) ([]jetstream.KeyValueEntry, error) {
	keys := ">"
	if prefix != "" {
		keys = prefix + ">"
	}
	w, err := kv.Watch(ctx, keys, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kv.Bucket(), err)
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return out, nil
			}
			if e == nil {
				return out, nil // the initial values are all in
			}
			out = append(out, e)
		}
	}
}

// relearns says whether a delivery of the epoch held (cur) is worth
// storing again: it says otherwise of Exclusive, or cur was stored before
// protocol.ExclusiveSince (and so says nothing of it).
func relearns(cur, d protocol.DesiredWorkload) bool {
	return cur.Exclusive != d.Exclusive || (cur.Version < protocol.ExclusiveSince && d.Version >= protocol.ExclusiveSince)
}

// sameContent compares two deliveries by their canonical JSON, the
// sender's protocol version aside.
func sameContent(a, b protocol.DesiredWorkload) bool {
	a.Version, b.Version = 0, 0
	a.Term, b.Term = 0, 0 // the lease term it was sent under is not content
	// Exclusive is what the hub says of the workload; a member before
	// protocol 3 stored none, and learns it from a resend of the epoch.
	a.Exclusive, b.Exclusive = false, false
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
