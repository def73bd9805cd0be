package apply

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
)

// volatile are the fields every write moves or the hub alone sets: a
// diff of them says nothing about what apply changes.
var volatile = []string{"resourceVersion", "uid", "creationTimestamp", "generation"}

// Comparable renders an object as YAML for a diff: without status and
// without the fields in volatile. nil renders as nothing (no object).
func Comparable(obj json.RawMessage) (string, error) {
	if len(obj) == 0 {
		return "", nil
	}
	var m map[string]any
	if err := json.Unmarshal(obj, &m); err != nil {
		return "", err
	}
	delete(m, "status")
	if spec, ok := m["spec"].(map[string]any); ok {
		dropHubPins(spec)
	}
	if meta, ok := m["metadata"].(map[string]any); ok {
		for _, f := range volatile {
			delete(meta, f)
		}
	}
	y, err := yaml.Marshal(m)
	return string(y), err
}

// Diff is the unified diff (3 lines of context) from the live object to
// the one apply would store, under the names live/REF and applied/REF;
// "" when they are the same.
func Diff(ref string, live, applied json.RawMessage) (string, error) {
	a, err := Comparable(live)
	if err != nil {
		return "", fmt.Errorf("%s: live object: %w", ref, err)
	}
	b, err := Comparable(applied)
	if err != nil {
		return "", fmt.Errorf("%s: applied object: %w", ref, err)
	}
	if a == b {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: lines(a), B: lines(b), FromFile: "live/" + ref, ToFile: "applied/" + ref, Context: 3,
	})
}

// lines splits text into lines that each end with a newline.
func lines(s string) []string {
	var out []string
	for line := range strings.Lines(s) {
		if !strings.HasSuffix(line, "\n") {
			line += "\n"
		}
		out = append(out, line)
	}
	return out
}

// ClusterDiff is the unified diff of what one cluster runs of a
// workload, from the live object to the one apply would store: the
// effective template (spec.overrides that select the cluster applied) and
// the replicas an override gives it, as YAML. live is nil for a workload
// that does not exist yet. It is "" when the cluster would run the same.
func ClusterDiff(ref string, target api.Target, live, applied json.RawMessage) (string, error) {
	render := func(doc json.RawMessage) (string, error) {
		if len(doc) == 0 || string(doc) == "null" {
			return "", nil
		}
		var w api.Workload
		if err := json.Unmarshal(doc, &w); err != nil {
			return "", err
		}
		tmpl, replicas, applied := w.Spec.Effective(target, -1)
		view := map[string]any{"template": tmpl, "overrides": applied}
		if replicas >= 0 {
			view["replicas"] = replicas // an override's; else the cluster's share of placement
		}
		b, err := json.Marshal(view)
		if err != nil {
			return "", err
		}
		y, err := yaml.JSONToYAML(b)
		return string(y), err
	}
	a, err := render(live)
	if err != nil {
		return "", fmt.Errorf("%s: live object: %w", ref, err)
	}
	b, err := render(applied)
	if err != nil {
		return "", fmt.Errorf("%s: applied object: %w", ref, err)
	}
	if a == b {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: lines(a), B: lines(b), FromFile: "live/" + ref + "@" + target.Name, ToFile: "applied/" + ref + "@" + target.Name, Context: 3,
	})
}
