package api

import (
	"strings"
	"testing"
)

func TestTextProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		multiline bool
		want      string // "" when fine, else a part of the problem
	}{
		{"", false, ""},
		{"web-1", false, ""},
		{"café ✓ 日本", false, ""},
		{"\uFFFD", false, ""}, // the replacement character itself is text
		{"a\x00b", true, "NUL"},
		{"\xff", true, "UTF-8"},
		{"\xc3\x28", true, "UTF-8"},
		{"\xed\xa0\x80", true, "UTF-8"}, // a surrogate, encoded
		{"a\x01", true, "U+0001"},
		{"\x1b[31mred", true, "U+001B"},
		{"\x7f", true, "U+007F"},
		{"\u0085", true, "U+0085"},
		{"line\nline\r\n\tindented", true, ""},
		{"line\nline", false, "U+000A"},
		{"a\tb", false, "U+0009"},
	}
	for _, tt := range tests {
		got := TextProblem(tt.in, tt.multiline)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("TextProblem(%q, %v) = %q, want %q", tt.in, tt.multiline, got, tt.want)
		}
	}
}
