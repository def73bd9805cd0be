package describe

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/cli/replicas"
)

// Workload writes a workload in words: its health, what it asks for,
// its policies, its conditions, where the hub placed it and why, then
// its replicas per cluster (replicas.Describe). The events are the
// caller's to add (Events).
func Workload(out io.Writer, w *api.Workload, now time.Time) error {
	d := newDoc(out)
	metadata(d, "Workload", w.Metadata, now)
	s, st := &w.Spec, &w.Status
	h := w.Health()
	d.row(0, "Health", h.State+": "+h.Reason)
	d.row(0, "Desired", desiredText(w))
	gen := fmt.Sprint(w.Metadata.Generation)
	switch {
	case st.ObservedGeneration == 0:
	case st.ObservedGeneration < w.Metadata.Generation:
		gen += fmt.Sprintf(" (rolling out: some clusters still run generation %d)", st.ObservedGeneration)
	default:
		gen += " (every cluster runs it)"
	}
	d.row(0, "Generation", gen)

	d.head(0, "Template")
	template(d, &s.Template)

	d.head(0, "Placement policy")
	placementPolicy(d, s)
	d.head(0, "Failover policy")
	failoverPolicy(d, s.Failover)
	d.head(0, "Disruption and rollout")
	budget := "none"
	if b := s.DisruptionBudget; b != nil {
		desired := w.DesiredReplicas()
		budget = fmt.Sprintf("%s: planned disruptions (drains, evacuate drills) leave at least %d of %d replicas", b, b.Floor(desired), desired)
	}
	d.row(1, "Disruption budget", budget)
	d.row(1, "Rollout", rolloutText(s.Update))
	d.row(1, "Revision history", fmt.Sprintf("%d template revisions kept", s.HistoryLimit()))

	conditions(d, st.Conditions, now)
	placementStatus(d, w, now)
	dataVersions(d, w)
	warmStandby(d, st.Images, now)
	if err := d.flush(); err != nil {
		return err
	}
	return replicas.Describe(out, *st, now)
}

// desiredText is the replicas asked for and how many are there:
// "3 in total, divided over the clusters; 2 ready, 2 available, 3 updated".
func desiredText(w *api.Workload) string {
	s, st := &w.Spec, &w.Status
	ask := fmt.Sprintf("%d in total, divided over the clusters", s.Replicas)
	if p := s.Placement; p != nil && p.ReplicaMode == "Duplicated" {
		ask = fmt.Sprintf("%d in each selected cluster", s.Replicas)
		if st.Placement != nil {
			ask += fmt.Sprintf(" (%d in all)", w.DesiredReplicas())
		}
	}
	return fmt.Sprintf("%s; %d ready, %d available, %d updated", ask, st.ReadyReplicas, st.AvailableReplicas, st.UpdatedReplicas)
}

// template writes what one replica is.
func template(d *doc, t *api.ReplicaTemplate) {
	d.row(1, "Driver", driverText(t.Driver))
	if t.Image != "" {
		d.row(1, "Image", t.Image)
	}
	if r := t.ImagePullSecret; r != nil {
		d.row(1, "Pull credentials", fmt.Sprintf("secret %s, key %s", r.Name, r.Key))
	}
	if t.User != "" {
		d.row(1, "User", t.User)
	}
	if t.ReadOnlyRoot {
		d.row(1, "Root filesystem", "read-only (/tmp writable)")
	}
	if t.Command != "" || len(t.Args) > 0 {
		d.row(1, "Command", commandLine(append([]string{t.Command}, t.Args...)))
	}
	if t.WorkingDir != "" {
		d.row(1, "Working dir", t.WorkingDir)
	}
	if len(t.Env) > 0 {
		env := make([]string, len(t.Env))
		for i, e := range t.Env {
			env[i] = e.Name + "=" + e.Value
		}
		d.row(1, "Environment", strings.Join(env, ", "))
	}
	d.row(1, "Resources", resourcesText(t.Resources))
	if len(t.Ports) > 0 {
		ports := make([]string, len(t.Ports))
		for i, p := range t.Ports {
			ports[i] = portText(p)
		}
		d.row(1, "Ports", strings.Join(ports, ", "))
		if t.PortsMapped() {
			d.row(1, "Network", "its own (loopback only); the node forwards each host port to the container port")
		}
	}
	for _, p := range []struct {
		name  string
		probe *api.Probe
	}{{"Startup probe", t.Startup}, {"Readiness probe", t.Readiness}, {"Liveness probe", t.Liveness}} {
		if p.probe != nil {
			d.row(1, p.name, probeText(p.probe))
		}
	}
	restart := cmp.Or(t.RestartPolicy, "Always")
	switch restart {
	case "Always":
		restart += ": a replica that exits is started again"
	case "OnFailure":
		restart += ": a replica that fails is started again, one that exits 0 is done"
	case "Never":
		restart += ": a replica that exits stays stopped"
	}
	d.row(1, "Restart policy", restart)
	if len(t.NodeSelector) > 0 {
		d.row(1, "Nodes", "only nodes labelled "+pairs(t.NodeSelector))
	}
	if len(t.Tolerations) > 0 {
		d.row(1, "Tolerates node taints", tolerationsText(t.Tolerations))
	}
	if sim := t.Sim; sim != nil {
		words := "ready after " + cmp.Or(string(sim.StartLatency), "no delay")
		if sim.FailureRate > 0 {
			words += fmt.Sprintf("; %s of starts fail", strconv.FormatFloat(sim.FailureRate*100, 'f', -1, 64)+"%")
		}
		d.row(1, "Simulation", words)
	}
	if len(t.Annotations) > 0 {
		d.row(1, "Annotations", pairs(t.Annotations))
	}
}

func driverText(driver string) string {
	switch driver {
	case "process":
		return "process (a real OS process on a node)"
	case "sim":
		return "sim (simulated replicas)"
	case "oci":
		return "oci (a container from an OCI image, run with runc)"
	}
	return driver
}

// commandLine joins a command and its arguments as a shell would read
// them back: words with spaces or quotes are quoted.
func commandLine(words []string) string {
	out := make([]string, 0, len(words))
	for _, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\n\"'\\$`") {
			w = strconv.Quote(w)
		}
		out = append(out, w)
	}
	return strings.Join(out, " ")
}

// resourcesText is one replica's request in human units: "500m CPU,
// 256 MiB per replica".
func resourcesText(r api.Resources) string {
	cpu, mem := r.Quantities()
	var parts []string
	if r.CPU != "" {
		parts = append(parts, CPU(cpu))
	}
	if r.Memory != "" {
		parts = append(parts, Memory(mem))
	}
	if len(parts) == 0 {
		return "none requested (scheduled anywhere, not limited)"
	}
	return strings.Join(parts, ", ") + " per replica"
}

func portText(p api.Port) string {
	s := "node-allocated (PORT)"
	if p.HostPort > 0 {
		s = fmt.Sprint(p.HostPort)
	}
	s += "/" + cmp.Or(p.Protocol, "TCP")
	if p.ContainerPort > 0 {
		s += fmt.Sprintf(" -> container %d", p.ContainerPort)
	}
	if p.Name != "" {
		s = p.Name + " " + s
	}
	return s
}

// probeText is a probe in words: "HTTP GET /healthz on PORT, every 10s,
// timeout 1s, failing after 3 failures".
func probeText(p *api.Probe) string {
	port := func(n int32) string {
		if n == 0 {
			return "the replica's PORT"
		}
		return "port " + fmt.Sprint(n)
	}
	var what string
	switch {
	case p.HTTP != nil:
		what = "HTTP GET " + cmp.Or(p.HTTP.Path, "/") + " on " + port(p.HTTP.Port)
	case p.TCP != nil:
		what = "TCP connect to " + port(p.TCP.Port)
	case p.Exec != nil:
		what = "exec " + commandLine(p.Exec.Command)
	default:
		what = "no check"
	}
	parts := []string{what}
	if p.InitialDelaySeconds > 0 {
		parts = append(parts, fmt.Sprintf("after %ds", p.InitialDelaySeconds))
	}
	parts = append(parts, fmt.Sprintf("every %ds", cmp.Or(p.PeriodSeconds, 10)), fmt.Sprintf("timeout %ds", cmp.Or(p.TimeoutSeconds, 1)))
	if n := cmp.Or(p.SuccessThreshold, 1); n > 1 {
		parts = append(parts, fmt.Sprintf("passing after %d successes", n))
	}
	parts = append(parts, fmt.Sprintf("failing after %s", plural(cmp.Or(p.FailureThreshold, 3), "failure")))
	return strings.Join(parts, ", ")
}

func tolerationsText(ts []api.Toleration) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		s := t.Key
		switch {
		case t.Key == "" && t.Operator == "Exists":
			s = "every taint"
		case t.Operator == "Exists":
			s += " (any value)"
		case t.Value != "":
			s += "=" + t.Value
		}
		if t.Effect != "" {
			s += ":" + t.Effect
		}
		out[i] = s
	}
	return strings.Join(out, ", ")
}

// placementPolicy writes where the workload may run and how its
// replicas are divided, defaults said as such.
func placementPolicy(d *doc, s *api.WorkloadSpec) {
	p := s.Placement
	if p == nil {
		p = &api.PlacementPolicy{}
	}
	clusters := "any Ready cluster that fits"
	var only []string
	if len(p.Clusters) > 0 {
		only = append(only, "named "+strings.Join(p.Clusters, ", "))
	}
	if p.ClusterSelector != nil {
		if sel := p.ClusterSelector.Selector(); !sel.Empty() {
			only = append(only, "labelled "+sel.String())
		}
	}
	if len(only) > 0 {
		clusters = "only clusters " + strings.Join(only, " and ")
	}
	if len(p.ExcludeClusters) > 0 {
		clusters += "; never " + strings.Join(p.ExcludeClusters, ", ")
	}
	d.row(1, "Clusters", clusters)
	if len(p.Tolerations) > 0 {
		d.row(1, "Tolerates cluster taints", tolerationsText(p.Tolerations))
	}
	if len(p.Preferences) > 0 {
		tiers := make([]string, len(p.Preferences))
		for i, pr := range p.Preferences {
			tiers[i] = "labelled " + pr.Selector.Selector().String()
		}
		d.row(1, "Preferred", "clusters "+strings.Join(tiers, ", then ")+" (filled first, overflow to the next)")
	}
	mode := "Divided: the replicas are split over the clusters (default)"
	switch p.ReplicaMode {
	case "Divided":
		mode = "Divided: the replicas are split over the clusters"
	case "Duplicated":
		mode = fmt.Sprintf("Duplicated: %s in every selected cluster", plural(s.Replicas, "replica"))
	}
	d.row(1, "Replica mode", mode)
	if w := p.Weights; w != nil {
		switch w.Type {
		case "dynamic":
			d.row(1, "Weights", "dynamic: by free capacity")
		default:
			ws := make([]string, len(w.Static))
			for i, sw := range w.Static {
				who := sw.Cluster
				if who == "" {
					who = sw.LabelKey + "=" + sw.LabelValue
				}
				ws[i] = fmt.Sprintf("%s %d", who, sw.Weight)
			}
			d.row(1, "Weights", "static: "+strings.Join(ws, ", "))
		}
	}
	for _, sp := range p.Spread {
		words := "over the values of " + sp.TopologyKey
		if sp.MinGroups > 0 {
			words += fmt.Sprintf(": at least %d", sp.MinGroups)
		}
		if sp.MaxGroups > 0 {
			sep := ","
			if sp.MinGroups == 0 {
				sep = ":"
			}
			words += fmt.Sprintf("%s at most %d", sep, sp.MaxGroups)
		}
		d.row(1, "Spread", words)
	}
	if p.MinReplicasPerCluster > 0 || p.MaxReplicasPerCluster > 0 {
		var b []string
		if p.MinReplicasPerCluster > 0 {
			b = append(b, fmt.Sprintf("at least %d", p.MinReplicasPerCluster))
		}
		if p.MaxReplicasPerCluster > 0 {
			b = append(b, fmt.Sprintf("at most %d", p.MaxReplicasPerCluster))
		}
		d.row(1, "Per cluster", strings.Join(b, ", ")+" replicas")
	}
}

// failoverPolicy writes what happens when a cluster running the
// workload is lost, defaults said as such.
func failoverPolicy(d *doc, f *api.FailoverPolicy) {
	if f == nil {
		f = &api.FailoverPolicy{}
	}
	// choice is a setting's value, "(default)" when it was not set, and
	// what it means.
	choice := func(value string, set bool, meaning string) string {
		if !set {
			value += " (default)"
		}
		return value + ": " + meaning
	}
	if f.Mode == "exclusive" {
		d.row(1, "Mode", choice("exclusive", true, "never runs in two clusters at once (fenced: stopped, then started elsewhere)"))
	} else {
		d.row(1, "Mode", choice("stateless", f.Mode != "", "replacements start elsewhere while the lost cluster's replicas may still run"))
	}
	d.row(1, "Grace period", choice(Duration(f.GracePeriod.Get(5*time.Second)), f.GracePeriod != "", "Unreachable that long, a cluster's replicas are placed elsewhere"))
	if f.Purge == "graceful" {
		d.row(1, "Purge", choice("graceful", true, "a lost cluster's replicas are kept until their replacements are ready"))
	} else {
		d.row(1, "Purge", choice("immediate", f.Purge != "", "a lost cluster's replicas are dropped as soon as they are placed elsewhere"))
	}
	window := Duration(f.StabilizationWindow.Get(30 * time.Second))
	d.row(1, "Stabilization", choice(window, f.StabilizationWindow != "", "how long a returned cluster must stay Ready before replicas move back to it"))
	rate := "no limit"
	if f.FailbackRate > 0 {
		rate = plural(f.FailbackRate, "replica") + " a minute"
	}
	d.row(1, "Failback rate", choice(rate, f.FailbackRate > 0, "how fast replicas move back (failback and rebalance)"))
	if f.Failback == "manual" {
		d.row(1, "Failback", choice("manual", true, "replicas stay where failover put them until an operator moves them (atoll rebalance)"))
	} else {
		d.row(1, "Failback", choice("auto", f.Failback != "", "back to a returned cluster after the stabilization window, make-before-break"))
	}
	if f.Rebalance == api.RebalanceAuto {
		d.row(1, "Rebalance", choice("auto", true, "toward a fresh split whenever a cluster comes back or joins, after the stabilization window"))
	} else {
		d.row(1, "Rebalance", choice("manual", f.Rebalance != "", "only when asked (atoll rebalance workload)"))
	}
}

// rolloutText is the update strategy in words, defaults said as such.
func rolloutText(u *api.UpdateStrategy) string {
	if u == nil {
		u = &api.UpdateStrategy{}
	}
	or := func(v api.IntOrPercent) string {
		if v.Set() {
			return v.String()
		}
		return "25% (default)"
	}
	deadline := "10m (default)"
	if u.ProgressDeadline != "" {
		deadline = Duration(u.ProgressDeadline.Get(10 * time.Minute))
	}
	return fmt.Sprintf("rolling in each cluster: maxSurge %s, maxUnavailable %s, progress deadline %s", or(u.MaxSurge), or(u.MaxUnavailable), deadline)
}

// placementStatus writes where the hub placed the workload and why.
func placementStatus(d *doc, w *api.Workload, now time.Time) {
	d.head(0, "Placement")
	p := w.Status.Placement
	if p == nil {
		d.line(1, "not placed yet: the hub's leader places a workload within seconds of a change")
		return
	}
	placed := counts(p.Clusters)
	if placed == "" {
		placed = "none"
	}
	d.row(1, "Clusters", placed)
	if p.Unplaced > 0 {
		d.row(1, "Unplaced", fmt.Sprintf("%s: %s", plural(p.Unplaced, "replica"), cmp.Or(p.Reason, "no cluster could take them")))
	}
	if len(p.FailedOverFrom) > 0 {
		var parts []string
		for _, c := range slices.Sorted(maps.Keys(p.FailedOverFrom)) {
			parts = append(parts, fmt.Sprintf("%s off %s", plural(p.FailedOverFrom[c], "replica"), c))
		}
		d.row(1, "Failed over", strings.Join(parts, ", ")+", not moved back yet")
	}
	if len(p.FailingBack) > 0 {
		var parts []string
		for _, c := range slices.Sorted(maps.Keys(p.FailingBack)) {
			parts = append(parts, fmt.Sprintf("%s to %s", plural(p.FailingBack[c], "replica"), c))
		}
		d.row(1, "Failing back", strings.Join(parts, ", ")+", not ready there yet (the replicas they replace run until then)")
	}
	if r := rebalanceText(w, now); r != "" {
		d.row(1, "Rebalance", r)
	}
	d.row(1, "Epoch", fmt.Sprint(p.Epoch))
	if len(p.Filtered) > 0 {
		d.head(1, "Left out")
		for _, c := range slices.Sorted(maps.Keys(p.Filtered)) {
			d.row(2, c, p.Filtered[c])
		}
	}
	if len(p.Explanation) > 0 {
		d.head(1, "Why")
		for _, e := range p.Explanation {
			d.line(2, e)
		}
	}
}

// dataVersions says which versions of its configs and secrets each
// cluster's updated replicas run with, beside those the template pins
// now (a cluster on another is still rolling to it, or on an older
// revision of a progressive rollout).
func dataVersions(d *doc, w *api.Workload) {
	pinned := w.Spec.Template.Annotations[api.AnnotationData]
	if pinned == "" {
		return
	}
	d.head(0, "Configs and secrets")
	d.row(1, "Template pins", pinned)
	for _, c := range w.Status.Clusters {
		if c.Data == "" {
			continue
		}
		text := c.Data
		if c.Data != pinned {
			text += " (not the template's: rolling, or an older revision of the rollout)"
		}
		d.row(1, c.Cluster, text)
	}
}

// rebalanceText says whether a rebalance was asked for and answered.
func rebalanceText(w *api.Workload, now time.Time) string {
	asked := w.Metadata.Annotations[api.AnnotationRebalanceRequestedAt]
	done := w.Status.Placement.Rebalanced
	stamp := func(v string) string {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return v
		}
		return when(&t, now)
	}
	switch {
	case asked == "" && done == "":
		return ""
	case asked != "" && asked != done:
		s := "asked for at " + stamp(asked) + ", not carried out yet"
		if done != "" {
			s += "; the last one answered was asked for at " + stamp(done)
		}
		return s
	}
	return "the last request, asked for at " + stamp(done) + ", was carried out"
}

// warmStandby says, per cluster that could take the workload in a
// failover without running it now, whether its nodes hold the image.
func warmStandby(d *doc, images []api.ClusterImage, now time.Time) {
	if len(images) == 0 {
		return
	}
	d.head(0, "Warm standby")
	for _, ci := range images {
		var text string
		switch {
		case ci.Warm():
			text = fmt.Sprintf("warm: %d of %d node(s) hold %s", ci.Present, ci.Wanted, ci.Image)
		case ci.Wanted == 0:
			text = "cold: no node takes its replicas now, so none holds " + ci.Image
		default:
			text = fmt.Sprintf("cold: %d of %d node(s) hold %s", ci.Present, ci.Wanted, ci.Image)
			if ci.Pulling > 0 {
				text += fmt.Sprintf(", %d pulling", ci.Pulling)
			}
			if ci.Failed > 0 {
				text += fmt.Sprintf(", %d failed: %s", ci.Failed, ci.Message)
			}
		}
		if ci.ReportedAt != nil {
			text += " (reported " + ago(ci.ReportedAt, now) + " ago)"
		}
		d.row(1, ci.Cluster, text)
	}
}
