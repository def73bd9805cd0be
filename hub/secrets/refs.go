package secrets

import (
	"context"
	"fmt"
	"slices"
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
func CheckReferences(ctx context.Context, tx *pgstore.Tx, _, next *pgstore.Record) error {
	var w api.Workload
	if err := next.Decode(&w); err != nil {
		return err
	}
	refs := w.Spec.DataRefs()
	if len(refs) == 0 {
		return nil
	}
	type object struct {
		keys  []string
		found bool
	}
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
				o = object{keys: keysOf(rec), found: true}
			}
			seen[id] = o
		}
		switch {
		case !o.found:
			fe = append(fe, api.FieldError{Field: r.Field + nameField(r), Message: fmt.Sprintf("there is no %s %q", r.Kind, r.Name), Value: r.Name})
		case r.Key != "" && !slices.Contains(o.keys, r.Key):
			fe = append(fe, api.FieldError{Field: r.Field + ".key", Message: fmt.Sprintf("%s %q has no key %q (its keys: %s)", r.Kind, r.Name, r.Key, strings.Join(o.keys, ", ")), Value: r.Key})
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
