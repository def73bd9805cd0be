// Package apply is what `atoll apply`, `atoll diff` and `apply --prune`
// do with manifests against a hub: create or update one object (really,
// as a server-side dry run, or as a client-side one that only reads),
// render the difference between live objects and what apply would make
// of them, and choose what a prune deletes.
//
// It owns the rules of apply: a manifest controls labels, annotations
// and spec; finalizers and status stay the hub's; tokens and drills are
// never changed, only created. It must not read files or parse flags
// (cmd/atoll does) nor decide how objects are printed beyond the diff.
package apply

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

// Mode is how Apply writes.
type Mode int

const (
	// Write creates and updates objects.
	Write Mode = iota
	// ClientDryRun reads only, and says what would be done.
	ClientDryRun
	// ServerDryRun sends the writes as dry runs: the hub checks them
	// fully and stores nothing.
	ServerDryRun
)

// Result says what Apply did (or would do) to one object.
type Result struct {
	Action string // created, configured, unchanged
	Note   string // why an object was left alone, if it was
	// Object is the object as stored (or, for dry runs, as it would be),
	// nil for a client-side dry run of a create or update, and for a
	// server-side one of a kind the hub does not dry-run.
	Object json.RawMessage
}

// Apply creates the manifest's object, or replaces labels, annotations
// and spec of the existing one when they differ. A conflict (someone
// wrote in between) is retried from a fresh read.
func Apply(ctx context.Context, c *client.Client, m api.Manifest, mode Mode) (Result, error) {
	w := c
	if mode == ServerDryRun {
		w = c.DryRun()
	}
	name := m.Object.GetMetadata().Name
	for attempt := 0; ; attempt++ {
		cur := m.Kind.New()
		var live json.RawMessage
		err := c.Get(ctx, m.Kind.Plural, name, &live)
		if api.ErrorCode(err) == api.CodeNotFound {
			if mode == ClientDryRun {
				return Result{Action: "created"}, nil
			}
			if mode == ServerDryRun && !serverDryRuns(m.Kind) {
				return Result{Action: "created", Note: "checked by the client only: the hub cannot dry-run " + m.Kind.Plural + ", whose create acts at once"}, nil
			}
			var out json.RawMessage
			if err := w.Create(ctx, m.Kind.Plural, m.Object, &out); err != nil {
				return Result{}, err
			}
			return Result{Action: "created", Object: out}, nil
		}
		if err != nil {
			return Result{}, err
		}
		if err := json.Unmarshal(live, cur); err != nil {
			return Result{}, err
		}
		switch m.Kind.Name {
		case "Token":
			return Result{Action: "unchanged", Note: "a token cannot be changed: delete it and create a new one", Object: live}, nil
		case "Drill":
			return Result{Action: "unchanged", Note: "a drill cannot be changed: run a new one", Object: live}, nil
		}
		if SameIntent(cur, m.Object) {
			return Result{Action: "unchanged", Object: live}, nil
		}
		if mode == ClientDryRun {
			return Result{Action: "configured"}, nil
		}
		m.Object.GetMetadata().ResourceVersion = cur.GetMetadata().ResourceVersion
		var out json.RawMessage
		err = w.Update(ctx, m.Kind.Plural, name, m.Object, &out)
		m.Object.GetMetadata().ResourceVersion = ""
		if api.ErrorCode(err) == api.CodeConflict && attempt < 3 {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		return Result{Action: "configured", Object: out}, nil
	}
}

// serverDryRuns says whether the hub dry-runs creates of a kind: not
// tokens (their create makes the secret) nor drills (their create starts
// the drill; `POST /api/v1/drills/plan` is their dry run).
func serverDryRuns(k api.Kind) bool { return k.Name != "Token" && k.Name != "Drill" }

// SameIntent compares what a manifest controls: labels, annotations and
// spec.
func SameIntent(a, b api.Object) bool {
	return reflect.DeepEqual(intent(a), intent(b))
}

func intent(o api.Object) map[string]any {
	js, _ := json.Marshal(o)
	var m map[string]any
	_ = json.Unmarshal(js, &m)
	meta, _ := m["metadata"].(map[string]any)
	spec, _ := m["spec"].(map[string]any)
	dropHubPins(spec)
	return map[string]any{"labels": meta["labels"], "annotations": meta["annotations"], "spec": m["spec"]}
}

// dropHubPins removes from a workload's spec (decoded) what the hub alone
// writes there: the data versions its template pins (api.AnnotationData).
// A manifest does not carry them, and they say nothing of what apply
// changes.
func dropHubPins(spec map[string]any) {
	tmpl, _ := spec["template"].(map[string]any)
	ann, _ := tmpl["annotations"].(map[string]any)
	if _, ok := ann[api.AnnotationData]; !ok {
		return
	}
	delete(ann, api.AnnotationData)
	if len(ann) == 0 {
		delete(tmpl, "annotations")
	}
}

// Live reads the object a manifest names; nil when there is none.
func Live(ctx context.Context, c *client.Client, m api.Manifest) (json.RawMessage, error) {
	var live json.RawMessage
	err := c.Get(ctx, m.Kind.Plural, m.Object.GetMetadata().Name, &live)
	if api.ErrorCode(err) == api.CodeNotFound {
		return nil, nil
	}
	return live, err
}

// Pruned are the objects of one kind a prune deletes.
type Pruned struct {
	Kind  api.Kind
	Names []string
}

// Prune lists, for each kind applied, the objects matching selector
// that no manifest names: what `apply --prune` deletes. The selector is
// required: without one, a prune would delete everything else.
func Prune(ctx context.Context, c *client.Client, manifests []api.Manifest, selector string) ([]Pruned, error) {
	if selector == "" {
		return nil, errors.New("--prune needs a label selector (-l): without one it would delete every other object of the kinds applied")
	}
	keep := map[string]map[string]bool{}
	var kinds []api.Kind
	for _, m := range manifests {
		if keep[m.Kind.Name] == nil {
			keep[m.Kind.Name] = map[string]bool{}
			kinds = append(kinds, m.Kind)
		}
		keep[m.Kind.Name][m.Object.GetMetadata().Name] = true
	}
	var out []Pruned
	for _, k := range kinds {
		p := Pruned{Kind: k}
		opts := client.ListOptions{LabelSelector: selector}
		for {
			var page struct {
				Metadata api.ListMeta `json:"metadata"`
				Items    []struct {
					Metadata api.ObjectMeta `json:"metadata"`
				} `json:"items"`
			}
			if err := c.List(ctx, k.Plural, opts, &page); err != nil {
				return nil, err
			}
			for _, it := range page.Items {
				if !keep[k.Name][it.Metadata.Name] && it.Metadata.DeletionTimestamp == nil {
					p.Names = append(p.Names, it.Metadata.Name)
				}
			}
			if page.Metadata.Continue == "" {
				break
			}
			opts.Continue = page.Metadata.Continue
		}
		if len(p.Names) > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}
