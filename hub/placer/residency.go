package placer

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// residencies reads the Configs' and Secrets' residency selectors, by
// protocol.DataID, and a key that changes when any does.
func (p *Placer) residencies(ctx context.Context) (map[string]*api.LabelSelector, string, error) {
	out := map[string]*api.LabelSelector{}
	for _, kind := range []string{"Config", "Secret"} {
		res, err := p.db.List(ctx, kind, pgstore.ListOptions{Limit: -1})
		if err != nil {
			return nil, "", err
		}
		for _, rec := range res.Items {
			var spec struct {
				Residency *api.LabelSelector `json:"residency"`
			}
			if json.Unmarshal(rec.Spec, &spec) == nil && spec.Residency != nil {
				out[protocol.DataID(kind, rec.Meta.Name)] = spec.Residency
			}
		}
	}
	var key strings.Builder
	for _, id := range slices.Sorted(maps.Keys(out)) {
		b, _ := json.Marshal(out[id])
		key.WriteString(id + "=" + string(b) + ";")
	}
	return out, key.String(), nil
}

// resident returns w with its placement restricted to the clusters every
// config and secret it uses may be in (their residency): placement never
// puts it elsewhere, whatever its own policy says. w's own spec is not
// changed.
func resident(w api.Workload, residency map[string]*api.LabelSelector) api.Workload {
	if len(residency) == 0 {
		return w
	}
	seen := map[string]bool{}
	for _, r := range w.Spec.DataRefs() {
		id := protocol.DataID(r.Kind, r.Name)
		sel, ok := residency[id]
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		w.Spec.Placement = api.Restrict(w.Spec.Placement, sel)
	}
	return w
}
