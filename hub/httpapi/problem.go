package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/telemetry"
)

// statusOf is the one table from domain error codes to HTTP statuses.
var statusOf = map[string]int{
	api.CodeBadRequest:           http.StatusBadRequest,
	api.CodeInvalid:              http.StatusUnprocessableEntity,
	api.CodeUnauthorized:         http.StatusUnauthorized,
	api.CodeForbidden:            http.StatusForbidden,
	api.CodeNotFound:             http.StatusNotFound,
	api.CodeAlreadyExists:        http.StatusConflict,
	api.CodeConflict:             http.StatusConflict,
	api.CodeGone:                 http.StatusGone,
	api.CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	api.CodeNotAcceptable:        http.StatusNotAcceptable,
	api.CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	api.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	api.CodeTooManyRequests:      http.StatusTooManyRequests,
	api.CodeUnavailable:          http.StatusServiceUnavailable,
	api.CodeInternal:             http.StatusInternalServerError,
}

// codeOf is the reverse, for errors huma raises itself (body too large,
// malformed body, schema violations).
func codeOf(status int) string {
	switch status {
	case http.StatusUnprocessableEntity:
		return api.CodeInvalid
	case http.StatusConflict:
		return api.CodeConflict
	}
	for code, s := range statusOf {
		if s == status {
			return code
		}
	}
	if status >= 500 {
		return api.CodeInternal
	}
	return api.CodeBadRequest
}

// problem is an API error as huma writes it.
type problem struct {
	api.Problem
	// Plan is a refused drill's plan, sent as an extension member.
	Plan    *api.DrillPlan `json:"plan,omitempty"`
	headers http.Header
}

func (p *problem) Error() string           { return p.Problem.Error() }
func (p *problem) Unwrap() error           { return &api.Error{Code: p.Code, Message: p.Problem.Error()} }
func (p *problem) GetStatus() int          { return p.Status }
func (p *problem) GetHeaders() http.Header { return p.headers }

// ContentType makes huma send application/problem+json.
func (p *problem) ContentType(ct string) string {
	if ct == "application/json" || ct == "" {
		return "application/problem+json"
	}
	if ct == "application/yaml" {
		return "application/problem+yaml"
	}
	return ct
}

func newProblem(status int, code, detail string) *problem {
	p := &problem{Problem: api.Problem{
		Type:   "https://atoll.dev/problems/" + strings.ToLower(code),
		Title:  http.StatusText(status),
		Status: status,
		Code:   code,
		Detail: detail,
	}}
	if status == http.StatusServiceUnavailable {
		p.headers = http.Header{"Retry-After": []string{"2"}}
	}
	return p
}

// installErrorModel makes every error huma raises an api.Problem. It sets
// huma's package-level constructors, once per process; internal errors go
// to the logger of the API that served the request (logFrom).
func installErrorModel() {
	huma.NewErrorWithContext = func(hctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		p := newProblem(status, codeOf(status), msg)
		if hctx != nil {
			p.Instance = hctx.URL().Path
			p.RequestID = telemetry.RequestIDFrom(hctx.Context())
		}
		for _, err := range errs {
			if err == nil {
				continue
			}
			var d *huma.ErrorDetail
			switch {
			case errors.As(err, &d):
				p.Errors = append(p.Errors, api.ProblemDetail{Location: unescapeLocation(d.Location), Message: d.Message, Value: sanitizeValue(d.Value)})
			case status >= 500:
				// Internal detail stays in the log; the user gets the request id.
				ctx := context.Background()
				if hctx != nil {
					ctx = hctx.Context()
				}
				logFrom(ctx).ErrorContext(ctx, "internal error", "err", err, "request_id", p.RequestID)
			default:
				p.Errors = append(p.Errors, api.ProblemDetail{Message: err.Error()})
			}
		}
		if status >= 500 && status != http.StatusServiceUnavailable {
			p.Detail = "internal error; quote the request id when reporting it"
		}
		return p
	}
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		return huma.NewErrorWithContext(nil, status, msg, errs...)
	}
}

// sanitizeValue drops echoed bodies: a rejected 1 MiB document should not
// come back in the error.
func sanitizeValue(v any) any {
	switch x := v.(type) {
	case string:
		if len(x) > 256 {
			return nil
		}
	case map[string]any, []any:
		return nil // the enclosing object, not the bad value
	}
	return v
}

type instanceKey struct{}

// withInstance remembers the request path for problems made deep inside
// handlers.
func withInstance(ctx context.Context, path string) context.Context {
	return context.WithValue(ctx, instanceKey{}, path)
}

// stamp fills the request id and instance of a problem from the context.
func stamp(ctx context.Context, p *problem) *problem {
	if p.RequestID == "" {
		p.RequestID = telemetry.RequestIDFrom(ctx)
	}
	if p.Instance == "" {
		p.Instance, _ = ctx.Value(instanceKey{}).(string)
	}
	return p
}

// toProblem turns an error from a handler into an API problem: domain
// errors keep their code, field errors become Invalid with locations,
// anything else is internal.
func toProblem(ctx context.Context, err error) error {
	var already *problem
	if errors.As(err, &already) {
		return stamp(ctx, already)
	}
	var fe api.FieldErrors
	if errors.As(err, &fe) {
		p := newProblem(http.StatusUnprocessableEntity, api.CodeInvalid, "validation failed")
		for _, e := range fe {
			p.Errors = append(p.Errors, api.ProblemDetail{Location: "body." + e.Field, Message: e.Message, Value: sanitizeValue(e.Value)})
		}
		return stamp(ctx, p)
	}
	var de *api.Error
	if errors.As(err, &de) {
		status, ok := statusOf[de.Code]
		if !ok {
			status = http.StatusInternalServerError
		}
		msg := de.Message
		if de.Code == api.CodeUnavailable {
			msg = "the database is unavailable; retry shortly"
		}
		return stamp(ctx, newProblem(status, de.Code, msg))
	}
	if errors.Is(err, context.Canceled) {
		return stamp(ctx, newProblem(499, api.CodeBadRequest, "request cancelled"))
	}
	p := stamp(ctx, newProblem(http.StatusInternalServerError, api.CodeInternal, "internal error; quote the request id when reporting it"))
	logFrom(ctx).ErrorContext(ctx, "internal error", "err", err, "request_id", p.RequestID)
	return p
}

type logKey struct{}

// withLog gives the requests this API serves its logger, for errors
// raised where only the context is at hand (huma's error hooks are
// process-wide; several hubs may share a process, as in tests).
func (s *API) withLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), logKey{}, s.log)))
	})
}

// logFrom is the logger of the API serving ctx's request (the process's
// default logger outside one).
func logFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// writeProblem writes a problem outside huma (router fallbacks, watch
// streams before they start).
func writeProblem(w http.ResponseWriter, r *http.Request, p *problem) {
	p.Instance = r.URL.Path
	p.RequestID = telemetry.RequestID(r)
	for k, v := range p.headers {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p.Problem)
}
