package httpapi

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
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
	mine := svc.Names()
	for _, o := range others.Items {
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
	if len(fe) > 0 {
		return fe
	}
	return nil
}

// serviceStatusFunc is what the console shows of a service's endpoints
// (nil without a table: the console says they are unknown).
func (s *API) serviceStatusFunc() func(string) api.ServiceStatus {
	if s.endpoints == nil {
		return nil
	}
	return s.endpoints.ServiceStatus
}
