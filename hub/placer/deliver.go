package placer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// deliver sends every placement a member has not acknowledged, and checks
// each Ready member's digest every few seconds, from the rows held. Each
// member gets only its rows to send, or all of its rows when its digest
// is checked or it asked for everything again (a resync); a deregistered
// cluster's tombstones are recorded as delivered.
func (p *Placer) deliver(ctx context.Context, workloads map[string]api.Workload, clusters []api.Cluster) error {
	d := p.startDelivery(ctx, workloads, clusters, nil)
	d.wg.Wait()
	return p.endDelivery(ctx, d)
}

// delivery is one deliver's requests, under way from startDelivery, and
// what they brought, for endDelivery.
type delivery struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
	acked   map[string][]pgstore.Placement
	settled map[string][]pgstore.Placement
	missing map[string][]string
}

// startDelivery is deliver up to its requests, which it leaves running
// (with only set, only those workloads' unacknowledged rows, a part of a
// pass delivered ahead of the rest, and no check):
// the pass goroutine may go on deciding, storing and starting the
// delivery of other workloads meanwhile (the rows sent are copied here;
// the requests read p.cache, which only refresh writes), but must wait
// for every delivery under way (d.wg) before it ends any (endDelivery,
// which records acknowledgements, markDelivered) or applies recorded ones
// (waitMarks): the requests read acking.
func (p *Placer) startDelivery(ctx context.Context, workloads map[string]api.Workload, clusters []api.Cluster, only []string) *delivery {
	type member struct {
		target api.Target
		live   failover.Live
		check  bool // its digest is checked this pass
		resync bool // it asked for everything again
		rows   []pgstore.Placement
	}
	members := map[string]*member{}
	known := map[string]bool{}
	now := p.now()
	p.mu.Lock()
	for _, c := range clusters {
		name := c.Metadata.Name
		known[name] = true
		live, ok := p.monitor.Live(name)
		if !ok || live.Health == api.HealthUnreachable {
			continue // deliver when it is back
		}
		m := &member{target: api.Target{Name: name, Labels: c.Metadata.Labels}, live: live}
		if only != nil {
			members[name] = m
			continue
		}
		// The digest is a check, not a delivery: only of a member heard
		// lately (one gone quiet would hold the pass for the request's
		// timeout).
		if live.Health == api.HealthReady && now.Sub(p.lastCheck[name]) > 5*time.Second {
			m.check, p.lastCheck[name] = true, now
		}
		// A member that lost its lease asks for everything again, stamped
		// with its new term, before its exclusive workloads may run.
		if live.Resync && now.Sub(p.resynced[name]) > 2*time.Second {
			m.resync, p.resynced[name] = true, now
		}
		members[name] = m
	}
	p.mu.Unlock()
	// A deregistered cluster runs nothing of ours any more: its
	// tombstones count as delivered.
	gone := map[string][]pgstore.Placement{}
	take := func(r *pgstore.Placement) {
		pending := r.DeliveredEpoch < r.Epoch
		if m := members[r.Cluster]; m != nil {
			if pending || m.check || m.resync {
				m.rows = append(m.rows, *r)
			}
		} else if !known[r.Cluster] && r.Deleted && pending && only == nil {
			gone[r.Cluster] = append(gone[r.Cluster], *r)
		}
	}
	if only == nil {
		p.held.each(take)
	} else {
		for _, name := range only {
			rows := p.held.of(name)
			for i := range rows {
				take(&rows[i])
			}
		}
	}
	d := &delivery{acked: map[string][]pgstore.Placement{}, settled: map[string][]pgstore.Placement{}, missing: map[string][]string{}}
	for cluster, m := range members {
		if len(m.rows) == 0 {
			continue // nothing to send, nor to check
		}
		d.wg.Go(func() {
			got, lacked, err := p.deliverTo(ctx, m.target, m.live, m.rows, workloads, m.check, m.resync)
			d.mu.Lock()
			defer d.mu.Unlock()
			if err != nil {
				d.errs = append(d.errs, err)
			}
			if len(got) > 0 {
				d.acked[cluster] = got
			}
			if len(lacked) > 0 {
				d.missing[cluster] = lacked
			}
		})
	}
	for cluster, rows := range gone {
		d.wg.Go(func() {
			err := p.db.MarkDeliveredAll(ctx, cluster, rows)
			d.mu.Lock()
			defer d.mu.Unlock()
			if err != nil {
				d.errs = append(d.errs, fmt.Errorf("%w: %w", errWriteUnknown, err))
				return
			}
			d.settled[cluster] = rows
		})
	}
	return d
}

// endDelivery takes what a delivery's requests, all ended (d.wg), brought
// into the rows held and records the acknowledgements (markDelivered).
// The pass goroutine only.
func (p *Placer) endDelivery(ctx context.Context, d *delivery) error {
	// The writes that committed: the rows held follow them; one that
	// failed may have committed or not.
	err := errors.Join(d.errs...)
	if errors.Is(err, errWriteUnknown) {
		p.held.invalidate(reloadUnknown)
	}
	for cluster, rows := range d.settled {
		for _, r := range rows {
			p.held.delivered(cluster, r.Workload, r.Epoch)
		}
	}
	for cluster, names := range d.missing {
		for _, name := range names {
			p.held.undelivered(cluster, name)
		}
	}
	p.markDelivered(ctx, d.acked)
	return err
}

// errWriteUnknown marks a failed write of placement rows during delivery:
// it may have committed or not.
var errWriteUnknown = errors.New("placement rows written or not")

// ackKey is one workload's placement on one cluster.
type ackKey struct{ cluster, workload string }

// markWrite is one pass's acknowledgements being recorded.
type markWrite struct {
	done   chan struct{}
	acked  map[ackKey]int64
	failed bool // a write failed (set before done is closed)
}

// markDelivered records the acknowledged rows (MarkDeliveredAll, one
// write per cluster) while the next pass runs: until they are written,
// the placer remembers the epochs acknowledged (acking), and deliverTo
// does not send them again; once written, the rows held take them
// (waitMarks). The pass goroutine only.
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
		var mu sync.Mutex
		var wg sync.WaitGroup
		for cluster, rows := range acked {
			wg.Go(func() {
				if err := p.db.MarkDeliveredAll(ctx, cluster, rows); err != nil {
					mu.Lock()
					m.failed = true
					mu.Unlock()
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
// written, and moves those written from acking into the rows held (as
// the SQL did: only where a row is still at the epoch acknowledged, so a
// row placed again meanwhile is still sent). A failed write may have
// committed or not: the next pass reads the rows whole. The pass
// goroutine only.
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
		if m.failed {
			p.held.invalidate(reloadUnknown)
		}
		for k, e := range m.acked {
			if !m.failed {
				p.held.delivered(k.cluster, k.workload, e)
			}
			if p.acking[k] <= e {
				delete(p.acking, k)
			}
		}
	}
}

// deliverTo sends cluster what it has not acknowledged of rows (its
// rows: those pending, or all of them when check or resync) and returns
// the rows it acknowledged now (for markDelivered); with check, it asks
// the member's digest first and also returns the workloads it marked
// undelivered (the rows held take them once deliver's members are done).
func (p *Placer) deliverTo(ctx context.Context, target api.Target, live failover.Live, rows []pgstore.Placement, workloads map[string]api.Workload, check, resync bool) ([]pgstore.Placement, []string, error) {
	cluster := target.Name
	var errs []error
	var lacked []string
	var have []pgstore.Placement // rows its digest says it holds, unacknowledged
	answered := false            // its digest came
	if check {
		var err error
		if lacked, have, answered, err = p.repair(ctx, cluster, rows); err != nil {
			errs = append(errs, err)
		}
	}
	holds := make(map[string]bool, len(have))
	for _, r := range have {
		holds[r.Workload] = true
	}
	// Rows sent lately without an answer wait for the member's digest
	// (or the doubt's end) rather than going again at once: a member too
	// busy to answer in time is still applying them.
	doubted := map[string]bool{}
	now := p.now()
	p.mu.Lock()
	for _, r := range rows {
		k := ackKey{cluster, r.Workload}
		d, ok := p.inDoubt[k]
		switch {
		case !ok:
		case d.epoch != r.Epoch || !now.Before(d.until) || holds[r.Workload] || answered:
			delete(p.inDoubt, k) // over: placed again, past, held, or the digest says it lacks it
		case !resync:
			doubted[r.Workload] = true
		}
	}
	p.mu.Unlock()
	// Speak the member's version when it is older (it ignores the newer
	// fields: a member before protocol 3 is never fenced).
	version := protocol.SpokenWith(live.Version)
	var pending []outgoing
	for _, r := range rows {
		// Acknowledged, or acknowledged and not recorded yet (acking is
		// only read while passes deliver).
		if (r.DeliveredEpoch >= r.Epoch || p.acking[ackKey{cluster, r.Workload}] >= r.Epoch) && !resync {
			continue
		}
		if holds[r.Workload] && !resync {
			continue
		}
		if doubted[r.Workload] {
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
	return append(have, acked...), lacked, errors.Join(errs...)
}

// doubt is a row sent without an answer in time: its epoch, and until
// when it is not sent again unless the member's digest says it lacks it.
type doubt struct {
	epoch int64
	until time.Time
}

// doubtFor is how long a row sent without an answer waits for the
// member's digest before it is sent again.
const doubtFor = 5 * time.Second

// doubt notes rows sent to cluster without an answer in time, and has
// the member's digest checked on the next pass: what it holds is
// acknowledged from it, what it lacks sent again.
func (p *Placer) doubt(cluster string, sent []outgoing) {
	until := p.now().Add(doubtFor)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range sent {
		p.inDoubt[ackKey{cluster, o.row.Workload}] = doubt{epoch: o.row.Epoch, until: until}
	}
	p.lastCheck[cluster] = time.Time{}
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
	failed := failedDeliveries{cluster: cluster}
	record := func(o outgoing, ack protocol.DesiredAck, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			failed.add(o.row.Workload, err)
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
				if err != nil && rctx.Err() != nil && ctx.Err() == nil {
					p.doubt(cluster, batch)
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
			if err != nil && rctx.Err() != nil && ctx.Err() == nil {
				p.doubt(cluster, []outgoing{o})
			}
			cancel()
			var ack protocol.DesiredAck
			if err == nil {
				err = json.Unmarshal(reply, &ack)
			}
			record(o, ack, err)
		}()
	}
	wg.Wait()
	return acked, failed.errs()
}

// failedDeliveries gathers the workloads one member did not take, by
// cause: a batch that timed out fails every workload in it the same way,
// and a pass's error (logged whole) names each cause once with how many
// it failed, not a line per workload.
type failedDeliveries struct {
	cluster string
	causes  []error             // in the order first seen
	by      map[string][]string // cause's text -> workloads
}

func (f *failedDeliveries) add(workload string, err error) {
	if f.by == nil {
		f.by = map[string][]string{}
	}
	k := err.Error()
	if _, ok := f.by[k]; !ok {
		f.causes = append(f.causes, err)
	}
	f.by[k] = append(f.by[k], workload)
}

// deliveryNamesShown is how many workloads a failed delivery's error
// names before it only counts them.
const deliveryNamesShown = 3

func (f *failedDeliveries) errs() []error {
	var out []error
	for _, err := range f.causes {
		ws := f.by[err.Error()]
		if len(ws) == 1 {
			out = append(out, fmt.Errorf("deliver %s to %s: %w", ws[0], f.cluster, err))
			continue
		}
		names := strings.Join(ws[:min(len(ws), deliveryNamesShown)], ", ")
		if len(ws) > deliveryNamesShown {
			names += fmt.Sprintf(" and %d more", len(ws)-deliveryNamesShown)
		}
		out = append(out, fmt.Errorf("deliver %d workloads to %s (%s): %w", len(ws), f.cluster, names, err))
	}
	return out
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
// converges without replaying history. It returns the workloads marked
// (their writes committed); a row whose acknowledgement is still being
// recorded is left to that record. A failed mark may have been written or
// not: the next pass reads the rows whole.
func (p *Placer) repair(ctx context.Context, cluster string, rows []pgstore.Placement) (marked []string, held []pgstore.Placement, answered bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	reply, err := p.bus.Request(rctx, cluster, protocol.DigestSubject(cluster), []byte(`{}`))
	if err != nil {
		return nil, nil, false, nil
	}
	var d protocol.Digest
	if json.Unmarshal(reply, &d) != nil {
		return nil, nil, false, nil
	}
	for _, r := range rows {
		acking := p.acking[ackKey{cluster, r.Workload}] >= r.Epoch
		switch {
		case r.DeliveredEpoch >= r.Epoch && d.Workloads[r.Workload] < r.Epoch && !acking:
			if err := p.db.MarkUndelivered(ctx, r.Workload, cluster); err != nil {
				return marked, held, true, fmt.Errorf("digest of %s: %w: %w", cluster, errWriteUnknown, err)
			}
			marked = append(marked, r.Workload)
		case r.DeliveredEpoch < r.Epoch && d.Workloads[r.Workload] == r.Epoch && !acking:
			// Sent, and its answer lost (a request that timed out at a
			// busy member that applied it all the same): held, so
			// acknowledged, not sent again.
			held = append(held, r)
		}
	}
	return marked, held, true, nil
}
