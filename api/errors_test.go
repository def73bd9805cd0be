package api

import (
	"errors"
	"fmt"
	"testing"
)

// TestErrorCode: the code of a domain error, and of a problem the API
// answered (the client's error: the CLI retries a 409 by it), wrapped or
// not.
func TestErrorCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{Errorf(CodeConflict, "changed"), CodeConflict},
		{fmt.Errorf("patch: %w", &Problem{Status: 409, Code: CodeConflict}), CodeConflict},
		{errors.New("plain"), ""},
		{nil, ""},
	} {
		if got := ErrorCode(c.err); got != c.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestProblemSaysEachCauseOnce(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p    Problem
		want string
	}{
		{Problem{Detail: "workload web changed since you read it", Errors: []ProblemDetail{{Message: "workload web changed since you read it"}}}, "workload web changed since you read it"},
		{Problem{Detail: "body.spec.ttl: not a duration", Errors: []ProblemDetail{{Location: "body.spec.ttl", Message: "not a duration"}}}, "body.spec.ttl: not a duration"},
		{Problem{Detail: "validation failed", Errors: []ProblemDetail{{Location: "body.spec.replicas", Message: "must be 0 or more"}, {Location: "body.metadata.name", Message: "too long"}}},
			"validation failed: body.spec.replicas: must be 0 or more; body.metadata.name: too long"},
		{Problem{Title: "Conflict", Errors: []ProblemDetail{{Message: "taken"}}}, "Conflict: taken"},
	} {
		if got := c.p.Error(); got != c.want {
			t.Errorf("%+v.Error() = %q, want %q", c.p, got, c.want)
		}
	}
}
