package api

import (
	"fmt"
	"strings"
	"time"
)

// ServiceDomain is the DNS suffix every service answers under:
// <service>.svc.atoll.
const ServiceDomain = "svc.atoll"

// Service names a workload's ready replicas, in every cluster that runs
// them, under one global name: the members' gateways and the global entry
// route requests to them by the service's locality policy.
type Service struct {
	TypeMeta
	Metadata ObjectMeta    `json:"metadata"`
	Spec     ServiceSpec   `json:"spec"`
	Status   ServiceStatus `json:"status,omitzero" readOnly:"true"`
}

// ServiceList is a page of services.
type ServiceList struct {
	TypeMeta
	Metadata ListMeta  `json:"metadata"`
	Items    []Service `json:"items"`
}

// ServiceSpec is what a service selects and how traffic reaches it.
type ServiceSpec struct {
	Workload  string          `json:"workload" doc:"The workload whose ready replicas serve this service (a stateless one)."`
	Ports     []ServicePort   `json:"ports" minItems:"1" doc:"Named ports; the first http port is the one gateways proxy HTTP requests to."`
	Hostnames []string        `json:"hostnames,omitempty" doc:"More Host names the gateways route to this service, besides <name>.svc.atoll."`
	Health    *ServiceHealth  `json:"healthCheck,omitempty" doc:"Active health check the gateways run against each endpoint."`
	Locality  *LocalityPolicy `json:"locality,omitempty"`
	Outlier   *OutlierPolicy  `json:"outlierDetection,omitempty"`
	Retries   *RetryPolicy    `json:"retries,omitempty"`
	Timeouts  *ServiceTimeout `json:"timeouts,omitempty"`
	Gateways  *LabelSelector  `json:"gateways,omitempty" doc:"The clusters whose gateways serve this service, by their labels (e.g. matchLabels: {region: eu}); default every cluster. Only those receive its endpoints: the others' gateways and DNS do not know it."`
}

// ServedBy says whether the gateway of a cluster with these labels
// serves the service.
func (s *ServiceSpec) ServedBy(clusterLabels map[string]string) bool {
	return s.Gateways == nil || s.Gateways.Selector().Matches(clusterLabels)
}

// ServicePort is one named port of a service.
type ServicePort struct {
	Name       string `json:"name" doc:"A DNS-1123 label, unique in the service."`
	Protocol   string `json:"protocol,omitempty" enum:"http,tcp" doc:"Default http."`
	TargetPort string `json:"targetPort,omitempty" doc:"The workload port (by name) the replicas listen on; empty: the replica's allocated PORT."`
	Port       int32  `json:"port,omitempty" minimum:"0" maximum:"65535" doc:"tcp: the port every gateway listens on for this service (required); http: unused (gateways route by Host or path)."`
}

// ServiceHealth is an active check of each endpoint.
type ServiceHealth struct {
	Path     string   `json:"path,omitempty" doc:"HTTP path; empty: a TCP connect."`
	Interval Duration `json:"interval,omitempty" doc:"Default 2s."`
	Timeout  Duration `json:"timeout,omitempty" doc:"Default 1s."`
}

// LocalityPolicy orders where requests go: the gateway's own region
// first, then (mode ordered) the regions of Failover in order, or (mode
// nearest) the other regions by the latency each gateway measures to
// them, then any other region.
type LocalityPolicy struct {
	Mode     string           `json:"mode,omitempty" enum:"ordered,nearest" doc:"ordered (default): after the local region, the failover list in order. nearest: after the local region, the regions by the round-trip time each gateway measures itself (health checks and requests, smoothed); regions within 10% (at least 1ms) of one another share a rank, split by weight; regions not measured yet come after, in failover order."`
	Failover []string         `json:"failover,omitempty" doc:"Regions, in order, tried when the local region has no healthy endpoint (nearest: the order of regions not measured yet)."`
	Weights  map[string]int32 `json:"weights,omitempty" doc:"Relative weights of regions that share a rank (region -> 1..1000); default 1."`
}

// OutlierPolicy ejects endpoints that fail: consecutive errors (5xx or
// connect failures) eject one for BaseEjection times the number of times
// it was ejected, up to MaxEjection, and never more than MaxEjectionPercent
// of a service's endpoints at once.
type OutlierPolicy struct {
	ConsecutiveErrors  int32    `json:"consecutiveErrors,omitempty" minimum:"0" doc:"Default 3."`
	BaseEjection       Duration `json:"baseEjectionTime,omitempty" doc:"Default 5s."`
	MaxEjection        Duration `json:"maxEjectionTime,omitempty" doc:"Default 60s."`
	MaxEjectionPercent int32    `json:"maxEjectionPercent,omitempty" minimum:"0" maximum:"100" doc:"Default 50."`
}

// RetryPolicy retries idempotent requests (GET, HEAD, OPTIONS, PUT,
// DELETE) on another endpoint after a connect failure or a 502/503/504,
// within a budget: retries are at most BudgetPercent of the requests.
type RetryPolicy struct {
	Attempts      int32    `json:"attempts,omitempty" minimum:"0" maximum:"10" doc:"Retries after the first try; default 2."`
	BudgetPercent int32    `json:"budgetPercent,omitempty" minimum:"0" maximum:"100" doc:"Default 20."`
	PerTry        Duration `json:"perTryTimeout,omitempty" doc:"Default: the request timeout."`
}

// ServiceTimeout bounds a request.
type ServiceTimeout struct {
	Connect Duration `json:"connect,omitempty" doc:"Default 1s."`
	Request Duration `json:"request,omitempty" doc:"Default 15s."`
}

// ServiceStatus is kept by the hub.
type ServiceStatus struct {
	Endpoints  int32       `json:"endpoints" doc:"Ready endpoints over every reachable cluster."`
	Clusters   []string    `json:"clusters,omitempty" doc:"Clusters with ready endpoints."`
	Conditions []Condition `json:"conditions,omitempty"`
}

// Locality modes.
const (
	LocalityOrdered = "ordered"
	LocalityNearest = "nearest"
)

// Nearest says whether the policy orders regions by measured latency.
func (l *LocalityPolicy) Nearest() bool { return l != nil && l.Mode == LocalityNearest }

// Defaults of a service's policies.
const (
	DefaultConsecutiveErrors  = 3
	DefaultBaseEjection       = 5 * time.Second
	DefaultMaxEjection        = 60 * time.Second
	DefaultMaxEjectionPercent = 50
	DefaultRetryAttempts      = 2
	DefaultRetryBudgetPercent = 20
	DefaultConnectTimeout     = time.Second
	DefaultRequestTimeout     = 15 * time.Second
	DefaultHealthInterval     = 2 * time.Second
	DefaultHealthTimeout      = time.Second
)

// GetTypeMeta implements Object.
func (s *Service) GetTypeMeta() *TypeMeta { return &s.TypeMeta }

// GetMetadata implements Object.
func (s *Service) GetMetadata() *ObjectMeta { return &s.Metadata }

// DNSName is the service's own name in DNS: <name>.svc.atoll.
func (s *Service) DNSName() string { return s.Metadata.Name + "." + ServiceDomain }

// Names is every host name the service answers to, lower-case.
func (s *Service) Names() []string {
	out := []string{s.DNSName()}
	for _, h := range s.Spec.Hostnames {
		out = append(out, strings.ToLower(h))
	}
	return out
}

// HTTPPort is the service's first http port, or nil.
func (s *ServiceSpec) HTTPPort() *ServicePort {
	for i := range s.Ports {
		if s.Ports[i].Protocol == "" || s.Ports[i].Protocol == "http" {
			return &s.Ports[i]
		}
	}
	return nil
}

// Validate implements Object.
func (s *Service) Validate() FieldErrors {
	var e errs
	validateTypeMeta(&e, s.TypeMeta, "Service")
	validateMeta(&e, &s.Metadata)
	sp := &s.Spec
	if sp.Workload == "" {
		e.add("spec.workload", "is required: the workload whose replicas serve the service")
	} else if !isDNSLabel(sp.Workload) {
		e.addValue("spec.workload", sp.Workload, "must be a workload's name (a DNS-1123 label)")
	}
	if len(sp.Ports) == 0 {
		e.add("spec.ports", "name at least one port")
	}
	if len(sp.Ports) > 64 {
		e.addValue("spec.ports", len(sp.Ports), "at most 64 ports")
	}
	seen := map[string]bool{}
	for i, p := range sp.Ports {
		pp := fmt.Sprintf("spec.ports[%d]", i)
		switch {
		case p.Name == "":
			e.add(pp+".name", "is required")
		case !isDNSLabel(p.Name):
			e.addValue(pp+".name", p.Name, "must be a DNS-1123 label")
		case seen[p.Name]:
			e.addValue(pp+".name", p.Name, "is used twice")
		}
		seen[p.Name] = true
		oneOf(&e, pp+".protocol", p.Protocol, "http", "tcp")
		if p.Port < 0 || p.Port > 65535 {
			e.addValue(pp+".port", p.Port, "must be between 1 and 65535")
		}
		if p.Protocol == "tcp" && p.Port == 0 {
			e.add(pp+".port", "is required for a tcp port: the port every gateway listens on")
		}
		if p.TargetPort != "" && !isDNSLabel(p.TargetPort) {
			e.addValue(pp+".targetPort", p.TargetPort, "must name a port of the workload's template")
		}
	}
	names := map[string]bool{s.DNSName(): true}
	for i, h := range sp.Hostnames {
		hp := fmt.Sprintf("spec.hostnames[%d]", i)
		l := strings.ToLower(h)
		switch {
		case !IsDNSName(l):
			e.addValue(hp, h, "must be a DNS name (labels of lower-case letters, digits and '-', separated by dots, at most 253 characters)")
		case strings.HasSuffix(l, "."+ServiceDomain) || l == ServiceDomain:
			e.addValue(hp, h, "names under %s belong to services by their own name", ServiceDomain)
		case names[l]:
			e.addValue(hp, h, "is named twice")
		}
		names[l] = true
	}
	if len(sp.Hostnames) > 32 {
		e.addValue("spec.hostnames", len(sp.Hostnames), "at most 32 host names")
	}
	if h := sp.Health; h != nil {
		if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			e.addValue("spec.healthCheck.path", h.Path, "must start with /")
		}
		positive(&e, "spec.healthCheck.interval", h.Interval)
		positive(&e, "spec.healthCheck.timeout", h.Timeout)
	}
	if l := sp.Locality; l != nil {
		oneOf(&e, "spec.locality.mode", l.Mode, LocalityOrdered, LocalityNearest)
		seenR := map[string]bool{}
		for i, r := range l.Failover {
			rp := fmt.Sprintf("spec.locality.failover[%d]", i)
			switch {
			case !isDNSLabel(r):
				e.addValue(rp, r, "must be a region (a DNS-1123 label)")
			case seenR[r]:
				e.addValue(rp, r, "is listed twice")
			}
			seenR[r] = true
		}
		for r, w := range l.Weights {
			if !isDNSLabel(r) {
				e.addValue("spec.locality.weights", r, "keys must be regions (DNS-1123 labels)")
			}
			if w < 1 || w > 1000 {
				e.addValue("spec.locality.weights."+r, w, "must be between 1 and 1000")
			}
		}
	}
	if sp.Gateways != nil {
		validateSelector(&e, "spec.gateways", sp.Gateways)
	}
	if o := sp.Outlier; o != nil {
		if o.ConsecutiveErrors < 0 {
			e.addValue("spec.outlierDetection.consecutiveErrors", o.ConsecutiveErrors, "must be 0 (default) or more")
		}
		if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
			e.addValue("spec.outlierDetection.maxEjectionPercent", o.MaxEjectionPercent, "must be between 0 and 100")
		}
		positive(&e, "spec.outlierDetection.baseEjectionTime", o.BaseEjection)
		positive(&e, "spec.outlierDetection.maxEjectionTime", o.MaxEjection)
	}
	if r := sp.Retries; r != nil {
		if r.Attempts < 0 || r.Attempts > 10 {
			e.addValue("spec.retries.attempts", r.Attempts, "must be between 0 and 10")
		}
		if r.BudgetPercent < 0 || r.BudgetPercent > 100 {
			e.addValue("spec.retries.budgetPercent", r.BudgetPercent, "must be between 0 and 100")
		}
		positive(&e, "spec.retries.perTryTimeout", r.PerTry)
	}
	if t := sp.Timeouts; t != nil {
		positive(&e, "spec.timeouts.connect", t.Connect)
		positive(&e, "spec.timeouts.request", t.Request)
	}
	return e.result()
}

// positive checks an optional duration is valid and above zero.
func positive(e *errs, path string, d Duration) {
	if d == "" {
		return
	}
	v, err := ParseDuration(string(d))
	switch {
	case err != nil:
		e.addValue(path, string(d), "%v", err)
	case v <= 0:
		e.addValue(path, string(d), "must be above zero")
	case v > 24*time.Hour:
		e.addValue(path, string(d), "must be at most 24h")
	}
}

// IsDNSName reports whether s is a lower-case DNS name of labels.
func IsDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

// ResolveTargetPort is the port a replica serves a service port on: the
// template port named by TargetPort when it has a fixed host port, else
// the replica's allocated PORT. ok is false when TargetPort names no port
// of the template.
func ResolveTargetPort(t *ReplicaTemplate, p ServicePort, allocated int) (port int, ok bool) {
	if p.TargetPort == "" {
		return allocated, true
	}
	for _, tp := range t.Ports {
		if tp.Name == p.TargetPort {
			if tp.HostPort > 0 {
				return int(tp.HostPort), true
			}
			return allocated, true
		}
	}
	return 0, false
}
