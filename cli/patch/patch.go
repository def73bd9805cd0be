// Package patch builds the patches of `atoll label` and checks those of
// `atoll patch` before they are sent. It owns the parsing of label
// arguments (k=v, k-) and the --overwrite rule; it must not talk to the
// hub (cmd/atoll sends what it builds) nor validate label syntax beyond
// its shape: the hub's validation is the one authority.
package patch

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/atollhq/atoll/api"
)

// LabelChanges are the label edits of one `atoll label` call.
type LabelChanges struct {
	Set    map[string]string
	Remove []string
}

// ParseLabelArgs reads k=v (set) and k- (remove) arguments.
func ParseLabelArgs(args []string) (LabelChanges, error) {
	ch := LabelChanges{Set: map[string]string{}}
	seen := map[string]bool{}
	for _, a := range args {
		var key string
		switch {
		case strings.Contains(a, "="):
			k, v, _ := strings.Cut(a, "=")
			key = k
			ch.Set[k] = v
		case strings.HasSuffix(a, "-") && len(a) > 1:
			key = strings.TrimSuffix(a, "-")
			ch.Remove = append(ch.Remove, key)
		default:
			return ch, fmt.Errorf("%q: give key=value to set a label, or key- to remove one", a)
		}
		if key == "" {
			return ch, fmt.Errorf("%q: the label key is empty", a)
		}
		if seen[key] {
			return ch, fmt.Errorf("label %q is given twice", key)
		}
		seen[key] = true
	}
	if len(seen) == 0 {
		return ch, fmt.Errorf("give at least one key=value or key-")
	}
	sort.Strings(ch.Remove)
	return ch, nil
}

// LabelPatch is the merge patch that makes the changes on an object with
// the labels current at resourceVersion (a precondition: the hub refuses
// the patch with 409 when the object changed since). Without overwrite,
// changing the value of an existing label is an error, as in kubectl.
// changed is false when the patch would change nothing.
func LabelPatch(ch LabelChanges, current map[string]string, resourceVersion string, overwrite bool) (patch []byte, changed bool, err error) {
	labels := map[string]any{}
	var keys []string
	for k := range ch.Set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := ch.Set[k]
		old, ok := current[k]
		if ok && old == v {
			continue
		}
		if ok && !overwrite {
			return nil, false, fmt.Errorf("label %q already has the value %q: add --overwrite to change it", k, old)
		}
		labels[k] = v
	}
	for _, k := range ch.Remove {
		if _, ok := current[k]; ok {
			labels[k] = nil
		}
	}
	if len(labels) == 0 {
		return nil, false, nil
	}
	patch, err = json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels, "resourceVersion": resourceVersion}})
	return patch, true, err
}

// Types maps `atoll patch --type` to the media type sent.
var Types = map[string]string{"merge": "application/merge-patch+json", "json": "application/json-patch+json"}

// Check reads a patch given on the command line (JSON, or YAML for a
// merge patch) and returns it as JSON, refusing the shapes the type
// cannot have before anything is sent.
func Check(typ string, text []byte) ([]byte, error) {
	if _, ok := Types[typ]; !ok {
		return nil, fmt.Errorf("--type %s: use merge or json", typ)
	}
	js := text
	if !json.Valid(js) {
		var err error
		if js, err = api.YAMLToJSON(text); err != nil {
			return nil, fmt.Errorf("the patch is neither JSON nor YAML: %w", err)
		}
	}
	var v any
	_ = json.Unmarshal(js, &v)
	switch v.(type) {
	case map[string]any:
		if typ == "json" {
			return nil, fmt.Errorf("a JSON patch is an array of operations, e.g. [{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":3}]; for an object use --type merge")
		}
	case []any:
		if typ == "merge" {
			return nil, fmt.Errorf("a merge patch is an object, e.g. {\"spec\":{\"replicas\":3}}; for an array of operations use --type json")
		}
	default:
		return nil, fmt.Errorf("the patch must be a JSON object (--type merge) or array (--type json)")
	}
	return js, nil
}
