package web

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/atollhq/atoll/api"
)

// clusterTemplate is one cluster's row of the workload page's "Per
// cluster" table.
type clusterTemplate struct {
	Cluster string
	Applied []string
	Changes []string
	Data    string
}

// perCluster lists, for every cluster the workload runs in or an
// override selects, the overrides applied there, what they change, and
// the data versions its updated replicas run with. Empty when nothing
// differs anywhere.
func perCluster(w *api.Workload, clusters []*api.Cluster) []clusterTemplate {
	data := map[string]string{}
	for _, cr := range w.Status.Clusters {
		data[cr.Cluster] = cr.Data
	}
	var out []clusterTemplate
	for _, cl := range clusters {
		name := cl.Metadata.Name
		var row clusterTemplate
		row.Cluster, row.Data = name, data[name]
		for i, o := range w.Spec.Overrides {
			if !o.Selects(api.Target{Name: name, Labels: cl.Metadata.Labels}) {
				continue
			}
			row.Applied = append(row.Applied, cmp.Or(o.Name, fmt.Sprintf("overrides[%d]", i)))
			row.Changes = append(row.Changes, overrideChanges(o)...)
		}
		if len(row.Applied) > 0 || row.Data != "" {
			out = append(out, row)
		}
	}
	return out
}

// overrideChanges says in short what an override sets. Env values from
// configs and secrets are named, never read.
func overrideChanges(o api.Override) []string {
	var out []string
	if o.Replicas != nil {
		out = append(out, fmt.Sprintf("replicas %d", *o.Replicas))
	}
	if o.Command != "" {
		out = append(out, "command "+o.Command)
	}
	if o.Args != nil {
		out = append(out, "args "+strings.Join(o.Args, " "))
	}
	for _, e := range o.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.Secret != nil:
			out = append(out, fmt.Sprintf("env %s from secret %s/%s", e.Name, e.ValueFrom.Secret.Name, e.ValueFrom.Secret.Key))
		case e.ValueFrom != nil && e.ValueFrom.Config != nil:
			out = append(out, fmt.Sprintf("env %s from config %s/%s", e.Name, e.ValueFrom.Config.Name, e.ValueFrom.Config.Key))
		default:
			out = append(out, fmt.Sprintf("env %s=%s", e.Name, e.Value))
		}
	}
	if r := o.Resources; r != nil {
		out = append(out, strings.TrimSpace(fmt.Sprintf("resources %s %s", prefixed("cpu=", r.CPU), prefixed("memory=", r.Memory))))
	}
	for _, k := range slices.Sorted(maps.Keys(o.NodeSelector)) {
		out = append(out, fmt.Sprintf("nodeSelector %s=%s", k, o.NodeSelector[k]))
	}
	return out
}

func prefixed(p, v string) string {
	if v == "" {
		return ""
	}
	return p + v
}
