package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/leader"
	"github.com/atollhq/atoll/hub/pgstore"
)

// Several hubs share one PostgreSQL: every hub serves the API and watches
// (the change log and LISTEN/NOTIFY reach them all) and hears every
// heartbeat (a plain NATS subscription on each), so its health view is
// warm; one hub, elected by package leader, runs the controllers. This
// file is what ties a hub to that election: the term its controllers'
// writes are fenced by and attributed to, what it reports about it
// (/readyz, /api/v1/hubs, the atoll_leader gauge, an event on takeover),
// and what it does on becoming leader.

// term is the election as the controllers use it: its Fence also records,
// in the audit rows of the fenced transaction, which hub wrote under which
// leader epoch, so the audit log shows that no write of an old term lands
// after a takeover.
type term struct {
	Leadership
	hub string
}

// Fence checks the term inside tx and attributes tx's audit rows to it.
func (t term) Fence(ctx context.Context, tx leader.Querier) error {
	if err := t.Leadership.Fence(ctx, tx); err != nil {
		return err
	}
	if ptx, ok := tx.(*pgstore.Tx); ok {
		if epoch := t.Epoch(); epoch > 0 {
			ptx.AuditOn(termDetail(t.hub, epoch))
		}
	}
	return nil
}

// termDetail is how audit rows name a leader term.
func termDetail(hub string, epoch int64) string {
	return fmt.Sprintf("leader %s epoch %d", hub, epoch)
}

// elected reports whether this hub takes part in an election (package
// leader) rather than leading alone.
func (t term) elected() bool { return t.Changes() != nil }

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
	if !s.lead.elected() {
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
			if err := s.monitor.adoptStored(ctx); err != nil {
				s.log.WarnContext(ctx, "reading the stored cluster health after the takeover failed", "err", err)
			}
			s.placer.Wake()
		}
		err := s.store.InTx(ctx, pgstore.Actor{Name: "system:leader"}, func(tx *pgstore.Tx) error {
			if err := s.lead.Fence(ctx, tx); err != nil {
				return err
			}
			return recordEvent(ctx, tx, s.now(), api.ObjectReference{Kind: "Hub", Name: s.hubID}, api.EventNormal, "LeaderElected",
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

// adoptStored takes the health the store holds for every cluster this
// monitor knows as the last written state, so that the next pass writes
// whatever this hub sees differently (a follower tracks health in memory
// only; the transitions it saw may never have been stored).
func (m *Monitor) adoptStored(ctx context.Context) error {
	res, err := m.store.List(ctx, "Cluster", pgstore.ListOptions{Limit: -1})
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rec := range res.Items {
		var c api.Cluster
		if rec.Decode(&c) != nil || c.Status.Health == "" {
			continue
		}
		if ch, ok := m.clusters[c.Metadata.Name]; ok {
			ch.health, ch.dirty = c.Status.Health, true
		}
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}

// readyBody is /readyz's answer once the database answers: which hub
// this is and whether it leads.
func (s *Server) readyBody() []byte {
	body := struct {
		Status      string `json:"status"`
		Hub         string `json:"hub"`
		Role        string `json:"role"`
		LeaderEpoch int64  `json:"leaderEpoch,omitempty"`
	}{Status: "ready", Hub: s.hubID, Role: "follower", LeaderEpoch: s.lead.Epoch()}
	if s.lead.IsLeader() {
		body.Role = "leader"
	}
	b, _ := json.Marshal(body)
	return append(b, '\n')
}

func registerHubs(s *Server, hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "list-hubs", Method: http.MethodGet, Path: "/api/v1/hubs",
		Summary:     "List the hub replicas and which one leads",
		Description: "The hubs whose leader elector is connected to the database now, the current leader term (hub, epoch, since, heartbeat age) and the hub that answered.",
		Tags:        []string{"Hubs"}, Security: bearer,
		Metadata: opMeta(api.RoleViewer, "", "Hub"), Errors: []int{401, 403, 503},
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body api.HubList }, error) {
		t, hubs, err := leader.Hubs(ctx, s.store.Pool())
		if err != nil {
			return nil, toProblem(ctx, api.Errorf(api.CodeUnavailable, "%v", err))
		}
		list := api.HubList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "HubList"}, ServedBy: s.hubID, Items: []api.Hub{}}
		if t.Holder != "" {
			list.Leader = &api.LeaderTerm{Hub: t.Holder, Epoch: t.Epoch, Since: t.AcquiredAt.UTC(),
				HeartbeatAgeSeconds: float64(t.HeartbeatAge.Milliseconds()) / 1000}
		}
		for _, h := range hubs {
			item := api.Hub{Name: h.Holder, Leader: t.Holder == h.Holder, Address: h.Address}
			if !h.ConnectedAt.IsZero() {
				at := h.ConnectedAt.UTC()
				item.ConnectedSince = &at
			}
			list.Items = append(list.Items, item)
		}
		return &struct{ Body api.HubList }{Body: list}, nil
	})
}

// clusterReload reloads the health monitor's clusters when a heartbeat
// comes from a cluster it does not know: one that registered through
// another hub since this hub's last reload. At most one reload a second.
type clusterReload struct {
	last    atomic.Int64 // unix nanos of the last reload started
	running atomic.Bool
}

func (r *clusterReload) trigger(m *Monitor, now time.Time) {
	if now.UnixNano()-r.last.Load() < int64(time.Second) || !r.running.CompareAndSwap(false, true) {
		return
	}
	r.last.Store(now.UnixNano())
	go func() {
		defer r.running.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Load(ctx); err != nil {
			m.log.WarnContext(ctx, "loading clusters registered through another hub failed", "err", err)
		}
	}()
}
