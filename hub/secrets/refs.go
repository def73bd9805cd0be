package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// CheckReferences is a pgstore.SpecHook for workloads: every Config and
// Secret the template names (env valueFrom, files) must exist, and every
// key it names must be one of theirs. It reads them in the write's own
// transaction, so that a create, an update, a patch and a dry run are
// checked alike; a missing one fails the write with the reference's field
// path (a 422). Only names and keys are read, never a secret's value.
//
// The hub's own rewrite of a workload (Repin, after new values of a config
// or secret) is not checked: a key taken out of a secret then shows where
// it is missed, as a replica held with a reason naming it.
func CheckReferences(ctx context.Context, tx *pgstore.Tx, _, next *pgstore.Record) error {
	if tx.Refreshing() {
		return nil
	}
	var w api.Workload
	if err := next.DecodeSpec(&w.Spec); err != nil {
		return err
	}
	refs := w.Spec.DataRefs()
	if len(refs) == 0 {
		return nil
	}
	type object struct {
		keys      []string
		found     bool
		residency *api.LabelSelector
	}
	var clusters []api.Cluster // read once, when a residency needs them
	seen := map[string]object{}
	var fe api.FieldErrors
	for _, r := range refs {
		id := r.Kind + "/" + r.Name
		o, ok := seen[id]
		if !ok {
			rec, err := tx.Get(ctx, r.Kind, r.Name)
			switch {
			case api.ErrorCode(err) == api.CodeNotFound:
			case err != nil:
				return err
			default:
				o = object{keys: keysOf(rec), found: true, residency: residencyOf(rec)}
			}
			seen[id] = o
		}
		switch {
		case !o.found:
			fe = append(fe, api.FieldError{Field: r.Field + nameField(r), Message: fmt.Sprintf("there is no %s %q", r.Kind, r.Name), Value: r.Name})
		case r.Key != "" && !slices.Contains(o.keys, r.Key):
			fe = append(fe, api.FieldError{Field: r.Field + ".key", Message: fmt.Sprintf("%s %q has no key %q (its keys: %s)", r.Kind, r.Name, r.Key, strings.Join(o.keys, ", ")), Value: r.Key})
		case o.residency != nil:
			if clusters == nil {
				var err error
				if clusters, err = listClusters(ctx, tx); err != nil {
					return err
				}
			}
			if out := outside(&w.Spec, r, o.residency, clusters); len(out) > 0 {
				fe = append(fe, api.FieldError{Field: r.Field + nameField(r), Value: r.Name, Message: fmt.Sprintf(
					"%s %q may only be in clusters matching %s (its residency), and this workload may run in %s: restrict spec.placement (clusterSelector or clusters) to clusters that match",
					r.Kind, r.Name, o.residency.Selector().String(), strings.Join(out, ", "))})
			}
		}
	}
	if len(fe) > 0 {
		return fe
	}
	return nil
}

// nameField is the suffix of a reference's name field: env references
// name theirs in .name, files in the field itself.
func nameField(r api.DataRef) string {
	if r.Key != "" {
		return ".name"
	}
	return ""
}

// keysOf lists a Config's or a Secret's keys (a secret's from its status:
// the values are not read).
func keysOf(rec *pgstore.Record) []string {
	var keys []api.DataKey
	if rec.Kind == "Config" {
		var c api.Config
		_ = rec.Decode(&c)
		keys = c.Spec.Describe()
	} else {
		var s api.Secret
		_ = rec.Decode(&s)
		keys = s.Status.Keys
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name
	}
	return out
}

// residencyOf is a Config's or a Secret's residency (nil: none).
func residencyOf(rec *pgstore.Record) *api.LabelSelector {
	var spec api.DataSpec
	_ = json.Unmarshal(rec.Spec, &spec)
	return spec.Residency
}

func listClusters(ctx context.Context, tx *pgstore.Tx) ([]api.Cluster, error) {
	recs, err := tx.List(ctx, "Cluster")
	if err != nil {
		return nil, err
	}
	out := make([]api.Cluster, 0, len(recs))
	for _, rec := range recs {
		var c api.Cluster
		if err := rec.Decode(&c); err == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// outside lists the registered clusters where the workload could carry
// the reference although its residency does not allow them: those its
// placement policy admits (and, for a reference of an override, that the
// override selects).
func outside(s *api.WorkloadSpec, r api.DataRef, residency *api.LabelSelector, clusters []api.Cluster) []string {
	var out []string
	for _, c := range clusters {
		if api.Resident(residency, c.Metadata.Labels) || !admits(s.Placement, c) {
			continue
		}
		if i, ok := overrideIndex(r.Field); ok && i < len(s.Overrides) &&
			!s.Overrides[i].Selects(api.Target{Name: c.Metadata.Name, Labels: c.Metadata.Labels}) {
			continue
		}
		out = append(out, c.Metadata.Name)
	}
	slices.Sort(out)
	return out
}

// admits says whether a placement policy lets a workload into a cluster
// by name and labels (taints, capacity and health aside: those change).
func admits(p *api.PlacementPolicy, c api.Cluster) bool {
	if p == nil {
		return true
	}
	name := c.Metadata.Name
	if len(p.Clusters) > 0 && !slices.Contains(p.Clusters, name) {
		return false
	}
	if slices.Contains(p.ExcludeClusters, name) {
		return false
	}
	return p.ClusterSelector == nil || p.ClusterSelector.Selector().Matches(c.Metadata.Labels)
}

// overrideIndex reads i from a field path "spec.overrides[i]...".
func overrideIndex(field string) (int, bool) {
	rest, ok := strings.CutPrefix(field, "spec.overrides[")
	if !ok {
		return 0, false
	}
	n, _, ok := strings.Cut(rest, "]")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	return i, err == nil
}
