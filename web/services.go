package web

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// serviceRow is one service in the services list.
type serviceRow struct {
	Name, Workload, Ports, Names, Failover, Age string
	Gateways                                    string // the clusters whose gateways serve it
	Endpoints                                   int32
	Clusters                                    []string
	Known                                       bool // endpoints are known (the hub keeps the table)
}

// servicesPage lists the services: what each selects, its ports and
// names, and its endpoints as the hub's table has them now.
func (c *Console) servicesPage(w http.ResponseWriter, r *http.Request) {
	res, err := c.cfg.Store.List(r.Context(), "Service", pgstore.ListOptions{Limit: -1})
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	now := c.now()
	rows := make([]serviceRow, 0, len(res.Items))
	for _, rec := range res.Items {
		var s api.Service
		if rec.Decode(&s) != nil {
			continue
		}
		row := c.serviceRowOf(s)
		if s.Metadata.CreationTimestamp != nil {
			row.Age = ageText(now.Sub(*s.Metadata.CreationTimestamp))
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b serviceRow) int { return strings.Compare(a.Name, b.Name) })
	c.render(w, r, http.StatusOK, "services", "Services", rows)
}

// serviceRowOf is a service's row: what it selects, its ports, names and
// locality, and its endpoints as the hub's table has them now.
func (c *Console) serviceRowOf(s api.Service) serviceRow {
	row := serviceRow{Name: s.Metadata.Name, Workload: s.Spec.Workload, Names: strings.Join(s.Names(), ", "), Failover: "own region first"}
	var ports []string
	for _, p := range s.Spec.Ports {
		ports = append(ports, p.Name+"/"+cmp.Or(p.Protocol, "http"))
	}
	row.Ports = strings.Join(ports, ", ")
	row.Gateways = "every cluster"
	if g := s.Spec.Gateways; g != nil {
		row.Gateways = "clusters with " + g.Selector().String()
	}
	switch l := s.Spec.Locality; {
	case l.Nearest():
		row.Failover += ", then the nearest by measured latency"
	case l != nil && len(l.Failover) > 0:
		row.Failover += ", then " + strings.Join(l.Failover, ", ")
	}
	if c.cfg.ServiceStatus != nil {
		st := c.cfg.ServiceStatus(s.Metadata.Name)
		row.Endpoints, row.Clusters, row.Known = st.Endpoints, st.Clusters, true
	}
	return row
}

// servicePage is one service's page: what it selects and its endpoints,
// then its traffic through the gateways over the last minute, per region
// and, during a rollout, per revision (the API's traffic route, asked as
// the session's token).
type servicePage struct {
	Service api.Service
	Row     serviceRow
	Traffic *api.ServiceTraffic
	Problem *api.Problem
}

func (c *Console) servicePage(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	rec, err := c.cfg.Store.Get(r.Context(), "Service", name)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	var s api.Service
	if err := rec.Decode(&s); err != nil {
		c.failErr(w, r, err)
		return
	}
	page := servicePage{Service: s, Row: c.serviceRowOf(s)}
	ans := c.callAPI(r, current(r.Context()), http.MethodGet, "/api/v1/services/"+url.PathEscape(name)+"/traffic", nil)
	var st api.ServiceTraffic
	if !ans.ok() || json.Unmarshal(ans.body, &st) != nil {
		p := ans.problem()
		page.Problem = &p
	} else {
		page.Traffic = &st
	}
	c.renderPage(w, r, http.StatusOK, &view{template: "service", title: name + " · Services", active: "Services", data: page})
}
