// Package events writes Events, the resource users read to learn what
// happened to an object and why. Every controller and API handler that
// records one does it inside the transaction of the change it describes,
// so an event is never written for a change that did not commit. It owns
// the Event's shape and naming, not what any controller says.
package events

import (
	"context"
	"crypto/rand"
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
		return err
	}
	rec := &pgstore.Record{Kind: "Event", Meta: api.ObjectMeta{
		Name:   name + suffix,
		Labels: map[string]string{api.LabelEventKind: obj.Kind, api.LabelEventName: obj.Name},
	}, Spec: body}
	if _, err := tx.Create(ctx, rec); err != nil {
		return fmt.Errorf("record event %s for %s %s: %w", reason, obj.Kind, obj.Name, err)
	}
	return nil
}
