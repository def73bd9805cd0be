package api

import (
	"fmt"
	"maps"
	"slices"
)

// Override changes a workload's template (and replicas) in the clusters
// it selects. A workload's overrides are an ordered list, applied first
// to last to every cluster they select: a later one wins where two set
// the same field. Being a list inside the workload, overrides cannot
// refer to one another, so there are no cycles to find.
type Override struct {
	Name string `json:"name,omitempty" doc:"A name for messages and describe's output (default: its index)."`
	// Selection: a cluster matches when every part given matches (an
	// override with none selects every cluster).
	Clusters        []string       `json:"clusters,omitempty" doc:"Only these clusters (by name)."`
	Regions         []string       `json:"regions,omitempty" doc:"Only clusters of these regions (their region label)."`
	ClusterSelector *LabelSelector `json:"clusterSelector,omitempty" doc:"Only clusters whose labels match."`
	// Changes.
	Replicas     *int32            `json:"replicas,omitempty" minimum:"0" maximum:"100000" doc:"The replicas each selected cluster runs instead of its share of spec.replicas (placement still counts shares: a failover moves the share)."`
	Command      string            `json:"command,omitempty" doc:"Replaces the command."`
	Args         []string          `json:"args,omitempty" doc:"Replaces the arguments (all of them)."`
	Env          []EnvVar          `json:"env,omitempty" doc:"Sets these variables (by name: replaced where the template has them, added where not)."`
	Resources    *Resources        `json:"resources,omitempty" doc:"Replaces cpu and memory (each when given)."`
	NodeSelector map[string]string `json:"nodeSelector,omitempty" doc:"Adds (or replaces) these node labels to the node selector."`
}

// Target is what an override selects by: a cluster's name and labels.
type Target struct {
	Name   string
	Labels map[string]string
}

// Selects reports whether o applies to the cluster.
func (o Override) Selects(c Target) bool {
	if len(o.Clusters) > 0 && !slices.Contains(o.Clusters, c.Name) {
		return false
	}
	if len(o.Regions) > 0 && !slices.Contains(o.Regions, c.Labels[LabelRegion]) {
		return false
	}
	if o.ClusterSelector != nil && !o.ClusterSelector.Selector().Matches(c.Labels) {
		return false
	}
	return true
}

// label names the override at index i in messages.
func (o Override) label(i int) string {
	if o.Name != "" {
		return o.Name
	}
	return fmt.Sprintf("overrides[%d]", i)
}

// Effective is the template and replicas a cluster runs: spec.template
// with the overrides that select it applied in order, and replicas (the
// given share, or the last override's replicas). Applied names the
// overrides used. The workload's own template is not changed.
func (s *WorkloadSpec) Effective(c Target, share int32) (t ReplicaTemplate, replicas int32, applied []string) {
	t, replicas = s.Template, share
	for i, o := range s.Overrides {
		if !o.Selects(c) {
			continue
		}
		applied = append(applied, o.label(i))
		t = o.apply(t)
		if o.Replicas != nil {
			replicas = *o.Replicas
		}
	}
	return t, replicas, applied
}

// apply returns t with o's changes (t's slices and maps are copied before
// they change).
func (o Override) apply(t ReplicaTemplate) ReplicaTemplate {
	if o.Command != "" {
		t.Command = o.Command
	}
	if o.Args != nil {
		t.Args = slices.Clone(o.Args)
	}
	if len(o.Env) > 0 {
		env := slices.Clone(t.Env)
		for _, v := range o.Env {
			if i := slices.IndexFunc(env, func(e EnvVar) bool { return e.Name == v.Name }); i >= 0 {
				env[i] = v
			} else {
				env = append(env, v)
			}
		}
		t.Env = env
	}
	if o.Resources != nil {
		if o.Resources.CPU != "" {
			t.Resources.CPU = o.Resources.CPU
		}
		if o.Resources.Memory != "" {
			t.Resources.Memory = o.Resources.Memory
		}
	}
	if len(o.NodeSelector) > 0 {
		ns := maps.Clone(t.NodeSelector)
		if ns == nil {
			ns = map[string]string{}
		}
		maps.Copy(ns, o.NodeSelector)
		t.NodeSelector = ns
	}
	return t
}

// validateOverrides checks each override alone, and the template every
// combination of them could make: an override that makes the template
// invalid is refused at its index, whatever cluster it would meet.
func validateOverrides(e *errs, s *WorkloadSpec) {
	names := map[string]int{}
	for i, o := range s.Overrides {
		at := fmt.Sprintf("spec.overrides[%d]", i)
		if o.Name != "" {
			if !isDNSLabel(o.Name) {
				e.addValue(at+".name", o.Name, "must be a DNS-1123 label")
			} else if j, dup := names[o.Name]; dup {
				e.addValue(at+".name", o.Name, "is also overrides[%d]'s name", j)
			}
			names[o.Name] = i
		}
		for j, c := range o.Clusters {
			if !isDNSLabel(c) {
				e.addValue(fmt.Sprintf("%s.clusters[%d]", at, j), c, "must be a cluster name (a DNS-1123 label)")
			}
		}
		for j, r := range o.Regions {
			if !isDNSLabel(r) {
				e.addValue(fmt.Sprintf("%s.regions[%d]", at, j), r, "must be a region name (a DNS-1123 label)")
			}
		}
		if o.ClusterSelector != nil {
			validateSelector(e, at+".clusterSelector", o.ClusterSelector)
		}
		if o.Replicas != nil && *o.Replicas < 0 {
			e.addValue(at+".replicas", *o.Replicas, "must be 0 or more")
		}
		if o.Replicas == nil && o.Command == "" && o.Args == nil && len(o.Env) == 0 && o.Resources == nil && len(o.NodeSelector) == 0 {
			e.add(at, "changes nothing: set replicas, command, args, env, resources or nodeSelector")
		}
		if len(o.NodeSelector) > 0 {
			validateLabels(e, at+".nodeSelector", o.NodeSelector)
		}
		// The template with this override alone applied, checked where
		// the override's own fields land.
		var te errs
		only := o.apply(s.Template)
		validateTemplate(&te, "template", &only)
		for _, fe := range te.list {
			if !overrideTouches(o, fe.Field) {
				continue // the template's own problem, reported at spec.template
			}
			e.list = append(e.list, FieldError{Field: at, Message: fmt.Sprintf("makes the template invalid: %s: %s", fe.Field, fe.Message), Value: fe.Value})
		}
	}
}

// overrideTouches says whether a template field error (path under
// "template") is about a field o sets.
func overrideTouches(o Override, field string) bool {
	prefixes := map[string]bool{
		"template.command": o.Command != "", "template.args": o.Args != nil, "template.env": len(o.Env) > 0,
		"template.resources": o.Resources != nil, "template.nodeSelector": len(o.NodeSelector) > 0,
	}
	for p, set := range prefixes {
		if set && len(field) >= len(p) && field[:len(p)] == p {
			return true
		}
	}
	return false
}

// DataRefs lists the spec's references to Configs and Secrets: the
// template's and its overrides' (env), with their field paths.
func (s *WorkloadSpec) DataRefs() []DataRef {
	out := s.Template.DataRefs("spec.template")
	for i, o := range s.Overrides {
		t := ReplicaTemplate{Env: o.Env}
		out = append(out, t.DataRefs(fmt.Sprintf("spec.overrides[%d]", i))...)
	}
	return out
}
