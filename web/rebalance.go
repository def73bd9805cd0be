package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/atollhq/atoll/api"
)

// rebalancePage is the rebalance page's view: the hub's plan for one
// workload, each cluster before and after.
type rebalancePage struct {
	Workload   string
	CanOperate bool
	Plan       *api.RebalancePlan
	Rows       []rebalanceRow
	Problem    *api.Problem
}

type rebalanceRow struct {
	Cluster        string
	Before, After  int32
	Gains, Loses   bool
	MovesIn, Moves string
}

// rebalancePlan shows what rebalancing a workload would move (the API's
// dry run), with a button that asks for it.
func (c *Console) rebalancePlan(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	ss := current(r.Context())
	page := rebalancePage{Workload: name, CanOperate: canOperate(ss)}
	status := http.StatusOK
	if page.CanOperate {
		ans := c.callAPI(r, ss, http.MethodPost, "/api/v1/workloads/"+url.PathEscape(name)+"/rebalance?dryRun=All", nil)
		c.noteAction(r, action{name: "workload.rebalance.plan", kind: "Workload", object: name}, ans)
		var plan api.RebalancePlan
		if !ans.ok() || json.Unmarshal(ans.body, &plan) != nil {
			p := ans.problem()
			page.Problem, status = &p, p.Status
		} else {
			page.Plan, page.Rows = &plan, rebalanceRows(plan)
		}
	}
	c.renderPage(w, r, status, &view{template: "rebalance", title: "Rebalance " + name + " · Workloads", active: "Workloads", data: page})
}

// rebalance asks the hub to rebalance a workload.
func (c *Console) rebalance(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if !c.readForm(w, r) {
		return
	}
	a := action{name: "workload.rebalance", kind: "Workload", object: name, redirect: "/workloads/" + url.PathEscape(name)}
	ans := c.callAPI(r, current(r.Context()), http.MethodPost, "/api/v1/workloads/"+url.PathEscape(name)+"/rebalance", nil)
	var plan api.RebalancePlan
	if ans.ok() && json.Unmarshal(ans.body, &plan) == nil {
		switch {
		case plan.Moved() > 0:
			var moves []string
			for _, m := range plan.Moves {
				moves = append(moves, fmt.Sprintf("%d %s → %s", m.Replicas, m.From, m.To))
			}
			a.done = fmt.Sprintf("Rebalancing %s: moving %s, each replica started before the one it replaces stops.", name, strings.Join(moves, ", "))
		case plan.Blocked != "":
			a.done = fmt.Sprintf("Rebalance of %s asked; it waits: %s.", name, plan.Blocked)
		default:
			a.done = fmt.Sprintf("%s is balanced already: nothing moved.", name)
		}
	}
	c.respond(w, r, a, ans)
}

// rebalanceRows lists every cluster of a plan, before and after, with
// the moves in and out of it.
func rebalanceRows(p api.RebalancePlan) []rebalanceRow {
	var rows []rebalanceRow
	for _, c := range p.Clusters() {
		row := rebalanceRow{Cluster: c, Before: p.Current[c], After: p.Target[c]}
		row.Gains, row.Loses = row.After > row.Before, row.After < row.Before
		var in, out []string
		for _, m := range p.Moves {
			if m.To == c {
				in = append(in, fmt.Sprintf("%d from %s", m.Replicas, m.From))
			}
			if m.From == c {
				out = append(out, fmt.Sprintf("%d to %s", m.Replicas, m.To))
			}
		}
		row.MovesIn, row.Moves = strings.Join(in, ", "), strings.Join(out, ", ")
		rows = append(rows, row)
	}
	return rows
}
