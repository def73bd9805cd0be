// Package rebalance is the logic of `atoll rebalance`: asking the hub to
// plan or carry out a workload's rebalance, one workload or all of them,
// and saying what each plan moves in words. It talks only to the REST
// API; flags and output formats are the caller's.
package rebalance

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// Plan asks the hub what rebalancing a workload moves (dry run) or asks
// for the rebalance and returns the plan it carries out.
func Plan(ctx context.Context, c *client.Client, name string, dryRun bool) (*api.RebalancePlan, error) {
	var q url.Values
	if dryRun {
		q = url.Values{"dryRun": {"All"}}
	}
	var plan api.RebalancePlan
	if err := c.Raw(ctx, http.MethodPost, "/api/v1/workloads/"+url.PathEscape(name)+"/rebalance", q, nil, &plan); err != nil {
		return nil, err
	}
	return &plan, nil
}

// All plans every workload and, unless dryRun, asks for a rebalance of
// those whose plan moves replicas (the others are left as they are: a
// request that moves nothing only answers itself). Exclusive workloads
// never move while they run and are skipped. The plans come back in name
// order.
func All(ctx context.Context, c *client.Client, dryRun bool) ([]api.RebalancePlan, error) {
	var list api.WorkloadList
	if err := c.List(ctx, "workloads", client.ListOptions{}, &list); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list.Items))
	for _, w := range list.Items {
		if w.Metadata.DeletionTimestamp == nil {
			names = append(names, w.Metadata.Name)
		}
	}
	slices.Sort(names)
	var out []api.RebalancePlan
	for _, name := range names {
		plan, err := Plan(ctx, c, name, true)
		if api.ErrorCode(err) == api.CodeNotFound {
			continue // deleted meanwhile
		}
		if err != nil {
			return out, fmt.Errorf("plan the rebalance of %s: %w", name, err)
		}
		if !dryRun && plan.Moved() > 0 {
			if plan, err = Plan(ctx, c, name, false); err != nil {
				return out, fmt.Errorf("rebalance %s: %w", name, err)
			}
		}
		out = append(out, *plan)
	}
	return out, nil
}

// Write says in words what a plan moves, or why it moves nothing: one
// line per workload, the moves and each cluster's count before and after.
func Write(w io.Writer, p api.RebalancePlan, dryRun bool) {
	name := "workload/" + p.Workload
	switch {
	case p.Moved() > 0:
		var moves []string
		for _, m := range p.Moves {
			moves = append(moves, fmt.Sprintf("%d %s→%s", m.Replicas, m.From, m.To))
		}
		verb := "rebalancing: moves"
		if dryRun {
			verb = "would move"
		}
		fmt.Fprintf(w, "%s %s %s (%s); each replica starts before the one it replaces stops\n", name, verb, strings.Join(moves, ", "), counts(p))
	case p.Blocked != "":
		what := "nothing moves now"
		if p.Requested {
			what = "rebalance asked; it waits"
		}
		fmt.Fprintf(w, "%s: %s: %s\n", name, what, p.Blocked)
	default:
		fmt.Fprintf(w, "%s: balanced already (%s): nothing to move\n", name, counts(p))
	}
}

// counts is "r1 0→2, r2 4→2": each cluster before and after.
func counts(p api.RebalancePlan) string {
	var parts []string
	for _, c := range p.Clusters() {
		if p.Current[c] == p.Target[c] {
			parts = append(parts, fmt.Sprintf("%s %d", c, p.Current[c]))
		} else {
			parts = append(parts, fmt.Sprintf("%s %d→%d", c, p.Current[c], p.Target[c]))
		}
	}
	return strings.Join(parts, ", ")
}
