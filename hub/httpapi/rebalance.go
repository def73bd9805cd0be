package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// Rebalancer plans a workload's rebalance (*placer.Placer has it).
// Errors are domain errors (NotFound for a workload that does not exist).
type Rebalancer interface {
	PlanRebalance(ctx context.Context, workload string) (*api.RebalancePlan, error)
}

// registerRebalance serves POST /api/v1/workloads/{name}/rebalance: the
// plan, and unless it is a dry run the request, which the leader's
// placement pass carries out (make-before-break). The request is the
// workload's atoll.dev/rebalance-requested-at annotation, written (and
// audited) as a change of the workload.
func registerRebalance(s *API, hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "rebalance-workload", Method: http.MethodPost, Path: "/api/v1/workloads/{name}/rebalance",
		Summary: "Rebalance a workload over the clusters", Tags: []string{"Workloads"}, Security: bearer,
		Description: "Moves replicas from where they run toward the split a fresh placement chooses (after a cluster came back, or joined), " +
			"each started before the one it replaces stops. The answer is the plan; with dryRun=All nothing changes. " +
			"A request that cannot go now (a failover under way, an unhealthy cluster) waits, and the plan says why. An exclusive workload never moves while it runs.",
		Metadata: opMeta(api.RoleOperator, "rebalance", "Workload"), Errors: []int{401, 403, 404, 422, 503},
	}, func(ctx context.Context, in *struct {
		Name   string `path:"name" maxLength:"253"`
		DryRun string `query:"dryRun" enum:"All" doc:"All: answer the plan and change nothing."`
	}) (*struct{ Body api.RebalancePlan }, error) {
		if s.rebalancer == nil {
			return nil, toProblem(ctx, api.Errorf(api.CodeUnavailable, "this hub runs without NATS and places nothing: there is nothing to rebalance"))
		}
		plan, err := s.rebalancer.PlanRebalance(ctx, in.Name)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		if in.DryRun != "" {
			return &struct{ Body api.RebalancePlan }{Body: *plan}, nil
		}
		at := s.now().UTC().Format(time.RFC3339Nano)
		exclusive := located(http.StatusUnprocessableEntity, api.CodeInvalid, "an exclusive workload is not rebalanced", "path.name",
			"an exclusive workload does not move while it runs (moving it would stop it); drain its cluster to move it")
		_, err = s.store.Mutate(ctx, s.actor(ctx), "rebalance", "Workload", in.Name, func(cur *pgstore.Record) error {
			var w api.Workload
			if err := cur.Decode(&w); err != nil {
				return err
			}
			if w.Spec.Failover != nil && w.Spec.Failover.Mode == "exclusive" {
				return exclusive // refused, and audited by the store
			}
			if cur.Meta.Annotations == nil {
				cur.Meta.Annotations = map[string]string{}
			}
			cur.Meta.Annotations[api.AnnotationRebalanceRequestedAt] = at
			return nil
		})
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		plan.Requested, plan.RequestedAt = true, at
		return &struct{ Body api.RebalancePlan }{Body: *plan}, nil
	})
}
