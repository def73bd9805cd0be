package web

import (
	"cmp"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// The drills pages: the list (history, newest first), a drill's page
// (live progress, recovery chart, timeline, report, the plan it was
// started with) and the new-drill form with its dry-run plan
// (drillactions.go). Drills are read like everything else: the list and
// its counts from the cache, a drill's page from the store.

// drillSummary is what the list, the counts and the overview need of a
// drill.
type drillSummary struct {
	Name           string
	Kind           string
	Target         string // "region ap-south", "cluster eu-west-1"
	Targets        []string
	Phase          string // Pending when the hub has not set one; old Succeeded/Failed read as today's phases
	Verdict        string // Passed or Failed once Completed, else ""
	State          string // the list's filter: Running (any phase before the end), or the final phase
	Final          bool
	HasReport      bool
	Passed         bool
	RTO            string
	RTOSeconds     float64 // -1: none, for sorting
	NoRTO          bool    // nothing was affected: no RTO to trend
	Peak           string
	Duration       time.Duration
	Created        time.Time
	Started        *time.Time
	AbortRequested bool
	search         string
}

func summarizeDrill(d *api.Drill) *drillSummary {
	st := d.Status
	phase, verdict := st.Outcome()
	s := &drillSummary{Name: d.Metadata.Name, Kind: d.Spec.Kind, Target: d.Spec.Target.String(), Targets: st.Targets,
		Phase: phase, Verdict: verdict, Final: st.Final(), RTO: "—", RTOSeconds: -1, Peak: "—",
		Duration: d.Spec.DurationOrDefault(), Started: st.StartedAt, AbortRequested: st.AbortRequestedAt != nil}
	s.State = drillState(s.Phase)
	if d.Metadata.CreationTimestamp != nil {
		s.Created = *d.Metadata.CreationTimestamp
	}
	if r := st.Report; r != nil {
		s.HasReport, s.Passed = true, verdict == api.DrillVerdictPassed
		s.RTO = api.SecondsText(r.RTOSeconds)
		if r.RTONotApplicable {
			s.RTO, s.NoRTO = "n/a", true
		}
		if r.RTOSeconds != nil {
			s.RTOSeconds = *r.RTOSeconds
		}
		s.Peak = itoa(int(r.PeakUnavailableReplicas))
	}
	s.search = strings.ToLower(strings.Join(append([]string{s.Name, s.Kind, s.Target, s.Phase, s.Verdict}, s.Targets...), " "))
	return s
}

// drillStates are the list's filters, in the order of its chips.
var drillStates = []string{api.DrillRunning, api.DrillCompleted, api.DrillAborted, api.DrillError}

// drillState folds the phases before the end into Running.
func drillState(phase string) string {
	switch phase {
	case api.DrillCompleted, api.DrillAborted, api.DrillError:
		return phase
	}
	return api.DrillRunning
}

// countDrills counts drills by state: the list's chips and the
// overview use it.
func countDrills(s snapshot) []countItem {
	n := map[string]int{}
	for _, d := range s.Drills {
		n[d.State]++
	}
	out := make([]countItem, 0, len(drillStates))
	for _, st := range drillStates {
		out = append(out, countItem{st, n[st]})
	}
	return out
}

// targetName is the region's or the cluster's name: what the run's
// confirmation asks to type.
func targetName(t api.DrillTarget) string { return t.Region + t.Cluster }

// drillRow is a drill as the list shows it.
type drillRow struct {
	*drillSummary
	Age      string
	Progress string // what a drill that has not ended is doing
}

type drillsData struct {
	Loaded  bool
	Params  listParams
	Chips   []chip
	Columns []column
	Rows    []drillRow
	Pager   pager
	Trends  []rtoTrend
}

var drillSorts = []string{"age", "name", "phase", "rto"}

var drillRank = map[string]int{api.DrillPending: 0, api.DrillRunning: 1, api.DrillRestoring: 2, api.DrillCompleted: 3, api.DrillAborted: 4, api.DrillError: 5}

func drillsView(c *Console, req viewRequest) (*view, error) {
	p, err := readList(req.query, drillSorts)
	if err != nil {
		return nil, err
	}
	p.stateKey, p.Health = "phase", req.query.Get("phase")
	if p.Health != "" && !slices.Contains(drillStates, p.Health) {
		return nil, api.Errorf(api.CodeBadRequest, "phase must be one of %s, not %q", strings.Join(drillStates, ", "), p.Health)
	}
	s := c.fleet.snapshot()
	q := strings.ToLower(p.Q)
	var match []*drillSummary
	for _, d := range s.Drills { // newest first
		if (p.Health == "" || d.State == p.Health) && (q == "" || strings.Contains(d.search, q)) {
			match = append(match, d)
		}
	}
	if p.Sort != "age" || p.Desc {
		slices.SortStableFunc(match, func(a, b *drillSummary) int {
			var k int
			switch p.Sort {
			case "age":
				k = b.Created.Compare(a.Created)
			case "name":
				k = strings.Compare(a.Name, b.Name)
			case "phase":
				k = drillRank[a.Phase] - drillRank[b.Phase]
			case "rto":
				k = cmp.Compare(a.RTOSeconds, b.RTOSeconds)
			}
			if p.Desc {
				k = -k
			}
			return k
		})
	}
	page, pg := paginate(match, p, c.cfg.PageSize, "/drills", len(s.Drills))
	rows := make([]drillRow, len(page))
	for i, d := range page {
		rows[i] = drillRow{drillSummary: d, Age: ageText(s.At.Sub(d.Created)), Progress: drillProgress(d, s.At)}
	}
	d := drillsData{Loaded: s.Loaded, Params: p, Chips: chips(p, "/drills", countDrills(s), len(s.Drills)), Rows: rows, Pager: pg,
		Columns: columns(p, "/drills", [][3]string{{"Drill", "name", ""}, {"Kind", "", ""}, {"Target", "", ""}, {"Phase", "phase", ""}, {"Result", "", ""},
			{"RTO", "rto", "num"}, {"Peak unavailable", "", "num"}, {"Fault", "", "num"}, {"Age", "age", "num"}}),
		Trends: rtoTrends(s.Drills)}
	return &view{template: "drills", title: "Drills", active: "Drills", data: d, ticks: true, live: true}, nil
}

// drillProgress says what a drill that has not ended is doing now.
func drillProgress(d *drillSummary, now time.Time) string {
	switch {
	case d.Final:
		return ""
	case d.AbortRequested:
		return "abort requested: restoring the targets"
	case d.Phase == api.DrillRunning && d.Started != nil:
		return fmt.Sprintf("fault in place for %s of %s", ageText(now.Sub(*d.Started)), d.Duration)
	case d.Phase == api.DrillRestoring:
		return "fault lifted: measuring failback"
	}
	return "waiting for the leader hub to start it"
}

// drillData is one drill's page.
type drillData struct {
	Name            string
	Kind            string
	KindText        string
	Target          string
	Targets         []string
	Phase           string
	Final           bool
	Duration        time.Duration
	FailbackTimeout time.Duration
	Objectives      []string
	Created         *time.Time
	Started         *time.Time
	Ended           *time.Time
	Finished        *time.Time
	Stage           string  // what is happening, in a sentence
	FaultPct        float64 // how much of the fault's duration has passed, 0..100
	Latest          *api.DrillSample
	Peak            int32
	AbortRequested  bool
	AbortBy         string
	Chart           recoveryChart // for a wide card
	NarrowChart     recoveryChart // the same for a phone's
	Requests        ratioChart    // the probe's success ratio, for a wide card
	NarrowRequests  ratioChart
	Probe           string               // the probe in words ("" without one)
	ProbeFault      *api.DrillProbeStats // the requests while the fault was in, so far
	Timeline        []timelineRow
	Report          *reportView
	Plan            *planView
}

// kindTexts say what each kind of drill does.
var kindTexts = map[string]string{
	api.DrillEvacuate:  "The targets are tainted NoExecute: placement drains them gracefully, as for planned maintenance.",
	api.DrillOutage:    "The targets go dark, as if their region died: no heartbeats, replicas stopped.",
	api.DrillPartition: "Hub and targets cannot hear each other; the targets keep running (and fence their exclusive workloads).",
}

func drillView(c *Console, req viewRequest) (*view, error) {
	name := req.params["name"]
	rec, err := c.cfg.Store.Get(req.ctx, "Drill", name)
	if err != nil {
		if api.ErrorCode(err) == api.CodeNotFound {
			return nil, api.Errorf(api.CodeNotFound, "There is no drill %q (it may have been deleted).", name)
		}
		return nil, err
	}
	var dr api.Drill
	if err := rec.Decode(&dr); err != nil {
		return nil, err
	}
	d := newDrillData(&dr, c.now())
	return &view{template: "drill", title: name + " · Drills", active: "Drills", data: d, ticks: !d.Final, live: true}, nil
}

func newDrillData(dr *api.Drill, now time.Time) drillData {
	st := dr.Status
	phase, verdict := st.Outcome()
	d := drillData{Name: dr.Metadata.Name, Kind: dr.Spec.Kind, KindText: kindTexts[dr.Spec.Kind], Target: dr.Spec.Target.String(),
		Targets: st.Targets, Phase: phase, Final: st.Final(), Duration: dr.Spec.DurationOrDefault(),
		FailbackTimeout: dr.Spec.FailbackTimeoutOrDefault(), Objectives: objectives(dr.Spec), Created: dr.Metadata.CreationTimestamp,
		Started: st.StartedAt, Ended: st.EndedAt, Finished: st.FinishedAt, AbortRequested: st.AbortRequestedAt != nil, AbortBy: st.AbortRequestedBy}
	t0 := now
	if d.Created != nil {
		t0 = *d.Created
	}
	if d.Started != nil {
		t0 = *d.Started
	}
	end := now
	if d.Finished != nil {
		end = *d.Finished
	}
	switch {
	case d.Final && d.Started != nil:
		d.Stage = fmt.Sprintf("Ended %s: the fault lasted %s.", d.Finished.UTC().Format("2006-01-02 15:04:05 UTC"), durationText(faultLasted(st)))
	case d.Final:
		d.Stage = "Ended before the fault was put in place."
	case d.AbortRequested && d.Phase != api.DrillRestoring:
		d.Stage = "Abort requested by " + cmp.Or(d.AbortBy, "an operator") + ": the targets are being restored."
	case d.Phase == api.DrillRunning && d.Started != nil:
		in := now.Sub(*d.Started)
		d.FaultPct = min(100, float64(in)*100/float64(d.Duration))
		d.Stage = fmt.Sprintf("The fault is in place: %s of %s.", ageText(in), d.Duration)
	case d.Phase == api.DrillRestoring && d.Ended != nil:
		d.FaultPct = 100
		d.Stage = fmt.Sprintf("The fault was lifted %s ago: measuring failback (for up to %s).", ageText(now.Sub(*d.Ended)), d.FailbackTimeout)
	case d.Phase == api.DrillRunning:
		d.Stage = "Putting the fault in place: waiting for the targets to acknowledge."
	default:
		d.Stage = "Waiting for the leader hub to start it."
	}
	if n := len(st.Samples); n > 0 {
		d.Latest = &st.Samples[n-1]
		for _, s := range st.Samples {
			d.Peak = max(d.Peak, s.Unavailable)
		}
	}
	d.Chart = buildChart(wideChart, st, dr.Spec, t0, end)
	d.NarrowChart = buildChart(narrowChart, st, dr.Spec, t0, end)
	if p := dr.Spec.Probe; p != nil {
		d.Probe = fmt.Sprintf("%d requests/s to %s through %s", p.Rate, p.Service, strings.Join(p.Through, ", "))
		d.Requests = buildRatioChart(wideChart, st, dr.Spec, t0, end)
		d.NarrowRequests = buildRatioChart(narrowChart, st, dr.Spec, t0, end)
		if st.Probe != nil {
			d.ProbeFault = &st.Probe.Fault
		}
		if st.Report != nil && st.Report.Probe != nil {
			d.ProbeFault = &st.Report.Probe.Fault
		}
	}
	d.Timeline = timelineRows(st, t0)
	if st.Report != nil {
		d.Report = newReportView(st.Report, d.Phase, verdict)
		d.Peak = st.Report.PeakUnavailableReplicas
	}
	if st.Plan != nil {
		d.Plan = newPlanView(st.Plan)
	}
	return d
}

// faultLasted is how long the fault was in place.
func faultLasted(st api.DrillStatus) time.Duration {
	if st.StartedAt == nil || st.EndedAt == nil {
		return 0
	}
	return st.EndedAt.Sub(*st.StartedAt)
}

func durationText(d time.Duration) string {
	return strings.TrimPrefix(offsetText(d), "+")
}

// objectives are a drill's SLOs in words.
func objectives(spec api.DrillSpec) []string {
	var out []string
	if slo := spec.SLO; slo != nil {
		if slo.MaxRTO != "" {
			out = append(out, "recovered within "+slo.MaxRTO.Get(0).String())
		}
		if m := slo.MaxUnavailableReplicas; m != nil {
			out = append(out, fmt.Sprintf("at most %d unavailable", *m))
		}
		if m := slo.MaxFailedRequests; m != nil {
			out = append(out, fmt.Sprintf("at most %d failed requests", *m))
		}
		if m := slo.MinSuccessRatio; m != nil {
			out = append(out, fmt.Sprintf("at least %.2f%% of requests succeeded", 100**m))
		}
	}
	return append(out, "no exclusive workload twice")
}

// timelineRow is one timeline entry.
type timelineRow struct {
	At      time.Time
	Offset  string
	Type    string
	Class   string
	Message string
}

func timelineRows(st api.DrillStatus, t0 time.Time) []timelineRow {
	rows := make([]timelineRow, 0, len(st.Timeline))
	for _, e := range st.Timeline {
		cl := timelineClass(e.Type)
		if e.Type == api.DrillEventFinished {
			cl = classOf(cmp.Or(st.Phase, api.DrillPending))
		}
		rows = append(rows, timelineRow{At: e.At, Offset: offsetText(e.At.Sub(t0)), Type: e.Type, Class: cl, Message: e.Message})
	}
	return rows
}

// timelineClass colours a timeline entry by what it means.
func timelineClass(typ string) string {
	switch typ {
	case api.DrillEventStarted, api.DrillEventFirstReplacement, api.DrillEventRestored:
		return "info"
	case api.DrillEventDetected, api.DrillEventAbortRequested, api.DrillEventFailbackTimeout:
		return "warn"
	case api.DrillEventRecovered, api.DrillEventFailedBack:
		return "ok"
	case api.DrillEventDuplicate, api.DrillEventInterrupted, api.DrillEventError:
		return "crit"
	}
	return "neutral"
}

// reportView is a drill's report as its page shows it.
type reportView struct {
	Passed      bool
	Verdict     string // Passed, Failed, or "none" (aborted, error)
	Phase       string
	Missed      []string
	Facts       []labelPair
	SLOs        []sloRow
	Workloads   []drillWorkloadRow
	Notes       []string
	Interrupted bool
	Probe       []probeRow // per entry point and phase (drills with a probe)
}

// drillWorkloadRow is one affected workload's recovery.
type drillWorkloadRow struct {
	Name, RTO, Blocked string
	Recovered          bool
	Before             bool // unavailable before the fault
}

// sloRow is one objective, met or missed.
type sloRow struct {
	Name, Title    string
	Target, Actual string
	Passed         bool
	Verdict        string
}

// probeRow is one entry point's requests in one phase.
type probeRow struct {
	Through, Phase string
	Stats          api.DrillProbeStats
}

var sloTitles = map[string]string{
	"maxRTO":                 "Recovery time (RTO)",
	"maxUnavailableReplicas": "Unavailable replicas at once",
	"exclusiveDuplicates":    "Exclusive workloads ready twice",
	"maxFailedRequests":      "Failed requests during the fault",
	"minSuccessRatio":        "Requests that succeeded during the fault",
}

var failbackTexts = map[string]string{
	"manual":        "by hand (failback: manual)",
	"timedOut":      "not within the failback timeout",
	"notMeasured":   "not measured",
	"notApplicable": "not applicable (nothing affected)",
}

func newReportView(r *api.DrillReport, phase, verdict string) *reportView {
	v := &reportView{Passed: verdict == api.DrillVerdictPassed, Verdict: cmp.Or(verdict, "none"), Phase: phase, Missed: r.MissedText(),
		Notes: r.Notes, Interrupted: r.Interrupted}
	for _, w := range r.Workloads {
		row := drillWorkloadRow{Name: w.Workload, RTO: api.SecondsText(w.RTOSeconds), Recovered: w.RTOSeconds != nil, Before: w.UnavailableBefore, Blocked: "—"}
		if len(w.BlockedBy) > 0 {
			parts := make([]string, len(w.BlockedBy))
			for i, b := range w.BlockedBy {
				parts[i] = b.String()
			}
			row.Blocked = strings.Join(parts, "; ")
		}
		v.Workloads = append(v.Workloads, row)
	}
	first := api.SecondsText(r.FirstReplacementSeconds)
	if r.RTONotApplicable {
		first = "not applicable"
	}
	failback := cmp.Or(failbackTexts[r.Failback], r.Failback, "—")
	if r.FailbackSeconds != nil {
		failback = api.SecondsText(r.FailbackSeconds)
	}
	v.Facts = []labelPair{
		{"Affected", fmt.Sprintf("%s, %s", plural(int(r.AffectedWorkloads), "workload"), plural(int(r.AffectedReplicas), "replica"))},
		{"Detection", api.SecondsText(r.DetectionSeconds)},
		{"First replacement", first},
		{"RTO", r.RTOText()},
		{"Peak unavailable", plural(int(r.PeakUnavailableReplicas), "replica")},
		{"Exclusive duplicates", itoa(int(r.ExclusiveDuplicates))},
		{"Failback", failback},
	}
	if p := r.Probe; p != nil {
		v.Facts = append(v.Facts, labelPair{"Failed requests", fmt.Sprintf("%d of %d during the fault (%.3f%% succeeded; p50 %.1f ms, p99 %.1f ms)",
			p.Fault.Failed, p.Fault.Requests, 100*p.Fault.SuccessRatio, p.Fault.P50Millis, p.Fault.P99Millis)})
		for _, e := range p.Through {
			v.Probe = append(v.Probe, probeRow{Through: e.Name, Phase: api.ProbeBaseline, Stats: e.Baseline},
				probeRow{Through: e.Name, Phase: api.ProbeFault, Stats: e.Fault}, probeRow{Through: e.Name, Phase: api.ProbeAfter, Stats: e.After})
		}
	}
	for _, s := range r.SLOs {
		row := sloRow{Name: s.Name, Title: cmp.Or(sloTitles[s.Name], s.Name), Target: s.Target, Actual: s.Actual, Passed: s.Passed, Verdict: "Missed"}
		if s.Passed {
			row.Verdict = "Met"
		}
		switch s.Name {
		case "maxRTO":
			row.Target = "within " + s.Target
		case "maxUnavailableReplicas":
			row.Target, row.Actual = "at most "+s.Target, "peak "+s.Actual
		case "exclusiveDuplicates":
			row.Target = "none"
		}
		v.SLOs = append(v.SLOs, row)
	}
	return v
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// planView is a drill's dry run as the pages show it.
type planView struct {
	Targets           []string
	Absorbed          bool
	Reason            string
	AffectedWorkloads int32
	AffectedReplicas  int32
	Unplaced          int32
	Workloads         []planWorkload
	Clusters          []planCluster
	Notes             []string
	Warnings          []api.DrillWarning
}

type planWorkload struct {
	Name          string
	Mode          string
	Before, After []splitItem
	Unplaced      int32
	Reason        string
	Stays         bool
}

// splitItem is a workload's replicas on one cluster.
type splitItem struct {
	Cluster string
	N       int32
	Target  bool
}

type planCluster struct {
	Name, Region     string
	Target           bool
	Health           string
	Before, After    int32
	Change           string
	CPUFree, MemFree string
}

func newPlanView(p *api.DrillPlan) *planView {
	v := &planView{Targets: p.Targets, Absorbed: p.Absorbed, Reason: p.Reason, AffectedWorkloads: p.AffectedWorkloads,
		AffectedReplicas: p.AffectedReplicas, Unplaced: p.UnplacedReplicas, Notes: p.Notes, Warnings: p.Warnings}
	split := func(m map[string]int32) []splitItem {
		var out []splitItem
		for _, c := range slices.Sorted(maps.Keys(m)) {
			if m[c] > 0 {
				out = append(out, splitItem{Cluster: c, N: m[c], Target: slices.Contains(p.Targets, c)})
			}
		}
		return out
	}
	for _, w := range p.Workloads {
		v.Workloads = append(v.Workloads, planWorkload{Name: w.Workload, Mode: cmp.Or(w.Mode, "stateless"), Before: split(w.Before), After: split(w.After),
			Unplaced: w.Unplaced, Reason: w.Reason, Stays: w.Stays})
	}
	for _, c := range p.Clusters {
		pc := planCluster{Name: c.Cluster, Region: cmp.Or(c.Region, "—"), Target: c.Target, Health: cmp.Or(c.Health, api.HealthUnknown),
			Before: c.ReplicasBefore, After: c.ReplicasAfter, CPUFree: "—", MemFree: "—"}
		switch delta := c.ReplicasAfter - c.ReplicasBefore; {
		case delta > 0:
			pc.Change = fmt.Sprintf("+%d", delta)
		case delta < 0:
			pc.Change = fmt.Sprintf("−%d", -delta)
		}
		if c.CPUFreeMillis != nil && !c.Target { // a target's room is out of reach
			pc.CPUFree = cores(*c.CPUFreeMillis) + " cores"
		}
		if c.MemoryFreeBytes != nil && !c.Target {
			pc.MemFree = bytesText(*c.MemoryFreeBytes)
		}
		v.Clusters = append(v.Clusters, pc)
	}
	slices.SortStableFunc(v.Clusters, func(a, b planCluster) int {
		if a.Target != b.Target {
			if a.Target {
				return -1
			}
			return 1
		}
		return cmp.Or(strings.Compare(a.Region, b.Region), strings.Compare(a.Name, b.Name))
	})
	return v
}

// drillLink is a drill's page.
func drillLink(name string) string { return "/drills/" + url.PathEscape(name) }
