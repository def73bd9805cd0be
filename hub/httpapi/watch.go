package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// watchBatch is how many change-log rows a watcher reads per query.
const watchBatch = 500

type watchParams struct {
	LabelSelector   string `query:"labelSelector" maxLength:"4096" doc:"Only objects whose labels match."`
	ResourceVersion string `query:"resourceVersion" maxLength:"20" doc:"Stream changes after this version (from a list or an earlier event). Empty: first an ADDED event for every current object."`
	LastEventID     string `header:"Last-Event-ID" maxLength:"20" doc:"Set by EventSource on reconnect; wins over resourceVersion."`
}

// registerWatch serves GET /api/v1/watch/{plural} as Server-Sent Events:
// each event's id is the resourceVersion, its name the change type, its
// data a WatchEvent. Comments keep idle connections alive.
func registerWatch(s *API, hapi huma.API, kind api.Kind) {
	huma.Register(hapi, huma.Operation{
		OperationID: "watch-" + kind.Short[0], Method: http.MethodGet, Path: "/api/v1/watch/" + kind.Plural,
		Summary:     "Watch " + kind.Name + "s (Server-Sent Events)",
		Description: "Streams changes as SSE: `id:` is the resourceVersion, `event:` ADDED, MODIFIED or DELETED, `data:` a WatchEvent. Resume with Last-Event-ID or resourceVersion; 410 when that version was compacted away.",
		Tags:        []string{kind.Name + "s"}, Security: bearer,
		Metadata: opMeta(kind.ReadRole, "", kind.Name), Errors: []int{400, 401, 403, 410, 503},
		Responses: map[string]*huma.Response{"200": {Description: "An event stream", Content: map[string]*huma.MediaType{
			"text/event-stream": {Schema: hapi.OpenAPI().Components.Schemas.Schema(reflectWatchEvent, true, "")},
		}}},
	}, func(ctx context.Context, in *watchParams) (*huma.StreamResponse, error) {
		sel, err := (&listParams{LabelSelector: in.LabelSelector}).selector()
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		from := in.ResourceVersion
		loc := "query.resourceVersion"
		if in.LastEventID != "" {
			from, loc = in.LastEventID, "header.Last-Event-ID"
		}
		w := &watcher{s: s, kind: kind.Name, sel: sel}
		// Subscribe before reading, so no wake-up falls between the read
		// and the wait.
		sub := s.notifier.SubscribeChanges(kind.Name)
		unsubscribe := sub.Close
		var initial []*pgstore.Record
		if from == "" || from == "0" {
			res, err := s.store.List(ctx, kind.Name, pgstore.ListOptions{Selector: sel, Limit: -1, Covered: true})
			if err != nil {
				unsubscribe()
				return nil, toProblem(ctx, err)
			}
			initial = res.Items
			w.after, _ = strconv.ParseInt(res.ResourceVersion, 10, 64)
			// The list may already show changes above its version; the
			// stream would repeat them (pgstore's package documentation).
			w.covered = make(map[int64]bool, len(res.Covered))
			for _, rv := range res.Covered {
				w.covered[rv] = true
			}
		} else {
			rv, err := strconv.ParseInt(from, 10, 64)
			if err != nil || rv < 0 {
				unsubscribe()
				p := newProblem(http.StatusBadRequest, api.CodeBadRequest, "invalid resourceVersion")
				p.Errors = []api.ProblemDetail{{Location: loc, Message: "must be a resourceVersion from a list or an event", Value: from}}
				return nil, toProblem(ctx, p)
			}
			w.after = rv
			// Fail with 410 now, while we can still send a status.
			if _, err := s.store.Changes(ctx, kind.Name, rv, 1); err != nil {
				unsubscribe()
				return nil, toProblem(ctx, err)
			}
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			defer unsubscribe()
			w.stream(hctx, initial, sub)
		}}, nil
	})
}

var reflectWatchEvent = reflectTypeOf[api.WatchEvent]()

type watcher struct {
	s       *API
	kind    string
	sel     api.Selector
	after   int64
	covered map[int64]bool // changes the initial list already showed
}

// stream sends the initial objects, then the changes after w.after as
// wake-ups announce them. A woken watcher asks for the changes below the
// horizon its wake-up passed (Store.ChangesBelow): the hundred watchers
// one write wakes then share one read of the change log, however they
// come back. The first read, and the one after each keepalive (a lost
// wake-up costs at most that long), ask for all that committed before
// them.
func (w *watcher) stream(hctx huma.Context, initial []*pgstore.Record, sub *pgstore.Subscription) {
	ctx := hctx.Context()
	hctx.SetHeader("Content-Type", "text/event-stream")
	hctx.SetHeader("Cache-Control", "no-cache")
	hctx.SetHeader("X-Accel-Buffering", "no")
	hctx.SetStatus(http.StatusOK)
	out := hctx.BodyWriter()
	rc := flusher{out}
	attrs := metric.WithAttributes(attribute.String("kind", w.kind))
	w.s.metrics.watches.Add(ctx, 1, attrs)
	defer w.s.metrics.watches.Add(context.WithoutCancel(ctx), -1, attrs)

	for _, rec := range initial {
		obj, _ := json.Marshal(rec)
		if !w.send(out, rec.RV(), api.Added, obj) {
			return
		}
	}
	if _, err := fmt.Fprint(out, ": watching\n\n"); err != nil {
		return
	}
	rc.Flush()
	keepalive := time.NewTicker(w.s.keepalive)
	defer keepalive.Stop()
	passed := int64(0) // the horizon the last wake-up passed; 0: read afresh
	for {
		for {
			changes, err := w.s.store.ChangesBelow(ctx, w.kind, w.after, watchBatch, passed)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				sendError(ctx, out, err)
				rc.Flush()
				return
			}
			for _, c := range changes {
				w.after = c.ResourceVersion
				if w.covered[c.ResourceVersion] {
					delete(w.covered, c.ResourceVersion)
					continue
				}
				if !w.sel.Empty() && !w.sel.Matches(labelsOf(c.Object)) {
					continue
				}
				if !w.send(out, c.ResourceVersion, c.Type, c.Object) {
					return
				}
			}
			w.s.metrics.watchEvents.Add(ctx, int64(len(changes)), attrs)
			if len(changes) > 0 {
				rc.Flush() // a gone client shows up as a failed write
			}
			if len(changes) < watchBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-w.s.done:
			return
		case <-sub.C:
			passed = sub.Passed()
		case <-keepalive.C:
			passed = 0
			if _, err := fmt.Fprint(out, ": keepalive\n\n"); err != nil {
				return
			}
			rc.Flush()
		}
	}
}

// send writes one event. obj is compact JSON (the change feed's, or a
// record marshalled), so it goes into the data line as it is: encoding
// it again would scan every object once per watcher, which with 100
// watchers was a third of the hub's CPU. One with a line break in it
// (none should have) is encoded, as a data line must not break.
func (w *watcher) send(out interface{ Write([]byte) (int, error) }, rv int64, typ string, obj json.RawMessage) bool {
	if bytes.IndexByte(obj, '\n') >= 0 || bytes.IndexByte(obj, '\r') >= 0 || (typ != api.Added && typ != api.Modified && typ != api.Deleted) {
		data, _ := json.Marshal(api.WatchEvent{Type: typ, Object: obj})
		_, err := fmt.Fprintf(out, "id: %d\nevent: %s\ndata: %s\n\n", rv, typ, data)
		return err == nil
	}
	_, err := fmt.Fprintf(out, "id: %d\nevent: %s\ndata: {\"type\":\"%s\",\"object\":%s}\n\n", rv, typ, typ, obj)
	return err == nil
}

// sendError ends a stream with an ERROR event carrying the problem, e.g.
// 410 when the watcher fell behind compaction.
func sendError(ctx context.Context, out interface{ Write([]byte) (int, error) }, err error) {
	p, ok := toProblem(ctx, err).(*problem)
	if !ok {
		return
	}
	data, _ := json.Marshal(p.Problem)
	fmt.Fprintf(out, "event: ERROR\ndata: %s\n\n", data)
}

func labelsOf(obj json.RawMessage) map[string]string {
	var o struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(obj, &o)
	return o.Metadata.Labels
}

// flusher pushes buffered events to the client.
type flusher struct{ w any }

func (f flusher) Flush() {
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
}
