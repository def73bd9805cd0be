package api

import "time"

// ServiceTraffic is a service's requests through the gateways over a
// recent window (GET /api/v1/services/{name}/traffic): per region of the
// endpoints that answered, and per revision of the workload where more
// than one answered (a rollout). Counted by the gateways per try: a retry
// on another endpoint is a request of its own.
type ServiceTraffic struct {
	Service  string `json:"service"`
	Workload string `json:"workload"`
	// Window is the span counted, From to To.
	Window  Duration     `json:"window"`
	From    time.Time    `json:"from"`
	To      time.Time    `json:"to"`
	Total   TrafficRow   `json:"total"`
	Regions []TrafficRow `json:"regions" doc:"Per region of the endpoints that answered, by name."`
	// Revisions are the per-region rows split by revision, when more than
	// one revision answered in the window.
	Revisions []TrafficRow `json:"revisions,omitempty" doc:"Per region and revision, when more than one revision of the workload answered in the window (a rollout)."`
	// Reporters are the clusters whose gateways reported in the window.
	Reporters []string `json:"reporters,omitempty" doc:"Clusters whose gateways reported traffic in the window."`
}

// TrafficRow is the requests of one region (and revision) in a window.
type TrafficRow struct {
	Region string `json:"region,omitempty"`
	// Revision is the workload's template revision the endpoints ran (0:
	// all of them, or not known).
	Revision          int64   `json:"revision,omitempty"`
	Requests          uint64  `json:"requests"`
	Errors            uint64  `json:"errors"`
	ErrorRatio        float64 `json:"errorRatio" doc:"Errors (connect failures, timeouts, 5xx) over requests; 0 without requests."`
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	P50Millis         float64 `json:"p50Millis"`
	P99Millis         float64 `json:"p99Millis"`
}
