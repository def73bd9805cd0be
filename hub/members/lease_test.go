package members

import (
	"context"
	"testing"
	"time"

	"github.com/atollhq/atoll/hub/leader"
	"go.opentelemetry.io/otel/metric/noop"
)

// termLeader is a Leadership a test sets to lead in a given term (0: not).
type termLeader struct{ term int64 }

func (l *termLeader) IsLeader() bool                              { return l.term != 0 }
func (l *termLeader) Epoch() int64                                { return l.term }
func (l *termLeader) Changes() <-chan struct{}                    { return nil }
func (l *termLeader) Fence(context.Context, leader.Querier) error { return nil }

// TestLeaseFromFollowsTheTerm: the lease a new leader counts from starts
// at its term's start, as of the first look (no heartbeat or tick needed
// to learn it leads), and again at every new term, even one that follows
// another without this hub ever seeing itself not lead.
func TestLeaseFromFollowsTheTerm(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	lead := &termLeader{}
	m := NewMonitor(nil, nil, func() time.Time { return now }, noop.NewMeterProvider().Meter(""), HealthConfig{}, lead)
	m.Add("c")
	wait := LeaderAckGrace + leaderOverlap
	if l, _ := m.Live("c"); !l.LeaseFrom.Equal(l.Seen) {
		t.Errorf("a follower: want the lease counted from the last heartbeat; got %+v", l)
	}
	now, lead.term = t0.Add(time.Minute), 7
	if l, _ := m.Live("c"); !l.LeaseFrom.Equal(now.Add(wait)) {
		t.Errorf("first look as leader (term 7): want the lease counted from %s on; got %s", wait, l.LeaseFrom.Sub(now))
	}
	now = t0.Add(2 * time.Minute)
	if l, _ := m.Live("c"); !l.LeaseFrom.Equal(t0.Add(time.Minute + wait)) {
		t.Errorf("later in term 7: want the term's start kept; got %s", l.LeaseFrom.Sub(t0))
	}
	now, lead.term = t0.Add(3*time.Minute), 9 // term 9, with no look at term 7's end
	if l, _ := m.Live("c"); !l.LeaseFrom.Equal(now.Add(wait)) {
		t.Errorf("term 9: want the lease counted from its start plus %s; got %s", wait, l.LeaseFrom.Sub(now))
	}
	// A sole hub (no election) never follows another leader: nothing to
	// wait out.
	sole := NewMonitor(nil, nil, func() time.Time { return now }, noop.NewMeterProvider().Meter(""), HealthConfig{}, leader.Audited{Leadership: leader.Sole{}})
	sole.Add("c")
	if l, _ := sole.Live("c"); !l.LeaseFrom.Equal(l.Seen) {
		t.Errorf("a sole hub: want the lease counted from the last heartbeat; got %+v", l)
	}
	// A hub that stopped leading acks for the grace, counted from when it
	// last saw itself lead.
	if !m.mayAck(now) {
		t.Error("want a leader to ack")
	}
	lead.term = 0
	if !m.mayAck(now.Add(LeaderAckGrace - time.Millisecond)) {
		t.Error("want acks within the grace after stepping down")
	}
	if m.mayAck(now.Add(LeaderAckGrace)) {
		t.Error("want no acks once the grace has passed")
	}
}
