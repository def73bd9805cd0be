package placer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/pgstore"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// commitChanges writes the pass's changes: their status, conditions and
// events, in batches short enough not to hold the workloads' row locks
// (an API update of one waits) or the watch horizon (every watch waits for
// the oldest open write) for long. lost are the clusters the
// monitor had Unreachable as the pass began.
//
// Moves go first (their events and progress matter most), then changes of
// status alone: a Suspect cluster, say, rewrites every workload's reasons.
// Those give way when another cluster is lost meanwhile, so its failover
// does not wait behind them: they are decided again in the pass that
// follows at once.
func (p *Placer) commitChanges(ctx context.Context, changes []*change, lost map[string]bool) error {
	var errs []error
	slices.SortStableFunc(changes, func(a, b *change) int { return cmp.Compare(len(b.rows), len(a.rows)) })
	for len(changes) > 0 {
		if len(changes[0].rows) == 0 && p.lostMeanwhile(lost) {
			p.writeMu.Lock()
			for _, ch := range changes {
				p.owedByWrite[ch.name] = true
			}
			p.writeMu.Unlock()
			p.Wake()
			break
		}
		n := min(len(changes), 100)
		if moves := slices.IndexFunc(changes, func(ch *change) bool { return len(ch.rows) == 0 }); moves > 0 {
			n = min(n, moves) // moves and changes of status alone never share a batch
		}
		batch := changes[:n]
		changes = changes[n:]
		if err := p.commitStatus(ctx, batch); err != nil {
			// One bad workload (deleted meanwhile, say) must not hold the
			// others: write them one by one.
			for _, ch := range batch {
				if err := p.commitStatus(ctx, []*change{ch}); err != nil && api.ErrorCode(err) != api.CodeNotFound {
					errs = append(errs, fmt.Errorf("place %s: %w", ch.name, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// lostMeanwhile says whether a cluster turned Unreachable after the pass
// began (lost: the ones the monitor had Unreachable then).
func (p *Placer) lostMeanwhile(lost map[string]bool) bool {
	for _, name := range p.monitor.Unreachable() {
		if !lost[name] {
			return true
		}
	}
	return false
}

// commitRows writes the placement rows of a batch of changes in one
// transaction with one new epoch (a pass that places a thousand new
// workloads costs one commit, not a thousand), and, once committed, into
// the rows held. A failed write may have committed or not: the next pass
// reads the rows whole.
func (p *Placer) commitRows(ctx context.Context, batch []*change) error {
	err := p.db.InTx(ctx, placerActor, func(tx *pgstore.Tx) error {
		if err := p.leader.Fence(ctx, tx); err != nil {
			return err
		}
		var epoch int64
		var rows []pgstore.Placement
		for _, ch := range batch {
			if len(ch.rows) == 0 {
				continue
			}
			if epoch == 0 {
				var err error
				if epoch, err = tx.NextPlacementEpoch(ctx); err != nil {
					return err
				}
			}
			ch.epoch = epoch
			for _, r := range ch.rows {
				r.Epoch = epoch
				rows = append(rows, r)
			}
		}
		return tx.PutPlacements(ctx, rows)
	})
	if err != nil {
		p.held.invalidate(reloadUnknown)
		return err
	}
	for _, ch := range batch {
		p.held.put(ch.rows, ch.epoch)
	}
	return nil
}

// commitStatus writes the changes' placement status, finalizers and
// events in one transaction: the workloads' rows locked by one statement,
// and every write with its events in one batch.
func (p *Placer) commitStatus(ctx context.Context, batch []*change) error {
	versions := make([]int64, len(batch))
	err := p.db.InTx(ctx, placerActor, func(tx *pgstore.Tx) error {
		if err := p.leader.Fence(ctx, tx); err != nil {
			return err
		}
		names := make([]string, len(batch))
		for i, ch := range batch {
			names[i] = ch.name
		}
		locked, err := tx.LockAll(ctx, "Workload", names)
		if err != nil {
			return err
		}
		b := tx.Batch()
		for i, ch := range batch {
			cur, ok := locked[ch.name]
			if !ok {
				return api.Errorf(api.CodeNotFound, "Workload %q not found", ch.name)
			}
			if err := p.record(ctx, b, cur, ch, &versions[i]); err != nil {
				return err
			}
		}
		return b.Send(ctx)
	})
	if err != nil {
		return err
	}
	for i, ch := range batch {
		ch.written = versions[i]
	}
	return nil
}

// record queues a change's placement status, conditions, finalizer and
// (when replicas moved) its event onto b; cur is the workload as locked.
// It sets *written to the workload's version as written.
func (p *Placer) record(ctx context.Context, b *pgstore.Batch, cur *pgstore.Record, ch *change, written *int64) error {
	ch.status.Epoch = ch.epoch
	rec, err := b.Update(ctx, "place", cur, func(cur *pgstore.Record) error {
		if !slices.Contains(cur.Meta.Finalizers, Finalizer) && cur.Meta.DeletionTimestamp == nil {
			cur.Meta.Finalizers = append(cur.Meta.Finalizers, Finalizer)
		}
		var s api.WorkloadStatus
		_ = json.Unmarshal(cur.Status, &s)
		s.Placement = ch.status
		s.Rollout = ch.rollout
		now := p.now().UTC().Truncate(time.Millisecond)
		for _, c := range ch.decision.Conditions {
			if c.LastTransitionTime == nil {
				c.LastTransitionTime = &now // kept by setCondition while the status holds
			}
			s.Conditions = api.SetCondition(s.Conditions, c)
		}
		b, err := json.Marshal(s)
		cur.Status = b
		return err
	})
	if err != nil {
		return err
	}
	*written = rec.RV()
	ref := api.ObjectReference{Kind: "Workload", Name: ch.name, UID: rec.Meta.UID}
	for _, ev := range ch.rolloutEvents {
		if err := events.Queue(ctx, b, p.now(), ref, ev.Type, ev.Reason, ev.Message, "hub/placement"); err != nil {
			return err
		}
	}
	if len(ch.rows) == 0 {
		return nil
	}
	p.decisions.Add(ctx, 1)
	d := ch.decision
	if len(ch.lost) > 0 {
		msg := failover.FailoverText(ch.lost, d)
		if d.Unplaced > 0 {
			msg += "; " + d.UnplacedReason
		}
		for c, n := range ch.lost {
			p.failovers.Add(ctx, int64(n), metric.WithAttributes(attribute.String("reason", failover.Reason(d.Evicted[c]))))
		}
		reason, typ := failover.MoveReason(ch.lost, d)
		return events.Queue(ctx, b, p.now(), ref, typ, reason, msg, "hub/placement")
	}
	if len(ch.back) > 0 {
		return events.Queue(ctx, b, p.now(), ref, api.EventNormal, "FailedBack", failover.FailbackText(ch.back, d), "hub/placement")
	}
	if len(ch.moves) > 0 {
		var n int32
		for _, m := range ch.moves {
			n += m.Replicas
		}
		p.rebalanced.Add(ctx, int64(n))
		return events.Queue(ctx, b, p.now(), ref, api.EventNormal, "Rebalanced", failover.RebalanceText(ch.moves), "hub/placement")
	}
	msg := "placed: " + failover.SplitText(d.Assignment)
	typ := api.EventNormal
	if d.Unplaced > 0 {
		msg += "; " + d.UnplacedReason
		typ = api.EventWarning
	}
	return events.Queue(ctx, b, p.now(), ref, typ, "Placed", msg, "hub/placement")
}

// retire sends tombstones for a deleted workload and, once every cluster
// confirmed, releases its finalizer; the rows held follow each committed
// write (a failed one: the next pass reads them whole).
func (p *Placer) retire(ctx context.Context, w api.Workload, rows []pgstore.Placement) error {
	name := w.Metadata.Name
	pending := false
	var fresh []pgstore.Placement
	for _, r := range rows {
		switch {
		case !r.Deleted:
			fresh = append(fresh, pgstore.Placement{Workload: name, Cluster: r.Cluster, Generation: r.Generation, Deleted: true})
		case r.DeliveredEpoch < r.Epoch:
			pending = true
		}
	}
	if len(fresh) > 0 {
		var epoch int64
		err := p.db.InTx(ctx, placerActor, func(tx *pgstore.Tx) error {
			if err := p.leader.Fence(ctx, tx); err != nil {
				return err
			}
			var err error
			if epoch, err = tx.NextPlacementEpoch(ctx); err != nil {
				return err
			}
			for i := range fresh {
				fresh[i].Epoch = epoch
			}
			return tx.PutPlacements(ctx, fresh)
		})
		if err != nil {
			p.held.invalidate(reloadUnknown)
			return err
		}
		p.held.put(fresh, epoch)
		return nil
	}
	if pending || !slices.Contains(w.Metadata.Finalizers, Finalizer) {
		return nil
	}
	err := p.db.InTx(ctx, placerActor, func(tx *pgstore.Tx) error {
		if err := p.leader.Fence(ctx, tx); err != nil {
			return err
		}
		if err := tx.DeletePlacements(ctx, name); err != nil {
			return err
		}
		_, err := tx.Mutate(ctx, "place", "Workload", name, func(cur *pgstore.Record) error {
			cur.Meta.Finalizers = slices.DeleteFunc(cur.Meta.Finalizers, func(f string) bool { return f == Finalizer })
			return nil
		})
		return err
	})
	if err != nil {
		p.held.invalidate(reloadUnknown)
		return err
	}
	p.held.remove(name)
	return nil
}
