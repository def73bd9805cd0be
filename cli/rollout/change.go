package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/client"
)

const plural = "workloads"

// Scale sets a workload's replicas. With current >= 0 it is refused
// (a 409 Conflict problem) unless the workload has that many now, and the patch carries
// the resourceVersion read, so a change in between is refused too.
func Scale(ctx context.Context, c *client.Client, name string, replicas, current int32) (api.Workload, error) {
	patch := map[string]any{"spec": map[string]any{"replicas": replicas}}
	if current >= 0 {
		var w api.Workload
		if err := c.Get(ctx, plural, name, &w); err != nil {
			return api.Workload{}, err
		}
		if w.Spec.Replicas != current {
			// Refused as the hub refuses a stale precondition: 409 Conflict.
			return api.Workload{}, &api.Problem{Status: http.StatusConflict, Title: "Conflict", Code: api.CodeConflict,
				Detail: fmt.Sprintf("workload %q has %d replicas, not %d (--current-replicas): not scaled", name, w.Spec.Replicas, current)}
		}
		patch["metadata"] = map[string]any{"resourceVersion": w.Metadata.ResourceVersion}
	}
	return patchWorkload(ctx, c, name, patch)
}

// Restart starts a new rollout of the same template: it sets the
// template's atoll.dev/restartedAt annotation to now, which changes the
// template, so every member replaces every replica within its
// maxSurge/maxUnavailable. The workload's atoll.dev/change-cause says so.
func Restart(ctx context.Context, c *client.Client, name string, now time.Time) (api.Workload, error) {
	return patchWorkload(ctx, c, name, map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{api.AnnotationChangeCause: "atoll rollout restart"}},
		"spec":     map[string]any{"template": map[string]any{"annotations": map[string]any{api.AnnotationRestartedAt: now.UTC().Format(time.RFC3339Nano)}}},
	})
}

func patchWorkload(ctx context.Context, c *client.Client, name string, patch map[string]any) (api.Workload, error) {
	b, err := json.Marshal(patch)
	if err != nil {
		return api.Workload{}, err
	}
	var out api.Workload
	return out, c.Patch(ctx, plural, name, b, &out)
}

// UndoResult is what Undo did.
type UndoResult struct {
	// To is the revision whose template the workload has again.
	To int64
	// Skipped: the workload's template was that revision's already.
	Skipped bool
}

// Undo sets the workload's template back to revision to's (0: the one
// before the newest) with an update at the resourceVersion read; the hub
// records it as a new revision. A concurrent change (409) is read again
// and retried a few times.
func Undo(ctx context.Context, c *client.Client, name string, to int64) (UndoResult, error) {
	revs, err := c.Revisions(ctx, name)
	if err != nil {
		return UndoResult{}, err
	}
	target, err := pick(name, revs.Items, to)
	if err != nil {
		return UndoResult{}, err
	}
	for attempt := 0; ; attempt++ {
		var w api.Workload
		if err := c.Get(ctx, plural, name, &w); err != nil {
			return UndoResult{}, err
		}
		if api.TemplateHash(w.Spec.Template) == target.TemplateHash {
			return UndoResult{To: target.Number, Skipped: true}, nil
		}
		w.Spec.Template = target.Template
		if w.Metadata.Annotations == nil {
			w.Metadata.Annotations = map[string]string{}
		}
		w.Metadata.Annotations[api.AnnotationChangeCause] = fmt.Sprintf("atoll rollout undo --to-revision %d", target.Number)
		w.Status = api.WorkloadStatus{}
		err := c.Update(ctx, plural, name, w, nil)
		if api.ErrorCode(err) == api.CodeConflict && attempt < 3 {
			continue
		}
		if err != nil {
			return UndoResult{}, err
		}
		return UndoResult{To: target.Number}, nil
	}
}

// pick finds revision to (0: the one before the newest) among revs.
func pick(name string, revs []api.Revision, to int64) (api.Revision, error) {
	if len(revs) == 0 {
		return api.Revision{}, api.Errorf(api.CodeNotFound, "workload %q has no revisions", name)
	}
	if to == 0 {
		if len(revs) < 2 {
			return api.Revision{}, api.Errorf(api.CodeNotFound, "workload %q has no revision before %d to go back to", name, revs[0].Number)
		}
		return revs[len(revs)-2], nil
	}
	for _, r := range revs {
		if r.Number == to {
			return r, nil
		}
	}
	return api.Revision{}, api.Errorf(api.CodeNotFound, "workload %q has no revision %d: the hub keeps revisions %d to %d", name, to, revs[0].Number, revs[len(revs)-1].Number)
}

// Command sends an operator's command (pause, resume, promote, abort) to
// a workload's progressive rollout; it answers the rollout as it stood.
func Command(ctx context.Context, c *client.Client, name, action, wave string) (api.RolloutStatus, error) {
	var q url.Values
	if wave != "" {
		q = url.Values{"wave": {wave}}
	}
	var st api.RolloutStatus
	err := c.Raw(ctx, http.MethodPost, "/api/v1/workloads/"+url.PathEscape(name)+"/rollout/"+action, q, nil, &st)
	return st, err
}
