package web

import (
	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/placement"
)

// Every count on every page comes from the functions in this file, over
// one snapshot of the fleet, so two pages never disagree.

// countItem is one state and how many are in it.
type countItem struct {
	State string
	N     int
}

// fleetStats are the fleet's headline counts.
type fleetStats struct {
	Clusters        int
	ClusterHealth   []countItem // Ready, Suspect, Unreachable, Unknown
	Cordoned        int
	Workloads       int
	WorkloadHealth  []countItem // in api.WorkloadHealthStates order
	ReplicasReady   int64
	ReplicasDesired int64
}

var clusterStates = []string{api.HealthReady, api.HealthSuspect, api.HealthUnreachable, api.HealthUnknown}

func countFleet(s snapshot) fleetStats {
	st := fleetStats{Clusters: len(s.Clusters), Workloads: len(s.Workloads)}
	ch := map[string]int{}
	for _, c := range s.Clusters {
		ch[c.HealthOrUnknown()]++
		if c.Spec.Unschedulable {
			st.Cordoned++
		}
	}
	for _, h := range clusterStates {
		st.ClusterHealth = append(st.ClusterHealth, countItem{h, ch[h]})
	}
	wh := map[string]int{}
	for _, w := range s.Workloads {
		wh[w.Health.State]++
		st.ReplicasReady += int64(w.Ready)
		st.ReplicasDesired += int64(w.Desired)
	}
	for _, h := range api.WorkloadHealthStates {
		st.WorkloadHealth = append(st.WorkloadHealth, countItem{h, wh[h]})
	}
	return st
}

// usage is a used/total pair shown as a bar.
type usage struct {
	Used, Total int64
	Pct         float64 // 0..100
	Text        string  // "1.2 / 24 cores"
}

func cpuUsage(used, total int64) usage {
	return usage{Used: used, Total: total, Pct: pct(used, total), Text: fmt.Sprintf("%s / %s cores", cores(used), cores(total))}
}

func memUsage(used, total int64) usage {
	return usage{Used: used, Total: total, Pct: pct(used, total), Text: fmt.Sprintf("%s / %s", bytesText(used), bytesText(total))}
}

func pct(used, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return math.Min(100, math.Round(float64(used)*1000/float64(total))/10)
}

func cores(milli int64) string {
	if milli%1000 == 0 {
		return strconv.FormatInt(milli/1000, 10)
	}
	return strconv.FormatFloat(float64(milli)/1000, 'f', 1, 64)
}

func bytesText(b int64) string {
	switch {
	case b >= 1<<30:
		return strconv.FormatFloat(float64(b)/(1<<30), 'f', 1, 64) + " GiB"
	case b >= 1<<20:
		return strconv.FormatInt(b>>20, 10) + " MiB"
	default:
		return strconv.FormatInt(b, 10) + " B"
	}
}

// clusterRow is a cluster as tiles and rows show it.
type clusterRow struct {
	Name, Region, Zone, Provider string
	Health                       string
	Heartbeat                    string
	HeartbeatAge                 float64 // seconds; -1 never
	HasCapacity                  bool
	NodesReady, NodesTotal       int
	CPU, Memory                  usage
	Replicas, ReplicasReady      int
	Cordoned, Draining           bool
	Taints                       []string
	Workloads                    int // workloads with replicas placed here
	// LastKnown labels the figures of a cluster that is not Ready
	// ("last known, 20 s ago"); "" while they are live.
	LastKnown string
}

func newClusterRow(c *api.Cluster) clusterRow {
	r := clusterRow{Name: c.Metadata.Name, Region: regionOf(c), Zone: c.Metadata.Labels[api.LabelZone], Provider: c.Metadata.Labels[api.LabelProvider],
		Health: c.HealthOrUnknown(), Heartbeat: "never", HeartbeatAge: -1, Cordoned: c.Spec.Unschedulable, Draining: c.Draining()}
	if a := c.Status.HeartbeatAgeSeconds; a != nil {
		r.HeartbeatAge = *a
		r.Heartbeat = ageText(time.Duration(*a*float64(time.Second))) + " ago"
	}
	if cp := c.Status.Capacity; cp != nil {
		r.HasCapacity = true
		r.NodesReady, r.NodesTotal = cp.NodesReady, cp.NodesTotal
		r.CPU, r.Memory = cpuUsage(cp.CPUAllocated, cp.CPUAllocatable), memUsage(cp.MemoryAllocated, cp.MemoryAllocatable)
		r.Replicas, r.ReplicasReady = cp.Replicas, cp.ReplicasReady
	}
	for _, t := range c.Spec.Taints {
		r.Taints = append(r.Taints, t.String())
	}
	if r.HasCapacity {
		r.LastKnown = lastKnownAfter(r.Health, r.HeartbeatAge)
	}
	return r
}

// lastKnownAfter labels figures of a cluster in health heard age seconds
// ago (negative: never heard), or "" while they are live.
func lastKnownAfter(health string, age float64) string {
	if age < 0 {
		return api.LastKnown(health, nil, time.Time{})
	}
	now := time.Unix(0, 0)
	at := now.Add(-time.Duration(age * float64(time.Second)))
	return api.LastKnown(health, &at, now)
}

// workloadCluster is a workload's row of one cluster, with the label of
// figures that are last known (the cluster is not Ready now).
type workloadCluster struct {
	api.ClusterReplicas
	LastKnown string
}

// workloadClusters labels the rows of clusters that are not Ready, by the
// console's live view of them (else the health the row was folded under),
// with the age of the cluster's last report (else of its last heartbeat).
func workloadClusters(rows []api.ClusterReplicas, clusters []*api.Cluster, now time.Time) []workloadCluster {
	byName := map[string]*api.Cluster{}
	for _, c := range clusters {
		byName[c.Metadata.Name] = c
	}
	out := make([]workloadCluster, len(rows))
	for i, r := range rows {
		health, at := r.ClusterHealth, r.ReportedAt
		if c := byName[r.Cluster]; c != nil {
			health = c.HealthOrUnknown()
			if at == nil {
				at = c.Status.LastHeartbeatTime
			}
		}
		out[i] = workloadCluster{ClusterReplicas: r, LastKnown: api.LastKnown(health, at, now)}
	}
	return out
}

// ageText renders a duration the way the pages show ages: 0.4s, 12s,
// 5m, 3h, 2d.
func ageText(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 10*time.Second:
		return strconv.FormatFloat(math.Floor(d.Seconds()*10)/10, 'f', 1, 64) + "s"
	case d < 2*time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < 2*time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d"
	}
}

// regionGroup is one region's clusters.
type regionGroup struct {
	Name     string
	Worst    string
	Ready    int
	Clusters []clusterRow
}

var healthRank = map[string]int{api.HealthReady: 0, api.HealthUnknown: 1, api.HealthSuspect: 2, api.HealthUnreachable: 3}

func groupRegions(cs []*api.Cluster) []regionGroup {
	var out []regionGroup
	for _, c := range cs { // sorted by region, then name
		row := newClusterRow(c)
		if len(out) == 0 || out[len(out)-1].Name != row.Region {
			out = append(out, regionGroup{Name: row.Region, Worst: api.HealthReady})
		}
		g := &out[len(out)-1]
		g.Clusters = append(g.Clusters, row)
		if healthRank[row.Health] > healthRank[g.Worst] {
			g.Worst = row.Health
		}
		if row.Health == api.HealthReady {
			g.Ready++
		}
	}
	return out
}

// mapPoint is a region on the overview's map.
type mapPoint struct {
	Name     string
	X, Y     float64
	R        float64
	Worst    string
	Ready    int
	Clusters int
	LabelY   float64
}

// regionAnchors place well-known region names on a 1000x460 map
// (longitude and latitude, roughly, of the cloud regions they usually
// name). Unknown regions are placed along the bottom.
var regionAnchors = []struct {
	prefix string
	x, y   float64
}{
	{"us-west", 150, 165}, {"us-central", 235, 160}, {"us-east", 285, 160}, {"ca-", 260, 120}, {"us-", 240, 165},
	{"sa-", 345, 330}, {"mx-", 210, 215},
	{"eu-north", 530, 85}, {"eu-west", 470, 120}, {"eu-central", 520, 115}, {"eu-south", 520, 150}, {"uk", 470, 105}, {"eu-", 505, 125},
	{"me-", 600, 200}, {"af-", 545, 320},
	{"ap-south", 690, 220}, {"in-", 690, 220}, {"ap-southeast", 790, 275}, {"ap-northeast", 860, 160}, {"ap-east", 815, 200},
	{"au-", 870, 350}, {"ap-", 800, 220},
}

func regionMap(groups []regionGroup) []mapPoint {
	var pts []mapPoint
	unknown := 0
	for _, g := range groups {
		p := mapPoint{Name: g.Name, Worst: g.Worst, Ready: g.Ready, Clusters: len(g.Clusters)}
		p.R = 10 + 4*math.Min(float64(len(g.Clusters)), 6)
		placed := false
		for _, a := range regionAnchors {
			if strings.HasPrefix(g.Name, a.prefix) {
				p.X, p.Y, placed = a.x, a.y, true
				break
			}
		}
		if !placed {
			p.X, p.Y = 80+float64(unknown%10)*90, 395 // the bottom row, its labels inside the map
			unknown++
		}
		// Regions close to one another move apart so labels stay legible.
		for moved := true; moved; {
			moved = false
			for _, q := range pts {
				if math.Abs(q.X-p.X) < 120 && math.Abs(q.Y-p.Y) < 64 {
					h := fnv.New32a()
					h.Write([]byte(g.Name))
					p.X += 40 * float64(int(h.Sum32()%3)-1)
					p.Y += 70
					moved = true
				}
			}
		}
		p.LabelY = p.Y + p.R + 16
		pts = append(pts, p)
	}
	return pts
}

// attentionItem is one thing that needs an operator's eyes, with why.
type attentionItem struct {
	Severity string // crit, warn, info
	Kind     string // Cluster or Workload
	Name     string
	Link     string
	State    string
	Reason   string
}

var severityRank = map[string]int{"crit": 0, "warn": 1, "info": 2}

func attention(s snapshot) []attentionItem {
	var out []attentionItem
	for _, c := range s.Clusters {
		row := newClusterRow(c)
		link := "/clusters/" + url.PathEscape(row.Name)
		add := func(sev, state, reason string) {
			out = append(out, attentionItem{Severity: sev, Kind: "Cluster", Name: row.Name, Link: link, State: state, Reason: reason})
		}
		switch row.Health {
		case api.HealthUnreachable:
			add("crit", row.Health, "no heartbeat for "+strings.TrimSuffix(row.Heartbeat, " ago")+"; its replicas move after their failover grace")
		case api.HealthSuspect:
			add("warn", row.Health, "heartbeats missed (last "+row.Heartbeat+")")
		case api.HealthUnknown:
			add("warn", row.Health, "not heard from since the hub started")
		}
		switch {
		case row.Draining:
			add("warn", "Draining", "drained: its replicas are moving to other clusters")
		case row.Cordoned:
			add("info", "Cordoned", "cordoned: takes no new replicas")
		}
		if row.HasCapacity && row.NodesReady < row.NodesTotal && row.Health == api.HealthReady {
			add("warn", "Nodes", fmt.Sprintf("%d of %d nodes ready", row.NodesReady, row.NodesTotal))
		}
	}
	for _, w := range s.Workloads {
		sev := ""
		switch w.Health.State {
		case api.WorkloadUnavailable:
			sev = "crit"
		case api.WorkloadDegraded:
			sev = "warn"
		case api.WorkloadProgressing:
			sev = "info"
		default:
			continue
		}
		out = append(out, attentionItem{Severity: sev, Kind: "Workload", Name: w.Name, Link: "/workloads/" + url.PathEscape(w.Name), State: w.Health.State, Reason: w.Health.Reason})
	}
	for _, d := range s.Drills {
		if !d.Final {
			// A drill explains the Unreachable or drained clusters it causes.
			out = append(out, attentionItem{Severity: "info", Kind: "Drill", Name: d.Name, Link: drillLink(d.Name), State: d.Phase,
				Reason: d.Kind + " of " + d.Target + ": " + drillProgress(d, s.At)})
		}
	}
	slices.SortStableFunc(out, func(a, b attentionItem) int {
		return cmp.Or(severityRank[a.Severity]-severityRank[b.Severity], strings.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
	})
	return out
}

// eventRow is an event as the feeds show it.
type eventRow struct {
	Time    time.Time
	Age     string
	Type    string
	Reason  string
	Kind    string
	Name    string
	Link    string
	Message string
}

func eventRows(evs []api.Event, now time.Time, limit int) []eventRow {
	var out []eventRow
	for _, e := range evs {
		if len(out) == limit {
			break
		}
		t := eventTime(e)
		row := eventRow{Time: t, Age: ageText(now.Sub(t)), Type: e.Type, Reason: e.Reason, Kind: e.InvolvedObject.Kind, Name: e.InvolvedObject.Name, Message: e.Message}
		if e.Count > 1 && e.FirstTimestamp != nil {
			row.Message += fmt.Sprintf(" (×%d over %s)", e.Count, ageText(now.Sub(*e.FirstTimestamp)))
		}
		switch e.InvolvedObject.Kind {
		case "Cluster":
			row.Link = "/clusters/" + url.PathEscape(e.InvolvedObject.Name)
		case "Workload":
			row.Link = "/workloads/" + url.PathEscape(e.InvolvedObject.Name)
		case "Drill":
			row.Link = drillLink(e.InvolvedObject.Name)
		}
		out = append(out, row)
	}
	return out
}

// objectEvents reads the events of one object, newest first.
func (c *Console) objectEvents(req viewRequest, kind, name string, limit int) ([]eventRow, error) {
	sel, err := api.ParseSelector(api.LabelEventKind + "=" + kind + "," + api.LabelEventName + "=" + name)
	if err != nil {
		return nil, nil // a name no selector can hold has no events
	}
	res, err := c.cfg.Store.List(req.ctx, "Event", pgstore.ListOptions{Selector: sel, Limit: pgstore.MaxLimit})
	if err != nil {
		return nil, err
	}
	evs := make([]api.Event, 0, len(res.Items))
	for _, rec := range res.Items {
		var e api.Event
		if rec.Decode(&e) == nil {
			evs = append(evs, e)
		}
	}
	sortEvents(evs)
	slices.Reverse(evs)
	return eventRows(evs, c.now(), limit), nil
}

// overviewData is the overview page.
type overviewData struct {
	Loaded        bool
	Stats         fleetStats
	Regions       []regionGroup
	Map           []mapPoint
	Attention     []attentionItem
	AttentionMore int
	Events        []eventRow
}

const attentionLimit = 12

func overviewView(c *Console, req viewRequest) (*view, error) {
	s := c.fleet.snapshot()
	d := overviewData{Loaded: s.Loaded, Stats: countFleet(s), Regions: groupRegions(s.Clusters)}
	d.Map = regionMap(d.Regions)
	d.Attention = attention(s)
	if n := len(d.Attention); n > attentionLimit {
		d.Attention, d.AttentionMore = d.Attention[:attentionLimit], n-attentionLimit
	}
	d.Events = eventRows(s.Events, s.At, 15)
	return &view{template: "overview", title: "Overview", active: "Overview", data: d, ticks: true, live: true}, nil
}

// listParams are a list page's search, filter, sort and page, all kept
// in the URL.
type listParams struct {
	Q      string
	Health string // the state filter
	Sort   string
	Desc   bool
	Page   int
	// stateKey names the state filter in the URL; default "health".
	stateKey string
}

// StateKey names the state filter in the URL.
func (p listParams) StateKey() string { return cmp.Or(p.stateKey, "health") }

func readList(q url.Values, sorts []string) (listParams, error) {
	p := listParams{Q: strings.TrimSpace(q.Get("q")), Health: q.Get("health"), Sort: q.Get("sort"), Desc: q.Get("dir") == "desc", Page: 1}
	if len(p.Q) > 200 {
		return p, api.Errorf(api.CodeBadRequest, "the search is too long (at most 200 characters)")
	}
	if p.Sort == "" {
		p.Sort = sorts[0]
	} else if !slices.Contains(sorts, p.Sort) {
		return p, api.Errorf(api.CodeBadRequest, "cannot sort by %q: use one of %s", p.Sort, strings.Join(sorts, ", "))
	}
	if d := q.Get("dir"); d != "" && d != "asc" && d != "desc" {
		return p, api.Errorf(api.CodeBadRequest, "dir must be asc or desc, not %q", d)
	}
	if s := q.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1_000_000 {
			return p, api.Errorf(api.CodeBadRequest, "page must be a number from 1, not %q", s)
		}
		p.Page = n
	}
	return p, nil
}

// url renders the parameters with changes; zero values are left out.
func (p listParams) url(base string, change func(*listParams)) string {
	q := p
	if change != nil {
		change(&q)
	}
	v := url.Values{}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if q.Health != "" {
		v.Set(q.StateKey(), q.Health)
	}
	if q.Sort != "" {
		v.Set("sort", q.Sort)
	}
	if q.Desc {
		v.Set("dir", "desc")
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if len(v) == 0 {
		return base
	}
	return base + "?" + v.Encode()
}

// column is a sortable column header.
type column struct {
	Label, Key string
	URL        string
	Sorted     string // "", "ascending" or "descending" (aria-sort)
	Num        bool
}

func columns(p listParams, base string, cols [][3]string) []column {
	var out []column
	for _, c := range cols {
		col := column{Label: c[0], Key: c[1], Num: c[2] == "num"}
		if c[1] != "" {
			key := c[1]
			col.URL = p.url(base, func(q *listParams) {
				q.Desc = q.Sort == key && !q.Desc
				q.Sort, q.Page = key, 1
			})
			if p.Sort == key {
				col.Sorted = "ascending"
				if p.Desc {
					col.Sorted = "descending"
				}
			}
		}
		out = append(out, col)
	}
	return out
}

// pager is a page of a list.
type pager struct {
	Page, Pages    int
	From, To, Of   int
	Prev, Next     string
	First, Last    string
	ShowingAll     bool
	FilteredFrom   int // how many before the search and filter
	SearchOrFilter bool
}

func paginate[T any](items []T, p listParams, size int, base string, total int) ([]T, pager) {
	pg := pager{Page: p.Page, Of: len(items), FilteredFrom: total, SearchOrFilter: p.Q != "" || p.Health != ""}
	pg.Pages = max(1, (len(items)+size-1)/size)
	if pg.Page > pg.Pages {
		pg.Page = pg.Pages
	}
	from := (pg.Page - 1) * size
	to := min(from+size, len(items))
	pg.From, pg.To = min(from+1, to), to
	if pg.Page > 1 {
		pg.Prev = p.url(base, func(q *listParams) { q.Page = pg.Page - 1 })
		pg.First = p.url(base, func(q *listParams) { q.Page = 1 })
	}
	if pg.Page < pg.Pages {
		pg.Next = p.url(base, func(q *listParams) { q.Page = pg.Page + 1 })
		pg.Last = p.url(base, func(q *listParams) { q.Page = pg.Pages })
	}
	pg.ShowingAll = pg.Pages == 1
	return items[from:to], pg
}

// chip is a filter by state, with its count.
type chip struct {
	State  string
	N      int
	URL    string
	Active bool
}

func chips(p listParams, base string, counts []countItem, total int) []chip {
	out := []chip{{State: "All", N: total, URL: p.url(base, func(q *listParams) { q.Health, q.Page = "", 1 }), Active: p.Health == ""}}
	for _, ci := range counts {
		state := ci.State
		out = append(out, chip{State: state, N: ci.N, URL: p.url(base, func(q *listParams) { q.Health, q.Page = state, 1 }), Active: p.Health == state})
	}
	return out
}

// clustersData is the clusters list.
type clustersData struct {
	Loaded  bool
	Params  listParams
	Chips   []chip
	Columns []column
	Rows    []clusterRow
	Pager   pager
}

var clusterSorts = []string{"name", "region", "health", "heartbeat", "nodes", "cpu", "memory", "replicas"}

func clustersView(c *Console, req viewRequest) (*view, error) {
	p, err := readList(req.query, clusterSorts)
	if err != nil {
		return nil, err
	}
	s := c.fleet.snapshot()
	placed := placedCounts(s.Workloads)
	stats := countFleet(s)
	var rows []clusterRow
	q := strings.ToLower(p.Q)
	for _, cl := range s.Clusters {
		row := newClusterRow(cl)
		row.Workloads = placed[row.Name]
		if p.Health != "" && row.Health != p.Health {
			continue
		}
		if q != "" && !strings.Contains(clusterSearchText(cl), q) {
			continue
		}
		rows = append(rows, row)
	}
	sortClusters(rows, p.Sort, p.Desc)
	page, pg := paginate(rows, p, c.cfg.PageSize, "/clusters", len(s.Clusters))
	d := clustersData{Loaded: s.Loaded, Params: p, Chips: chips(p, "/clusters", stats.ClusterHealth, stats.Clusters), Rows: page, Pager: pg,
		Columns: columns(p, "/clusters", [][3]string{{"Cluster", "name", ""}, {"Region", "region", ""}, {"Condition", "health", ""}, {"Heartbeat", "heartbeat", "num"},
			{"Nodes", "nodes", "num"}, {"CPU", "cpu", ""}, {"Memory", "memory", ""}, {"Replicas", "replicas", "num"}, {"Workloads", "", "num"}, {"Scheduling", "", ""}})}
	return &view{template: "clusters", title: "Clusters", active: "Clusters", data: d, ticks: true, live: true}, nil
}

func clusterSearchText(c *api.Cluster) string {
	var b strings.Builder
	b.WriteString(c.Metadata.Name)
	for k, v := range c.Metadata.Labels {
		b.WriteString(" " + k + "=" + v)
	}
	for _, t := range c.Spec.Taints {
		b.WriteString(" " + t.String())
	}
	return strings.ToLower(b.String())
}

func sortClusters(rows []clusterRow, by string, desc bool) {
	key := func(a, b clusterRow) int {
		switch by {
		case "region":
			return strings.Compare(a.Region, b.Region)
		case "health":
			return healthRank[a.Health] - healthRank[b.Health]
		case "heartbeat":
			return cmp.Compare(a.HeartbeatAge, b.HeartbeatAge)
		case "nodes":
			return cmp.Compare(a.NodesReady, b.NodesReady)
		case "cpu":
			return cmp.Compare(a.CPU.Pct, b.CPU.Pct)
		case "memory":
			return cmp.Compare(a.Memory.Pct, b.Memory.Pct)
		case "replicas":
			return cmp.Compare(a.Replicas, b.Replicas)
		}
		return 0
	}
	slices.SortStableFunc(rows, func(a, b clusterRow) int {
		k := key(a, b)
		if desc {
			k = -k
		}
		return cmp.Or(k, strings.Compare(a.Name, b.Name))
	})
}

// placedCounts is, per cluster, how many workloads have replicas placed
// there.
func placedCounts(ws []*workloadSummary) map[string]int {
	m := map[string]int{}
	for _, w := range ws {
		for cl, n := range w.Placed {
			if n > 0 {
				m[cl]++
			}
		}
	}
	return m
}

// clusterData is one cluster's page.
type clusterData struct {
	Cluster    clusterRow
	Labels     []labelPair
	Taints     []api.Taint
	Conditions []api.Condition
	Version    string
	Protocol   int
	Registered *time.Time
	LastBeat   *time.Time
	Workloads  []placedWorkload
	MoreWL     int
	Events     []eventRow
	Nodes      []nodeRow
	NodesNote  string
}

type labelPair struct{ Key, Value string }

func labelPairs(m map[string]string) []labelPair {
	var out []labelPair
	for k, v := range m {
		out = append(out, labelPair{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// placedWorkload is a workload's share of one cluster.
type placedWorkload struct {
	Name    string
	Health  api.WorkloadHealth
	Placed  int32
	Ready   int32
	Desired int32
}

func clusterView(c *Console, req viewRequest) (*view, error) {
	name := req.params["name"]
	s := c.fleet.snapshot()
	var cl *api.Cluster
	for _, x := range s.Clusters {
		if x.Metadata.Name == name {
			cl = x
		}
	}
	if cl == nil {
		if !s.Loaded {
			return nil, api.Errorf(api.CodeUnavailable, "loading")
		}
		return nil, api.Errorf(api.CodeNotFound, "There is no cluster %q (it may have been deregistered).", name)
	}
	d := clusterData{Cluster: newClusterRow(cl), Labels: labelPairs(cl.Metadata.Labels), Taints: cl.Spec.Taints, Conditions: cl.Status.Conditions,
		Version: cl.Status.MemberVersion, Protocol: cl.Status.ProtocolVersion, Registered: cl.Status.RegisteredAt, LastBeat: cl.Status.LastHeartbeatTime}
	for _, w := range s.Workloads {
		n, placed := w.Placed[name]
		st, reported := w.PerCluster[name]
		if !placed && !reported {
			continue
		}
		if len(d.Workloads) == 200 {
			d.MoreWL++
			continue
		}
		d.Workloads = append(d.Workloads, placedWorkload{Name: w.Name, Health: w.Health, Placed: n, Ready: st.Ready, Desired: st.Desired})
	}
	d.Cluster.Workloads = len(d.Workloads) + d.MoreWL
	d.Nodes, d.NodesNote = c.clusterNodes(req.ctx, name, d.Cluster.Health)
	evs, err := c.objectEvents(req, "Cluster", name, 30)
	if err != nil {
		return nil, err
	}
	d.Events = evs
	return &view{template: "cluster", title: name + " · Clusters", active: "Clusters", data: d, ticks: true, live: true}, nil
}

// workloadRow is a workload as the list shows it.
type workloadRow struct {
	*workloadSummary
	Age string
}

type workloadsData struct {
	Loaded  bool
	Params  listParams
	Chips   []chip
	Columns []column
	Rows    []workloadRow
	Pager   pager
	Stats   fleetStats
}

var workloadSorts = []string{"name", "health", "ready", "desired", "age"}

var workloadRank = map[string]int{api.WorkloadHealthy: 0, api.WorkloadProgressing: 1, api.WorkloadDegraded: 2, api.WorkloadUnavailable: 3, api.WorkloadDeleting: 4}

func workloadsView(c *Console, req viewRequest) (*view, error) {
	p, err := readList(req.query, workloadSorts)
	if err != nil {
		return nil, err
	}
	s := c.fleet.snapshot()
	stats := countFleet(s)
	q := strings.ToLower(p.Q)
	var match []*workloadSummary
	if q == "" && p.Health == "" {
		match = s.Workloads // shared, sorted by name: sort a copy only
	} else {
		for _, w := range s.Workloads {
			if (p.Health == "" || w.Health.State == p.Health) && (q == "" || strings.Contains(w.search, q)) {
				match = append(match, w)
			}
		}
	}
	if p.Sort != "name" || p.Desc {
		match = slices.Clone(match)
		slices.SortStableFunc(match, func(a, b *workloadSummary) int {
			var k int
			switch p.Sort {
			case "health":
				k = workloadRank[a.Health.State] - workloadRank[b.Health.State]
			case "ready":
				k = cmp.Compare(a.Ready, b.Ready)
			case "desired":
				k = cmp.Compare(a.Desired, b.Desired)
			case "age":
				k = b.Created.Compare(a.Created) // ascending age: newest first
			}
			if p.Desc {
				k = -k
			}
			if k == 0 && p.Sort == "name" {
				k = strings.Compare(b.Name, a.Name)
			}
			return cmp.Or(k, strings.Compare(a.Name, b.Name))
		})
	}
	page, pg := paginate(match, p, c.cfg.PageSize, "/workloads", len(s.Workloads))
	rows := make([]workloadRow, len(page))
	for i, w := range page {
		rows[i] = workloadRow{workloadSummary: w, Age: ageText(s.At.Sub(w.Created))}
	}
	d := workloadsData{Loaded: s.Loaded, Params: p, Chips: chips(p, "/workloads", stats.WorkloadHealth, stats.Workloads), Rows: rows, Pager: pg, Stats: stats,
		Columns: columns(p, "/workloads", [][3]string{{"Workload", "name", ""}, {"Health", "health", ""}, {"Ready", "ready", "num"}, {"Desired", "desired", "num"},
			{"Replicas by region", "", ""}, {"Driver", "", ""}, {"Age", "age", "num"}})}
	return &view{template: "workloads", title: "Workloads", active: "Workloads", data: d, live: true}, nil
}

// workloadData is one workload's page.
type workloadData struct {
	Name        string
	Health      api.WorkloadHealth
	Desired     int32
	Ready       int32
	Spec        api.WorkloadSpec
	Generation  int64
	Observed    int64
	Created     *time.Time
	Deleting    bool
	Labels      []labelPair
	Regions     []api.RegionReplicas
	Placement   *api.PlacementStatus
	Candidates  []candidate
	Clusters    []workloadCluster
	Conditions  []api.Condition
	Events      []eventRow
	Manifest    string
	CommandLine string
	// Replicas are the members' examples (at most 10 per cluster, the
	// most troubled first) of ReplicasTotal replicas.
	Replicas      []replicaRow
	ReplicasTotal int32
	// PerCluster is what differs per cluster (overrides, data versions).
	PerCluster []clusterTemplate
	// Rollout is the progressive rollout card (nil without spec.rollout);
	// Revisions the template's history, newest first, with diffs.
	Rollout   *rolloutView
	Revisions []revisionRow
	// Images is warm standby: per cluster the placement allows that runs
	// none of its replicas, whether its nodes hold the image.
	Images []api.ClusterImage
}

// replicaRow is one replica in the workload page's table.
type replicaRow struct {
	Replica, Cluster, Node, State string
	Restarts                      int32
	Exit                          string
	Age                           string
	Next                          string
	Message                       string
	Trouble                       bool
	LastKnown                     string // the cluster is not Ready: this row is history
}

// replicaRows turns the clusters' example replicas into table rows.
func replicaRows(clusters []api.ClusterReplicas, now time.Time) ([]replicaRow, int32) {
	var out []replicaRow
	var total int32
	for _, c := range clusters {
		for _, n := range c.States {
			total += n
		}
		for _, r := range c.Examples {
			row := replicaRow{Replica: r.Replica, Cluster: c.Cluster, Node: r.Node, State: r.State, Restarts: r.Restarts, Message: r.Message,
				Trouble: r.State == "BackOff" || r.State == "Failed" || r.State == "Unknown"}
			if r.ExitCode != nil {
				row.Exit = strconv.Itoa(*r.ExitCode)
				if r.Reason != "" {
					row.Exit += " · " + r.Reason
				}
			}
			if r.StartedAt != nil {
				row.Age = ageText(now.Sub(*r.StartedAt))
			}
			if r.NextStartAt != nil {
				if d := r.NextStartAt.Sub(now); d > 0 {
					row.Next = "in " + ageText(d)
				} else {
					row.Next = "now"
				}
			}
			out = append(out, row)
		}
	}
	return out, total
}

// candidate is one cluster as the placement saw it: given replicas, or
// why not.
type candidate struct {
	Cluster string
	Region  string
	Health  string
	Placed  int32
	Why     string // why it takes no (new) replicas; "" when eligible
}

// candidateWhy is why a cluster takes none of a workload's (new)
// replicas: its live health when it is not Ready, else the stored filter
// reason. A stored status names no cluster's health (the placer writes
// none: it changes by the second), so a lost cluster would read
// "eligible"; one stored before that may name a health gone since.
func candidateWhy(stored, health string) string {
	if health != api.HealthReady {
		return health
	}
	if placement.HealthReason(stored) {
		return ""
	}
	return stored
}

func workloadView(c *Console, req viewRequest) (*view, error) {
	name := req.params["name"]
	rec, err := c.cfg.Store.Get(req.ctx, "Workload", name)
	if err != nil {
		if api.ErrorCode(err) == api.CodeNotFound {
			return nil, api.Errorf(api.CodeNotFound, "There is no workload %q.", name)
		}
		return nil, err
	}
	var w api.Workload
	if err := rec.Decode(&w); err != nil {
		return nil, err
	}
	d := workloadData{Name: name, Health: w.Health(), Desired: w.DesiredReplicas(), Ready: w.Status.ReadyReplicas, Spec: w.Spec,
		Generation: w.Metadata.Generation, Observed: w.Status.ObservedGeneration, Created: w.Metadata.CreationTimestamp,
		Deleting: w.Metadata.DeletionTimestamp != nil, Labels: labelPairs(w.Metadata.Labels), Regions: api.RegionSplit(w.Status.Clusters),
		Placement: w.Status.Placement, Conditions: w.Status.Conditions, Images: w.Status.Images}
	d.CommandLine = strings.TrimSpace(w.Spec.Template.Command + " " + strings.Join(w.Spec.Template.Args, " "))
	s := c.fleet.snapshot()
	d.Clusters = workloadClusters(w.Status.Clusters, s.Clusters, c.now())
	for _, cl := range s.Clusters {
		cd := candidate{Cluster: cl.Metadata.Name, Region: regionOf(cl), Health: cl.HealthOrUnknown()}
		if p := w.Status.Placement; p != nil {
			cd.Placed = p.Clusters[cd.Cluster]
			cd.Why = p.Filtered[cd.Cluster]
		}
		cd.Why = candidateWhy(cd.Why, cd.Health)
		d.Candidates = append(d.Candidates, cd)
	}
	slices.SortStableFunc(d.Candidates, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(b.Placed, a.Placed), strings.Compare(a.Region, b.Region), strings.Compare(a.Cluster, b.Cluster))
	})
	d.PerCluster = perCluster(&w, s.Clusters)
	d.Manifest = manifestYAML(&w)
	d.Replicas, d.ReplicasTotal = replicaRows(w.Status.Clusters, c.now())
	stale := map[string]string{}
	for _, wc := range d.Clusters {
		if wc.LastKnown != "" {
			stale[wc.Cluster] = wc.LastKnown
		}
	}
	for i := range d.Replicas {
		d.Replicas[i].LastKnown = stale[d.Replicas[i].Cluster]
	}
	d.Rollout = rolloutCard(&w, c.now())
	if d.Revisions, err = c.revisionHistory(req.ctx, name, c.now()); err != nil {
		return nil, err
	}
	d.Events, err = c.objectEvents(req, "Workload", name, 30)
	if err != nil {
		return nil, err
	}
	return &view{template: "workload", title: name + " · Workloads", active: "Workloads", data: d, live: true}, nil
}

// manifestYAML is the workload as a user would apply it: no status, no
// fields the hub assigns.
func manifestYAML(w *api.Workload) string {
	m := api.Workload{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Workload"},
		Metadata: api.ObjectMeta{Name: w.Metadata.Name, Labels: w.Metadata.Labels, Annotations: w.Metadata.Annotations}, Spec: w.Spec}
	js, err := json.Marshal(m)
	if err != nil {
		return ""
	}
	var generic map[string]any
	_ = json.Unmarshal(js, &generic)
	delete(generic, "status")
	y, err := yaml.Marshal(generic)
	if err != nil {
		return ""
	}
	return string(y)
}
