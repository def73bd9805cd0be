package placer

import (
	"context"
	"maps"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/failover"
	"github.com/atollhq/atoll/hub/pgstore"
)

// PlanRebalance answers what rebalancing a workload would move now: the
// same decision the leader's pass takes when the request arrives (package
// failover decides), over the fleet as this hub sees it, changing
// nothing. Any hub answers it.
func (p *Placer) PlanRebalance(ctx context.Context, name string) (*api.RebalancePlan, error) {
	rec, err := p.db.Get(ctx, "Workload", name)
	if err != nil {
		return nil, err
	}
	var w api.Workload
	if err := rec.Decode(&w); err != nil {
		return nil, err
	}
	cres, err := p.db.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return nil, err
	}
	var view []failover.Cluster
	for _, r := range cres.Items {
		var c api.Cluster
		if err := r.Decode(&c); err == nil {
			lc := failover.Cluster{Cluster: c}
			lc.Live, lc.Known = p.monitor.Live(c.Metadata.Name)
			view = append(view, lc)
		}
	}
	rows, err := p.db.PlacementsOf(ctx, name)
	if err != nil {
		return nil, err
	}
	current, epochs := map[string]int32{}, map[string]int64{}
	for _, r := range rows {
		epochs[r.Cluster] = r.Epoch
		if !r.Deleted && r.Replicas > 0 {
			current[r.Cluster] = r.Replicas
		}
	}
	res := failover.Decide(failover.Input{Workload: &w, Clusters: view, Current: current, Epochs: epochs, Now: p.now(), RebalanceAsked: true},
		failover.NewLedger(view))
	plan := &api.RebalancePlan{Workload: name, Current: current, Target: maps.Clone(current), Moves: res.Rebalance.Moves,
		Blocked: res.Rebalance.Blocked, Explanation: res.Decision.Explanation}
	for _, m := range plan.Moves {
		plan.Target[m.From] -= m.Replicas
		if plan.Target[m.From] <= 0 {
			delete(plan.Target, m.From)
		}
		plan.Target[m.To] += m.Replicas
	}
	return plan, nil
}
