package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
	"github.com/atollhq/atoll/cli/describe"
	"github.com/atollhq/atoll/cli/output"
)

// drillFlags describe a drill on the command line (or -f a manifest).
type drillFlags struct {
	file, kind, cluster, region string
	name, duration, maxRTO      string
	failbackTimeout             string
	maxUnavailable              int32
	force                       bool
	// The probe and its objectives.
	probe, probePath string
	probeRate        int32
	probeThrough     []string
	maxFailed        int64
	minSuccessRatio  float64
}

func (f *drillFlags) register(cmd *cobra.Command, run bool) {
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "filename", "f", "", "a Drill manifest (instead of the flags below)")
	fl.StringVar(&f.kind, "kind", "", "evacuate, outage or partition")
	fl.StringVar(&f.cluster, "cluster", "", "target: one cluster")
	fl.StringVar(&f.region, "region", "", "target: every cluster of a region")
	// The SLOs: the plan warns of those that cannot be met.
	fl.StringVar(&f.maxRTO, "max-rto", "", "SLO: every affected replica ready elsewhere within this long")
	fl.Int32Var(&f.maxUnavailable, "max-unavailable", 0, "SLO: at most this many affected replicas unavailable at once (no SLO unless given)")
	fl.StringVar(&f.probe, "probe", "", "send real requests to this service during the drill, and count them")
	fl.Int32Var(&f.probeRate, "probe-rate", 50, "the probe's requests per second through each entry point (1-2000)")
	fl.StringVar(&f.probePath, "probe-path", "", "the probe's request path under the service (default /)")
	fl.StringSliceVar(&f.probeThrough, "probe-through", nil, "the entry points the probe sends through, by the names the hub knows (atoll dev: its regions and global)")
	fl.Int64Var(&f.maxFailed, "max-failed-requests", 0, "SLO: at most this many probe requests failed while the fault was in (needs --probe)")
	fl.Float64Var(&f.minSuccessRatio, "min-success-ratio", 0, "SLO: at least this share (0-1) of probe requests succeeded while the fault was in (needs --probe)")
	if !run {
		return
	}
	fl.StringVar(&f.name, "name", "", "the drill's name (default: kind-target-time)")
	fl.StringVar(&f.duration, "duration", "", "how long the fault lasts (default 60s, at most 1h)")
	fl.StringVar(&f.failbackTimeout, "failback-timeout", "", "how long to wait for failback after the fault (default 3m)")
	fl.BoolVar(&f.force, "force", false, "run even when the plan shows the rest cannot absorb the load")
}

// drill builds the Drill the flags (or the file) describe.
func (f *drillFlags) drill(cmd *cobra.Command, now time.Time) (api.Drill, error) {
	if f.file != "" {
		for _, name := range []string{"kind", "cluster", "region", "name", "duration", "max-rto", "max-unavailable", "failback-timeout", "force",
			"probe", "probe-rate", "probe-path", "probe-through", "max-failed-requests", "min-success-ratio"} {
			if fl := cmd.Flags().Lookup(name); fl != nil && fl.Changed {
				return api.Drill{}, fmt.Errorf("-f and --%s do not go together: put it in the manifest", name)
			}
		}
		ms, err := readManifests(cmd.InOrStdin(), f.file)
		if err != nil {
			return api.Drill{}, err
		}
		if len(ms) != 1 || ms[0].Kind.Name != "Drill" {
			return api.Drill{}, fmt.Errorf("%s: want exactly one Drill", f.file)
		}
		return *ms[0].Object.(*api.Drill), nil
	}
	d := api.Drill{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "Drill"}, Metadata: api.ObjectMeta{Name: f.name},
		Spec: api.DrillSpec{Kind: f.kind, Target: api.DrillTarget{Cluster: f.cluster, Region: f.region}, Duration: api.Duration(f.duration),
			FailbackTimeout: api.Duration(f.failbackTimeout), Force: f.force}}
	changed := cmd.Flags().Changed
	if f.maxRTO != "" || changed("max-unavailable") || changed("max-failed-requests") || changed("min-success-ratio") {
		d.Spec.SLO = &api.DrillSLO{MaxRTO: api.Duration(f.maxRTO)}
		if changed("max-unavailable") {
			d.Spec.SLO.MaxUnavailableReplicas = &f.maxUnavailable
		}
		if changed("max-failed-requests") {
			d.Spec.SLO.MaxFailedRequests = &f.maxFailed
		}
		if changed("min-success-ratio") {
			d.Spec.SLO.MinSuccessRatio = &f.minSuccessRatio
		}
	}
	if f.probe != "" {
		d.Spec.Probe = &api.DrillProbe{Service: f.probe, Rate: f.probeRate, Path: f.probePath, Through: f.probeThrough}
	} else if changed("probe-rate") || changed("probe-path") || changed("probe-through") {
		return api.Drill{}, errors.New("--probe-rate, --probe-path and --probe-through need --probe SERVICE")
	}
	if d.Metadata.Name == "" {
		d.Metadata.Name = api.DefaultDrillName(f.kind, f.cluster+f.region, now)
	}
	return d, nil
}

func newDrillCmd(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "drill", Short: "Plan, run, follow and report failover drills (operator)"}

	var pf drillFlags
	var planOut string
	plan := &cobra.Command{
		Use:   "plan (-f FILE | --kind K --cluster C|--region R) [--max-rto 10s] [--max-unavailable N]",
		Short: "Show where the targets' replicas would go, whether the rest absorbs them, and what to beware of; changes nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := pf.drill(cmd, time.Now())
			if err != nil {
				return err
			}
			if fe := d.Spec.Validate(); fe != nil {
				return fmt.Errorf("the drill is not valid: %w", fe)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			p, err := planDrill(cmd.Context(), c, d.Spec)
			if err != nil {
				return err
			}
			if planOut == "json" || planOut == "yaml" {
				return output.WriteData(cmd.OutOrStdout(), planOut, p)
			}
			return printPlan(cmd.OutOrStdout(), d.Spec, p)
		},
	}
	pf.register(plan, false)
	plan.Flags().StringVarP(&planOut, "output", "o", "", "json or yaml instead of tables")

	var rf drillFlags
	run := &cobra.Command{
		Use:   "run (-f FILE | --kind K --cluster C|--region R) [--duration 30s] [--max-rto 10s] [--max-unavailable N] [--force]",
		Short: "Start a drill and follow it to its report; exits non-zero unless it completed and passed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := rf.drill(cmd, time.Now())
			if err != nil {
				return err
			}
			if fe := d.Validate(); fe != nil {
				return fmt.Errorf("the drill is not valid: %w", fe)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			var created api.Drill
			if err := c.Create(ctx, "drills", d, &created); err != nil {
				var p *api.Problem
				if errors.As(err, &p) && p.Code == api.CodeInvalid && len(p.Errors) > 0 &&
					(p.Errors[0].Location == "body.spec.force" || strings.HasPrefix(p.Errors[0].Location, "body.spec.target")) {
					// Refused by its plan: show it.
					if plan, perr := planDrill(ctx, c, d.Spec); perr == nil {
						_ = printPlan(cmd.ErrOrStderr(), d.Spec, plan)
					}
				}
				return err
			}
			fmt.Fprintf(out, "drill/%s created: %s of %s for %s\n", created.Metadata.Name, created.Spec.Kind,
				strings.Join(created.Status.Targets, ", "), created.Spec.DurationOrDefault())
			if p := created.Status.Plan; p != nil {
				for _, w := range p.Warnings {
					fmt.Fprintf(out, "Warning: %s\n", w.Message)
				}
			}
			final, err := followDrill(ctx, c, created.Metadata.Name, out)
			if err != nil {
				if ctx.Err() != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "stopped following; the drill goes on (atoll drill abort %s stops it)\n", created.Metadata.Name)
				}
				return err
			}
			fmt.Fprintln(out)
			printReport(out, final)
			return drillOutcome(final)
		},
	}
	rf.register(run, true)

	status := &cobra.Command{
		Use: "status NAME", Short: "Show a drill's phase, progress and timeline", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var d api.Drill
			if err := c.Get(cmd.Context(), "drills", args[0], &d); err != nil {
				return err
			}
			printStatus(cmd.OutOrStdout(), d, time.Now())
			return nil
		},
	}

	var reportOut string
	report := &cobra.Command{
		Use: "report NAME", Short: "Show a drill's report (once it ended)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch reportOut {
			case "", "json", "yaml", "md", "markdown":
			default:
				return fmt.Errorf("-o %s: use json, yaml or md (or leave it out for text)", reportOut)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var d api.Drill
			if err := c.Get(cmd.Context(), "drills", args[0], &d); err != nil {
				return err
			}
			if reportOut == "json" || reportOut == "yaml" {
				return output.WriteData(cmd.OutOrStdout(), reportOut, reportView(d))
			}
			if d.Status.Report == nil {
				return fmt.Errorf("drill %s is %s: it has no report yet (atoll drill status %s)", d.Metadata.Name, orPending(d.Status.Phase), d.Metadata.Name)
			}
			if reportOut != "" {
				_, err := io.WriteString(cmd.OutOrStdout(), drillMarkdown(d))
				return err
			}
			printReport(cmd.OutOrStdout(), d)
			return nil
		},
	}
	report.Flags().StringVarP(&reportOut, "output", "o", "", "json, yaml or md (a Markdown document to keep or paste)")

	abort := &cobra.Command{
		Use: "abort NAME", Short: "Abort a drill: its targets are restored at once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var d api.Drill
			if err := c.Raw(cmd.Context(), "POST", "/api/v1/drills/"+args[0]+"/abort", nil, nil, &d); err != nil {
				return err
			}
			if d.Status.Final() {
				fmt.Fprintf(cmd.OutOrStdout(), "drill/%s %s\n", args[0], strings.ToLower(d.Status.OutcomeText()))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "drill/%s aborting: its targets are being restored\n", args[0])
			}
			return nil
		},
	}
	cmd.AddCommand(plan, run, status, report, abort)
	return cmd
}

func planDrill(ctx context.Context, c *client.Client, spec api.DrillSpec) (*api.DrillPlan, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var p api.DrillPlan
	return &p, c.Raw(ctx, "POST", "/api/v1/drills/plan", nil, body, &p)
}

// followDrill prints a drill's timeline as it happens and returns the
// drill once it ended; a dropped stream (a hub restart) is resumed.
func followDrill(ctx context.Context, c *client.Client, name string, out io.Writer) (api.Drill, error) {
	var last string
	var base time.Time
	var shown api.DrillSample
	var final *api.Drill
	for {
		err := c.FollowDrill(ctx, name, last, func(ev client.DrillEvent) error {
			last = ev.ID
			switch {
			case ev.Entry != nil:
				if base.IsZero() || ev.Entry.Type == api.DrillEventStarted {
					base = ev.Entry.At
				}
				fmt.Fprintf(out, "  %8s  %s\n", offset(ev.Entry.At, base), progressLine(*ev.Entry))
			case ev.Sample != nil:
				s := *ev.Sample
				if s.Desired != shown.Desired || s.Ready != shown.Ready || s.Unavailable != shown.Unavailable {
					shown = s
					fmt.Fprintf(out, "  %8s  %s\n", offset(s.At, base), sampleLine(s))
				}
			case ev.Phase != "":
				if line := phaseLine(ev.Phase); line != "" {
					fmt.Fprintf(out, "  %8s  %s\n", "", line)
				}
			case ev.Drill != nil:
				final = ev.Drill
			}
			return nil
		})
		if final != nil {
			return *final, nil
		}
		var p *api.Problem
		if ctx.Err() != nil || (errors.As(err, &p) && p.Status < 500) {
			return api.Drill{}, err
		}
		select {
		case <-ctx.Done():
			return api.Drill{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// progressLine is a timeline entry as `drill run` prints it: what
// happened, in words, with the entry's own message.
func progressLine(e api.DrillEvent) string {
	head, ok := progressHeads[e.Type]
	if !ok {
		return e.Type + ": " + e.Message
	}
	return head + ": " + e.Message
}

var progressHeads = map[string]string{
	api.DrillEventCreated:           "Created",
	api.DrillEventStarted:           "Fault in place",
	api.DrillEventDetected:          "Detected",
	api.DrillEventFirstReplacement:  "First replacement ready",
	api.DrillEventWorkloadRecovered: "Workload recovered",
	api.DrillEventRecovered:         "Recovered",
	api.DrillEventDuplicate:         "DUPLICATE",
	api.DrillEventAbortRequested:    "Abort requested",
	api.DrillEventRestored:          "Fault lifted",
	api.DrillEventFailedBack:        "Failed back",
	api.DrillEventFailbackTimeout:   "Failback timed out",
	api.DrillEventInterrupted:       "Interrupted",
	api.DrillEventError:             "ERROR",
	api.DrillEventFinished:          "Finished",
}

// sampleLine is a change in the affected replicas: "replicas 6/8 ready,
// 2 unavailable".
func sampleLine(s api.DrillSample) string {
	if s.Unavailable == 0 {
		return fmt.Sprintf("Replicas: %d/%d ready", s.Ready, s.Desired)
	}
	return fmt.Sprintf("Replicas: %d/%d ready, %d unavailable", s.Ready, s.Desired, s.Unavailable)
}

// phaseLine says what a phase change means while following ("" for the
// phases the timeline already tells).
func phaseLine(phase string) string {
	switch phase {
	case api.DrillPending:
		return "Waiting for the leader hub to start the drill"
	case api.DrillRunning:
		return "Measuring recovery while the fault is in"
	case api.DrillRestoring:
		return "Measuring failback"
	}
	return ""
}

func offset(at, base time.Time) string {
	if base.IsZero() {
		return ""
	}
	return describe.Offset(at.Sub(base))
}

// drillOutcome is nil for a drill that completed and passed, else an
// error saying why not (the exit code of `atoll drill run`): the missed
// objectives of one that failed, or its phase (Aborted, Error).
func drillOutcome(d api.Drill) error {
	phase, verdict := d.Status.Outcome()
	if phase == api.DrillCompleted && verdict == api.DrillVerdictPassed {
		return nil
	}
	missed := d.Status.Report.MissedText()
	switch {
	case verdict == api.DrillVerdictFailed && len(missed) > 0:
		return fmt.Errorf("drill %s completed and failed: missed %s", d.Metadata.Name, strings.Join(missed, ", "))
	case verdict == api.DrillVerdictFailed:
		return fmt.Errorf("drill %s completed and failed", d.Metadata.Name)
	case phase == api.DrillError:
		why := "the drill itself broke"
		if r := d.Status.Report; r != nil && r.Interrupted {
			why = "interrupted: the hub running it stopped"
		}
		return fmt.Errorf("drill %s ended in Error (%s): no verdict", d.Metadata.Name, why)
	}
	return fmt.Errorf("drill %s %s: no verdict", d.Metadata.Name, strings.ToLower(phase))
}

// plural is "1 replica", "3 replicas".
func plural(n int32, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func orPending(phase string) string {
	if phase == "" {
		return api.DrillPending
	}
	return phase
}

func splitMap(m map[string]int32) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

func printPlan(out io.Writer, spec api.DrillSpec, p *api.DrillPlan) error {
	verdict := "yes"
	if !p.Absorbed {
		verdict = "NO: " + p.Reason
	}
	fmt.Fprintf(out, "Plan: %s of %s (%s)\n", spec.Kind, spec.Target.String(), strings.Join(p.Targets, ", "))
	fmt.Fprintf(out, "Affected: %s, %s on the targets\nAbsorbed by the rest: %s\n", plural(p.AffectedWorkloads, "workload"), plural(p.AffectedReplicas, "replica"), verdict)
	for _, w := range p.Warnings {
		fmt.Fprintf(out, "Warning: %s\n", w.Message)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(out, "Note: %s\n", n)
	}
	if len(p.Workloads) > 0 {
		fmt.Fprintln(out)
		budgets := slices.ContainsFunc(p.Workloads, func(w api.DrillPlanWorkload) bool { return w.BudgetHolds != nil })
		cols := []string{"WORKLOAD", "MODE", "NOW", "AFTER", "UNPLACED"}
		if budgets {
			cols = append(cols, "BUDGET")
		}
		t := newTable(out, cols...)
		for _, w := range p.Workloads {
			after := splitMap(w.After)
			if w.Stays {
				after += " (tolerates the drill's taint: stays)"
			}
			row := []string{w.Workload, w.Mode, splitMap(w.Before), after, fmt.Sprint(w.Unplaced)}
			if budgets {
				row = append(row, budgetCell(w))
			}
			t.row(row...)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(out)
	t := newTable(out, "CLUSTER", "REGION", "TARGET", "HEALTH", "REPLICAS NOW", "AFTER", "CPU FREE AFTER", "MEMORY FREE AFTER")
	for _, c := range p.Clusters {
		target, cpu, mem := "", "-", "-"
		if c.Target {
			target = "yes"
		}
		if c.CPUFreeMillis != nil {
			cpu = fmt.Sprintf("%dm", *c.CPUFreeMillis)
		}
		if c.MemoryFreeBytes != nil {
			mem = fmt.Sprintf("%dMi", *c.MemoryFreeBytes>>20)
		}
		t.row(c.Cluster, c.Region, target, c.Health, fmt.Sprint(c.ReplicasBefore), fmt.Sprint(c.ReplicasAfter), cpu, mem)
	}
	return t.flush()
}

func printStatus(out io.Writer, d api.Drill, now time.Time) {
	st := d.Status
	t := newTable(out)
	t.row("Drill:", d.Metadata.Name)
	t.row("Kind:", fmt.Sprintf("%s of %s (%s)", d.Spec.Kind, d.Spec.Target.String(), strings.Join(st.Targets, ", ")))
	phase, verdict := st.Outcome()
	t.row("Phase:", phase)
	if verdict != "" {
		t.row("Verdict:", verdict)
	}
	t.row("Duration:", d.Spec.DurationOrDefault().String())
	if st.StartedAt != nil {
		t.row("Started:", st.StartedAt.Format(time.RFC3339)+" ("+age(st.StartedAt, now)+" ago)")
	}
	if st.EndedAt != nil {
		t.row("Fault lifted:", st.EndedAt.Format(time.RFC3339))
	}
	if n := len(st.Samples); n > 0 {
		s := st.Samples[n-1]
		t.row("Replicas:", fmt.Sprintf("%d/%d ready, %d unavailable (%s ago)", s.Ready, s.Desired, s.Unavailable, age(&s.At, now)))
	}
	if p := st.Probe; p != nil && st.Report == nil {
		t.row("Requests:", probeSummary(p))
	}
	_ = t.flush()
	fmt.Fprintln(out, "Timeline:")
	base := time.Time{}
	for _, e := range st.Timeline {
		if base.IsZero() || e.Type == api.DrillEventStarted {
			base = e.At
		}
		fmt.Fprintf(out, "  %8s  %-18s %s\n", offset(e.At, base), e.Type, e.Message)
	}
	if st.Report != nil {
		fmt.Fprintln(out)
		printReport(out, d)
	}
}

func printReport(out io.Writer, d api.Drill) {
	st := d.Status
	r := st.Report
	if r == nil {
		fmt.Fprintf(out, "drill %s is %s: no report yet\n", d.Metadata.Name, orPending(st.Phase))
		return
	}
	fmt.Fprintf(out, "Drill %s: %s of %s\n", d.Metadata.Name, d.Spec.Kind, strings.Join(st.Targets, ", "))
	phase, verdict := st.Outcome()
	t := newTable(out)
	t.row("  Phase:", phase)
	t.row("  Verdict:", describe.VerdictText(verdict, r))
	t.row("  Affected:", plural(r.AffectedWorkloads, "workload")+", "+plural(r.AffectedReplicas, "replica"))
	t.row("  Detection:", api.SecondsText(r.DetectionSeconds))
	first := api.SecondsText(r.FirstReplacementSeconds)
	if r.RTONotApplicable {
		first = "not applicable"
	}
	t.row("  First replacement:", first)
	t.row("  RTO:", r.RTOText())
	t.row("  Peak unavailable:", plural(r.PeakUnavailableReplicas, "replica"))
	t.row("  Exclusive duplicates:", fmt.Sprint(r.ExclusiveDuplicates))
	failback := r.Failback
	if r.FailbackSeconds != nil {
		failback = fmt.Sprintf("%.3fs (%s)", *r.FailbackSeconds, r.Failback)
	}
	t.row("  Failback:", failback)
	if r.Interrupted {
		t.row("  Interrupted:", "yes: the hub running it stopped; the targets were restored")
	}
	if r.Probe != nil {
		t.row("  Failed requests:", probeSummary(r.Probe))
	}
	_ = t.flush()
	if p := r.Probe; p != nil {
		fmt.Fprintf(out, "  Probe: %d requests/s to service %s, per entry point and phase:\n", p.Rate, p.Service)
		t := newTable(out, "    THROUGH", "PHASE", "REQUESTS", "FAILED", "SUCCESS", "P50", "P99")
		for _, e := range p.Through {
			for _, ph := range probePhaseStats(e) {
				t.row("    "+e.Name, ph.name, fmt.Sprint(ph.s.Requests), fmt.Sprint(ph.s.Failed), ratioText(ph.s.SuccessRatio),
					fmt.Sprintf("%.1fms", ph.s.P50Millis), fmt.Sprintf("%.1fms", ph.s.P99Millis))
			}
		}
		_ = t.flush()
	}
	if len(r.Workloads) > 0 {
		fmt.Fprintln(out, "  Workloads:")
		t := newTable(out, "    WORKLOAD", "ON TARGETS", "RTO", "BLOCKED BY")
		for _, w := range r.Workloads {
			t.row("    "+w.Workload, fmt.Sprint(w.OnTargets), workloadRTO(w), blockedText(w))
		}
		_ = t.flush()
	}
	if len(r.SLOs) > 0 {
		fmt.Fprintln(out, "  SLOs:")
		t := newTable(out)
		for _, s := range r.SLOs {
			ok := "met"
			if !s.Passed {
				ok = "MISSED"
			}
			t.row("    "+s.Name, "target "+s.Target, "actual "+s.Actual, ok)
		}
		_ = t.flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintf(out, "  Note: %s\n", n)
	}
}

// workloadRTO is one workload's RTO as the report prints it.
func workloadRTO(w api.DrillWorkloadReport) string {
	text := api.SecondsText(w.RTOSeconds)
	if w.UnavailableBefore {
		text += " (unavailable before the fault: not counted)"
	}
	return text
}

// blockedText says what kept a workload from recovering, or "-".
func blockedText(w api.DrillWorkloadReport) string {
	if len(w.BlockedBy) == 0 {
		return "-"
	}
	parts := make([]string, len(w.BlockedBy))
	for i, b := range w.BlockedBy {
		parts[i] = b.String()
	}
	return strings.Join(parts, "; ")
}

// reportView is what `drill report -o json|yaml` prints.
func reportView(d api.Drill) any {
	phase, verdict := d.Status.Outcome()
	v := map[string]any{
		"name": d.Metadata.Name, "kind": d.Spec.Kind, "targets": d.Status.Targets, "phase": phase,
		"startedAt": d.Status.StartedAt, "endedAt": d.Status.EndedAt, "finishedAt": d.Status.FinishedAt, "report": d.Status.Report,
	}
	if verdict != "" {
		v["verdict"] = verdict
	}
	if p := d.Status.Plan; p != nil && len(p.Warnings) > 0 {
		v["planWarnings"] = p.Warnings
	}
	return v
}

// drillMarkdown is `drill report -o md`: the report as a Markdown
// document, to keep with a post-incident review or paste in a ticket.
func drillMarkdown(d api.Drill) string {
	st, r := d.Status, d.Status.Report
	phase, verdict := st.Outcome()
	var b strings.Builder
	fmt.Fprintf(&b, "# Drill %s\n\n", mdCell(d.Metadata.Name))
	fmt.Fprintf(&b, "- **Kind:** %s of %s (%s)\n", d.Spec.Kind, mdCell(d.Spec.Target.String()), mdCell(strings.Join(st.Targets, ", ")))
	if st.StartedAt != nil {
		fmt.Fprintf(&b, "- **Fault in place:** %s, for %s\n", st.StartedAt.UTC().Format(time.RFC3339), d.Spec.DurationOrDefault())
	}
	fmt.Fprintf(&b, "- **Phase:** %s\n- **Verdict:** %s\n\n", phase, mdCell(describe.VerdictText(verdict, r)))
	b.WriteString("## Measurements\n\n| measure | value |\n|---|---|\n")
	first := api.SecondsText(r.FirstReplacementSeconds)
	if r.RTONotApplicable {
		first = "not applicable"
	}
	failback := r.Failback
	if r.FailbackSeconds != nil {
		failback = fmt.Sprintf("%.3fs (%s)", *r.FailbackSeconds, r.Failback)
	}
	for _, row := range [][2]string{
		{"Affected", plural(r.AffectedWorkloads, "workload") + ", " + plural(r.AffectedReplicas, "replica")},
		{"Detection", api.SecondsText(r.DetectionSeconds)},
		{"First replacement", first},
		{"RTO", r.RTOText()},
		{"Peak unavailable", plural(r.PeakUnavailableReplicas, "replica")},
		{"Exclusive duplicates", fmt.Sprint(r.ExclusiveDuplicates)},
		{"Failback", failback},
	} {
		fmt.Fprintf(&b, "| %s | %s |\n", row[0], mdCell(row[1]))
	}
	if r.Probe != nil {
		fmt.Fprintf(&b, "| Failed requests | %s |\n", mdCell(probeSummary(r.Probe)))
	}
	if len(r.SLOs) > 0 {
		b.WriteString("\n## Objectives\n\n| objective | target | measured | result |\n|---|---|---|---|\n")
		for _, s := range r.SLOs {
			result := "met"
			if !s.Passed {
				result = "**missed**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", s.Name, mdCell(s.Target), mdCell(s.Actual), result)
		}
	}
	if p := r.Probe; p != nil {
		fmt.Fprintf(&b, "\n## Requests\n\n%d requests/s to service %s.\n\n| through | phase | requests | failed | success | p50 | p99 |\n|---|---|---|---|---|---|---|\n", p.Rate, mdCell(p.Service))
		for _, e := range p.Through {
			for _, ph := range probePhaseStats(e) {
				fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %.1fms | %.1fms |\n", mdCell(e.Name), ph.name, ph.s.Requests, ph.s.Failed, ratioText(ph.s.SuccessRatio), ph.s.P50Millis, ph.s.P99Millis)
			}
		}
	}
	if len(r.Workloads) > 0 {
		b.WriteString("\n## Workloads\n\n| workload | on targets | RTO | blocked by |\n|---|---|---|---|\n")
		for _, w := range r.Workloads {
			fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", mdCell(w.Workload), w.OnTargets, mdCell(workloadRTO(w)), mdCell(blockedText(w)))
		}
	}
	if p := st.Plan; p != nil && len(p.Warnings) > 0 {
		b.WriteString("\n## Plan warnings\n\n")
		for _, w := range p.Warnings {
			fmt.Fprintf(&b, "- %s\n", mdText(w.Message))
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", mdText(n))
		}
	}
	if len(st.Timeline) > 0 {
		b.WriteString("\n## Timeline\n\n| at | event | message |\n|---|---|---|\n")
		base := time.Time{}
		for _, e := range st.Timeline {
			if base.IsZero() || e.Type == api.DrillEventStarted {
				base = e.At
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", offset(e.At, base), e.Type, mdCell(e.Message))
		}
	}
	return b.String()
}

// probeSummary is the probe's count while the fault was in: "0 of 1500
// failed (100.000% succeeded)".
func probeSummary(p *api.DrillProbeReport) string {
	return fmt.Sprintf("%d of %d failed while the fault was in (%s succeeded)", p.Fault.Failed, p.Fault.Requests, ratioText(p.Fault.SuccessRatio))
}

// ratioText is a success ratio as a percentage.
func ratioText(r float64) string { return fmt.Sprintf("%.3f%%", 100*r) }

type namedStats struct {
	name string
	s    api.DrillProbeStats
}

// probePhaseStats is an entry point's phases in order.
func probePhaseStats(e api.DrillProbeEntry) []namedStats {
	return []namedStats{{api.ProbeBaseline, e.Baseline}, {api.ProbeFault, e.Fault}, {api.ProbeAfter, e.After}}
}

// mdText escapes what Markdown would read as markup in running text.
func mdText(s string) string {
	return mdEscaper.Replace(s)
}

// mdCell is mdText fit for a table cell (no pipes, no line breaks).
func mdCell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(mdText(s))
}

var mdEscaper = strings.NewReplacer("\\", "\\\\", "*", "\\*", "_", "\\_", "`", "\\`", "<", "&lt;", ">", "&gt;", "[", "\\[", "]", "\\]")

// drillPrinter renders drills in `atoll get drills`.
var drillPrinter = printer{
	headers:     []string{"NAME", "KIND", "TARGETS", "PHASE", "VERDICT", "RTO", "AGE"},
	wideHeaders: []string{"DETECTION", "PEAK UNAVAILABLE", "FAILBACK", "FAILED REQUESTS"},
	row: func(raw json.RawMessage, now time.Time, wide bool) []string {
		var d api.Drill
		_ = json.Unmarshal(raw, &d)
		rto, detection, peak, failback, failedReqs := "-", "-", "-", "-", "-"
		phase, verdict := d.Status.Outcome()
		if verdict == "" {
			verdict = "-"
		}
		if r := d.Status.Report; r != nil {
			rto, detection = api.SecondsText(r.RTOSeconds), api.SecondsText(r.DetectionSeconds)
			if r.RTONotApplicable {
				rto = "n/a"
			}
			peak, failback = fmt.Sprint(r.PeakUnavailableReplicas), r.Failback
			if p := r.Probe; p != nil {
				failedReqs = fmt.Sprintf("%d/%d", p.Fault.Failed, p.Fault.Requests)
			}
		}
		targets := strings.Join(d.Status.Targets, ",")
		if targets == "" {
			targets = "-"
		}
		cells := []string{d.Metadata.Name, d.Spec.Kind, targets, phase, verdict, rto, age(d.Metadata.CreationTimestamp, now)}
		if wide {
			cells = append(cells, detection, peak, failback, failedReqs)
		}
		return cells
	},
}

// budgetCell is a plan's word on a workload's disruption budget.
func budgetCell(w api.DrillPlanWorkload) string {
	switch {
	case w.BudgetHolds == nil:
		return "-"
	case *w.BudgetHolds:
		return w.Budget + ": holds"
	default:
		return w.Budget + ": BREAKS"
	}
}
