package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/atollhq/atoll/api"
)

// EndpointsSince is the first version whose members report their ready
// replicas' addresses (EndpointsSubject) and take the hub's endpoint
// table (EndpointTableSubject) for their gateways.
const EndpointsSince = 6

// EndpointsSubject is where a member publishes its ready replicas'
// addresses (an EndpointReport), whenever they change and every few
// seconds. The hub takes the cluster from the subject, never from the
// message: a member can only speak for its own cluster.
func EndpointsSubject(cluster string) string { return memberPrefix + cluster + ".endpoints" }

// EndpointsWildcard matches every member's endpoint reports.
const EndpointsWildcard = memberPrefix + "*.endpoints"

// EndpointTableSubject is where the hub sends a member the endpoint table
// its gateway routes with (an EndpointTable, as a request; the member
// answers with an EndpointAck).
func EndpointTableSubject(cluster string) string { return hubPrefix + cluster + ".endpoints" }

// MaxEndpointsReported bounds the endpoints one report carries (the
// member reports the first ones, ordered by workload and replica).
const MaxEndpointsReported = 10000

// EndpointReport is a member's ready replicas that listen on a port, by
// workload: the whole set each time (level, not edge), so a lost report
// is repaired by the next.
type EndpointReport struct {
	Version int    `json:"v"`
	Cluster string `json:"cluster"`
	// Seq grows with every report of one member run; the hub keeps the
	// highest it saw per cluster and ignores older ones.
	Seq       uint64                      `json:"seq"`
	Run       string                      `json:"run"`
	Workloads map[string][]ReplicaAddress `json:"workloads"`
}

// ReplicaAddress is one ready replica's address: its node's host and the
// replica's allocated PORT.
type ReplicaAddress struct {
	Replica string `json:"replica"`
	Node    string `json:"node,omitempty"`
	Zone    string `json:"zone,omitempty"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
	// Generation is the workload generation the replica runs (0: a
	// member before TrafficSince).
	Generation int64 `json:"generation,omitempty"`
}

// DecodeEndpointReport reads a report received on subject: well formed,
// of a supported version, naming the subject's cluster, with bounded
// sizes and sane addresses.
func DecodeEndpointReport(subject string, data []byte) (EndpointReport, error) {
	var r EndpointReport
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.Version < EndpointsSince || r.Version > Version {
		return r, fmt.Errorf("%w: %d", ErrVersion, r.Version)
	}
	if c := ClusterOf(subject); c == "" || c != r.Cluster {
		return r, fmt.Errorf("%w: subject %q, message %q", ErrWrongCluster, subject, r.Cluster)
	}
	n := 0
	for w, list := range r.Workloads {
		if !api.IsDNSLabel(w) {
			return r, fmt.Errorf("%w: workload %q", ErrMalformed, w)
		}
		for _, a := range list {
			n++
			if a.Port <= 0 || a.Port > 65535 || !validHost(a.Host) {
				return r, fmt.Errorf("%w: endpoint %.64q of %s: host %.64q port %d", ErrMalformed, a.Replica, w, a.Host, a.Port)
			}
			if a.Generation < 0 {
				return r, fmt.Errorf("%w: endpoint %.64q of %s: generation %d", ErrMalformed, a.Replica, w, a.Generation)
			}
			if a.Replica == "" || len(a.Replica) > 253 || len(a.Node) > 253 || len(a.Zone) > 253 {
				return r, fmt.Errorf("%w: endpoint of %s: replica, node or zone name empty or longer than 253", ErrMalformed, w)
			}
		}
	}
	if n > MaxEndpointsReported {
		return r, fmt.Errorf("%w: %d endpoints, at most %d", ErrMalformed, n, MaxEndpointsReported)
	}
	return r, nil
}

// EndpointTable is every service a member's gateway routes (those whose
// spec.gateways selects its cluster), with the endpoints of every
// reachable cluster. Epochs only grow; a member keeps the highest it
// took and refuses older ones. A table with Check set carries no
// services: it asks the member which digest it holds (repair).
type EndpointTable struct {
	Version  int                `json:"v"`
	Epoch    int64              `json:"epoch"`
	Digest   string             `json:"digest"`
	Check    bool               `json:"check,omitempty"`
	Services []ServiceEndpoints `json:"services,omitempty"`
}

// ServiceEndpoints is one service and its endpoints.
type ServiceEndpoints struct {
	Name      string          `json:"name"`
	Spec      api.ServiceSpec `json:"spec"`
	Endpoints []Endpoint      `json:"endpoints"`
}

// Endpoint is one replica serving a service: where it runs and, per
// service port name, the port it serves it on.
type Endpoint struct {
	Cluster string         `json:"cluster"`
	Region  string         `json:"region"`
	Zone    string         `json:"zone,omitempty"`
	Replica string         `json:"replica"`
	Host    string         `json:"host"`
	Ports   map[string]int `json:"ports"`
	// Generation is the workload generation the replica runs: its
	// gateway counts requests per generation (0: unknown).
	Generation int64 `json:"generation,omitempty"`
}

// EndpointAck answers an EndpointTable: the epoch and digest the member
// holds after it.
type EndpointAck struct {
	Version int    `json:"v"`
	Epoch   int64  `json:"epoch"`
	Digest  string `json:"digest"`
}

// EndpointDigest is the digest of a table's services: a hash of their
// canonical JSON (services by name, endpoints by cluster and replica).
func EndpointDigest(services []ServiceEndpoints) string {
	sort.Slice(services, func(i, j int) bool { return services[i].Name < services[j].Name })
	for _, s := range services {
		sort.Slice(s.Endpoints, func(i, j int) bool {
			a, b := s.Endpoints[i], s.Endpoints[j]
			if a.Cluster != b.Cluster {
				return a.Cluster < b.Cluster
			}
			return a.Replica < b.Replica
		})
	}
	b, _ := json.Marshal(services)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// validHost says whether h is an IP address or a host name: what a
// gateway may dial as it is. Anything else (a port, user info, a path, a
// space) would be read by a URL or a dialer as more than a host.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
