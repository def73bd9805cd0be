package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/hub/traffic"
)

// ServiceEndpoints is the live endpoint table as the API shows it
// (*endpoints.Table has it).
type ServiceEndpoints interface {
	ServiceStatus(service string) api.ServiceStatus
}

// registerServices serves /api/v1/services: the generic routes, with
// writes checked against the workload they select and the other
// services' names and ports.
func (s *API) registerServices(hapi huma.API) {
	registerKind(s, hapi, kindRoutes[api.Service, *api.Service, api.ServiceList]{
		kind:  mustKind("Service"),
		roles: map[string]string{pgstore.VerbCreate: api.RoleOperator, pgstore.VerbUpdate: api.RoleOperator, pgstore.VerbPatch: api.RoleOperator, pgstore.VerbDelete: api.RoleOperator},
		list: func(items []api.Service, meta api.ListMeta) api.ServiceList {
			return api.ServiceList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "ServiceList"}, Metadata: meta, Items: items}
		},
		check: checkService,
		decorate: func(svc *api.Service) {
			if s.endpoints != nil {
				svc.Status = s.endpoints.ServiceStatus(svc.Metadata.Name)
			}
		},
	})
}

// checkService judges a service against what it selects and what other
// services hold: its workload must exist and be stateless, its target
// ports must be the workload's, and no other service may answer to one
// of its host names or listen on one of its tcp ports.
func checkService(ctx context.Context, s *API, svc *api.Service) error {
	var fe api.FieldErrors
	rec, err := s.store.Get(ctx, "Workload", svc.Spec.Workload)
	var ae *api.Error
	switch {
	case errors.As(err, &ae) && ae.Code == api.CodeNotFound:
		fe = append(fe, api.FieldError{Field: "spec.workload", Value: svc.Spec.Workload, Message: "matches no workload: create the workload first"})
	case err != nil:
		return fmt.Errorf("check service: %w", err)
	default:
		var w api.Workload
		if err := rec.Decode(&w); err != nil {
			return fmt.Errorf("check service: %w", err)
		}
		if w.Spec.Failover != nil && w.Spec.Failover.Mode == "exclusive" {
			fe = append(fe, api.FieldError{Field: "spec.workload", Value: svc.Spec.Workload,
				Message: "is exclusive (spec.failover.mode): it never runs in two clusters at once, so gateways could not fail its traffic over; serve it without a service"})
		}
		for i, p := range svc.Spec.Ports {
			if _, ok := api.ResolveTargetPort(&w.Spec.Template, p, 1); !ok {
				fe = append(fe, api.FieldError{Field: fmt.Sprintf("spec.ports[%d].targetPort", i), Value: p.TargetPort,
					Message: fmt.Sprintf("names no port of workload %s's template", w.Metadata.Name)})
			}
		}
	}
	others, err := s.store.List(ctx, "Service", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return fmt.Errorf("check service: %w", err)
	}
	fe = append(fe, serviceClashes(svc, others.Items)...)
	if len(fe) > 0 {
		return fe
	}
	return nil
}

// CheckServiceClaims is the Service spec hook (pgstore.Store.OnSpecChange)
// that keeps services' claims apart for good: checkService reads the
// other services outside the write, so two services written at once
// could both pass it with the same host name or tcp port. The hook reads
// them again inside the write's transaction through Tx.List, whose lock
// of the kind makes such writes run one after the other, the second
// seeing what the first committed; its refusal is the same 422, at the
// same field, as checkService's.
func CheckServiceClaims(ctx context.Context, tx *pgstore.Tx, _, next *pgstore.Record) error {
	var svc api.Service
	if err := next.Decode(&svc); err != nil {
		return fmt.Errorf("check service claims: %w", err)
	}
	others, err := tx.List(ctx, "Service")
	if err != nil {
		return fmt.Errorf("check service claims: %w", err)
	}
	if fe := serviceClashes(&svc, others); len(fe) > 0 {
		return fe
	}
	return nil
}

// serviceClashes are svc's host names, DNS name and tcp ports that one
// of the other services already claims (svc's own record is skipped).
func serviceClashes(svc *api.Service, others []*pgstore.Record) api.FieldErrors {
	var fe api.FieldErrors
	mine := svc.Names()
	for _, o := range others {
		if o.Meta.Name == svc.Metadata.Name {
			continue
		}
		var other api.Service
		if err := o.Decode(&other); err != nil {
			continue
		}
		theirs := other.Names()
		for i, h := range svc.Spec.Hostnames {
			if slices.Contains(theirs, mine[i+1]) {
				fe = append(fe, api.FieldError{Field: fmt.Sprintf("spec.hostnames[%d]", i), Value: h, Message: "is a name of service " + other.Metadata.Name})
			}
		}
		if slices.Contains(other.Spec.Hostnames, svc.DNSName()) {
			fe = append(fe, api.FieldError{Field: "metadata.name", Value: svc.Metadata.Name, Message: svc.DNSName() + " is a host name of service " + other.Metadata.Name})
		}
		for i, p := range svc.Spec.Ports {
			if p.Protocol != "tcp" {
				continue
			}
			for _, q := range other.Spec.Ports {
				if q.Protocol == "tcp" && q.Port == p.Port {
					fe = append(fe, api.FieldError{Field: fmt.Sprintf("spec.ports[%d].port", i), Value: p.Port, Message: fmt.Sprintf("gateways already listen on %d for service %s", p.Port, other.Metadata.Name)})
				}
			}
		}
	}
	return fe
}

// serviceStatusFunc is what the console shows of a service's endpoints
// (nil without a table: the console says they are unknown).
func (s *API) serviceStatusFunc() func(string) api.ServiceStatus {
	if s.endpoints == nil {
		return nil
	}
	return s.endpoints.ServiceStatus
}

// ServiceTraffic is the gateways' traffic as the API shows it
// (*traffic.Window has it).
type ServiceTraffic interface {
	Samples(services []string, from, to time.Time) []traffic.Sample
	Keep() time.Duration
}

// defaultTrafficWindow is the span GET .../traffic counts by default.
const defaultTrafficWindow = time.Minute

// registerServiceTraffic serves GET /api/v1/services/{name}/traffic: the
// requests the gateways sent the service's endpoints over a recent
// window, per region (and revision, during a rollout).
func (s *API) registerServiceTraffic(hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "service-traffic", Method: http.MethodGet, Path: "/api/v1/services/{name}/traffic",
		Summary: "A service's requests through the gateways, per region and revision", Tags: []string{"Services"}, Security: bearer,
		Description: "What every member's gateway sent the service's endpoints over the window (default 1m): requests, errors (connect failures, timeouts, 5xx), the error ratio and p50/p99 latency, in total, per region of the endpoints that answered and, when more than one revision of the workload answered, per region and revision. Counted per try: a retry is a request of its own. Kept in the hub's memory (the last 15 minutes).",
		Metadata:    opMeta(api.RoleViewer, "", "Service"), Errors: []int{401, 403, 404, 422, 503},
	}, func(ctx context.Context, in *struct {
		Name   string `path:"name" maxLength:"253"`
		Window string `query:"window" maxLength:"16" doc:"How far back to count, such as 30s or 5m (default 1m, at most 15m)."`
	}) (*struct{ Body api.ServiceTraffic }, error) {
		st, err := s.serviceTraffic(ctx, in.Name, in.Window)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		return &struct{ Body api.ServiceTraffic }{Body: st}, nil
	})
}

// serviceTraffic sums a service's traffic over the window asked for
// ("" the default).
func (s *API) serviceTraffic(ctx context.Context, name, window string) (api.ServiceTraffic, error) {
	if s.traffic == nil {
		// Said as it is (an Unavailable error would read as a database
		// outage).
		return api.ServiceTraffic{}, newProblem(http.StatusServiceUnavailable, api.CodeUnavailable, "this hub measures no traffic (it runs without NATS)")
	}
	span := defaultTrafficWindow
	if window != "" {
		d, err := api.ParseDuration(window)
		if err != nil || d < time.Second || d > s.traffic.Keep() {
			return api.ServiceTraffic{}, located(http.StatusUnprocessableEntity, api.CodeInvalid, "invalid window", "query.window",
				fmt.Sprintf("%q: must be a duration from 1s to %s, such as 30s or 5m", window, s.traffic.Keep()))
		}
		span = d
	}
	rec, err := s.store.Get(ctx, "Service", name)
	if err != nil {
		return api.ServiceTraffic{}, err
	}
	var svc api.Service
	if err := rec.Decode(&svc); err != nil {
		return api.ServiceTraffic{}, fmt.Errorf("service traffic: %w", err)
	}
	cls, err := s.store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return api.ServiceTraffic{}, fmt.Errorf("service traffic: %w", err)
	}
	regions := map[string]string{}
	for _, c := range cls.Items {
		regions[c.Meta.Name] = c.Meta.Labels[api.LabelRegion]
	}
	var revs []traffic.Revision
	if rows, err := s.store.Revisions(ctx, svc.Spec.Workload); err == nil {
		for _, r := range rows {
			revs = append(revs, traffic.Revision{Number: r.Number, Generation: r.Generation})
		}
	} else if api.ErrorCode(err) != api.CodeNotFound {
		return api.ServiceTraffic{}, fmt.Errorf("service traffic: %w", err)
	}
	to := s.now()
	from := to.Add(-span)
	return traffic.Summarize(name, svc.Spec.Workload, s.traffic.Samples([]string{name}, from, to),
		func(c string) string { return regions[c] }, traffic.RevisionAt(revs), from, to), nil
}

// serviceTrafficFunc is what the console shows of a service's traffic
// (nil without traffic: the console says it is not measured).
func (s *API) serviceTrafficFunc() func(context.Context, string) (api.ServiceTraffic, error) {
	if s.traffic == nil {
		return nil
	}
	return func(ctx context.Context, name string) (api.ServiceTraffic, error) {
		return s.serviceTraffic(ctx, name, "")
	}
}
