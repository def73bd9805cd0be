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
// each Ready member's digest every few seconds.
func (p *Placer) deliver(ctx context.Context, workloads map[string]api.Workload, clusters []api.Cluster) error {
	rows, err := p.db.Placements(ctx)
	if err != nil {
		return err
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
	var wg sync.WaitGroup
	for cluster, list := range byCluster {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target, ok := targets[cluster]
			if !ok {
				target = api.Target{Name: cluster} // deregistered
			}
			if err := p.deliverTo(ctx, target, known[cluster], list, workloads); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *Placer) deliverTo(ctx context.Context, target api.Target, known bool, rows []pgstore.Placement, workloads map[string]api.Workload) error {
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
				return p.db.MarkDeliveredAll(ctx, cluster, gone)
			}
		}
		return nil // deliver when it is back
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
	// Send everything pending at once, a bounded number in flight, and
	// record the acknowledgements in one write. A delivery waits mostly on
	// the member's store write, not on CPU: a failover sends a thousand at
	// once, and 256 in flight take a third of the time 32 did.
	var mu sync.Mutex
	var acked []pgstore.Placement
	var errs []error
	sem := make(chan struct{}, deliveriesInFlight)
	var wg sync.WaitGroup
	for _, r := range rows {
		if r.DeliveredEpoch >= r.Epoch && !resync {
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
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			reply, err := p.bus.Request(rctx, cluster, protocol.DesiredSubject(cluster), data)
			cancel()
			var ack protocol.DesiredAck
			if err == nil {
				err = json.Unmarshal(reply, &ack)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("deliver %s to %s: %w", r.Workload, cluster, err))
			case !ack.Accepted && ack.Current < r.Epoch:
				p.log.WarnContext(ctx, "member refused desired state", "workload", r.Workload, "cluster", cluster, "reason", ack.Reason)
			default:
				// Accepted, or the member already holds a newer epoch.
				acked = append(acked, r)
			}
		}()
	}
	wg.Wait()
	if len(acked) > 0 {
		if err := p.db.MarkDeliveredAll(ctx, cluster, acked); err != nil {
			errs = append(errs, err)
		}
		p.delivered.Add(ctx, int64(len(acked)))
	}
	return errors.Join(errs...)
}

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
