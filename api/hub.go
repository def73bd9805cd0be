package api

import "time"

// HubList is what GET /api/v1/hubs answers: the hub replicas sharing the
// database now (each one's leader elector is connected), which one leads
// the controllers, and which hub served the request. It is computed, not
// stored: there is nothing to create, watch or delete.
type HubList struct {
	TypeMeta
	// ServedBy names the hub that answered.
	ServedBy string `json:"servedBy"`
	// Leader is the current leader term; absent before any hub led.
	Leader *LeaderTerm `json:"leader,omitempty"`
	Items  []Hub       `json:"items"`
}

// Hub is one hub replica.
type Hub struct {
	Name string `json:"name" doc:"The hub's name (atoll hub --name; default host/pid)."`
	// Leader is true for the hub whose term is current.
	Leader bool `json:"leader"`
	// ConnectedSince is when its elector connected to PostgreSQL.
	ConnectedSince *time.Time `json:"connectedSince,omitempty"`
	// Address is where that connection comes from.
	Address string `json:"address,omitempty"`
}

// LeaderTerm is the leader's record: every takeover starts a term with a
// higher epoch, and leader-only writes are fenced by it.
type LeaderTerm struct {
	Hub   string    `json:"hub"`
	Epoch int64     `json:"epoch"`
	Since time.Time `json:"since"`
	// HeartbeatAgeSeconds is how long ago the leader last renewed its
	// term (database clock); a follower takes over past the lease (3 s).
	HeartbeatAgeSeconds float64 `json:"heartbeatAgeSeconds"`
}
