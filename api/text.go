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

// Truncate bounds a message (an event's, a condition's, an audit row's,
// a member's report) to at most n bytes: a longer s is cut on a rune
// boundary, never inside a multi-byte character, and ends with "…",
// which counts toward n.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut, tail := n-len(ellipsis), ellipsis
	if cut < 0 { // no room for the ellipsis
		cut, tail = max(n, 0), ""
	}
	// A character is at most utf8.UTFMax bytes: past that, s is not
	// UTF-8 here and any cut will do.
	for back := 0; back < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(s[cut]); back++ {
		cut--
	}
	return s[:cut] + tail
}
