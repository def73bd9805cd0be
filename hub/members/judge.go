package members

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/pgstore"
	"github.com/atollhq/atoll/protocol"
)

// Transition is one change of a cluster's health.
type Transition struct {
	Cluster  string
	From, To string
	// Since is when the evidence for the new state arose: the heartbeat
	// for Ready, the threshold crossing for Suspect and Unreachable.
	Since time.Time
}

// pending is a store write the monitor owes.
type pending struct {
	name       string
	transition *Transition
	seen       time.Time
	heard      bool
	hb         protocol.Heartbeat
}

// state is the health a cluster should have at now.
func (m *Monitor) state(c *clusterHealth, now time.Time) (string, time.Time) {
	age := now.Sub(c.seen)
	// A member may heartbeat slower than the hub's default; judge it by its
	// own interval so it does not flap.
	interval := max(m.cfg.Interval, time.Duration(c.hb.IntervalMillis)*time.Millisecond)
	suspect := 2 * interval
	unreachable := max(m.cfg.UnreachableAfter, 3*interval)
	switch {
	case age > unreachable:
		return api.HealthUnreachable, c.seen.Add(unreachable)
	case !c.heard:
		return c.health, c.seen // within the start-up grace, keep what was stored
	case age > suspect:
		if c.health == api.HealthUnreachable || c.health == api.HealthUnknown {
			return c.health, c.seen // do not go back to Suspect from worse
		}
		return api.HealthSuspect, c.seen.Add(suspect)
	default:
		return api.HealthReady, c.seen
	}
}

// RunOnce evaluates every cluster at the current time, stores what changed
// and returns the transitions.
func (m *Monitor) RunOnce(ctx context.Context) ([]Transition, error) {
	now := m.now()
	var work []pending
	term := m.lead()
	lead := term != 0
	m.mu.Lock()
	m.noteLeadLocked(term, now)
	for name, c := range m.clusters {
		next, since := m.state(c, now)
		p := pending{name: name, seen: c.seen, heard: c.heard, hb: c.hb}
		switch {
		case next != c.health:
			p.transition = &Transition{Cluster: name, From: c.health, To: next, Since: since}
		case c.dirty && now.Sub(c.written) >= m.cfg.FlushEvery:
		default:
			continue
		}
		work = append(work, p)
	}
	m.mu.Unlock()
	sort.Slice(work, func(i, j int) bool { return work[i].name < work[j].name })

	var out []Transition
	var errs []error
	for _, p := range work {
		// Every hub tracks health (warm for a takeover); only the leader
		// writes it.
		if !lead {
			m.mu.Lock()
			if c, ok := m.clusters[p.name]; ok && p.transition != nil {
				c.health, c.since, c.noted = p.transition.To, p.transition.Since, now
			}
			m.mu.Unlock()
			continue
		}
		if err := m.write(ctx, p, now); err != nil {
			if api.ErrorCode(err) == api.CodeNotFound {
				m.Forget(p.name) // deregistered meanwhile
				continue
			}
			errs = append(errs, err)
			continue
		}
		m.mu.Lock()
		if c, ok := m.clusters[p.name]; ok {
			if p.transition != nil {
				c.health, c.since, c.noted = p.transition.To, p.transition.Since, now
			}
			c.dirty, c.written = false, now
		}
		m.mu.Unlock()
		if t := p.transition; t != nil {
			out = append(out, *t)
			delay := m.now().Sub(t.Since).Seconds()
			if t.To == api.HealthReady {
				m.metrics.latency.Record(ctx, delay)
			} else {
				m.metrics.detection.Record(ctx, delay, metric.WithAttributes(attribute.String("health", t.To)))
			}
			m.log.InfoContext(ctx, "cluster health changed", "cluster", t.Cluster, "from", t.From, "to", t.To)
		}
	}
	return out, errors.Join(errs...)
}

var healthActor = pgstore.Actor{Name: "system:health"}

// write stores a cluster's status and, on a transition, its event, in one
// transaction.
func (m *Monitor) write(ctx context.Context, p pending, now time.Time) error {
	return m.store.InTx(ctx, healthActor, func(tx *pgstore.Tx) error {
		if err := m.leader.Fence(ctx, tx); err != nil {
			return err
		}
		rec, err := tx.Mutate(ctx, "status", "Cluster", p.name, func(cur *pgstore.Record) error {
			var st api.ClusterStatus
			if err := json.Unmarshal(cur.Status, &st); err != nil {
				return err
			}
			if p.heard {
				seen := p.seen.UTC().Truncate(time.Millisecond)
				st.LastHeartbeatTime = &seen
				st.MemberVersion, st.ProtocolVersion = p.hb.MemberVersion, p.hb.Version
				capa := api.ClusterCapacity(p.hb.Capacity)
				st.Capacity = &capa
			}
			if t := p.transition; t != nil {
				st.Health = t.To
				st.Conditions = api.SetCondition(st.Conditions, readyCondition(t.To, m.cfg, now))
			}
			st.HeartbeatAgeSeconds = nil // live only
			b, err := json.Marshal(st)
			cur.Status = b
			return err
		})
		if err != nil || p.transition == nil {
			return err
		}
		reason, typ, msg := transitionEvent(*p.transition, m.cfg)
		return events.Record(ctx, tx, now, api.ObjectReference{Kind: "Cluster", Name: p.name, UID: rec.Meta.UID}, typ, reason, msg, "hub/health")
	})
}

func readyCondition(health string, cfg HealthConfig, now time.Time) api.Condition {
	t := now.UTC().Truncate(time.Millisecond)
	c := api.Condition{Type: "Ready", LastTransitionTime: &t}
	switch health {
	case api.HealthReady:
		c.Status, c.Reason, c.Message = "True", "Heartbeating", "heartbeats arrive"
	case api.HealthSuspect:
		c.Status, c.Reason, c.Message = "Unknown", "HeartbeatsMissed", fmt.Sprintf("no heartbeat for more than %s (2 intervals)", 2*cfg.Interval)
	case api.HealthUnreachable:
		c.Status, c.Reason, c.Message = "False", "Unreachable", fmt.Sprintf("no heartbeat for more than %s", cfg.UnreachableAfter)
	default:
		c.Status, c.Reason, c.Message = "Unknown", "NotHeardFrom", "no heartbeat since the hub started"
	}
	return c
}

func transitionEvent(t Transition, cfg HealthConfig) (reason, typ, msg string) {
	switch t.To {
	case api.HealthReady:
		if t.From == api.HealthUnknown {
			return "ClusterReady", api.EventNormal, "heartbeats arrive"
		}
		return "ClusterReady", api.EventNormal, fmt.Sprintf("heartbeats arrive again (was %s)", t.From)
	case api.HealthSuspect:
		return "ClusterSuspect", api.EventWarning, fmt.Sprintf("no heartbeat for %s (2 intervals)", 2*cfg.Interval)
	default:
		return "ClusterUnreachable", api.EventWarning, fmt.Sprintf("no heartbeat for %s", cfg.UnreachableAfter)
	}
}

// Start loads the clusters and evaluates them every Interval/5, and at
// once when a cluster that is not Ready heartbeats, until Stop.
func (m *Monitor) Start(ctx context.Context) error {
	if err := m.Load(ctx); err != nil {
		return err
	}
	ctx, m.cancel = context.WithCancel(ctx)
	go func() {
		defer close(m.done)
		tick := time.NewTicker(m.cfg.Interval / 5)
		defer tick.Stop()
		reload := time.NewTicker(10 * time.Second) // clusters registered through other hubs
		defer reload.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-m.wake:
			case <-reload.C:
				if err := m.Load(ctx); err != nil && !errors.Is(err, context.Canceled) {
					m.log.WarnContext(ctx, "health monitor reload failed", "err", err)
				}
				continue
			}
			if _, err := m.RunOnce(ctx); err != nil && !errors.Is(err, context.Canceled) {
				m.log.WarnContext(ctx, "health monitor pass failed", "err", err)
			}
		}
	}()
	return nil
}

// Stop ends the monitor; safe to call twice and before Start.
func (m *Monitor) Stop() {
	m.once.Do(func() {
		if m.cancel != nil {
			m.cancel()
			<-m.done
		}
	})
}
