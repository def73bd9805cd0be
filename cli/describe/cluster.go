package describe

import (
	"cmp"
	"fmt"
	"io"
	"time"

	"github.com/atollhq/atoll/api"
)

// Cluster writes a cluster in words: its region, health (its figures
// labelled last known when it is not Ready), whether it takes new
// replicas, its taints, capacity in cores and GiB, its member and its
// conditions. The events are the caller's to add (Events).
func Cluster(out io.Writer, c *api.Cluster, now time.Time) error {
	d := newDoc(out)
	metadata(d, "Cluster", c.Metadata, now)
	st := &c.Status
	d.row(0, "Region", cmp.Or(c.Metadata.Labels[api.LabelRegion], "<none>"))
	if z := c.Metadata.Labels[api.LabelZone]; z != "" {
		d.row(0, "Zone", z)
	}
	if p := c.Metadata.Labels[api.LabelProvider]; p != "" {
		d.row(0, "Provider", p)
	}
	health := c.HealthOrUnknown()
	lk := api.LastKnown(health, st.LastHeartbeatTime, now)
	hb := "never heard from"
	switch {
	case st.LastHeartbeatTime != nil:
		hb = "last heartbeat " + api.Ago(now.Sub(*st.LastHeartbeatTime)) + " ago"
	case st.HeartbeatAgeSeconds != nil:
		hb = fmt.Sprintf("last heartbeat %.1f s ago", *st.HeartbeatAgeSeconds)
	}
	d.row(0, "Health", health+": "+hb)
	if lk != "" {
		d.row(0, "Last known", fmt.Sprintf("the cluster is %s: its capacity, nodes and replicas below are %s", health, lk))
	}
	d.row(0, "Scheduling", schedulingText(c))
	d.head(0, "Taints")
	if len(c.Spec.Taints) == 0 {
		d.line(1, "<none>")
	} else {
		rows := make([][]string, len(c.Spec.Taints))
		for i, t := range c.Spec.Taints {
			rows[i] = []string{t.String(), taintMeaning(t), ago(t.TimeAdded, now)}
		}
		d.table(1, []string{"TAINT", "EFFECT", "AGE"}, rows)
	}
	d.head(0, "Capacity")
	if cp := st.Capacity; cp == nil {
		d.line(1, "not reported yet")
	} else {
		suffix := ""
		if lk != "" {
			suffix = " (" + lk + ")"
		}
		d.row(1, "Nodes", fmt.Sprintf("%d/%d ready", cp.NodesReady, cp.NodesTotal)+suffix)
		d.row(1, "Replicas", fmt.Sprintf("%d/%d ready", cp.ReplicasReady, cp.Replicas)+suffix)
		d.row(1, "CPU", fmt.Sprintf("%s of %s cores allocated%s", Cores(cp.CPUAllocated), Cores(cp.CPUAllocatable), percent(cp.CPUAllocated, cp.CPUAllocatable))+suffix)
		d.row(1, "Memory", fmt.Sprintf("%s of %s allocated%s", Memory(cp.MemoryAllocated), Memory(cp.MemoryAllocatable), percent(cp.MemoryAllocated, cp.MemoryAllocatable))+suffix)
	}
	d.head(0, "Member")
	if st.MemberVersion != "" || st.ProtocolVersion != 0 {
		d.row(1, "Version", fmt.Sprintf("%s, protocol %d", cmp.Or(st.MemberVersion, "unknown"), st.ProtocolVersion))
	}
	if st.RegisteredAt != nil {
		d.row(1, "Registered", when(st.RegisteredAt, now))
	}
	d.row(1, "Identity", cmp.Or(st.Identity, "<none>"))
	conditions(d, st.Conditions, now)
	return d.flush()
}

// schedulingText says whether the cluster takes new replicas and keeps
// the ones it runs.
func schedulingText(c *api.Cluster) string {
	switch {
	case c.Draining():
		return "draining: nothing new is placed here and its replicas move elsewhere (atoll cluster uncordon ends it)"
	case c.Spec.Unschedulable:
		return "cordoned: nothing new is placed here; what runs stays (atoll cluster uncordon ends it)"
	}
	for _, t := range c.Spec.Taints {
		if t.Effect == "NoExecute" {
			return "tainted NoExecute: replicas that do not tolerate its taints move elsewhere"
		}
	}
	return "schedulable"
}

func taintMeaning(t api.Taint) string {
	switch t.Effect {
	case "NoSchedule":
		return "NoSchedule: nothing new placed"
	case "NoExecute":
		return "NoExecute: replicas moved off"
	}
	return t.Effect
}

// percent is " (38%)" of part in whole, "" when whole is 0.
func percent(part, whole int64) string {
	if whole <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%d%%)", (part*100+whole/2)/whole)
}
