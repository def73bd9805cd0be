package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/hub/pgstore"
)

// registerDrills serves /api/v1/drills: the generic reads, create (which
// starts a drill) and delete (of ended drills), plus plan (a dry run),
// abort and the live timeline.
func (s *API) registerDrills(hapi huma.API) {
	registerKind(s, hapi, kindRoutes[api.Drill, *api.Drill, api.DrillList]{
		kind: mustKind("Drill"), create: s.createDrill, remove: deleteDrill,
		roles: map[string]string{pgstore.VerbCreate: api.RoleOperator, pgstore.VerbDelete: api.RoleOperator},
		list: func(items []api.Drill, meta api.ListMeta) api.DrillList {
			return api.DrillList{TypeMeta: api.TypeMeta{APIVersion: api.Group, Kind: "DrillList"}, Metadata: meta, Items: items}
		},
	})
	tags := []string{"Drills"}
	huma.Register(hapi, huma.Operation{
		OperationID: "plan-drill", Method: http.MethodPost, Path: "/api/v1/drills/plan",
		Summary:     "Plan a drill (dry run)",
		Description: "Shows where every replica on the targets would go once the fault is in, and whether the remaining clusters absorb them. Changes nothing.",
		Tags:        tags, Security: bearer, MaxBodyBytes: 64 << 10, Metadata: opMeta(api.RoleOperator, "", "Drill"),
		Errors: []int{400, 401, 403, 413, 415, 422, 503},
	}, func(ctx context.Context, in *struct{ Body api.DrillSpec }) (*struct{ Body api.DrillPlan }, error) {
		if fe := in.Body.Validate(); fe != nil {
			return nil, toProblem(ctx, fe)
		}
		if err := s.drills.ServesKind(in.Body.Kind, "kind"); err != nil {
			return nil, toProblem(ctx, err)
		}
		plan, fe, err := s.drills.Plan(ctx, "plan", in.Body)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		if fe != nil {
			return nil, toProblem(ctx, drillRefusal("the drill's "+missing(fe), "body.", fe, plan))
		}
		return &struct{ Body api.DrillPlan }{Body: *plan}, nil
	})
	huma.Register(hapi, huma.Operation{
		OperationID: "abort-drill", Method: http.MethodPost, Path: "/api/v1/drills/{name}/abort",
		Summary:     "Abort a drill",
		Description: "Restores the drill's targets at once and ends it as Aborted, with the report of what was measured so far.",
		Tags:        tags, Security: bearer, Metadata: opMeta(api.RoleOperator, "abort", "Drill"),
		Errors: []int{401, 403, 404, 409, 503},
	}, func(ctx context.Context, in *struct {
		Name string `path:"name" maxLength:"253"`
	}) (*struct{ Body api.Drill }, error) {
		rec, err := s.abortDrill(ctx, s.actor(ctx), in.Name)
		if err != nil {
			return nil, toProblem(ctx, err)
		}
		s.drills.Wake()
		return answer[api.Drill](ctx, rec)
	})
	registerTimeline(s, hapi)
}

// missing says what of a drill does not exist: "target does not exist",
// "probe names what does not exist", or both.
func missing(fe api.FieldErrors) string {
	var target, probe bool
	for _, e := range fe {
		f := strings.TrimPrefix(e.Field, "spec.")
		target = target || strings.HasPrefix(f, "target")
		probe = probe || strings.HasPrefix(f, "probe")
	}
	switch {
	case target && probe:
		return "target does not exist, and its probe names what does not exist"
	case probe:
		return "probe names what does not exist"
	}
	return "target does not exist"
}

// drillRefusal is the 422 a refused drill gets: the reason, the fields at
// fault (under prefix) and the plan as an extension member.
func drillRefusal(detail, prefix string, fe api.FieldErrors, plan *api.DrillPlan) *problem {
	p := newProblem(http.StatusUnprocessableEntity, api.CodeInvalid, detail)
	for _, e := range fe {
		p.Errors = append(p.Errors, api.ProblemDetail{Location: prefix + e.Field, Message: e.Message, Value: sanitizeValue(e.Value)})
	}
	p.Plan = plan
	return p
}

// createDrill plans the drill, refuses it when its target does not exist
// or the rest cannot absorb the load (unless forced), and stores it
// Pending, checking in the same transaction, under the store's write
// lock, that no drill still running targets any of the same clusters.
// The leader's drill controller starts it.
func (s *API) createDrill(ctx context.Context, _ *API, a pgstore.Actor, dr *api.Drill) (*api.Drill, error) {
	name := dr.Metadata.Name
	refuse := func(err error) (*api.Drill, error) {
		code := api.ErrorCode(err)
		var p *problem
		if errors.As(err, &p) {
			code = p.Code
		}
		if code != api.CodeUnavailable {
			s.store.AuditRefusal(context.WithoutCancel(ctx), a, pgstore.VerbCreate, "Drill", name, cmp.Or(code, "Failed"), err.Error())
		}
		return nil, err
	}
	if err := s.drills.ServesKind(dr.Spec.Kind, "spec.kind"); err != nil {
		return refuse(err)
	}
	plan, fe, err := s.drills.Plan(ctx, name, dr.Spec)
	if err != nil {
		return nil, err
	}
	for i := range fe {
		fe[i].Field = "spec." + fe[i].Field
	}
	switch {
	case fe != nil:
		return refuse(drillRefusal("the drill is refused: its "+missing(fe), "body.", fe, plan))
	case (!plan.Absorbed || len(plan.BrokenBudgets()) > 0 || len(plan.RolloutsInProgress()) > 0) && !dr.Spec.Force:
		var why, what []string
		if !plan.Absorbed {
			why = append(why, plan.Reason)
			what = append(what, "the remaining clusters cannot absorb the load")
		}
		if rolling := plan.RolloutsInProgress(); len(rolling) > 0 {
			why = append(why, "workloads on the targets are in a progressive rollout: "+strings.Join(rolling, ", "))
			what = append(what, "a rollout is under way")
		}
		if len(plan.BrokenBudgets()) > 0 {
			why = append(why, brokenBudgets(plan))
			what = append(what, "it breaks a workload's disruption budget")
		}
		return refuse(drillRefusal("the drill is refused: "+strings.Join(why, "; "), "body.",
			api.FieldErrors{{Field: "spec.force", Message: "the plan shows " + strings.Join(what, " and ") + "; set force to run the drill anyway"}}, plan))
	}
	now := s.now()
	st := api.DrillStatus{Phase: api.DrillPending, Targets: plan.Targets, Plan: plan}
	st.Timeline = append(st.Timeline, api.DrillEvent{At: now.UTC().Truncate(time.Millisecond), Type: api.DrillEventCreated,
		Message: fmt.Sprintf("created by %s: %s of %s for %s", a.Name, dr.Spec.Kind, strings.Join(plan.Targets, ", "), dr.Spec.DurationOrDefault())})
	if !plan.Absorbed {
		st.Timeline = append(st.Timeline, api.DrillEvent{At: st.Timeline[0].At, Type: api.DrillEventCreated, Message: "forced although " + plan.Reason})
	}
	if len(plan.BrokenBudgets()) > 0 {
		st.Timeline = append(st.Timeline, api.DrillEvent{At: st.Timeline[0].At, Type: api.DrillEventCreated, Message: "forced although " + brokenBudgets(plan)})
	}
	if rolling := plan.RolloutsInProgress(); len(rolling) > 0 {
		st.Timeline = append(st.Timeline, api.DrillEvent{At: st.Timeline[0].At, Type: api.DrillEventCreated, Message: "forced although " + strings.Join(rolling, ", ") + " roll out"})
	}
	rec := recordOf("Drill", dr)
	rec.Status, _ = json.Marshal(st)
	var out *pgstore.Record
	err = s.store.InTx(ctx, a, func(tx *pgstore.Tx) error {
		others, err := tx.List(ctx, "Drill")
		if err != nil {
			return err
		}
		for _, o := range others {
			var ost api.DrillStatus
			_ = json.Unmarshal(o.Status, &ost)
			if ost.Final() {
				continue
			}
			if shared := slices.DeleteFunc(slices.Clone(ost.Targets), func(c string) bool { return !slices.Contains(plan.Targets, c) }); len(shared) > 0 {
				msg := fmt.Sprintf("drill %s (%s) already targets %s: wait for it to end or abort it ('atoll drill abort %s')",
					o.Meta.Name, ost.Phase, strings.Join(shared, ", "), o.Meta.Name)
				p := newProblem(http.StatusConflict, api.CodeConflict, msg)
				p.Errors = []api.ProblemDetail{{Location: "body.spec.target", Message: msg}}
				return p
			}
		}
		out, err = tx.Create(ctx, rec)
		return err
	})
	if err != nil {
		return refuse(err)
	}
	s.drills.Wake()
	var created api.Drill
	return &created, out.Decode(&created)
}

// abortDrill asks the controller to restore a drill's targets at once;
// a drill that has not started yet ends here and now.
func (s *API) abortDrill(ctx context.Context, a pgstore.Actor, name string) (*pgstore.Record, error) {
	return s.store.Mutate(ctx, a, "abort", "Drill", name, func(cur *pgstore.Record) error {
		var st api.DrillStatus
		_ = json.Unmarshal(cur.Status, &st)
		switch {
		case st.Final():
			return api.Errorf(api.CodeConflict, "drill %s already ended (%s)", name, st.Phase)
		case st.AbortRequestedAt != nil:
			return nil // asked already
		}
		now := s.now().UTC().Truncate(time.Millisecond)
		st.AbortRequestedAt, st.AbortRequestedBy = &now, a.Name
		if st.Phase == "" || st.Phase == api.DrillPending {
			st.Phase, st.FinishedAt = api.DrillAborted, &now
			st.Report = &api.DrillReport{Failback: "notMeasured", Notes: []string{"aborted by " + a.Name + " before it started: nothing was changed"}}
			st.Timeline = append(st.Timeline,
				api.DrillEvent{At: now, Type: api.DrillEventAbortRequested, Message: "abort requested by " + a.Name},
				api.DrillEvent{At: now, Type: api.DrillEventFinished, Message: api.DrillAborted + ": before it started"})
		}
		b, err := json.Marshal(st)
		cur.Status = b
		return err
	})
}

// deleteDrill removes an ended drill (and its report); a drill still
// running must be aborted first, so a delete never leaves a fault behind.
func deleteDrill(ctx context.Context, s *API, a pgstore.Actor, name, precondition string, _ bool) (*pgstore.Record, error) {
	var last *pgstore.Record
	err := s.store.InTx(ctx, a, func(tx *pgstore.Tx) error {
		cur, err := tx.Get(ctx, "Drill", name)
		if err != nil {
			return err
		}
		if err := pgstore.CheckVersion(cur, precondition); err != nil {
			return err
		}
		var st api.DrillStatus
		_ = json.Unmarshal(cur.Status, &st)
		if !st.Final() {
			return api.Errorf(api.CodeConflict, "drill %s is %s: abort it first ('atoll drill abort %s'), then delete it", name, cmp.Or(st.Phase, api.DrillPending), name)
		}
		last, _, err = tx.Delete(ctx, "Drill", name, "")
		return err
	})
	if err != nil {
		if code := api.ErrorCode(err); code != api.CodeUnavailable {
			s.store.AuditRefusal(context.WithoutCancel(ctx), a, pgstore.VerbDelete, "Drill", name, cmp.Or(code, "Failed"), err.Error())
		}
		return nil, err
	}
	return last, nil
}

// timelinePos is how far a timeline stream got: timeline entries sent,
// and the time (Unix ms) of the last sample sent. Its text form
// "<entries>-<ms>" is the SSE event id.
type timelinePos struct {
	entries int
	sample  int64
}

func (p timelinePos) String() string {
	return strconv.Itoa(p.entries) + "-" + strconv.FormatInt(p.sample, 10)
}

func parseTimelinePos(s string) (timelinePos, bool) {
	if s == "" {
		return timelinePos{}, true
	}
	a, b, ok := strings.Cut(s, "-")
	n, err1 := strconv.Atoi(a)
	ms, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || n < 0 || ms < 0 {
		return timelinePos{}, false
	}
	return timelinePos{entries: n, sample: ms}, true
}

type timelineParams struct {
	Name        string `path:"name" maxLength:"253"`
	After       string `query:"after" maxLength:"64" doc:"Resume after this event id (as Last-Event-ID does)."`
	LastEventID string `header:"Last-Event-ID" maxLength:"64" doc:"Set by EventSource on reconnect; wins over after."`
}

// DrillPhase is the data of a timeline stream's phase event.
type DrillPhase struct {
	Phase string `json:"phase"`
}

// registerTimeline serves a drill's live timeline as Server-Sent Events:
// "timeline" events (a DrillEvent each), "sample" events (DrillSample),
// "phase" events when the phase changes, and finally one "report" event
// carrying the whole Drill, after which the stream ends. Event ids resume
// the stream (Last-Event-ID).
func registerTimeline(s *API, hapi huma.API) {
	huma.Register(hapi, huma.Operation{
		OperationID: "drill-timeline", Method: http.MethodGet, Path: "/api/v1/drills/{name}/timeline",
		Summary:     "Follow a drill (Server-Sent Events)",
		Description: "Streams the drill's timeline entries (event: timeline), recovery samples (event: sample) and phase changes (event: phase) as they happen, and ends with the Drill and its report (event: report). Resume with Last-Event-ID.",
		Tags:        []string{"Drills"}, Security: bearer, Metadata: opMeta(api.RoleViewer, "", "Drill"),
		Errors: []int{400, 401, 403, 404, 503},
		Responses: map[string]*huma.Response{"200": {Description: "An event stream", Content: map[string]*huma.MediaType{
			"text/event-stream": {Schema: hapi.OpenAPI().Components.Schemas.Schema(reflectTypeOf[api.DrillEvent](), true, "")},
		}}},
	}, func(ctx context.Context, in *timelineParams) (*huma.StreamResponse, error) {
		from, loc := in.After, "query.after"
		if in.LastEventID != "" {
			from, loc = in.LastEventID, "header.Last-Event-ID"
		}
		pos, ok := parseTimelinePos(from)
		if !ok {
			p := newProblem(http.StatusBadRequest, api.CodeBadRequest, "invalid event id")
			p.Errors = []api.ProblemDetail{{Location: loc, Message: "must be an id from this stream, like 3-1700000000000", Value: from}}
			return nil, toProblem(ctx, p)
		}
		// Subscribe before reading, so no change falls between.
		wake, unsubscribe := s.notifier.Subscribe("Drill")
		rec, err := s.store.Get(ctx, "Drill", in.Name)
		if err != nil {
			unsubscribe()
			return nil, toProblem(ctx, err)
		}
		uid := rec.Meta.UID
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			defer unsubscribe()
			s.streamTimeline(hctx, in.Name, uid, pos, wake)
		}}, nil
	})
}

func (s *API) streamTimeline(hctx huma.Context, name, uid string, pos timelinePos, wake <-chan struct{}) {
	ctx := hctx.Context()
	hctx.SetHeader("Content-Type", "text/event-stream")
	hctx.SetHeader("Cache-Control", "no-cache")
	hctx.SetHeader("X-Accel-Buffering", "no")
	hctx.SetStatus(http.StatusOK)
	out := hctx.BodyWriter()
	fl := flusher{out}
	send := func(event string, v any) bool {
		data, _ := json.Marshal(v)
		_, err := fmt.Fprintf(out, "id: %s\nevent: %s\ndata: %s\n\n", pos, event, data)
		return err == nil
	}
	keepalive := time.NewTicker(s.keepalive)
	defer keepalive.Stop()
	phase := ""
	for {
		rec, err := s.store.Get(ctx, "Drill", name)
		if err == nil && rec.Meta.UID != uid {
			err = api.Errorf(api.CodeNotFound, "drill %s was deleted and created again", name)
		}
		if err != nil {
			if ctx.Err() == nil {
				sendError(ctx, out, err)
				fl.Flush()
			}
			return
		}
		var dr api.Drill
		if err := rec.Decode(&dr); err != nil {
			return
		}
		st := dr.Status
		for pos.entries < len(st.Timeline) {
			e := st.Timeline[pos.entries]
			pos.entries++
			if !send("timeline", e) {
				return
			}
		}
		for _, smp := range st.Samples {
			if ms := smp.At.UnixMilli(); ms > pos.sample {
				pos.sample = ms
				if !send("sample", smp) {
					return
				}
			}
		}
		if st.Phase != phase {
			phase = st.Phase
			if !send("phase", DrillPhase{Phase: phase}) {
				return
			}
		}
		if st.Final() {
			send("report", dr)
			fl.Flush()
			return
		}
		fl.Flush()
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-wake:
		case <-keepalive.C:
			if _, err := fmt.Fprint(out, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// brokenBudgets says which disruption budgets a plan breaks.
func brokenBudgets(plan *api.DrillPlan) string {
	var notes []string
	for _, w := range plan.BrokenBudgets() {
		notes = append(notes, w.BudgetNote)
	}
	return "the plan breaks disruption budgets: " + strings.Join(notes, "; ")
}
