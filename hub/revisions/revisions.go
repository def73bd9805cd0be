// Package revisions keeps the numbered revisions of every workload's
// template: the record `atoll rollout history` shows, `atoll rollout undo`
// returns to, and progressive rollouts (issue 18) will move clusters
// between.
//
// Record is a pgstore.SpecHook: it runs inside the transaction that
// creates a workload or changes its spec, so a template change and its
// revision commit together (a revision is never lost, and never recorded
// for a change that did not happen). A spec change that keeps the template
// (replicas, placement) makes no revision. Each revision keeps the
// template, its hash, the generation that introduced it, who made the
// change (the transaction's actor), when, and the workload's
// atoll.dev/change-cause annotation (or, for the hub's own change of the
// config and secret versions the template pins, what changed: "secret db
// v7", pgstore.Tx.ChangeCause); a change after the first records a
// TemplateChanged Event on the workload. Only the newest
// spec.revisionHistoryLimit (default 10) are kept (a lower limit trims at
// once); the rows go with the workload's when it is deleted.
//
// It owns deciding what a revision is and reading them back. It must not
// write workloads: an undo is an ordinary update of the template, made by
// the client and audited as such.
package revisions

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/events"
	"github.com/atollhq/atoll/hub/pgstore"
)

// Kind is the kind whose revisions are kept.
const Kind = "Workload"

// ReasonTemplateChanged is the reason of the Event a template change
// records on its workload (the first template, at creation, records none).
const ReasonTemplateChanged = "TemplateChanged"

// Keeper records and reads revisions.
type Keeper struct {
	store    *pgstore.Store
	tracer   trace.Tracer
	recorded metric.Int64Counter
}

// New makes a keeper and registers Record as the store's hook for
// workloads' spec changes (one that reads no resourceVersion, so a
// workload's create stays one round trip). Call it before the store
// takes writes.
func New(store *pgstore.Store, tracer trace.TracerProvider, meter metric.MeterProvider) *Keeper {
	k := &Keeper{store: store, tracer: tracer.Tracer("github.com/atollhq/atoll/hub/revisions")}
	k.recorded, _ = meter.Meter("github.com/atollhq/atoll/hub/revisions").Int64Counter("workload.revisions.recorded",
		metric.WithUnit("{revision}"), metric.WithDescription("Workload template revisions recorded."))
	store.OnSpecChangeUnversioned(Kind, k.Record)
	return k
}

// Record is the pgstore.SpecHook: on a creation, or a spec change that
// changed the template, it stores the next revision and trims the oldest
// beyond the workload's limit.
func (k *Keeper) Record(ctx context.Context, tx *pgstore.Tx, cur, next *pgstore.Record) error {
	nextSpec, err := specOf(next)
	if err != nil {
		return err
	}
	var hash string                // the template's, needed only to compare with an earlier one
	var latest pgstore.RevisionRow // a new workload (a new uid) has none
	ok := false
	if cur != nil {
		hash = api.TemplateHash(nextSpec.Template)
		if latest, ok, err = tx.LatestRevision(ctx, next.Meta.UID); err != nil {
			return err
		}
	}
	switch {
	case ok && latest.TemplateHash == hash:
		// The template did not change (replicas, placement, ...); a
		// lower limit takes effect at once.
		if cur != nil {
			if curSpec, err := specOf(cur); err == nil && nextSpec.HistoryLimit() < curSpec.HistoryLimit() {
				return tx.TrimRevisions(ctx, next.Meta.UID, latest.Number, nextSpec.HistoryLimit())
			}
		}
		return nil
	case !ok && cur != nil:
		// A workload from before revisions were kept: its template so far
		// is revision 1, made by someone the hub cannot name.
		curSpec, err := specOf(cur)
		if err != nil {
			return err
		}
		if api.TemplateHash(curSpec.Template) == hash {
			return nil
		}
		at := time.Time{}
		if cur.Meta.CreationTimestamp != nil {
			at = *cur.Meta.CreationTimestamp
		}
		latest = row(curSpec.Template, cur.Meta.Generation, "unknown (before revisions were kept)", "", at)
		latest.Number = 1
		if err := tx.PutRevision(ctx, next.Meta.UID, latest, nextSpec.HistoryLimit()); err != nil {
			return err
		}
	}
	ctx, span := k.tracer.Start(ctx, "revisions.Record", trace.WithAttributes(attribute.String("workload", next.Meta.Name)))
	defer span.End()
	cause := tx.ChangeCause() // the hub's own change (new values of a config or secret it uses)
	if cause == "" {
		cause = next.Meta.Annotations[api.AnnotationChangeCause]
	}
	r := row(nextSpec.Template, next.Meta.Generation, tx.Actor().Name, cause, tx.Now().UTC().Truncate(time.Microsecond))
	r.Number = latest.Number + 1
	span.SetAttributes(attribute.Int64("revision", r.Number))
	if err := tx.PutRevision(ctx, next.Meta.UID, r, nextSpec.HistoryLimit()); err != nil {
		return err
	}
	if cur != nil {
		// A template change starts a rollout in every cluster: say so
		// where users read what happened to the workload.
		msg := fmt.Sprintf("revision %d (template %s) by %s", r.Number, r.TemplateHash, r.Actor)
		if r.ChangeCause != "" {
			msg += ": " + r.ChangeCause
		}
		// The event goes with the transaction's other late writes, just
		// before COMMIT (one round trip for a hundred workloads rolled by
		// one secret's write).
		if err := events.Queue(ctx, tx.Later(), tx.Now(), api.ObjectReference{Kind: Kind, Name: next.Meta.Name, UID: next.Meta.UID},
			api.EventNormal, ReasonTemplateChanged, msg, "hub/revisions"); err != nil {
			return err
		}
	}
	k.recorded.Add(ctx, 1)
	return nil
}

func row(t api.ReplicaTemplate, generation int64, actor, cause string, at time.Time) pgstore.RevisionRow {
	b, _ := json.Marshal(t)
	return pgstore.RevisionRow{TemplateHash: api.TemplateHashOfJSON(b), Template: b, Generation: generation, Actor: actor, ChangeCause: cause, CreatedAt: at}
}

func specOf(r *pgstore.Record) (*api.WorkloadSpec, error) {
	var s api.WorkloadSpec
	if err := json.Unmarshal(r.Spec, &s); err != nil {
		return nil, fmt.Errorf("revisions: workload %s: %w", r.Meta.Name, err)
	}
	return &s, nil
}

// List reads a workload's revisions, oldest first (NotFound when the
// workload does not exist).
func (k *Keeper) List(ctx context.Context, workload string) (api.RevisionList, error) {
	ctx, span := k.tracer.Start(ctx, "revisions.List", trace.WithAttributes(attribute.String("workload", workload)))
	defer span.End()
	rows, err := k.store.Revisions(ctx, workload)
	if err != nil {
		return api.RevisionList{}, err
	}
	out := api.RevisionList{Workload: workload, Items: make([]api.Revision, 0, len(rows))}
	for _, r := range rows {
		rev := api.Revision{Number: r.Number, TemplateHash: r.TemplateHash, Actor: r.Actor, CreatedAt: r.CreatedAt, ChangeCause: r.ChangeCause, Generation: r.Generation, ImageDigest: r.ImageDigest}
		if err := json.Unmarshal(r.Template, &rev.Template); err != nil {
			return api.RevisionList{}, fmt.Errorf("revision %d of workload %s: %w", r.Number, workload, err)
		}
		out.Items = append(out.Items, rev)
	}
	return out, nil
}
