// Package events writes Events, the resource users read to learn what
// happened to an object and why. Every controller and API handler that
// records one does it inside the transaction of the change it describes,
// so an event is never written for a change that did not commit. It owns
// the Event's shape and naming, not what any controller says.
package events

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// Record writes an Event about obj inside tx.
func Record(ctx context.Context, tx *pgstore.Tx, now time.Time, obj api.ObjectReference, typ, reason, msg, source string) error {
	rec, err := newEvent(now, obj, typ, reason, msg, source)
	if err != nil {
		return err
	}
	if _, err := tx.Create(ctx, rec); err != nil {
		return fmt.Errorf("record event %s for %s %s: %w", reason, obj.Kind, obj.Name, err)
	}
	return nil
}

// Queue is Record onto a batch of the transaction's writes (stored when
// the batch is sent).
func Queue(ctx context.Context, b *pgstore.Batch, now time.Time, obj api.ObjectReference, typ, reason, msg, source string) error {
	rec, err := newEvent(now, obj, typ, reason, msg, source)
	if err != nil {
		return err
	}
	if _, err := b.Create(ctx, rec); err != nil {
		return fmt.Errorf("record event %s for %s %s: %w", reason, obj.Kind, obj.Name, err)
	}
	return nil
}

// newEvent is the record of an Event about obj.
func newEvent(now time.Time, obj api.ObjectReference, typ, reason, msg, source string) (*pgstore.Record, error) {
	at := now.UTC().Truncate(time.Millisecond)
	name := obj.Name
	// Names sort by time within an object; the random tail keeps two events
	// of the same millisecond apart.
	var tail [3]byte
	_, _ = rand.Read(tail[:])
	suffix := "-" + strconv.FormatInt(at.UnixNano(), 36) + hex.EncodeToString(tail[:])
	if len(name)+len(suffix) > 63 {
		name = name[:63-len(suffix)]
	}
	body, err := json.Marshal(struct {
		InvolvedObject api.ObjectReference `json:"involvedObject"`
		Type           string              `json:"type"`
		Reason         string              `json:"reason"`
		Message        string              `json:"message"`
		Source         string              `json:"source"`
		EventTime      *time.Time          `json:"eventTime"`
	}{obj, typ, reason, msg, source, &at})
	if err != nil {
		return nil, err
	}
	return &pgstore.Record{Kind: "Event", Meta: api.ObjectMeta{
		Name:   name + suffix,
		Labels: map[string]string{api.LabelEventKind: obj.Kind, api.LabelEventName: obj.Name},
	}, Spec: body}, nil
}

// Dedup records an event that recurs as one Event per object, key (the
// cluster, or "") and reason, updated in place like Kubernetes' events:
// the first occurrence creates it with count n and its first time; later
// ones add n to its count and move its time and message to now. It runs
// inside tx, like Record.
func Dedup(ctx context.Context, tx *pgstore.Tx, now time.Time, obj api.ObjectReference, typ, reason, key, msg, source string, n int32) error {
	at := now.UTC().Truncate(time.Millisecond)
	sum := sha256.Sum256([]byte(obj.Kind + "\x00" + obj.Name + "\x00" + key + "\x00" + reason))
	suffix := "-" + hex.EncodeToString(sum[:6])
	name := obj.Name
	if len(name)+len(suffix) > 63 {
		name = name[:63-len(suffix)]
	}
	name += suffix
	ev := api.Event{InvolvedObject: obj, Type: typ, Reason: reason, Message: msg, Source: source, EventTime: &at, Count: n, FirstTimestamp: &at, Cluster: key}
	// One read: the update sees the row as it is (the count so far), and a
	// missing row is created below.
	_, err := tx.Mutate(ctx, pgstore.VerbUpdate, "Event", name, func(r *pgstore.Record) error {
		var old api.Event
		_ = json.Unmarshal(r.Spec, &old)
		upd := ev
		upd.Count += old.Count
		if old.FirstTimestamp != nil {
			upd.FirstTimestamp = old.FirstTimestamp
		}
		body, err := json.Marshal(dedupBody(upd))
		r.Spec = body
		return err
	})
	switch {
	case err == nil:
		return nil
	case api.ErrorCode(err) != api.CodeNotFound:
		return fmt.Errorf("update event %s for %s %s: %w", reason, obj.Kind, obj.Name, err)
	}
	body, err := json.Marshal(dedupBody(ev))
	if err != nil {
		return err
	}
	labels := map[string]string{api.LabelEventKind: obj.Kind, api.LabelEventName: obj.Name}
	rec := &pgstore.Record{Kind: "Event", Meta: api.ObjectMeta{Name: name, Labels: labels}, Spec: body}
	if _, err := tx.Create(ctx, rec); err != nil {
		return fmt.Errorf("record event %s for %s %s: %w", reason, obj.Kind, obj.Name, err)
	}
	return nil
}

// dedupBody is what an Event row keeps: everything but its metadata.
func dedupBody(e api.Event) any {
	return struct {
		InvolvedObject api.ObjectReference `json:"involvedObject"`
		Type           string              `json:"type"`
		Reason         string              `json:"reason"`
		Message        string              `json:"message"`
		Source         string              `json:"source"`
		EventTime      *time.Time          `json:"eventTime"`
		Count          int32               `json:"count"`
		FirstTimestamp *time.Time          `json:"firstTimestamp"`
		Cluster        string              `json:"cluster,omitempty"`
	}{e.InvolvedObject, e.Type, e.Reason, e.Message, e.Source, e.EventTime, e.Count, e.FirstTimestamp, e.Cluster}
}
