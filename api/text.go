package api

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// TextProblem says what makes s unfit to be stored as text, or "" when
// nothing does: invalid UTF-8, NUL and the other control characters
// (PostgreSQL refuses NUL in text and jsonb; the others are invisible
// and end up in logs and terminals). Tab, newline and carriage return
// are allowed when multiline is set, as values such as an annotation or
// a command's argument may span lines; never in names, path segments or
// query parameters.
func TextProblem(s string, multiline bool) string {
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return fmt.Sprintf("is not valid UTF-8 (byte %d)", i)
			}
		case r == 0:
			return fmt.Sprintf("must not contain a NUL byte (byte %d)", i)
		case unicode.IsControl(r) && !(multiline && (r == '\t' || r == '\n' || r == '\r')):
			return fmt.Sprintf("must not contain the control character %U (byte %d)", r, i)
		}
	}
	return ""
}
