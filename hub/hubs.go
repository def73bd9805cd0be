package hub

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/pgstore"
)

// Several hubs share one PostgreSQL: every hub serves the API and watches
// (the change log and LISTEN/NOTIFY reach them all) and hears every
// heartbeat (a plain NATS subscription on each), so its health view is
// warm; one hub, elected by package leader, runs the controllers. This
// file is what the hub does about that election: the atoll_leader gauge,
// the log and the event on takeover, and what it does on becoming leader.

type leaderMetrics struct {
	changes metric.Int64Counter
}

func (s *Server) leaderMetrics(meter metric.Meter) {
	s.leaderM.changes, _ = meter.Int64Counter("leader.changes", metric.WithUnit("{change}"),
		metric.WithDescription("Times this hub gained or lost the leadership of the controllers, by direction."))
	_, _ = meter.Int64ObservableGauge("leader", metric.WithDescription("1 while this hub leads the controllers (placement, health, failover, drills), else 0."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			n := int64(0)
			if s.lead.IsLeader() {
				n = 1
			}
			o.Observe(n)
			return nil
		}))
	_, _ = meter.Int64ObservableGauge("leader.epoch", metric.WithDescription("The leader epoch of this hub's term while it leads, else 0."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(s.lead.Epoch())
			return nil
		}))
}

// followLeadership reacts to this hub gaining and losing the leadership
// until the server stops. A hub that leads alone has nothing to follow.
func (s *Server) followLeadership(ctx context.Context) {
	if !s.lead.Elected() {
		return
	}
	leading := false
	check := func() {
		now := s.lead.IsLeader()
		if now == leading {
			return
		}
		leading = now
		if !now {
			s.leaderM.changes.Add(ctx, 1, metric.WithAttributes(attribute.String("direction", "lost")))
			s.log.InfoContext(ctx, "this hub follows: another hub runs the controllers", "hub", s.hubID)
			return
		}
		s.leaderM.changes.Add(ctx, 1, metric.WithAttributes(attribute.String("direction", "gained")))
		epoch := s.lead.Epoch()
		s.log.InfoContext(ctx, "this hub leads: it runs the controllers", "hub", s.hubID, "epoch", epoch)
		if s.bus != nil {
			// The stored health is what the previous leader wrote; this
			// hub's own view (heartbeats reach every hub) is the truth, and
			// the monitor writes the difference at its next pass.
			if err := s.monitor.AdoptStored(ctx); err != nil {
				s.log.WarnContext(ctx, "reading the stored cluster health after the takeover failed", "err", err)
			}
			s.placer.Wake()
		}
		err := s.store.InTx(ctx, pgstore.Actor{Name: "system:leader"}, func(tx *pgstore.Tx) error {
			if err := s.lead.Fence(ctx, tx); err != nil {
				return err
			}
			return events.Record(ctx, tx, s.now(), api.ObjectReference{Kind: "Hub", Name: s.hubID}, api.EventNormal, "LeaderElected",
				fmt.Sprintf("hub %s leads the controllers (leader epoch %d)", s.hubID, epoch), "hub/leader")
		})
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "recording the leader election failed", "err", err)
		}
	}
	check()
	for {
		select {
		case <-s.done:
			return
		case <-ctx.Done():
			return
		case <-s.lead.Changes():
			check()
		}
	}
}
