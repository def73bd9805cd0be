// Package clusterevents tells what an operator did to a cluster as
// Events on the cluster: cordon and uncordon, a drain started or ended,
// a taint added or removed. They are read with `atoll describe cluster`,
// `atoll get events` and the console, next to the health changes the
// monitor records.
//
// Changes is the pure rule (which spec changes are which events);
// Recorder.Record is a pgstore.SpecHook, so the events commit with the
// change that caused them, name who made it (the transaction's actor),
// and are never written for a change that did not happen.
//
// It owns deciding those events. It must not change clusters, nor record
// what other controllers already tell: registration and deregistration
// (hub/members) and drills' taints (hub/drill).
package clusterevents

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/pgstore"
)

// Kind is the kind whose spec changes are told.
const Kind = "Cluster"

// Event reasons.
const (
	ReasonCordoned     = "Cordoned"
	ReasonUncordoned   = "Uncordoned"
	ReasonDrainStarted = "DrainStarted"
	ReasonDrainEnded   = "DrainEnded"
	ReasonTainted      = "Tainted"
	ReasonUntainted    = "TaintRemoved"
)

// Change is one event a spec change makes.
type Change struct {
	Reason  string
	Message string
}

// Changes lists the events that going from old to next makes, in a
// stable order: cordon first, then the drain, then other taints by key.
// Drills' taints are left to the drill's own events.
func Changes(old, next api.ClusterSpec) []Change {
	var out []Change
	switch {
	case !old.Unschedulable && next.Unschedulable:
		out = append(out, Change{ReasonCordoned, "cordoned: nothing new is placed here"})
	case old.Unschedulable && !next.Unschedulable:
		out = append(out, Change{ReasonUncordoned, "uncordoned: placements allowed again"})
	}
	before, after := taintsByKey(old.Taints), taintsByKey(next.Taints)
	if _, was := before[api.DrainTaintKey]; !was {
		if _, is := after[api.DrainTaintKey]; is {
			out = append(out, Change{ReasonDrainStarted, "drain started: every replica here moves elsewhere, each kept until its replacement is ready"})
		}
	} else if _, is := after[api.DrainTaintKey]; !is {
		out = append(out, Change{ReasonDrainEnded, "drain ended"})
	}
	keys := make([]string, 0, len(before)+len(after))
	for k := range before {
		keys = append(keys, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == api.DrainTaintKey || k == api.DrillTaintKey {
			continue
		}
		b, was := before[k]
		a, is := after[k]
		switch {
		case !was:
			out = append(out, Change{ReasonTainted, "taint added: " + a.String()})
		case !is:
			out = append(out, Change{ReasonUntainted, "taint removed: " + b.String()})
		case b.Value != a.Value || b.Effect != a.Effect:
			out = append(out, Change{ReasonTainted, fmt.Sprintf("taint changed: %s (was %s)", a.String(), b.String())})
		}
	}
	return out
}

func taintsByKey(ts []api.Taint) map[string]api.Taint {
	m := make(map[string]api.Taint, len(ts))
	for _, t := range ts {
		m[t.Key] = t
	}
	return m
}

// Recorder writes the events of clusters' spec changes.
type Recorder struct{}

// New makes a recorder and registers Record as the store's hook for
// clusters' spec changes. Call it before the store takes writes.
func New(store *pgstore.Store) *Recorder {
	r := &Recorder{}
	store.OnSpecChange(Kind, r.Record)
	return r
}

// Record is the pgstore.SpecHook: on a spec change (not a creation, which
// registration tells), it writes one Event per Change, naming the actor.
func (r *Recorder) Record(ctx context.Context, tx *pgstore.Tx, cur, next *pgstore.Record) error {
	if cur == nil {
		return nil
	}
	var old, nxt api.ClusterSpec
	if err := json.Unmarshal(cur.Spec, &old); err != nil {
		return fmt.Errorf("cluster events: read the old spec: %w", err)
	}
	if err := json.Unmarshal(next.Spec, &nxt); err != nil {
		return fmt.Errorf("cluster events: read the new spec: %w", err)
	}
	who := tx.Actor().Name
	ref := api.ObjectReference{Kind: Kind, Name: next.Meta.Name, UID: next.Meta.UID}
	for _, c := range Changes(old, nxt) {
		typ := api.EventNormal
		if c.Reason == ReasonDrainStarted {
			typ = api.EventWarning // replicas are about to move
		}
		if err := events.Record(ctx, tx, tx.Now(), ref, typ, c.Reason, c.Message+" (by "+who+")", "hub/clusterevents"); err != nil {
			return err
		}
	}
	return nil
}
