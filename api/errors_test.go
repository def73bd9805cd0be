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
