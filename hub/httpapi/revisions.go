package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
)

// Revisions reads workloads' template revisions (*revisions.Keeper has
// it). Errors are domain errors (NotFound for a workload that does not
// exist).
type Revisions interface {
	List(ctx context.Context, workload string) (api.RevisionList, error)
}

// registerRevisions serves a workload's revisions. There is no write
// route: undo is an ordinary update of the template, by the client.
func registerRevisions(s *API, hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "workload-revisions", Method: http.MethodGet, Path: "/api/v1/workloads/{name}/revisions",
		Summary: "List a workload's template revisions, oldest first", Tags: []string{"Workloads"}, Security: bearer,
		Description: "Every change of spec.template is the next revision, with who made it, when, and the workload's atoll.dev/change-cause annotation; the newest spec.revisionHistoryLimit (default 10) are kept.",
		Metadata:    opMeta(api.RoleViewer, "", "Workload"), Errors: []int{401, 403, 404, 422, 503},
	}, func(ctx context.Context, in *struct {
		Name string `path:"name" maxLength:"253"`
	}) (*struct{ Body api.RevisionList }, error) {
		if s.revisions == nil {
			return nil, toProblem(ctx, api.Errorf(api.CodeUnavailable, "this hub keeps no revisions"))
		}
		list, err := s.revisions.List(ctx, in.Name)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		return &struct{ Body api.RevisionList }{Body: list}, nil
	})
}
