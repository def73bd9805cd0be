package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// registerRolloutCommands serves POST /api/v1/workloads/{name}/rollout/
// {pause,resume,promote,abort}: an operator's commands to a progressive
// rollout, written (and audited) as the workload's annotations, which the
// leader's placement pass reads. Each answers the rollout's status as it
// stood when the command was taken; the pass acts on it within a moment.
func registerRolloutCommands(s *API, hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "rollout-command", Method: http.MethodPost, Path: "/api/v1/workloads/{name}/rollout/{action}",
		Summary: "Pause, resume, promote or abort a workload's progressive rollout", Tags: []string{"Workloads"}, Security: bearer,
		Description: "pause holds the rollout where it is (a failing gate still rolls back); resume lets it go on; promote passes the wave waiting for a manual promote " +
			"(wave names it; default the wave waiting); abort rolls the revision back on every cluster. Refused (409) when no progressive rollout is under way.",
		Metadata: opMeta(api.RoleOperator, "rollout", "Workload"), Errors: []int{401, 403, 404, 409, 422, 503},
	}, func(ctx context.Context, in *struct {
		Name   string `path:"name" maxLength:"253"`
		Action string `path:"action" enum:"pause,resume,promote,abort"`
		Wave   string `query:"wave" maxLength:"63" doc:"promote: the wave to pass (default: the wave waiting for a promote)."`
	}) (*struct{ Body api.RolloutStatus }, error) {
		a := s.actor(ctx)
		var answer api.RolloutStatus
		_, err := s.store.Mutate(ctx, a, "rollout-"+in.Action, "Workload", in.Name, func(cur *pgstore.Record) error {
			var w api.Workload
			if err := cur.Decode(&w); err != nil {
				return err
			}
			r := w.Status.Rollout
			if w.Spec.Rollout == nil || r == nil || r.Phase == api.RolloutCompleted || r.Phase == api.RolloutRolledBack {
				return api.Errorf(api.CodeConflict, "workload %s has no progressive rollout under way (spec.rollout, and a template change to roll out)", in.Name)
			}
			answer = *r
			if cur.Meta.Annotations == nil {
				cur.Meta.Annotations = map[string]string{}
			}
			rev := strconv.FormatInt(r.Revision, 10)
			switch in.Action {
			case "pause":
				cur.Meta.Annotations[api.AnnotationRolloutPaused] = "true"
			case "resume":
				delete(cur.Meta.Annotations, api.AnnotationRolloutPaused)
			case "abort":
				cur.Meta.Annotations[api.AnnotationRolloutAbort] = rev
			case "promote":
				wave := in.Wave
				if wave == "" {
					if r.Phase != api.RolloutWaiting {
						return api.FieldErrors{{Field: "query.wave", Message: "no wave waits for a promote now (phase " + r.Phase + "): name the wave to pass"}}
					}
					wave = r.WaveName
				}
				if !slices.ContainsFunc(w.Spec.Rollout.Waves, func(x api.RolloutWave) bool { return x.Name == wave }) {
					return api.FieldErrors{{Field: "query.wave", Value: wave, Message: "spec.rollout has no wave of this name"}}
				}
				cur.Meta.Annotations[api.AnnotationRolloutPromote] = rev + ":" + wave
			}
			return nil
		})
		if err != nil {
			// The store audited the refusal; the field errors name query
			// parameters, not the body.
			var fe api.FieldErrors
			if errors.As(err, &fe) {
				p := newProblem(http.StatusUnprocessableEntity, api.CodeInvalid, "validation failed")
				for _, e := range fe {
					p.Errors = append(p.Errors, api.ProblemDetail{Location: e.Field, Message: e.Message, Value: sanitizeValue(e.Value)})
				}
				return nil, toProblem(ctx, p)
			}
			return nil, toProblem(ctx, err)
		}
		return &struct{ Body api.RolloutStatus }{Body: answer}, nil
	})
}
