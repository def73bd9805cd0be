package web

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"sigs.k8s.io/yaml"

	"github.com/atollhq/atoll/api"
)

// rolloutView is the workload page's progressive rollout card: where it
// is, and each cluster's revision and gate.
type rolloutView struct {
	Status   api.RolloutStatus
	Since    string // how long the phase has lasted
	Clusters []api.RolloutCluster
}

// revisionRow is one template revision in the workload page's history,
// with what changed from the one before it.
type revisionRow struct {
	Number      int64
	Hash        string
	Actor       string
	Age         string
	ChangeCause string
	Current     bool
	Diff        string // unified diff of the template from the previous revision ("" for the first kept)
}

// maxRevisionRows bounds the history shown (newest first).
const maxRevisionRows = 10

// rolloutCard builds the rollout card of a workload with spec.rollout (nil
// without one).
func rolloutCard(w *api.Workload, now time.Time) *rolloutView {
	r := w.Status.Rollout
	if w.Spec.Rollout == nil || r == nil {
		return nil
	}
	v := &rolloutView{Status: *r, Clusters: r.Clusters}
	if r.Since != nil {
		v.Since = ageText(now.Sub(*r.Since))
	}
	return v
}

// revisionHistory reads a workload's kept revisions, newest first, each
// with its template's diff from the revision before it.
func (c *Console) revisionHistory(ctx context.Context, name string, now time.Time) ([]revisionRow, error) {
	rows, err := c.cfg.Store.Revisions(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make([]revisionRow, 0, len(rows))
	prev := ""
	for i, r := range rows {
		y := templateYAML(r.Template)
		row := revisionRow{Number: r.Number, Hash: r.TemplateHash, Actor: r.Actor, ChangeCause: r.ChangeCause, Age: ageText(now.Sub(r.CreatedAt)),
			Current: i == len(rows)-1}
		if i > 0 {
			row.Diff, _ = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(prev), B: difflib.SplitLines(y),
				FromFile: "revision " + strconv.FormatInt(rows[i-1].Number, 10), ToFile: "revision " + strconv.FormatInt(r.Number, 10), Context: 2})
		}
		prev = y
		out = append(out, row)
	}
	// Newest first, bounded.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) > maxRevisionRows {
		out = out[:maxRevisionRows]
	}
	return out, nil
}

// templateYAML renders a stored template for a diff.
func templateYAML(raw json.RawMessage) string {
	var t any
	if json.Unmarshal(raw, &t) != nil {
		return string(raw)
	}
	y, err := yaml.Marshal(t)
	if err != nil {
		return string(raw)
	}
	return string(y)
}
