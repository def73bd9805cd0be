package placer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// deliver sends every placement a member has not acknowledged, and checks
// each Ready member's digest every few seconds. rows are the placement
// rows as they stand (nil: read them).
func (p *Placer) deliver(ctx context.Context, workloads map[string]api.Workload, clusters []api.Cluster, rows []pgstore.Placement) error {
	if rows == nil {
		var err error
		if rows, err = p.db.Placements(ctx); err != nil {
			return err
		}
	}
	known := map[string]bool{}
	targets := map[string]api.Target{}
	for _, c := range clusters {
		known[c.Metadata.Name] = true
		targets[c.Metadata.Name] = api.Target{Name: c.Metadata.Name, Labels: c.Metadata.Labels}
	}
	byCluster := map[string][]pgstore.Placement{}
	for _, r := range rows {
		byCluster[r.Cluster] = append(byCluster[r.Cluster], r)
	}
	var mu sync.Mutex
	var errs []error
	acked := map[string][]pgstore.Placement{}
	var wg sync.WaitGroup
	for cluster, list := range byCluster {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target, ok := targets[cluster]
			if !ok {
				target = api.Target{Name: cluster} // deregistered
			}
			got, err := p.deliverTo(ctx, target, known[cluster], list, workloads)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if len(got) > 0 {
				acked[cluster] = got
			}
		}()
	}
	wg.Wait()
	p.markDelivered(ctx, acked)
	return errors.Join(errs...)
}

// ackKey is one workload's placement on one cluster.
type ackKey struct{ cluster, workload string }

// markWrite is one pass's acknowledgements being recorded.
type markWrite struct {
	done  chan struct{}
	acked map[ackKey]int64
}

// markDelivered records the acknowledged rows (MarkDeliveredAll, one
// write per cluster) while the next pass runs: until they are written,
// the placer remembers the epochs acknowledged (acking), and deliverTo
// does not send them again. The pass goroutine only.
func (p *Placer) markDelivered(ctx context.Context, acked map[string][]pgstore.Placement) {
	if len(acked) == 0 {
		return
	}
	m := &markWrite{done: make(chan struct{}), acked: map[ackKey]int64{}}
	n := 0
	for cluster, rows := range acked {
		for _, r := range rows {
			k := ackKey{cluster, r.Workload}
			m.acked[k] = r.Epoch
			p.acking[k] = max(p.acking[k], r.Epoch)
		}
		n += len(rows)
	}
	p.marks = append(p.marks, m)
	p.delivered.Add(ctx, int64(n))
	go func() {
		defer close(m.done)
		var wg sync.WaitGroup
		for cluster, rows := range acked {
			wg.Go(func() {
				if err := p.db.MarkDeliveredAll(ctx, cluster, rows); err != nil {
					p.writeMu.Lock()
					p.writeErr = errors.Join(p.writeErr, err)
					p.writeMu.Unlock()
				}
			})
		}
		wg.Wait()
	}()
}

// waitMarks waits until at most keep passes' acknowledgements are being
// written, and forgets the epochs of those written (the table has them
// now: a pass that reads it after this sees them). The pass goroutine
// only, before it reads the placement rows.
func (p *Placer) waitMarks(keep int) {
	for len(p.marks) > 0 {
		m := p.marks[0]
		if len(p.marks) <= keep {
			select {
			case <-m.done:
			default:
				return
			}
		}
		<-m.done
		p.marks = p.marks[1:]
		for k, e := range m.acked {
			if p.acking[k] <= e {
				delete(p.acking, k)
			}
		}
	}
}

// deliverTo sends cluster what it has not acknowledged and returns the
// rows it acknowledged now (for markDelivered).
func (p *Placer) deliverTo(ctx context.Context, target api.Target, known bool, rows []pgstore.Placement, workloads map[string]api.Workload) ([]pgstore.Placement, error) {
	cluster := target.Name
	if live, ok := p.monitor.Live(cluster); !known || !ok || live.Health == api.HealthUnreachable {
		if !known {
			// A deregistered cluster runs nothing of ours any more: its
			// tombstones count as delivered.
			var gone []pgstore.Placement
			for _, r := range rows {
				if r.Deleted && r.DeliveredEpoch < r.Epoch {
					gone = append(gone, r)
				}
			}
			if len(gone) > 0 {
				return nil, p.db.MarkDeliveredAll(ctx, cluster, gone)
			}
		}
		return nil, nil // deliver when it is back
	}
	live, _ := p.monitor.Live(cluster)
	p.mu.Lock()
	// The digest is a check, not a delivery: only of a member heard
	// lately (one gone quiet would hold the pass for the request's timeout).
	due := live.Health == api.HealthReady && p.now().Sub(p.lastCheck[cluster]) > 5*time.Second
	if due {
		p.lastCheck[cluster] = p.now()
	}
	// A member that lost its lease asks for everything again, stamped with
	// its new term, before its exclusive workloads may run.
	resync := live.Resync && p.now().Sub(p.resynced[cluster]) > 2*time.Second
	if resync {
		p.resynced[cluster] = p.now()
	}
	p.mu.Unlock()
	if due {
		p.repair(ctx, cluster, rows)
	}
	// Speak the member's version when it is older (it ignores the newer
	// fields: a member before protocol 3 is never fenced).
	version := protocol.SpokenWith(live.Version)
	var errs []error
	var pending []outgoing
	for _, r := range rows {
		// Acknowledged, or acknowledged and not recorded yet (acking is
		// only read while passes deliver).
		if (r.DeliveredEpoch >= r.Epoch || p.acking[ackKey{cluster, r.Workload}] >= r.Epoch) && !resync {
			continue
		}
		w, ok := workloads[r.Workload]
		if !ok && !r.Deleted {
			continue
		}
		spec := w.Spec
		if !r.Deleted && r.Generation < w.Metadata.Generation && w.Spec.Rollout != nil {
			// A progressive rollout keeps this cluster on an older
			// revision: its template as it was at that generation.
			if t, ok := p.templates.at(ctx, p.db, w, r.Generation); ok {
				spec.Template = t
			}
		}
		// The cluster's own template and replicas: spec.overrides applied.
		tmpl, replicas, _ := spec.Effective(target, r.Replicas)
		if p.pins != nil && !r.Deleted {
			// Every cluster runs the revision's image pinned to the digest
			// its tag resolved to once; until then the delivery waits (the
			// workload's ImageResolved condition says why).
			pinned, ok, err := p.pins.Pin(ctx, w, r.Generation, tmpl)
			if err != nil {
				errs = append(errs, fmt.Errorf("deliver %s to %s: %w", r.Workload, cluster, err))
				continue
			}
			if !ok {
				continue
			}
			tmpl = pinned
		}
		d := protocol.DesiredWorkload{Version: version, Workload: r.Workload, UID: w.Metadata.UID, Epoch: r.Epoch, Generation: r.Generation,
			Replicas: replicas, Template: tmpl, Update: w.Spec.Update, Deleted: r.Deleted,
			Exclusive: failover.PolicyOf(&w).Exclusive, Term: live.Term}
		if r.Deleted {
			d.Template, d.Update, d.Replicas = api.ReplicaTemplate{}, nil, 0
		}
		data, _ := json.Marshal(d)
		pending = append(pending, outgoing{row: r, desired: d, data: data})
	}
	// Send everything pending at once: in batches (one request, one round
	// of the member's store writes, for up to a batch's worth), else one
	// request each, a bounded number in flight.
	acked, sendErrs := p.send(ctx, cluster, version, pending)
	errs = append(errs, sendErrs...)
	return acked, errors.Join(errs...)
}

// outgoing is one desired workload to send: its placement row, the
// message and its encoding.
type outgoing struct {
	row     pgstore.Placement
	desired protocol.DesiredWorkload
	data    []byte
}

// send delivers pending to cluster and returns the rows acknowledged. A
// member that answers batches gets them in batches of at most
// desiredBatchMax workloads and desiredBatchBytes; one whose
// batch request finds no responder (a member from before batches) is sent
// one request per workload, and only that way for singlesFor.
func (p *Placer) send(ctx context.Context, cluster string, version int, pending []outgoing) ([]pgstore.Placement, []error) {
	if len(pending) == 0 {
		return nil, nil
	}
	p.mu.Lock()
	batches := version >= protocol.Version && p.now().Sub(p.singlesSince[cluster]) > singlesFor
	p.mu.Unlock()
	var mu sync.Mutex
	var acked []pgstore.Placement
	var errs []error
	record := func(o outgoing, ack protocol.DesiredAck, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("deliver %s to %s: %w", o.row.Workload, cluster, err))
		case !ack.Accepted && ack.Current < o.row.Epoch:
			p.log.WarnContext(ctx, "member refused desired state", "workload", o.row.Workload, "cluster", cluster, "reason", ack.Reason)
		default:
			// Accepted, or the member already holds a newer epoch.
			acked = append(acked, o.row)
		}
	}
	var singles []outgoing
	if batches {
		var smu sync.Mutex
		sem := make(chan struct{}, batchesInFlight)
		var wg sync.WaitGroup
		for len(pending) > 0 {
			n, size := 0, 0
			for n < len(pending) && n < desiredBatchMax && (n == 0 || size+len(pending[n].data) <= desiredBatchBytes) {
				size += len(pending[n].data)
				n++
			}
			batch := pending[:n]
			pending = pending[n:]
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				msg := protocol.DesiredBatch{Version: version, Workloads: make([]protocol.DesiredWorkload, len(batch))}
				for i, o := range batch {
					msg.Workloads[i] = o.desired
				}
				data, _ := json.Marshal(msg)
				rctx, cancel := context.WithTimeout(ctx, batchTimeout)
				defer cancel()
				reply, err := p.bus.Request(rctx, cluster, protocol.DesiredBatchSubject(cluster), data)
				if err != nil && rctx.Err() == nil && ctx.Err() == nil {
					// Answered at once without an answer: nobody listens
					// for batches there. One by one, then.
					p.mu.Lock()
					p.singlesSince[cluster] = p.now()
					p.mu.Unlock()
					smu.Lock()
					singles = append(singles, batch...)
					smu.Unlock()
					return
				}
				var ack protocol.DesiredBatchAck
				if err == nil {
					if err = json.Unmarshal(reply, &ack); err == nil && len(ack.Acks) != len(batch) {
						err = fmt.Errorf("the member answered %d of %d (%s)", len(ack.Acks), len(batch), ack.Reason)
					}
				}
				for i, o := range batch {
					if err != nil {
						record(o, protocol.DesiredAck{}, err)
						continue
					}
					a := ack.Acks[i]
					if a.Workload != o.row.Workload {
						record(o, a, fmt.Errorf("the member answered for %q in its place", a.Workload))
						continue
					}
					record(o, a, nil)
				}
			}()
		}
		wg.Wait()
	} else {
		singles = pending
	}
	sem := make(chan struct{}, deliveriesInFlight)
	var wg sync.WaitGroup
	for _, o := range singles {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			reply, err := p.bus.Request(rctx, cluster, protocol.DesiredSubject(cluster), o.data)
			cancel()
			var ack protocol.DesiredAck
			if err == nil {
				err = json.Unmarshal(reply, &ack)
			}
			record(o, ack, err)
		}()
	}
	wg.Wait()
	return acked, errs
}

// Batches: how many workloads one carries and how large it may grow (the
// member's NATS takes 1 MiB a message; a single workload larger than
// this goes alone), how many are in flight to one member, how long to
// wait for one (as for a single request: a member that went quiet holds
// the pass, and with it a failover, no longer than it did), and how long
// a member that did not answer batches is sent single requests before
// batches are tried again (it may have been upgraded).
const (
	desiredBatchMax   = 128 // at most protocol.MaxDesiredBatch
	desiredBatchBytes = 512 << 10
	batchesInFlight   = 8
	batchTimeout      = 2 * time.Second
	singlesFor        = time.Minute
)

// deliveriesInFlight bounds the desired-state requests outstanding to one
// member; members store as many at once (member.storesInFlight).
const deliveriesInFlight = 256

// repair asks a member which epochs it holds and marks for redelivery
// every placement it lacks: a lost message or a member that was away
// converges without replaying history.
func (p *Placer) repair(ctx context.Context, cluster string, rows []pgstore.Placement) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	reply, err := p.bus.Request(rctx, cluster, protocol.DigestSubject(cluster), []byte(`{}`))
	if err != nil {
		return
	}
	var d protocol.Digest
	if json.Unmarshal(reply, &d) != nil {
		return
	}
	for _, r := range rows {
		if r.DeliveredEpoch >= r.Epoch && d.Workloads[r.Workload] < r.Epoch {
			_ = p.db.MarkUndelivered(ctx, r.Workload, cluster)
		}
	}
}
