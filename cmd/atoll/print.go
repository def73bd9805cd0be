package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/cli/output"
)

type table struct {
	w *tabwriter.Writer
}

func newTable(out io.Writer, headers ...string) *table {
	t := &table{w: tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)}
	if len(headers) > 0 {
		t.row(headers...)
	}
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.w, strings.Join(cells, "\t")) }

func (t *table) flush() error { return t.w.Flush() }

// age renders how long ago t was, kubectl style: 45s, 12m, 3h, 2d.
func age(t *time.Time, now time.Time) string {
	if t == nil {
		return "<none>"
	}
	return output.Duration(now.Sub(*t))
}

func labelString(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// printer renders objects of one kind as a table.
type printer struct {
	headers, wideHeaders []string
	row                  func(raw json.RawMessage, now time.Time, wide bool) []string
	// less orders rows (nil: as listed, by name).
	less func(a, b json.RawMessage) bool
}

var printers = map[string]printer{
	"Drill": drillPrinter,
	"Cluster": {
		headers:     []string{"NAME", "REGION", "ZONE", "HEALTH", "HEARTBEAT", "NODES", "REPLICAS", "AGE"},
		wideHeaders: []string{"CPU", "MEMORY", "TAINTS", "VERSION"},
		row: func(raw json.RawMessage, now time.Time, wide bool) []string {
			var c api.Cluster
			_ = json.Unmarshal(raw, &c)
			health := c.HealthOrUnknown()
			if c.Spec.Unschedulable {
				health += ",Cordoned"
			}
			hb := "never"
			if c.Status.HeartbeatAgeSeconds != nil {
				hb = fmt.Sprintf("%.1fs ago", *c.Status.HeartbeatAgeSeconds)
			}
			nodes, replicas, cpu, mem := "-", "-", "-", "-"
			if cp := c.Status.Capacity; cp != nil {
				nodes = fmt.Sprintf("%d/%d", cp.NodesReady, cp.NodesTotal)
				replicas = fmt.Sprintf("%d/%d", cp.ReplicasReady, cp.Replicas)
				if lk := api.LastKnown(c.HealthOrUnknown(), c.Status.LastHeartbeatTime, now); lk != "" {
					// Figures of a cluster not heard from are history.
					nodes += " (" + lk + ")"
					replicas += " (" + lk + ")"
				}
				cpu = fmt.Sprintf("%dm/%dm", cp.CPUAllocated, cp.CPUAllocatable)
				mem = fmt.Sprintf("%dMi/%dMi", cp.MemoryAllocated>>20, cp.MemoryAllocatable>>20)
			}
			zone := c.Metadata.Labels[api.LabelZone]
			if zone == "" {
				zone = "-"
			}
			cells := []string{c.Metadata.Name, c.Metadata.Labels[api.LabelRegion], zone, health, hb, nodes, replicas, age(c.Metadata.CreationTimestamp, now)}
			if wide {
				taints := make([]string, len(c.Spec.Taints))
				for i, t := range c.Spec.Taints {
					taints[i] = t.String()
				}
				tt := strings.Join(taints, ",")
				if tt == "" {
					tt = "<none>"
				}
				cells = append(cells, cpu, mem, tt, c.Status.MemberVersion)
			}
			return cells
		},
	},
	"Event": {
		headers: []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"},
		row: func(raw json.RawMessage, now time.Time, _ bool) []string {
			var e api.Event
			_ = json.Unmarshal(raw, &e)
			return []string{age(e.EventTime, now), e.Type, e.Reason, strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name, eventMessage(e, now)}
		},
		less: func(a, b json.RawMessage) bool {
			var ea, eb api.Event
			_ = json.Unmarshal(a, &ea)
			_ = json.Unmarshal(b, &eb)
			if ea.EventTime == nil || eb.EventTime == nil {
				return ea.EventTime == nil
			}
			return ea.EventTime.Before(*eb.EventTime)
		},
	},
	"Workload": {
		headers:     []string{"NAME", "REPLICAS", "READY", "DRIVER", "AGE"},
		wideHeaders: []string{"GENERATION", "OBSERVED", "REGIONS", "HEALTH", "LAST KNOWN", "LABELS"},
		row: func(raw json.RawMessage, now time.Time, wide bool) []string {
			var w api.Workload
			_ = json.Unmarshal(raw, &w)
			cells := []string{w.Metadata.Name, fmt.Sprint(w.Spec.Replicas), fmt.Sprintf("%d/%d", w.Status.ReadyReplicas, w.Spec.Replicas),
				w.Spec.Template.Driver, age(w.Metadata.CreationTimestamp, now)}
			if wide {
				cells = append(cells, fmt.Sprint(w.Metadata.Generation), fmt.Sprint(w.Status.ObservedGeneration), api.FormatRegionSplit(api.RegionSplit(w.Status.Clusters)), w.Health().State,
					lastKnownClusters(w.Status.Clusters, now), labelString(w.Metadata.Labels))
			}
			return cells
		},
	},
	"Config": dataPrinter,
	"Secret": dataPrinter,
	"Token": {
		headers:     []string{"NAME", "TYPE", "ROLE", "PREFIX", "EXPIRES", "AGE"},
		wideHeaders: []string{"DESCRIPTION"},
		row: func(raw json.RawMessage, now time.Time, wide bool) []string {
			var t api.Token
			_ = json.Unmarshal(raw, &t)
			exp := "never"
			if t.Spec.ExpiresAt != nil {
				if t.Spec.ExpiresAt.Before(now) {
					exp = "expired"
				} else {
					exp = t.Spec.ExpiresAt.UTC().Format(time.RFC3339)
				}
			}
			role := t.Spec.Role
			switch t.Spec.TypeOrDefault() {
			case api.TokenJoin:
				role = fmt.Sprintf("used %d/%s", t.Status.Used, usesText(t.Spec.Uses))
			case api.TokenMember:
				role = "cluster " + t.Spec.Cluster
			}
			cells := []string{t.Metadata.Name, t.Spec.TypeOrDefault(), role, t.Status.Prefix + "…", exp, age(t.Metadata.CreationTimestamp, now)}
			if wide {
				cells = append(cells, t.Spec.Description)
			}
			return cells
		},
	},
}

func (p printer) header(wide bool) []string {
	if wide {
		return append(append([]string{}, p.headers...), p.wideHeaders...)
	}
	return p.headers
}

func usesText(n int32) string {
	if n == 0 {
		return "∞"
	}
	return fmt.Sprint(n)
}

// dataPrinter shows a Config or a Secret by its keys and version, never
// its values (which -o yaml shows for a config, and --show-values for a
// secret, to admins).
var dataPrinter = printer{
	headers:     []string{"NAME", "KEYS", "VERSION", "AGE"},
	wideHeaders: []string{"LABELS"},
	row: func(raw json.RawMessage, now time.Time, wide bool) []string {
		var d struct {
			Metadata api.ObjectMeta `json:"metadata"`
			Spec     api.DataSpec   `json:"spec"`
			Status   api.DataStatus `json:"status"`
		}
		_ = json.Unmarshal(raw, &d)
		keys := d.Status.Keys
		if len(keys) == 0 {
			keys = d.Spec.Describe()
		}
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = k.Name
		}
		cells := []string{d.Metadata.Name, strings.Join(names, ","), fmt.Sprint(d.Status.Version), age(d.Metadata.CreationTimestamp, now)}
		if wide {
			cells = append(cells, labelString(d.Metadata.Labels))
		}
		return cells
	},
}
