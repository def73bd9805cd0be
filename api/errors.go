package api

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is one problem with one field of an object.
type FieldError struct {
	Field   string // path such as "spec.template.resources.cpu"
	Message string
	Value   any
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors is every problem found in an object.
type FieldErrors []FieldError

func (fe FieldErrors) Error() string {
	parts := make([]string, len(fe))
	for i, e := range fe {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// errs collects field errors under a path prefix.
type errs struct {
	list FieldErrors
}

func (e *errs) add(field, format string, args ...any) {
	e.list = append(e.list, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (e *errs) addValue(field string, value any, format string, args ...any) {
	e.list = append(e.list, FieldError{Field: field, Message: fmt.Sprintf(format, args...), Value: value})
}

func (e *errs) result() FieldErrors {
	if len(e.list) == 0 {
		return nil
	}
	return e.list
}

// Problem codes: stable, machine-readable names for every error the API
// returns. Clients switch on Code, never on the message.
const (
	CodeBadRequest           = "BadRequest"
	CodeInvalid              = "Invalid"
	CodeUnauthorized         = "Unauthorized"
	CodeForbidden            = "Forbidden"
	CodeNotFound             = "NotFound"
	CodeAlreadyExists        = "AlreadyExists"
	CodeConflict             = "Conflict"
	CodeGone                 = "Gone"
	CodeMethodNotAllowed     = "MethodNotAllowed"
	CodeNotAcceptable        = "NotAcceptable"
	CodePayloadTooLarge      = "PayloadTooLarge"
	CodeUnsupportedMediaType = "UnsupportedMediaType"
	CodeTooManyRequests      = "TooManyRequests"
	CodeUnavailable          = "Unavailable"
	CodeInternal             = "Internal"
)

// Problem is an RFC 9457 problem details body, as every API error is sent.
type Problem struct {
	Type      string          `json:"type,omitempty" doc:"A URI naming the problem type."`
	Title     string          `json:"title,omitempty"`
	Status    int             `json:"status,omitempty"`
	Detail    string          `json:"detail,omitempty"`
	Instance  string          `json:"instance,omitempty"`
	Code      string          `json:"code" doc:"Stable machine-readable code, e.g. Conflict or Invalid."`
	RequestID string          `json:"requestId,omitempty" doc:"Quote it when reporting a problem; the hub logs it."`
	Errors    []ProblemDetail `json:"errors,omitempty" doc:"One entry per problem, with the field it is about."`
}

// ProblemDetail is one problem within a Problem, located by a path such as
// "body.spec.replicas" or "query.limit".
type ProblemDetail struct {
	Location string `json:"location,omitempty"`
	Message  string `json:"message"`
	Value    any    `json:"value,omitempty"`
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.Detail)
	if p.Detail == "" {
		b.WriteString(p.Title)
	}
	n := 0
	for _, e := range p.Errors {
		// Each cause once: a detail that already says it (a conflict's,
		// or a single field's) is not repeated.
		if e.Message != "" && strings.Contains(p.Detail, e.Message) && (e.Location == "" || strings.Contains(p.Detail, e.Location)) {
			continue
		}
		if n == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		n++
		if e.Location != "" {
			b.WriteString(e.Location + ": ")
		}
		b.WriteString(e.Message)
	}
	return b.String()
}

// Error is a domain error with a stable code; the hub maps codes to HTTP
// statuses in one table.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf makes an Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of a domain error in err's chain, or of a
// problem the API answered (what the client returns), or "".
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var p *Problem
	if errors.As(err, &p) {
		return p.Code
	}
	return ""
}
