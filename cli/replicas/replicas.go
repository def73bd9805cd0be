// Package replicas renders what the hub knows of a workload's replicas for
// people: `atoll describe workload`'s per-cluster summary (counts by
// state, the problems and example replicas with their reasons in words)
// and the rows of `atoll get replicas`. It reads Workload.status, which
// the members fill (counts of every replica, a bounded sample of them);
// it must not talk to the hub, read flags or decide anything about the
// replicas.
package replicas

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/cli/output"
)

// stateOrder is the order states are listed in.
var stateOrder = []string{"Ready", "Running", "Starting", "Pending", "BackOff", "Failed", "Stopping", "Succeeded", "Unknown"}

// States renders counts by state, e.g. "2 BackOff, 1 Ready".
func States(states map[string]int32) string {
	var parts []string
	keys := slices.Sorted(maps.Keys(states))
	slices.SortStableFunc(keys, func(a, b string) int { return cmp.Compare(rank(a), rank(b)) })
	for _, k := range keys {
		if n := states[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	if len(parts) == 0 {
		return "none reported"
	}
	return strings.Join(parts, ", ")
}

func rank(state string) int {
	if i := slices.Index(stateOrder, state); i >= 0 {
		return i
	}
	return len(stateOrder)
}

// Exit renders an exit code in words: "1", "127 (command not found)",
// "137 (killed by SIGKILL)"; "" for none.
func Exit(code *int) string {
	if code == nil {
		return ""
	}
	c := *code
	switch {
	case c == 127:
		return "127 (command not found)"
	case c == 126:
		return "126 (could not start)"
	case c == -1:
		return "unknown"
	case c > 128 && c < 128+65:
		return fmt.Sprintf("%d (killed by %s)", c, signalName(c-128))
	}
	return fmt.Sprint(c)
}

func signalName(n int) string {
	names := map[int]string{1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}
	if s, ok := names[n]; ok {
		return s
	}
	return fmt.Sprintf("signal %d", n)
}

// Age renders how long ago t was (kubectl's style); "" for nil.
func Age(t *time.Time, now time.Time) string {
	if t == nil {
		return ""
	}
	return output.Duration(now.Sub(*t))
}

// NextStart renders when a replica starts again: "in 4s", "now", "".
func NextStart(t *time.Time, now time.Time) string {
	if t == nil {
		return ""
	}
	if d := t.Sub(now); d > 0 {
		return "in " + output.Duration(d)
	}
	return "now"
}

// Headers are the columns of Row.
var Headers = []string{"REPLICA", "CLUSTER", "NODE", "STATE", "RESTARTS", "LAST EXIT", "AGE", "NEXT START", "LAST ERROR"}

// Row is one replica as a table row under Headers.
func Row(r api.ReplicaInfo, now time.Time) []string {
	return []string{r.Replica, r.Cluster, r.Node, r.State, fmt.Sprint(r.Restarts), cmp.Or(Exit(r.ExitCode), "-"), cmp.Or(Age(r.StartedAt, now), "-"),
		cmp.Or(NextStart(r.NextStartAt, now), "-"), cmp.Or(r.Message, "-")}
}

// Filter keeps the replicas of cluster and node ("": any).
func Filter(in []api.ReplicaInfo, cluster, node string) []api.ReplicaInfo {
	var out []api.ReplicaInfo
	for _, r := range in {
		if (cluster == "" || r.Cluster == cluster) && (node == "" || r.Node == node) {
			out = append(out, r)
		}
	}
	return out
}

// Describe writes a workload's replicas per cluster in words: ready of
// desired, counts by state, restarts, each problem with its words, and
// the example replicas as a table.
func Describe(out io.Writer, st api.WorkloadStatus, now time.Time) error {
	fmt.Fprintln(out, "Replicas:")
	if len(st.Clusters) == 0 {
		_, err := fmt.Fprintln(out, "  no cluster reports this workload yet")
		return err
	}
	for _, c := range st.Clusters {
		where := c.Cluster
		if c.Region != "" {
			where += " (region " + c.Region + ")"
		}
		line := fmt.Sprintf("  %s: %d/%d ready", where, c.Ready, c.Desired)
		if c.Generation > 0 {
			line += fmt.Sprintf(", generation %d (%d updated)", c.Generation, c.Updated)
		}
		if len(c.States) > 0 {
			line += "; " + States(c.States)
		}
		if c.Restarts > 0 {
			line += fmt.Sprintf("; %d restarts", c.Restarts)
		}
		if lk := c.LastKnown(now); lk != "" {
			line += " (" + c.ClusterHealth + ": " + lk + ")" // history, not live
		}
		fmt.Fprintln(out, line)
		for _, cond := range c.Conditions {
			if cond.Status != "True" {
				fmt.Fprintf(out, "    %s=%s %s: %s\n", cond.Type, cond.Status, cond.Reason, cond.Message)
			}
		}
		if c.Pending != "" {
			fmt.Fprintf(out, "    not scheduled: %s\n", c.Pending)
		}
		for _, p := range c.Problems {
			who := ""
			if p.Replica != "" {
				who = fmt.Sprintf(" (e.g. %s on node %s)", p.Replica, p.Node)
			}
			fmt.Fprintf(out, "    %s: %d replica(s)%s: %s\n", p.Reason, p.Replicas, who, p.Message)
		}
		if len(c.Examples) == 0 {
			continue
		}
		total := int32(0)
		for _, n := range c.States {
			total += n
		}
		if int(total) > len(c.Examples) {
			fmt.Fprintf(out, "    %d of %d replicas, the most troubled first:\n", len(c.Examples), total)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		hs := slices.Delete(slices.Clone(Headers), 1, 2) // the cluster is the section's
		fmt.Fprintln(tw, "    "+strings.Join(hs, "\t"))
		for _, r := range c.Examples {
			row := Row(r, now)
			row = slices.Delete(row, 1, 2)
			fmt.Fprintln(tw, "    "+strings.Join(row, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// ListHeaders are the columns of `atoll get replicas`.
var ListHeaders = []string{"REPLICA", "WORKLOAD", "CLUSTER", "NODE", "STATE", "RESTARTS", "AGE", "LAST ERROR"}

// ListWideHeaders follow ListHeaders with -o wide.
var ListWideHeaders = []string{"LAST EXIT", "REASON", "NEXT START"}

// ListRow is one replica under ListHeaders (and ListWideHeaders).
func ListRow(r api.ReplicaInfo, now time.Time, wide bool) []string {
	cells := []string{r.Replica, r.Workload, r.Cluster, r.Node, r.State, fmt.Sprint(r.Restarts), cmp.Or(Age(r.StartedAt, now), "-"), cmp.Or(r.Message, "-")}
	if wide {
		cells = append(cells, cmp.Or(Exit(r.ExitCode), "-"), cmp.Or(r.Reason, "-"), cmp.Or(NextStart(r.NextStartAt, now), "-"))
	}
	return cells
}

// NodeHeaders are the columns of `atoll get nodes`.
var NodeHeaders = []string{"NAME", "CLUSTER", "STATUS", "ZONE", "REPLICAS", "CPU", "MEMORY"}

// NodeWideHeaders follow NodeHeaders with -o wide.
var NodeWideHeaders = []string{"LIMITS", "TAINTS", "LABELS"}

// NodeRow is one node under NodeHeaders (and NodeWideHeaders).
func NodeRow(n api.NodeInfo, wide bool) []string {
	status := "NotReady"
	switch {
	case n.Lost:
		status = "Lost"
	case n.Ready:
		status = "Ready"
	}
	cells := []string{n.Name, n.Cluster, status, cmp.Or(n.Zone, "-"), fmt.Sprintf("%d/%d ready", n.ReplicasReady, n.Replicas),
		fmt.Sprintf("%gc", float64(n.CPUMillis)/1000), Bytes(n.MemoryBytes)}
	if wide {
		limits := "enforced"
		if !n.LimitsEnforced {
			limits = "not enforced"
		}
		var taints, labels []string
		for _, t := range n.Taints {
			taints = append(taints, t.Key+"="+t.Value+":"+t.Effect)
		}
		for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
			labels = append(labels, k+"="+n.Labels[k])
		}
		cells = append(cells, limits, cmp.Or(strings.Join(taints, ","), "<none>"), cmp.Or(strings.Join(labels, ","), "<none>"))
	}
	return cells
}

// Bytes renders a size in binary units: 512Mi, 2Gi, 1.5Gi.
func Bytes(n int64) string {
	const ki = 1024
	units := []string{"", "Ki", "Mi", "Gi", "Ti", "Pi"}
	f := float64(n)
	i := 0
	for f >= ki && i < len(units)-1 {
		f /= ki
		i++
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d%s", int64(f), units[i])
	}
	return fmt.Sprintf("%.1f%s", f, units[i])
}

// DescribeReplica writes one replica in words.
func DescribeReplica(out io.Writer, r api.ReplicaInfo, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, cmp.Or(v, "-")) }
	row("Replica:", r.Replica)
	row("Workload:", r.Workload)
	row("Cluster:", r.Cluster)
	row("Node:", r.Node)
	row("State:", r.State)
	row("Restarts:", fmt.Sprint(r.Restarts))
	if r.StartedAt != nil {
		row("Started:", r.StartedAt.Format(time.RFC3339)+" ("+Age(r.StartedAt, now)+" ago)")
	}
	row("Last exit:", Exit(r.ExitCode))
	row("Reason:", r.Reason)
	row("Last error:", r.Message)
	row("Next start:", NextStart(r.NextStartAt, now))
	return tw.Flush()
}

// DescribeNode writes one node in words, then the replicas on it.
func DescribeNode(out io.Writer, n api.NodeInfo, reps []api.ReplicaInfo, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	cells := NodeRow(n, true)
	for i, h := range append(slices.Clone(NodeHeaders), NodeWideHeaders...) {
		fmt.Fprintf(tw, "%s:\t%s\n", strings.ToUpper(h[:1])+strings.ToLower(h[1:]), cells[i])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "Replicas:")
	if len(reps) == 0 {
		_, err := fmt.Fprintln(out, "  <none>")
		return err
	}
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+strings.Join(ListHeaders, "\t"))
	for _, r := range reps {
		fmt.Fprintln(tw, "  "+strings.Join(ListRow(r, now, false), "\t"))
	}
	return tw.Flush()
}

// Change is one replica that changed between two listings, for
// `get replicas -w`: Type is ADDED, MODIFIED or DELETED.
type Change struct {
	Type    string
	Replica api.ReplicaInfo
}

// Changes lists what changed from before to after: replicas that
// appeared, went, or changed state, node, restarts or error (the order
// of after, then the gone ones in the order of before).
func Changes(before, after []api.ReplicaInfo) []Change {
	key := func(r api.ReplicaInfo) string { return r.Cluster + "/" + r.Replica }
	old := make(map[string]api.ReplicaInfo, len(before))
	for _, r := range before {
		old[key(r)] = r
	}
	var out []Change
	seen := make(map[string]bool, len(after))
	for _, r := range after {
		seen[key(r)] = true
		b, ok := old[key(r)]
		switch {
		case !ok:
			out = append(out, Change{"ADDED", r})
		case b.State != r.State || b.Node != r.Node || b.Restarts != r.Restarts || b.Message != r.Message:
			out = append(out, Change{"MODIFIED", r})
		}
	}
	for _, r := range before {
		if !seen[key(r)] {
			out = append(out, Change{"DELETED", r})
		}
	}
	return out
}
