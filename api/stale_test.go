package api

import (
	"testing"
	"time"
)

func TestLastKnown(t *testing.T) {
	now := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	for _, c := range []struct {
		health string
		at     *time.Time
		want   string
	}{
		{HealthReady, at(20 * time.Second), ""},
		{"", at(20 * time.Second), ""},
		{HealthUnreachable, at(20 * time.Second), "last known, 20 s ago"},
		{HealthSuspect, at(1500 * time.Millisecond), "last known, 1 s ago"},
		{HealthUnreachable, at(3*time.Minute + 59*time.Second), "last known, 3 min ago"},
		{HealthUnreachable, at(5 * time.Hour), "last known, 5 h ago"},
		{HealthUnreachable, at(72 * time.Hour), "last known, 3 d ago"},
		{HealthUnknown, nil, "last known"},
		{HealthUnreachable, at(-time.Second), "last known, 0 s ago"}, // a clock a little ahead
	} {
		if got := LastKnown(c.health, c.at, now); got != c.want {
			t.Errorf("LastKnown(%s, %v) = %q, want %q", c.health, c.at, got, c.want)
		}
	}
}
