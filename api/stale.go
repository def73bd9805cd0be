package api

import (
	"fmt"
	"time"
)

// Stale says whether figures read from a cluster in health are history
// rather than live: the cluster is Suspect, Unreachable or Unknown.
func Stale(health string) bool {
	return health == HealthSuspect || health == HealthUnreachable || health == HealthUnknown
}

// LastKnown labels figures read from a cluster that is not Ready, heard
// last at at: "last known, 20 s ago" ("last known" when the time is not
// known). "" for a Ready cluster (or health not known at all).
func LastKnown(health string, at *time.Time, now time.Time) string {
	if !Stale(health) {
		return ""
	}
	if at == nil || at.IsZero() {
		return "last known"
	}
	return "last known, " + Ago(now.Sub(*at)) + " ago"
}

// Ago writes a time span for people: "20 s", "3 min", "2 h", "4 d".
func Ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0 s"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d d", int(d/(24*time.Hour)))
}

// LastKnown labels the figures of a cluster that is not Ready ("last
// known, 20 s ago"); "" while it is Ready.
func (c ClusterReplicas) LastKnown(now time.Time) string {
	return LastKnown(c.ClusterHealth, c.ReportedAt, now)
}
